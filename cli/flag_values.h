// The values of the `tessera` command's flags, turned into requests: ranges,
// items, params (protobuf's own JSON converter), durations, labels and the
// limits the scheduler would refuse anyway. args.cc finds the flags (CLI11);
// this file judges what they say. Pure: no I/O, no environment.
#ifndef TESSERA_CLI_FLAG_VALUES_H_
#define TESSERA_CLI_FLAG_VALUES_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "cli/args.h"

namespace tessera::cli {

// INVALID_ARGUMENT "FLAG: MESSAGE", the shape of every usage error.
absl::Status UsageError(absl::string_view flag, absl::string_view message);

// A command's flags as given: name without "--" -> value ("" for a flag that
// takes none), a repeatable flag once per use, in order.
using FlagValues = std::multimap<std::string, std::string, std::less<>>;

// Fill cmd.spec (and items_file, wait) / cmd.list / cmd.update from `flags`.
absl::Status BuildSubmit(const FlagValues& flags, Command& cmd);
absl::Status BuildList(const FlagValues& flags, Command& cmd);
absl::Status BuildUpdate(const FlagValues& flags, Command& cmd);

}  // namespace tessera::cli

#endif  // TESSERA_CLI_FLAG_VALUES_H_
