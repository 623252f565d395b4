// The tasks file (--tasks-file) and the stdout line protocol of exec tasks.
#include <filesystem>
#include <fstream>

#include "executor/handlers/exec_handler.h"
#include "executor/handlers/exec_protocol.h"
#include "executor/handlers/exec_task_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::executor {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

absl::Status ParseError(const std::string& text) {
  return ParseExecTasks(text, "/base").status();
}

TEST(ExecTasksFile, AcceptsTheDocumentedFormWithDefaults) {
  auto tasks = ParseExecTasks(
      R"({"tasks": {"promo": {"command": ["python3", "promo.py"], "workdir": "/opt/promo",
          "env": {"MODE": "prod"}, "timeout": "600s"}}})",
      "/base");
  ASSERT_THAT(tasks, IsOk());
  ASSERT_EQ(tasks->size(), 1u);
  const ExecTaskConfig& t = (*tasks)[0];
  EXPECT_EQ(t.name, "promo");
  EXPECT_THAT(t.command, ElementsAre("python3", "promo.py"));
  EXPECT_EQ(t.workdir, "/opt/promo");
  EXPECT_EQ(t.env.at("MODE"), "prod");
  EXPECT_EQ(t.timeout, absl::Seconds(600));
  EXPECT_EQ(t.kill_grace, absl::Seconds(10));
  EXPECT_EQ(t.max_memory_bytes, 0);
  EXPECT_EQ(t.max_output_bytes, 16 << 20);
}

TEST(ExecTasksFile, AcceptsLimitsAndResolvesARelativeWorkdirAgainstTheFile) {
  auto tasks = ParseExecTasks(
      R"({"tasks": {"a": {"command": ["/bin/true"], "workdir": "sub/../dir",
          "kill_grace": "0s", "max_memory_bytes": "512MiB", "max_output_bytes": 4096,
          "stderr_tail_bytes": "8k", "max_log_bytes": 0}}})",
      "/base");
  ASSERT_THAT(tasks, IsOk());
  const ExecTaskConfig& t = (*tasks)[0];
  EXPECT_EQ(t.workdir, "/base/dir");
  EXPECT_EQ(t.kill_grace, absl::ZeroDuration());
  EXPECT_EQ(t.max_memory_bytes, int64_t{512} << 20);
  EXPECT_EQ(t.max_output_bytes, 4096);
  EXPECT_EQ(t.stderr_tail_bytes, 8192);
  EXPECT_EQ(t.max_log_bytes, 0);
  // No workdir: the tasks file's directory.
  auto d = ParseExecTasks(R"({"tasks": {"b": {"command": ["true"]}}})", "/base");
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ((*d)[0].workdir, "/base");
}

TEST(ExecTasksFile, ErrorsNameTheField) {
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {R"({"tasks": {"p": {"command": ["x"], "colour": "red"}}})",
       "tasks.p.colour: unknown field"},
      {R"({"tasks": {"p": {"workdir": "/tmp"}}})", "tasks.p.command: is required"},
      {R"({"tasks": {"p": {"command": []}}})",
       "tasks.p.command: must be a non-empty array"},
      {R"({"tasks": {"p": {"command": [""]}}})", "tasks.p.command[0]: the program must"},
      {R"({"tasks": {"p": {"command": ["bin/run"]}}})",
       "tasks.p.command[0]: \"bin/run\" is a relative path"},
      {R"({"tasks": {"p": {"command": ["./run"]}}})", "tasks.p.command[0]"},
      {R"({"tasks": {"p": {"command": ["x", 3]}}})",
       "tasks.p.command: must hold strings"},
      {R"({"tasks": {"p": {"command": ["x"], "timeout": "ten"}}})",
       "tasks.p.timeout: \"ten\" is not a duration"},
      {R"({"tasks": {"p": {"command": ["x"], "timeout": 600}}})",
       "tasks.p.timeout: 600 is not a duration"},
      {R"({"tasks": {"p": {"command": ["x"], "timeout": "0s"}}})",
       "tasks.p.timeout: must be > 0"},
      {R"({"tasks": {"p": {"command": ["x"], "kill_grace": "-1s"}}})",
       "tasks.p.kill_grace: must be >= 0"},
      {R"({"tasks": {"p": {"command": ["x"], "max_output_bytes": "lots"}}})",
       "tasks.p.max_output_bytes: \"lots\" is not a size"},
      {R"({"tasks": {"p": {"command": ["x"], "max_output_bytes": 0}}})",
       "tasks.p.max_output_bytes: must be > 0"},
      {R"({"tasks": {"p": {"command": ["x"], "env": {"TESSERA_JOB_ID": "x"}}}})",
       "tasks.p.env.TESSERA_JOB_ID: TESSERA_* variables are set by the executor"},
      {R"({"tasks": {"p": {"command": ["x"], "env": {"A": 1}}}})",
       "tasks.p.env.A: must be a string"},
      {R"({"tasks": {"bad name": {"command": ["x"]}}})", "tasks.bad name: a task name"},
      {R"({"tasks": {"p": ["x"]}})", "tasks.p: must be an object"},
      {R"({"task": {}})", "task: unknown field (known: tasks)"},
      {R"({})", "tasks: is required"},
      {R"({"tasks": )", "not valid JSON"},
  };
  for (const Case& c : cases) {
    absl::Status s = ParseError(c.text);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.text;
  }
}

TEST(ExecTasksFile, LoadNamesTheFile) {
  absl::Status missing = LoadExecTasksFile("/nonexistent/tasks.json").status();
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kNotFound,
                                HasSubstr("tasks file /nonexistent/tasks.json")));

  const ::tessera::testing::TempDir tmp("tessera-exec-config");
  const std::string dir = tmp.path();
  std::ofstream(dir + "/tasks.json")
      << R"({"tasks": {"p": {"command": ["x"], "bad": 1}}})";
  absl::Status bad = LoadExecTasksFile(dir + "/tasks.json").status();
  EXPECT_THAT(bad.message(), HasSubstr("tasks file " + dir + "/tasks.json: tasks.p.bad"));

  std::ofstream(dir + "/ok.json") << R"({"tasks": {"p": {"command": ["x"]}}})";
  auto ok = LoadExecTasksFile(dir + "/ok.json");
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ((*ok)[0].workdir, std::filesystem::absolute(dir).string());
}

TEST(ExecTasksFile, ATaskCannotShadowABuiltin) {
  HandlerRegistry registry;
  ASSERT_THAT(RegisterBuiltinHandlers(registry), IsOk());
  auto tasks = ParseExecTasks(R"({"tasks": {"primes": {"command": ["x"]}}})", "/");
  ASSERT_THAT(tasks, IsOk());
  absl::Status s = RegisterExecTasks(registry, *tasks);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("\"primes\"")));

  auto mine = ParseExecTasks(R"({"tasks": {"promo": {"command": ["x"]}}})", "/");
  ASSERT_THAT(RegisterExecTasks(registry, *mine), IsOk());
  EXPECT_THAT(registry.Names(),
              ElementsAre("noop", "primes", "promo", "sleep", "square"));
}

TEST(ExecTasksFile, ParsesByteSizes) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096);
  EXPECT_EQ(*ParseByteSize("2k"), 2048);
  EXPECT_EQ(*ParseByteSize("3 MiB"), 3 << 20);
  EXPECT_EQ(*ParseByteSize("1G"), int64_t{1} << 30);
  EXPECT_THAT(ParseByteSize("1T"), Not(IsOk()));
  EXPECT_THAT(ParseByteSize("MiB"), Not(IsOk()));
  EXPECT_THAT(ParseByteSize("99999999999999999999"), Not(IsOk()));
}

TEST(ExecProtocol, ParsesEachKindOfLine) {
  auto p = ParseExecLine(R"({"progress": {"done": 3, "total": 10}})");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->kind, ExecLine::Kind::kProgress);
  EXPECT_EQ(p->done, 3);
  EXPECT_EQ(p->total, 10);
  auto q = ParseExecLine(R"({"progress": {"done": 3}})");
  ASSERT_THAT(q, IsOk());
  EXPECT_EQ(q->total, -1);
  auto r = ParseExecLine(R"({"result": {"1": ["a"]}})"
                         "\r");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind, ExecLine::Kind::kResult);
  EXPECT_EQ(r->result, (nlohmann::json{{"1", {"a"}}}));
  auto e = ParseExecLine(R"({"error": "quota", "retryable": false})");
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->kind, ExecLine::Kind::kError);
  EXPECT_EQ(e->error, "quota");
  EXPECT_FALSE(e->retryable);
  EXPECT_TRUE(ParseExecLine(R"({"error": "x"})")->retryable);
  EXPECT_EQ(ParseExecLine("   ")->kind, ExecLine::Kind::kBlank);
}

TEST(ExecProtocol, RefusesALineNestedTooDeepBeforeParsingIt) {
  const std::string deep = "{\"result\":{\"items\":" + std::string(100'000, '[') +
                           std::string(100'000, ']') + "}}";
  auto p = ParseExecLine(deep);
  ASSERT_THAT(p, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("line nests deeper than 64 levels (the limit)")));
  EXPECT_LT(p.status().message().size(), 1000u);  // the line is quoted, cut short
  std::string ok =
      "{\"result\":{\"a\":" + std::string(60, '[') + std::string(60, ']') + "}}";
  EXPECT_THAT(ParseExecLine(ok), IsOk());
}

TEST(ExecProtocol, RejectsOtherLinesQuotingThem) {
  struct Case {
    std::string line;
    std::string message;
  } cases[] = {
      {"Loading browser...", "line is not JSON: \"Loading browser...\""},
      {"[1, 2]", "line is not a JSON object: \"[1, 2]\""},
      {R"({"result": [1]})", "\"result\" must be a JSON object"},
      {R"({"result": {}, "extra": 1})", "a result line has only the key"},
      {R"({"progress": {"total": 3}})", "progress.done must be an integer >= 0"},
      {R"({"progress": {"done": -1}})", "progress.done must be"},
      {R"({"progress": {"done": 1, "total": "x"}})", "progress.total must be"},
      {R"({"error": 3})", "\"error\" must be a string"},
      {R"({"error": "x", "retryable": "no"})", "optionally \"retryable\": bool"},
      {R"({"status": "ok"})", "none of \"progress\", \"result\", \"error\""},
  };
  for (const Case& c : cases) {
    absl::Status s = ParseExecLine(c.line).status();
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.line;
  }
  // Long lines are cut in the message.
  absl::Status s = ParseExecLine(std::string(5000, 'x')).status();
  EXPECT_LT(s.message().size(), 300u);
  EXPECT_THAT(s.message(), HasSubstr("xx\"..."));
}

}  // namespace
}  // namespace tessera::executor
