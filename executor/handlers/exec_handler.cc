#include "executor/handlers/exec_handler.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "executor/handlers/exec_process.h"
#include "executor/handlers/exec_protocol.h"
#include "shared/clock.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace tessera::executor {
namespace {

using json = nlohmann::json;

constexpr absl::Duration kPollInterval = absl::Milliseconds(25);
// After the leader is gone, how long output may still be drained (a process
// that left the group with setsid could hold the pipes open for ever).
constexpr absl::Duration kDrainLimit = absl::Seconds(2);
constexpr size_t kMaxLoggedLine = 4096;
constexpr int kExitTempFail = 75;  // EX_TEMPFAIL: "retry me"

// Why the executor stopped the program before it ended by itself.
enum class StopReason { kNone, kCancelled, kTimeout, kProtocol, kOutputLimit };

// One run of one shard: the state the poll loop builds up.
class ShardRun {
 public:
  ShardRun(const ExecTaskConfig& config, const ShardTask& task,
           ProgressReporter& progress, const CancelToken& cancel)
      : config_(config), task_(task), progress_(progress), cancel_(cancel) {}

  absl::StatusOr<json> Run() {
    SpawnOptions options;
    options.argv = config_.command;
    options.workdir = config_.workdir;
    options.max_memory_bytes = config_.max_memory_bytes;
    std::string path;
    options.env = Environment(&path);
    absl::StatusOr<std::string> program = ResolveProgram(config_.command[0], path);
    if (!program.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("task ", config_.name, ": command ", program.status().message()));
    }
    options.program = *program;
    // Items jobs: the batch as JSON lines on stdin, from an unlinked temp file
    // (no pipe to feed, so a program that never reads cannot block us).
    int items_fd = -1;
    if (task_.has_items) {
      absl::StatusOr<int> fd = ItemsFile();
      if (!fd.ok()) return fd.status();
      items_fd = *fd;
      options.stdin_fd = items_fd;
    }
    absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Spawn(options);
    if (items_fd >= 0) close(items_fd);
    if (!child.ok()) {
      return absl::Status(child.status().code(), absl::StrCat("task ", config_.name, ": ",
                                                              child.status().message()));
    }
    child_ = std::move(child).value();
    spdlog::debug("job={} shard={} attempt={} task={} started pid {}: {}", task_.job_id,
                  task_.shard, task_.attempt, config_.name, child_->pid(),
                  absl::StrJoin(config_.command, " "));
    Supervise();
    const int status = child_->Reap();
    Drain();
    return Outcome(status);
  }

 private:
  absl::StatusOr<int> ItemsFile() const {
    const char* tmp = std::getenv("TMPDIR");
    std::string path =
        absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/tessera-items-XXXXXX");
    const int fd = mkstemp(path.data());
    if (fd < 0) {
      return absl::InternalError(
          absl::StrCat("task ", config_.name,
                       ": cannot create the items file: ", std::strerror(errno)));
    }
    unlink(path.c_str());
    std::string lines;
    for (const json& item : task_.items) lines += item.dump() + "\n";
    size_t off = 0;
    while (off < lines.size()) {
      const ssize_t n = write(fd, lines.data() + off, lines.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        close(fd);
        return absl::InternalError(
            absl::StrCat("task ", config_.name, ": writing the items failed"));
      }
      off += static_cast<size_t>(n);
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
  }

  // The executor's environment, then the task's env, then the shard's
  // TESSERA_* variables (which nothing overrides). Sets *path to the PATH the
  // program will see.
  std::vector<std::string> Environment(std::string* path) const {
    std::map<std::string, std::string> vars;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      absl::string_view kv(*e);
      const size_t eq = kv.find('=');
      if (eq == absl::string_view::npos || absl::StartsWith(kv, "TESSERA_")) continue;
      vars[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
    }
    for (const auto& [k, v] : config_.env) vars[k] = v;
    vars["TESSERA_TASK"] = config_.name;
    vars["TESSERA_JOB_ID"] = task_.job_id;
    vars["TESSERA_SHARD_INDEX"] = absl::StrCat(task_.shard);
    vars["TESSERA_ATTEMPT"] = absl::StrCat(task_.attempt);
    vars["TESSERA_RANGE_START"] = absl::StrCat(task_.start);
    vars["TESSERA_RANGE_END"] = absl::StrCat(task_.end);
    vars["TESSERA_PARAMS"] =
        task_.params.dump(-1, ' ', false, json::error_handler_t::replace);
    auto it = vars.find("PATH");
    *path = it != vars.end() ? it->second : "/usr/local/bin:/usr/bin:/bin";
    std::vector<std::string> env;
    for (const auto& [k, v] : vars) env.push_back(absl::StrCat(k, "=", v));
    return env;
  }

  // Until the leader exits: read its output, watch the clock and the cancel
  // token, escalate SIGTERM -> SIGKILL.
  void Supervise() {
    const absl::Time deadline = MonoNow() + config_.timeout;
    while (!child_->LeaderExited()) {
      const absl::Time now = MonoNow();
      if (stop_ == StopReason::kNone) {
        if (cancel_.cancelled()) {
          Stop(StopReason::kCancelled);
        } else if (now >= deadline) {
          Stop(StopReason::kTimeout);
        }
      }
      if (stop_ != StopReason::kNone && !killed_ &&
          now >= term_sent_ + config_.kill_grace) {
        child_->SignalGroup(SIGKILL);
        killed_ = true;
      }
      PollOnce(kPollInterval);
    }
  }

  // After the leader is reaped (and its group killed): what is left in the pipes.
  void Drain() {
    const absl::Time limit = MonoNow() + kDrainLimit;
    while ((child_->stdout_fd() >= 0 || child_->stderr_fd() >= 0) && MonoNow() < limit) {
      PollOnce(kPollInterval);
    }
    child_->CloseStdout();
    child_->CloseStderr();
    FinishStdout();
    FinishStderr();
  }

  void Stop(StopReason reason) {
    stop_ = reason;
    term_sent_ = MonoNow();
    if (config_.kill_grace <= absl::ZeroDuration()) {
      child_->SignalGroup(SIGKILL);
      killed_ = true;
    } else {
      child_->SignalGroup(SIGTERM);
    }
  }

  void PollOnce(absl::Duration timeout) {
    pollfd fds[2];
    bool is_stdout[2];
    int n = 0;
    for (int fd : {child_->stdout_fd(), child_->stderr_fd()}) {
      if (fd < 0) continue;
      is_stdout[n] = fd == child_->stdout_fd();
      fds[n++] = pollfd{fd, POLLIN, 0};
    }
    const int rc = poll(fds, n, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    if (rc <= 0) return;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const bool is_out = is_stdout[i];
      char buf[65536];
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        is_out ? OnStdout(absl::string_view(buf, got))
               : OnStderr(absl::string_view(buf, got));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        is_out ? child_->CloseStdout() : child_->CloseStderr();
      }
    }
  }

  void OnStdout(absl::string_view data) {
    if (discard_stdout_) return;
    const int64_t room = config_.max_output_bytes - out_bytes_;
    if (static_cast<int64_t>(data.size()) > room) {
      data = data.substr(0, std::max<int64_t>(room, 0));
      out_bytes_ = config_.max_output_bytes + 1;
      discard_stdout_ = true;
      if (stop_ == StopReason::kNone) Stop(StopReason::kOutputLimit);
      return;  // a cut line would only add a misleading protocol error
    }
    out_bytes_ += static_cast<int64_t>(data.size());
    out_buf_.append(data.data(), data.size());
    size_t start = 0;
    for (size_t nl;
         !discard_stdout_ && (nl = out_buf_.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      HandleLine(absl::string_view(out_buf_).substr(start, nl - start));
    }
    out_buf_.erase(0, start);
    if (discard_stdout_) out_buf_.clear();
  }

  void FinishStdout() {
    if (!discard_stdout_ && !out_buf_.empty()) HandleLine(out_buf_);
    out_buf_.clear();
  }

  void HandleLine(absl::string_view line) {
    ++line_no_;
    absl::StatusOr<ExecLine> parsed = ParseExecLine(line);
    if (!parsed.ok()) {
      return ProtocolError(
          absl::StrCat("stdout line ", line_no_, ": ", parsed.status().message()));
    }
    switch (parsed->kind) {
      case ExecLine::Kind::kBlank:
        break;
      case ExecLine::Kind::kProgress:
        if (!result_.has_value()) {
          const int64_t total =
              parsed->total >= 0 ? parsed->total : task_.end - task_.start;
          progress_.Report(parsed->done, total);
        }
        break;
      case ExecLine::Kind::kResult:
        if (result_.has_value()) {
          return ProtocolError(
              absl::StrCat("stdout line ", line_no_, ": a second result line"));
        }
        result_ = std::move(parsed->result);
        break;
      case ExecLine::Kind::kError:
        if (!error_.has_value()) error_ = std::move(parsed).value();
        break;
    }
  }

  void ProtocolError(std::string message) {
    protocol_error_ = std::move(message);
    discard_stdout_ = true;
    if (stop_ == StopReason::kNone) Stop(StopReason::kProtocol);
  }

  void OnStderr(absl::string_view data) {
    tail_.append(data.data(), data.size());
    const size_t keep = static_cast<size_t>(config_.stderr_tail_bytes);
    if (tail_.size() > 2 * keep + 65536) tail_.erase(0, tail_.size() - keep);
    err_buf_.append(data.data(), data.size());
    size_t start = 0;
    for (size_t nl; (nl = err_buf_.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      LogStderr(absl::string_view(err_buf_).substr(start, nl - start));
    }
    err_buf_.erase(0, start);
    if (err_buf_.size() > kMaxLoggedLine) {  // a very long line: log it in pieces
      LogStderr(err_buf_);
      err_buf_.clear();
    }
  }

  void FinishStderr() {
    if (!err_buf_.empty()) LogStderr(err_buf_);
    err_buf_.clear();
    if (unlogged_bytes_ > 0) {
      spdlog::warn(
          "job={} shard={} attempt={} task={} {} more stderr bytes not logged "
          "(max_log_bytes {})",
          task_.job_id, task_.shard, task_.attempt, config_.name, unlogged_bytes_,
          config_.max_log_bytes);
    }
  }

  void LogStderr(absl::string_view line) {
    if (logged_bytes_ + static_cast<int64_t>(line.size()) > config_.max_log_bytes) {
      unlogged_bytes_ += static_cast<int64_t>(line.size()) + 1;
      return;
    }
    logged_bytes_ += static_cast<int64_t>(line.size()) + 1;
    spdlog::info("job={} shard={} attempt={} task={} stderr: {}", task_.job_id,
                 task_.shard, task_.attempt, config_.name,
                 std::string(line.substr(0, kMaxLoggedLine)));
  }

  std::string Tail() const {
    const size_t keep = static_cast<size_t>(config_.stderr_tail_bytes);
    absl::string_view t(tail_);
    if (t.size() > keep) t = t.substr(t.size() - keep);
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.remove_suffix(1);
    if (t.empty()) return "";
    return absl::StrCat("\n--- stderr (last ", t.size(), " bytes) ---\n", t);
  }

  std::string KillNote() const {
    return killed_ ? absl::StrCat("SIGTERM to its process group, SIGKILL after ",
                                  absl::FormatDuration(config_.kill_grace))
                   : "SIGTERM to its process group";
  }

  absl::StatusOr<json> Outcome(int status) {
    const std::string name = absl::StrCat("task ", config_.name);
    switch (stop_) {
      case StopReason::kCancelled:
        return absl::CancelledError(absl::StrCat(name, " cancelled (", KillNote(), ")"));
      case StopReason::kTimeout:
        return absl::DeadlineExceededError(
            absl::StrCat(name, " timed out after ", absl::FormatDuration(config_.timeout),
                         " (", KillNote(), ")", Tail()));
      case StopReason::kOutputLimit:
        return absl::FailedPreconditionError(absl::StrCat(
            name, " wrote more than max_output_bytes (", config_.max_output_bytes,
            ") to stdout; output cut there and the program stopped", Tail()));
      case StopReason::kProtocol:
        return absl::FailedPreconditionError(
            absl::StrCat(name, " broke the output protocol: ", protocol_error_, Tail()));
      case StopReason::kNone:
        break;
    }
    const std::string how = DescribeWaitStatus(status);
    if (error_.has_value()) {
      const std::string message =
          absl::StrCat(name, " failed: ", error_->error, " (", how, ")", Tail());
      return error_->retryable ? absl::AbortedError(message)
                               : absl::FailedPreconditionError(message);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      if (result_.has_value()) return std::move(*result_);
      return absl::FailedPreconditionError(absl::StrCat(
          name, " exited with status 0 without a {\"result\": {...}} line on stdout",
          Tail()));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == kExitTempFail) {
      return absl::UnavailableError(absl::StrCat(
          name, " asked to be retried (exit status 75, EX_TEMPFAIL)", Tail()));
    }
    std::string note;
    if (WIFSIGNALED(status) && config_.max_memory_bytes > 0) {
      note = absl::StrCat(" (max_memory_bytes is ", config_.max_memory_bytes, ")");
    }
    return absl::AbortedError(absl::StrCat(name, " ", how, note, Tail()));
  }

  const ExecTaskConfig& config_;
  const ShardTask& task_;
  ProgressReporter& progress_;
  const CancelToken& cancel_;

  std::unique_ptr<ChildProcess> child_;
  StopReason stop_ = StopReason::kNone;
  absl::Time term_sent_;
  bool killed_ = false;

  std::string out_buf_;  // stdout since the last newline
  int64_t out_bytes_ = 0;
  bool discard_stdout_ = false;
  int64_t line_no_ = 0;
  std::optional<json> result_;
  std::optional<ExecLine> error_;
  std::string protocol_error_;

  std::string err_buf_;  // stderr since the last newline
  std::string tail_;
  int64_t logged_bytes_ = 0;
  int64_t unlogged_bytes_ = 0;
};

class ExecHandler : public Handler {
 public:
  explicit ExecHandler(ExecTaskConfig config) : config_(std::move(config)) {}

  absl::StatusOr<json> Run(const ShardTask& task, ProgressReporter& progress,
                           const CancelToken& cancel) override {
    if (cancel.cancelled()) return absl::CancelledError("cancelled before start");
    ShardRun run(config_, task, progress, cancel);
    return run.Run();
  }

 private:
  const ExecTaskConfig config_;
};

}  // namespace

std::unique_ptr<Handler> NewExecHandler(ExecTaskConfig config) {
  return std::make_unique<ExecHandler>(std::move(config));
}

absl::Status RegisterExecTasks(HandlerRegistry& registry,
                               const std::vector<ExecTaskConfig>& tasks) {
  for (const ExecTaskConfig& task : tasks) {
    absl::Status s = registry.Register(task.name, NewExecHandler(task));
    if (absl::IsAlreadyExists(s)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "exec task \"", task.name, "\" clashes with a task this executor already has"));
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace tessera::executor
