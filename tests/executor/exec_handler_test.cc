// The exec handler with real subprocesses: small shell and Python programs
// written to a temporary directory. Every process a test starts is killed by
// the handler (or checked to be gone); nothing else is signalled.
#include "executor/handlers/exec_handler.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::executor {
namespace {

using json = nlohmann::json;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class RecordingProgress : public ProgressReporter {
 public:
  void Report(int64_t done, int64_t total) override { reports.push_back({done, total}); }
  std::vector<std::pair<int64_t, int64_t>> reports;
};

// True when `pid` no longer runs: gone, or a zombie left to its new parent
// (a reparented grandchild is reaped by init, not by us).
bool Gone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string content((std::istreambuf_iterator<char>(stat)),
                      std::istreambuf_iterator<char>());
  const size_t paren = content.rfind(')');
  return paren != std::string::npos && paren + 2 < content.size() &&
         content[paren + 2] == 'Z';
}

bool GoneWithin(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!Gone(pid)) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

pid_t ReadPid(const std::string& path, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::ifstream in(path);
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return -1;
}

class ExecHandlerTest : public ::testing::Test {
 protected:
  // Writes an executable script and returns its path.
  std::string Script(const std::string& name, const std::string& body) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << body;
    chmod(path.c_str(), 0755);
    return path;
  }

  ExecTaskConfig Task(std::vector<std::string> command) {
    ExecTaskConfig c;
    c.name = "t";
    c.command = std::move(command);
    c.workdir = dir_;
    c.timeout = absl::Seconds(30);
    c.kill_grace = absl::Seconds(2);
    return c;
  }

  absl::StatusOr<json> Run(const ExecTaskConfig& config, json params = json::object(),
                           const CancelToken* cancel = nullptr) {
    std::unique_ptr<Handler> handler = NewExecHandler(config);
    ShardTask task;
    task.job_id = "job1";
    task.shard = 3;
    task.start = 10;
    task.end = 20;
    task.attempt = 2;
    task.params = std::move(params);
    CancelToken never;
    return handler->Run(task, progress_, cancel != nullptr ? *cancel : never);
  }

  const ::tessera::testing::TempDir tmp_{"tessera-exec-test"};
  const std::string dir_ = tmp_.path();
  RecordingProgress progress_;
};

TEST_F(ExecHandlerTest, SucceedsWithProgressAndSeesTheShardInItsEnvironment) {
  const std::string s = Script("ok.sh", R"sh(#!/bin/sh
echo '{"progress": {"done": 4, "total": 10}}'
echo 'working on it' >&2
echo ''
echo '{"progress": {"done": 10}}'
read line || stdin=eof
printf '{"result": {"job": "%s", "shard": %s, "attempt": %s, "start": %s, "end": %s, "mode": "%s", "cwd": "%s", "stdin": "%s", "arg": "%s"}}\n' \
  "$TESSERA_JOB_ID" "$TESSERA_SHARD_INDEX" "$TESSERA_ATTEMPT" "$TESSERA_RANGE_START" \
  "$TESSERA_RANGE_END" "$MODE" "$(pwd)" "$stdin" "$1"
)sh");
  ExecTaskConfig config = Task({s, "first arg"});
  config.env["MODE"] = "prod";
  absl::StatusOr<json> r = Run(config);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, (json{{"job", "job1"},
                      {"shard", 3},
                      {"attempt", 2},
                      {"start", 10},
                      {"end", 20},
                      {"mode", "prod"},
                      {"cwd", std::filesystem::canonical(dir_).string()},
                      {"stdin", "eof"},
                      {"arg", "first arg"}}));
  // A progress line without total counts the shard's range.
  EXPECT_EQ(progress_.reports,
            (std::vector<std::pair<int64_t, int64_t>>{{4, 10}, {10, 10}}));
}

TEST_F(ExecHandlerTest, LogsStderrLinesTaggedWithJobShardAttemptAndTask) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  const std::string s = Script("log.sh", R"(#!/bin/sh
echo 'opening browser' >&2
printf 'no newline at the end' >&2
echo '{"result": {}}'
)");
  absl::StatusOr<json> r = Run(Task({s}));
  spdlog::set_default_logger(previous);
  ASSERT_THAT(r, IsOk());
  std::vector<std::string> lines = sink->last_formatted();
  std::string all;
  for (const std::string& l : lines) all += l;
  EXPECT_THAT(all,
              HasSubstr("job=job1 shard=3 attempt=2 task=t stderr: opening browser"));
  EXPECT_THAT(all, HasSubstr("task=t stderr: no newline at the end"));
}

TEST_F(ExecHandlerTest, AMalformedStdoutLineIsAPermanentErrorQuotingTheLine) {
  const std::string s = Script("bad.sh", R"(#!/bin/sh
echo '{"progress": {"done": 1}}'
echo 'Loading page https://example.com'
sleep 30
)");
  const absl::Time t0 = absl::Now();
  absl::StatusOr<json> r = Run(Task({s}));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));  // stopped at once, not after 30 s
  EXPECT_THAT(
      r, StatusIs(absl::StatusCode::kFailedPrecondition,
                  HasSubstr("task t broke the output protocol: stdout line 2: "
                            "line is not JSON: \"Loading page https://example.com\"")));
}

TEST_F(ExecHandlerTest, ExitingZeroWithoutAResultIsAnError) {
  const std::string s = Script("nores.sh", R"(#!/bin/sh
echo '{"progress": {"done": 1}}'
echo 'forgot the result' >&2
)");
  absl::StatusOr<json> r = Run(Task({s}));
  EXPECT_THAT(
      r,
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("exited with status 0 without a {\"result\": {...}} line"),
                     HasSubstr("forgot the result"))));
}

TEST_F(ExecHandlerTest, OutputBeyondTheLimitIsCutAndReported) {
  // Endless progress lines, and one endless line without a newline.
  for (const std::string& body :
       {std::string("#!/bin/sh\nyes '{\"progress\": {\"done\": 1}}'\n"),
        std::string("#!/bin/sh\ntr '\\0' a < /dev/zero\n")}) {
    const std::string s = Script("flood.sh", body);
    ExecTaskConfig config = Task({s});
    config.max_output_bytes = 64 << 10;
    const absl::Time t0 = absl::Now();
    absl::StatusOr<json> r = Run(config);
    EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
    EXPECT_THAT(
        r,
        StatusIs(
            absl::StatusCode::kFailedPrecondition,
            HasSubstr("wrote more than max_output_bytes (65536) to stdout; output cut")))
        << body;
  }
}

TEST_F(ExecHandlerTest, ExitStatusesSayWhetherToRetry) {
  absl::StatusOr<json> temp = Run(Task({Script("75.sh", "#!/bin/sh\nexit 75\n")}));
  EXPECT_THAT(temp, StatusIs(absl::StatusCode::kUnavailable,
                             HasSubstr("asked to be retried (exit status 75")));
  EXPECT_FALSE(IsPermanentError(temp.status()));

  absl::StatusOr<json> one =
      Run(Task({Script("1.sh", "#!/bin/sh\necho 'Traceback: boom' >&2\nexit 1\n")}));
  EXPECT_THAT(one,
              StatusIs(absl::StatusCode::kAborted,
                       AllOf(HasSubstr("task t exited with status 1"),
                             HasSubstr("stderr (last 15 bytes) ---\nTraceback: boom"))));
  EXPECT_FALSE(IsPermanentError(one.status()));  // the job's retry policy decides

  absl::StatusOr<json> permanent =
      Run(Task({Script("perm.sh",
                       "#!/bin/sh\necho '{\"error\": \"API key rejected\", "
                       "\"retryable\": false}'\nexit 1\n")}));
  EXPECT_TRUE(IsPermanentError(permanent.status())) << permanent.status();
  EXPECT_THAT(permanent.status().message(),
              HasSubstr("task t failed: API key rejected (exited with status 1)"));

  absl::StatusOr<json> retry = Run(Task(
      {Script("retry.sh", "#!/bin/sh\necho '{\"error\": \"rate limited\"}'\nexit 3\n")}));
  EXPECT_THAT(retry, StatusIs(absl::StatusCode::kAborted, HasSubstr("rate limited")));
  EXPECT_FALSE(IsPermanentError(retry.status()));

  absl::StatusOr<json> signalled =
      Run(Task({Script("sig.sh", "#!/bin/sh\nkill -9 $$\n")}));
  EXPECT_FALSE(IsPermanentError(signalled.status()));
  EXPECT_THAT(signalled.status().message(), HasSubstr("killed by signal 9 (SIGKILL)"));
}

TEST_F(ExecHandlerTest, AMissingExecutableOrWorkdirGivesAClearError) {
  absl::StatusOr<json> abs = Run(Task({dir_ + "/no-such-program"}));
  EXPECT_THAT(abs, StatusIs(absl::StatusCode::kFailedPrecondition,
                            HasSubstr("task t: cannot execute " + dir_ +
                                      "/no-such-program: No such file or directory")));

  absl::StatusOr<json> bare = Run(Task({"tessera-no-such-program"}));
  EXPECT_THAT(
      bare, StatusIs(absl::StatusCode::kFailedPrecondition,
                     HasSubstr("command \"tessera-no-such-program\" not found on PATH")));

  const std::string text = dir_ + "/not-executable";
  std::ofstream(text) << "hello";
  absl::StatusOr<json> noexec = Run(Task({text}));
  EXPECT_THAT(noexec.status().message(), HasSubstr("Permission denied"));

  ExecTaskConfig config = Task({"/bin/true"});
  config.workdir = dir_ + "/missing";
  absl::StatusOr<json> wd = Run(config);
  EXPECT_THAT(wd, StatusIs(absl::StatusCode::kFailedPrecondition,
                           HasSubstr("cannot change to workdir " + dir_ + "/missing")));

  // The handler still serves the next shard.
  absl::StatusOr<json> ok =
      Run(Task({Script("fine.sh", "#!/bin/sh\necho '{\"result\": {\"ok\": true}}'\n")}));
  EXPECT_THAT(ok, IsOk());
}

TEST_F(ExecHandlerTest, TimeoutKillsTheProgramAndItsGrandchild) {
  // Both ignore SIGTERM, so only the SIGKILL after the grace ends them.
  const std::string s = Script("hang.sh", absl::StrCat(R"(#!/bin/sh
trap '' TERM
sleep 300 &
echo $! > )",
                                                       dir_, R"(/grandchild.pid
echo $$ > )",
                                                       dir_, R"(/child.pid
echo 'about to hang' >&2
wait
)"));
  ExecTaskConfig config = Task({s});
  config.timeout = absl::Milliseconds(500);
  config.kill_grace = absl::Milliseconds(300);
  const absl::Time t0 = absl::Now();
  absl::StatusOr<json> r = Run(config);
  const absl::Duration took = absl::Now() - t0;
  EXPECT_GE(took, absl::Milliseconds(800));
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDeadlineExceeded,
                          AllOf(HasSubstr("task t timed out after 500ms (SIGTERM to its "
                                          "process group, SIGKILL after 300ms)"),
                                HasSubstr("about to hang"))));
  EXPECT_FALSE(IsPermanentError(r.status()));  // retried by the scheduler
  const pid_t child = ReadPid(dir_ + "/child.pid");
  const pid_t grandchild = ReadPid(dir_ + "/grandchild.pid");
  ASSERT_GT(child, 0);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(Gone(child));  // reaped by the handler
  EXPECT_TRUE(GoneWithin(grandchild, absl::Seconds(2)));
}

TEST_F(ExecHandlerTest, CancelKillsTheProcessGroupWithinTheGrace) {
  for (bool ignore_term : {false, true}) {
    SCOPED_TRACE(ignore_term ? "ignores SIGTERM" : "obeys SIGTERM");
    std::filesystem::remove(dir_ + "/child.pid");
    std::filesystem::remove(dir_ + "/grandchild.pid");
    const std::string s =
        Script("long.sh",
               absl::StrCat("#!/bin/sh\n", ignore_term ? "trap '' TERM\n" : "",
                            "sleep 300 &\necho $! > ", dir_,
                            "/grandchild.pid\necho $$ > ", dir_, "/child.pid\nwait\n"));
    ExecTaskConfig config = Task({s});
    config.kill_grace = absl::Seconds(1);
    CancelToken cancel;
    absl::Time cancelled_at;
    std::thread canceller([&] {
      ReadPid(dir_ + "/child.pid");
      ReadPid(dir_ + "/grandchild.pid");
      cancelled_at = absl::Now();
      cancel.Cancel();
    });
    absl::StatusOr<json> r = Run(config, json::object(), &cancel);
    const absl::Time returned = absl::Now();
    canceller.join();
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kCancelled));
    EXPECT_LT(returned - cancelled_at, absl::Seconds(1) + absl::Milliseconds(700));
    if (!ignore_term) EXPECT_LT(returned - cancelled_at, absl::Milliseconds(700));
    EXPECT_TRUE(Gone(ReadPid(dir_ + "/child.pid")));
    EXPECT_TRUE(GoneWithin(ReadPid(dir_ + "/grandchild.pid"), absl::Seconds(2)));
  }
}

TEST_F(ExecHandlerTest, LeftoverProcessesOfASuccessfulShardAreKilled) {
  const std::string s =
      Script("bg.sh", absl::StrCat("#!/bin/sh\nsleep 300 &\necho $! > ", dir_,
                                   "/grandchild.pid\n"
                                   "echo '{\"result\": {}}'\n"));
  absl::StatusOr<json> r = Run(Task({s}));
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(GoneWithin(ReadPid(dir_ + "/grandchild.pid"), absl::Seconds(2)));
}

TEST_F(ExecHandlerTest, ParamsReachTheProgramVerbatimAsData) {
  const std::string s = Script("params.py", R"(#!/usr/bin/env python3
import json, os, sys
print(json.dumps({"result": {"raw": os.environ["TESSERA_PARAMS"], "argv": sys.argv[1:]}}))
)");
  const json params = {
      {"q", "$(rm -rf /); `touch pwned` && echo 'x' \"y\" | cat > /tmp/z; *\n$HOME"},
      {"n", 5}};
  absl::StatusOr<json> r = Run(Task({"python3", s, "$(id)"}), params);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(json::parse(r->at("raw").get<std::string>()), params);
  EXPECT_EQ(r->at("argv"), json::array({"$(id)"}));  // argv is never a shell line
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/pwned"));
}

TEST_F(ExecHandlerTest, AnItemsBatchArrivesAsJsonLinesOnStdin) {
  const std::string s = Script("items.py", R"(#!/usr/bin/env python3
import json, sys
items = [json.loads(line) for line in sys.stdin]
print(json.dumps({"result": {"items": items}}))
)");
  std::unique_ptr<Handler> handler = NewExecHandler(Task({"python3", s}));
  ShardTask task;
  task.job_id = "job1";
  task.start = 0;
  task.end = 3;
  task.has_items = true;
  task.items = json::array({1, "two", json{{"three", 3}}});
  CancelToken never;
  absl::StatusOr<json> r = handler->Run(task, progress_, never);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->at("items"), task.items);
}

TEST_F(ExecHandlerTest, AMemoryLimitStopsAProgramThatAllocatesTooMuch) {
  const std::string s = Script("mem.py", R"(#!/usr/bin/env python3
import json
try:
    block = bytearray(512 * 1024 * 1024)
    print(json.dumps({"result": {"allocated": True}}))
except MemoryError:
    print(json.dumps({"error": "out of memory", "retryable": False}))
)");
  ExecTaskConfig config = Task({"python3", s});
  config.max_memory_bytes = int64_t{256} << 20;
  absl::StatusOr<json> r = Run(config);
  EXPECT_TRUE(IsPermanentError(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("out of memory"));
}

}  // namespace
}  // namespace tessera::executor
