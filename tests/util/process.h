// Test helpers: real subprocesses for end-to-end tests: started with fork/exec, output to
// a log file, ended by PID (only the ones the test started).
#ifndef TESSERA_TESTS_UTIL_PROCESS_H_
#define TESSERA_TESTS_UTIL_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tessera::testing {

class Process {
 public:
  // Starts argv[0] with stdout and stderr appended to `log_path`.
  Process(std::vector<std::string> argv, std::string log_path);
  ~Process();  // SIGKILLs the process if it still runs
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // The exit status (or 128 + signal), or nullopt if it did not end in time.
  std::optional<int> Wait(absl::Duration timeout);
  bool running();
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

// Runs a command to completion and returns its exit status and stdout.
struct CommandResult {
  int status = -1;
  std::string out;
};
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env = {},
                         absl::Duration timeout = absl::Seconds(60));

// GET http://127.0.0.1:port/path; the whole response, headers included
// ("" if nothing listens).
std::string HttpGet(int port, const std::string& path);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();
// A new directory "<prefix>-XXXXXX" under the system temp dir (aborts when it
// cannot be made), which the caller must remove: tests use TempDir
// (tests/util/temp_dir.h), which removes its own.
std::string MakeTempDir(const std::string& prefix);

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_UTIL_PROCESS_H_
