// A child process in its own process group, with stdout and stderr on pipes:
// the mechanism under exec tasks. fork/exec by hand because posix_spawn cannot
// set resource limits and Debian has no small process library that fits.
#ifndef TESSERA_EXECUTOR_HANDLERS_EXEC_PROCESS_H_
#define TESSERA_EXECUTOR_HANDLERS_EXEC_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::executor {

struct SpawnOptions {
  std::string program;            // absolute path (see ResolveProgram)
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // the whole environment, "NAME=value"
  std::string workdir;            // empty: the executor's
  int64_t max_memory_bytes = 0;   // RLIMIT_AS; 0 = inherit
  int stdin_fd = -1;              // the child's stdin (duplicated); -1: /dev/null
};

// One spawned program. stdin is /dev/null unless SpawnOptions gives one; no other
// descriptor of the executor leaks into it; signal mask and dispositions are reset to
// defaults; it gets SIGKILL if the spawning thread dies (PR_SET_PDEATHSIG).
//
// Not thread-safe: one thread drives it. The destructor SIGKILLs the whole
// group and reaps the leader if the owner did not, so no zombie is left.
class ChildProcess {
 public:
  // FailedPrecondition when the program cannot be started (exec or chdir
  // failed: the message has the reason); Internal for pipe/fork failures.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const SpawnOptions& options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }  // also the process group id
  // Read ends, non-blocking; -1 once closed with CloseStdout/CloseStderr.
  int stdout_fd() const { return out_fd_; }
  int stderr_fd() const { return err_fd_; }
  void CloseStdout();
  void CloseStderr();

  // Sends `sig` to every process of the group (no-op once reaped).
  void SignalGroup(int sig);
  // True once the leader has exited; does not reap it, so its pid (the group
  // id) cannot be reused while the rest of the group is killed.
  bool LeaderExited();
  // Waits for the leader, SIGKILLs what is left of its group, reaps the
  // leader and returns its wait status. Idempotent.
  int Reap();

 private:
  ChildProcess() = default;

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Finds `program` as execvp would: itself when it holds a '/', else the first
// executable file of that name on `path` (a PATH value). NotFound otherwise.
absl::StatusOr<std::string> ResolveProgram(const std::string& program,
                                           const std::string& path);

// "exited with status 3", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_HANDLERS_EXEC_PROCESS_H_
