// Operator-defined `exec` tasks: what the executor's --tasks-file says. A job
// names one of these tasks and passes params; it can never supply a command.
#ifndef TESSERA_EXECUTOR_HANDLERS_EXEC_TASK_CONFIG_H_
#define TESSERA_EXECUTOR_HANDLERS_EXEC_TASK_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tessera::executor {

// One task of the tasks file. Plain data; copied into its handler.
struct ExecTaskConfig {
  std::string name;
  // argv, run without a shell. command[0] is an absolute path or a bare name
  // looked up on PATH (the task's env PATH if set, else the executor's).
  std::vector<std::string> command;
  // Absolute (a relative workdir in the file is resolved against the file's
  // directory; the default is that directory).
  std::string workdir;
  // Added to the executor's environment; TESSERA_* names are reserved.
  std::map<std::string, std::string> env;
  absl::Duration timeout = absl::Hours(1);
  // Between SIGTERM and SIGKILL to the shard's process group.
  absl::Duration kill_grace = absl::Seconds(10);
  // RLIMIT_AS of the program; 0 = no limit.
  int64_t max_memory_bytes = 0;
  // Bytes the program may write to stdout; beyond them it is stopped.
  int64_t max_output_bytes = int64_t{16} << 20;
  // How much of the end of stderr goes with a failure message.
  int64_t stderr_tail_bytes = 4096;
  // stderr bytes written to the executor's log per shard; the rest is counted.
  int64_t max_log_bytes = int64_t{1} << 20;
};

// Parses the tasks file's JSON text. `base_dir` resolves relative workdirs.
// Errors are InvalidArgument naming the field, e.g.
// `tasks.promo.timeout: "ten" is not a duration (e.g. "600s", "10m")`.
absl::StatusOr<std::vector<ExecTaskConfig>> ParseExecTasks(absl::string_view text,
                                                           const std::string& base_dir);

// Reads and parses `path`; messages start with the path.
absl::StatusOr<std::vector<ExecTaskConfig>> LoadExecTasksFile(const std::string& path);

// "512MiB", "16M", "1G", "4096" or a JSON number -> bytes (powers of 1024).
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_HANDLERS_EXEC_TASK_CONFIG_H_
