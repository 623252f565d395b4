// Runs `tessera` commands against a JobApi and maps outcomes to exit statuses.
// Output goes to the streams in RunContext; time comes from its clock, so the
// whole flow runs in tests against a fake JobApi.
#ifndef TESSERA_CLI_COMMANDS_H_
#define TESSERA_CLI_COMMANDS_H_

#include <functional>
#include <istream>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cli/args.h"
#include "cli/job_api.h"
#include "cli/progress.h"
#include "shared/clock.h"

namespace tessera::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitJobFailed = 1,  // the followed job ended FAILED, CANCELLED or PARTIAL
  kExitUsage = 2,
  kExitRpc = 3,
};

struct RunContext {
  std::ostream& out;           // data: ids, tables, JSON, results
  std::ostream& err;           // progress, hints and errors
  std::istream* in = nullptr;  // stdin, for `submit --items-file -`; not owned
  ProgressMode progress_mode = ProgressMode::kPlain;
  size_t terminal_columns = 0;   // the progress bar is cut to this; 0: no limit
  const Clock* clock = nullptr;  // not owned; must outlive the run
  absl::TimeZone time_zone = absl::UTCTimeZone();
};

// Where and how to reach the scheduler.
struct ConnectOptions {
  std::string address;
  std::string tls_ca;  // PEM CA file; empty: plaintext
  std::string token;   // bearer token; empty: none
};

// The environment's say (each may be nullptr): TESSERA_SCHEDULER,
// TESSERA_TOKEN, TESSERA_TLS_CA.
struct CliEnv {
  const char* scheduler = nullptr;
  const char* token = nullptr;
  const char* tls_ca = nullptr;
};

using ConnectFn =
    std::function<absl::StatusOr<std::unique_ptr<JobApi>>(const ConnectOptions& options)>;

// The whole CLI: parses `args` (argv without the program name), reads
// `submit --items-file` (a file, or ctx.in for "-") and --token-file, prints
// help or a usage error (without connecting), else connects to the scheduler
// named by --scheduler / $TESSERA_SCHEDULER / the default (TLS with --tls-ca /
// $TESSERA_TLS_CA; a token from --token, --token-file or $TESSERA_TOKEN) and
// runs the command.
int RunCli(const std::vector<std::string>& args, const CliEnv& env,
           const ConnectFn& connect, const RunContext& ctx);

// Runs an already parsed command; `address` only appears in error messages.
int RunCommand(const Command& cmd, JobApi& api, const std::string& address,
               const RunContext& ctx);

}  // namespace tessera::cli

#endif  // TESSERA_CLI_COMMANDS_H_
