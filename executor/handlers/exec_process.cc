#include "executor/handlers/exec_process.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tessera::executor {
namespace {

// What the child reports on its close-on-exec pipe when it cannot exec.
struct SpawnError {
  int stage;  // kStage*
  int err;    // errno
};
constexpr int kStageChdir = 1;
constexpr int kStageRlimit = 2;
constexpr int kStageExec = 3;

std::string Errno(int err) {
  char buf[256];
  return std::string(strerror_r(err, buf, sizeof buf));
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Between fork and exec only async-signal-safe calls: the executor has many
// threads, and any of them may hold a lock (malloc's, spdlog's) at fork time.
[[noreturn]] void RunChild(const SpawnOptions& o, char* const* argv, char* const* envp,
                           pid_t parent, int devnull, int out_w, int err_w,
                           int report_w) {
  auto fail = [report_w](int stage) {
    SpawnError e{stage, errno};
    (void)!write(report_w, &e, sizeof e);
    _exit(127);
  };
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the spawning thread is already gone
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);  // the executor blocks SIGTERM/SIGINT
  dup2(devnull, 0);
  dup2(out_w, 1);
  dup2(err_w, 2);
  if (!o.workdir.empty() && chdir(o.workdir.c_str()) != 0) fail(kStageChdir);
  if (o.max_memory_bytes > 0) {
    struct rlimit lim;
    lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(o.max_memory_bytes);
    if (setrlimit(RLIMIT_AS, &lim) != 0) fail(kStageRlimit);
  }
  // Close every other descriptor (sockets, files, other shards' pipes) but
  // the report pipe, which closes itself on exec.
  if (close_range(3, report_w - 1, 0) != 0 || close_range(report_w + 1, ~0U, 0) != 0) {
    struct rlimit nofile;
    int max_fd = 65536;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536) {
      max_fd = static_cast<int>(nofile.rlim_cur);
    }
    for (int fd = 3; fd < max_fd; ++fd) {
      if (fd != report_w) close(fd);
    }
  }
  execve(o.program.c_str(), argv, envp);
  fail(kStageExec);
  _exit(127);  // not reached
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const SpawnOptions& options) {
  // Everything the child needs is built before fork (no allocation after it).
  std::vector<char*> argv;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  int devnull = options.stdin_fd >= 0 ? fcntl(options.stdin_fd, F_DUPFD_CLOEXEC, 0)
                                      : open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto cleanup = [&] {
    for (int* fd : {&out[0], &out[1], &err[0], &err[1], &report[0], &report[1], &devnull})
      CloseFd(*fd);
  };
  if (devnull < 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
      pipe2(report, O_CLOEXEC) != 0) {
    const int e = errno;
    cleanup();
    return absl::InternalError(absl::StrCat("cannot create pipes: ", Errno(e)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    cleanup();
    return absl::ResourceExhaustedError(absl::StrCat("fork failed: ", Errno(e)));
  }
  if (pid == 0) {
    RunChild(options, argv.data(), envp.data(), parent, devnull, out[1], err[1],
             report[1]);
  }
  // Also here, so that the group exists before the parent may signal it (an
  // error just means the child got there first, or already exec'd).
  setpgid(pid, pid);
  CloseFd(out[1]);
  CloseFd(err[1]);
  CloseFd(report[1]);
  CloseFd(devnull);

  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->out_fd_ = out[0];
  child->err_fd_ = err[0];
  fcntl(child->out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(child->err_fd_, F_SETFL, O_NONBLOCK);

  SpawnError e{0, 0};
  ssize_t n;
  do {
    n = read(report[0], &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  CloseFd(report[0]);
  if (n == static_cast<ssize_t>(sizeof e)) {
    child->Reap();
    switch (e.stage) {
      case kStageChdir:
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot change to workdir ", options.workdir, ": ", Errno(e.err)));
      case kStageRlimit:
        return absl::FailedPreconditionError(
            absl::StrCat("cannot set max_memory_bytes=", options.max_memory_bytes, ": ",
                         Errno(e.err)));
      default:
        return absl::FailedPreconditionError(
            absl::StrCat("cannot execute ", options.program, ": ", Errno(e.err)));
    }
  }
  return child;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(-pid_, SIGKILL);
    Reap();
  }
  CloseFd(out_fd_);
  CloseFd(err_fd_);
}

void ChildProcess::CloseStdout() { CloseFd(out_fd_); }
void ChildProcess::CloseStderr() { CloseFd(err_fd_); }

void ChildProcess::SignalGroup(int sig) {
  if (pid_ > 0 && !reaped_) kill(-pid_, sig);
}

bool ChildProcess::LeaderExited() {
  if (reaped_) return true;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == pid_;
}

int ChildProcess::Reap() {
  if (reaped_) return status_;
  siginfo_t info;
  while (waitid(P_PID, pid_, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  // The leader is a zombie now, holding its pid, so the group id cannot have
  // been reused: whatever is left in the group is an orphan of this shard.
  kill(-pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  status_ = status;
  return status_;
}

absl::StatusOr<std::string> ResolveProgram(const std::string& program,
                                           const std::string& path) {
  if (program.find('/') != std::string::npos) return program;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", program);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("\"", program, "\" not found on PATH (", path, ")"));
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return absl::StrCat("killed by signal ", sig,
                        abbrev != nullptr ? absl::StrCat(" (SIG", abbrev, ")") : "");
  }
  return absl::StrCat("ended with wait status ", status);
}

}  // namespace tessera::executor
