// Command-line parsing for the `tessera` client: argv in, a plain Command out.
// Pure (no I/O, no environment); usage errors come back as INVALID_ARGUMENT
// whose message names the offending flag. args.cc finds the words (CLI11),
// flag_values.cc judges the values.
#ifndef TESSERA_CLI_ARGS_H_
#define TESSERA_CLI_ARGS_H_

#include <google/protobuf/duration.pb.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::cli {

inline constexpr char kDefaultSchedulerAddress[] = "127.0.0.1:50051";

enum class CommandKind {
  kHelp,
  kVersion,  // --version, anywhere: print VersionLine() (shared/version.h)
  kSubmit,
  kGet,
  kWatch,
  kResult,
  kList,
  kCancel,
  kRetry,
  kUpdate,
  kExecutors,
  kQueue,
};

struct Command {
  CommandKind kind = CommandKind::kHelp;
  // Global flags. `scheduler` is empty when --scheduler was not given.
  std::string scheduler;
  std::string tls_ca;      // --tls-ca
  std::string token;       // --token (visible in ps; prefer the file or env)
  std::string token_file;  // --token-file
  bool json = false;
  // get, watch, result, cancel, retry, update.
  std::string job_id;
  // submit. For an items job spec.items has its batch_size and no items yet:
  // ParseArgs does no I/O, RunCli reads `items_file` ("-": stdin) into it.
  tessera::v1::JobSpec spec;
  std::string items_file;
  // submit, retry: follow the job like `watch`.
  bool wait = false;
  // list.
  tessera::v1::ListJobsRequest list;
  // update: job_id, the new values and an update_mask naming them.
  tessera::v1::UpdateJobRequest update;
};

// Parses the arguments after the program name. Global flags (--scheduler,
// --tls-ca, --token, --token-file, --json, --help) are accepted before or
// after the command.
absl::StatusOr<Command> ParseArgs(const std::vector<std::string>& args);

// --scheduler if given, else $TESSERA_SCHEDULER if set and non-empty, else the
// default. `env` is the environment variable's value or nullptr.
std::string ResolveSchedulerAddress(absl::string_view flag, const char* env);

// The full usage text printed by `tessera --help`.
const char* UsageText();

// Every command and flag ParseArgs knows ("submit", "--task", ...), so that a
// test can hold UsageText() to all of them.
std::vector<std::string> KnownWords();

// Exposed for tests: "START:END" -> [start, end), end > start.
absl::Status ParseRange(absl::string_view text, tessera::v1::RangeInput& range);

// The items of `--items-file`: either the whole text is one JSON array (its
// elements are the items) or it is JSON lines (each non-blank line is one
// item). Appends them to `items`; errors are usage errors naming
// --items-file (and the line, for JSON lines). An empty list is an error.
absl::Status ParseItems(absl::string_view text, tessera::v1::ItemsInput& items);

// Exposed for tests: a duration such as "500ms", "2s", "1m" or "1m30s" (as
// absl::ParseDuration reads it) into `out`. Negative and infinite durations are
// usage errors naming `flag`, and so is zero unless `allow_zero`.
absl::Status ParseDurationFlag(absl::string_view flag, absl::string_view text,
                               bool allow_zero, google::protobuf::Duration& out);

}  // namespace tessera::cli

#endif  // TESSERA_CLI_ARGS_H_
