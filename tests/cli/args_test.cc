#include "cli/args.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "tests/util/status_matchers.h"

namespace tessera::cli {
namespace {

using Args = std::vector<std::string>;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::Not;
using ::testing::StartsWith;

// The message of a usage error, or "" when parsing succeeded.
std::string ErrorOf(const Args& args) {
  absl::StatusOr<Command> cmd = ParseArgs(args);
  if (cmd.ok()) return "";
  EXPECT_THAT(cmd, StatusIs(absl::StatusCode::kInvalidArgument));
  return std::string(cmd.status().message());
}

TEST(ParseArgs, ParsesFullSubmitCommand) {
  absl::StatusOr<Command> cmd = ParseArgs(
      {"--scheduler", "sched:7000", "submit", "--task", "primes", "--range", "0:1000000",
       "--shards", "64", "--name", "primes up to 1e6", "--params", R"({"ms": 5})",
       "--default-reducer", "sum", "--max-parallel=8", "--wait", "--json"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->kind, CommandKind::kSubmit);
  EXPECT_EQ(cmd->scheduler, "sched:7000");
  EXPECT_TRUE(cmd->json);
  EXPECT_TRUE(cmd->wait);
  EXPECT_EQ(cmd->spec.task(), "primes");
  EXPECT_EQ(cmd->spec.name(), "primes up to 1e6");
  EXPECT_EQ(cmd->spec.range().start(), 0);
  EXPECT_EQ(cmd->spec.range().end(), 1000000);
  EXPECT_EQ(cmd->spec.range().shard_count(), 64);
  EXPECT_EQ(cmd->spec.range().shard_size(), 0);
  EXPECT_EQ(cmd->spec.params().fields().at("ms").number_value(), 5);
  EXPECT_EQ(cmd->spec.aggregate().default_reducer(), "sum");
  EXPECT_EQ(cmd->spec.max_parallel(), 8);
}

TEST(ParseArgs, ParsesShardSizeInsteadOfShardCount) {
  absl::StatusOr<Command> cmd =
      ParseArgs({"submit", "--task=noop", "--range=-50:50", "--shard-size=10"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->spec.range().start(), -50);
  EXPECT_EQ(cmd->spec.range().end(), 50);
  EXPECT_EQ(cmd->spec.range().shard_size(), 10);
  EXPECT_FALSE(cmd->wait);
  EXPECT_FALSE(cmd->json);
}

TEST(ParseArgs, ParsesRepeatedAggregateFlags) {
  absl::StatusOr<Command> cmd = ParseArgs(
      {"submit", "--task", "primes", "--range", "0:10", "--shards", "2", "--aggregate",
       "count=sum", "--aggregate", "stats.max=max", "--aggregate=found=concat"});
  ASSERT_THAT(cmd, IsOk());
  const auto& fields = cmd->spec.aggregate().fields();
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields.at("count"), "sum");
  EXPECT_EQ(fields.at("stats.max"), "max");
  EXPECT_EQ(fields.at("found"), "concat");
}

TEST(ParseArgs, RejectsAggregateWithoutEqualsOrGivenTwiceForOneField) {
  Args base = {"submit", "--task", "t", "--range", "0:10", "--shards", "2"};
  Args no_eq = base;
  no_eq.insert(no_eq.end(), {"--aggregate", "count"});
  EXPECT_NE(ErrorOf(no_eq).find("--aggregate: expected FIELD=REDUCER"),
            std::string::npos);
  Args empty_reducer = base;
  empty_reducer.insert(empty_reducer.end(), {"--aggregate", "count="});
  EXPECT_NE(ErrorOf(empty_reducer).find("--aggregate"), std::string::npos);
  Args twice = base;
  twice.insert(twice.end(), {"--aggregate", "a=sum", "--aggregate", "a=max"});
  EXPECT_NE(ErrorOf(twice).find("given twice"), std::string::npos);
}

TEST(ParseArgs, ParsesRetryPolicyTimeoutAndContinuePolicy) {
  absl::StatusOr<Command> cmd =
      ParseArgs({"submit", "--task", "t", "--range", "0:10", "--shards", "2",
                 "--max-attempts", "5", "--backoff", "500ms", "--max-backoff=1m30s",
                 "--shard-timeout", "2s", "--max-failed-shards", "3"});
  ASSERT_THAT(cmd, IsOk());
  const auto& retry = cmd->spec.retry();
  EXPECT_EQ(retry.max_attempts(), 5);
  EXPECT_EQ(retry.initial_backoff().seconds(), 0);
  EXPECT_EQ(retry.initial_backoff().nanos(), 500'000'000);
  EXPECT_EQ(retry.max_backoff().seconds(), 90);
  EXPECT_EQ(retry.max_backoff().nanos(), 0);
  EXPECT_FALSE(retry.has_multiplier());
  EXPECT_FALSE(retry.has_jitter());
  EXPECT_EQ(cmd->spec.shard_timeout().seconds(), 2);
  EXPECT_EQ(cmd->spec.failure_policy().max_failed_shards(), 3);
}

TEST(ParseArgs, LeavesRetryPolicyUnsetWithoutItsFlags) {
  absl::StatusOr<Command> cmd =
      ParseArgs({"submit", "--task", "t", "--range", "0:10", "--shards", "2"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_FALSE(cmd->spec.has_retry());
  EXPECT_FALSE(cmd->spec.has_shard_timeout());
  EXPECT_FALSE(cmd->spec.has_failure_policy());
}

TEST(ParseArgs, AcceptsZeroBackoff) {
  absl::StatusOr<Command> cmd = ParseArgs(
      {"submit", "--task", "t", "--range", "0:10", "--shards", "2", "--backoff", "0s"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_TRUE(cmd->spec.retry().has_initial_backoff());
  EXPECT_EQ(cmd->spec.retry().initial_backoff().seconds(), 0);
}

TEST(ParseArgs, RejectsBadRetryAndTimeoutFlagsNamingTheFlag) {
  Args base = {"submit", "--task", "t", "--range", "0:10", "--shards", "2"};
  auto error = [&](Args extra) {
    Args args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return ErrorOf(args);
  };
  EXPECT_EQ(error({"--max-attempts", "0"}), "--max-attempts: must be >= 1 (got 0)");
  EXPECT_EQ(error({"--max-attempts", "x"}),
            "--max-attempts: expected an integer, got \"x\"");
  EXPECT_EQ(error({"--max-attempts", "101"}), "--max-attempts: at most 100 (got 101)");
  EXPECT_EQ(error({"--backoff", "2"}),
            "--backoff: expected a duration like 500ms, 2s or 1m, got \"2\"");
  EXPECT_EQ(error({"--backoff", "-1s"}), "--backoff: must be >= 0 (got -1s)");
  EXPECT_EQ(error({"--max-backoff", "soon"}),
            "--max-backoff: expected a duration like 500ms, 2s or 1m, got \"soon\"");
  EXPECT_EQ(error({"--backoff", "2s", "--max-backoff", "1s"}),
            "--max-backoff: must be at least --backoff (got 1s < 2s)");
  EXPECT_EQ(error({"--shard-timeout", "0s"}), "--shard-timeout: must be > 0 (got 0s)");
  EXPECT_EQ(error({"--shard-timeout", "inf"}),
            "--shard-timeout: expected a duration like 500ms, 2s or 1m, got \"inf\"");
  EXPECT_EQ(error({"--shard-timeout", "10000h"}),
            "--shard-timeout: at most a year (got 10000h)");
  EXPECT_EQ(error({"--max-failed-shards", "-1"}),
            "--max-failed-shards: must be >= 0 (got -1)");
  EXPECT_EQ(error({"--max-failed-shards"}), "--max-failed-shards: missing value");
  EXPECT_NE(ErrorOf({"get", "j1", "--max-attempts", "2"})
                .find("--max-attempts: not a flag of \"get\""),
            std::string::npos);
}

TEST(ParseDurationFlag, ConvertsToSecondsAndNanos) {
  google::protobuf::Duration d;
  ASSERT_THAT(ParseDurationFlag("--x", "1m", false, d), IsOk());
  EXPECT_EQ(d.seconds(), 60);
  EXPECT_EQ(d.nanos(), 0);
  ASSERT_THAT(ParseDurationFlag("--x", "1.25s", false, d), IsOk());
  EXPECT_EQ(d.seconds(), 1);
  EXPECT_EQ(d.nanos(), 250'000'000);
  ASSERT_THAT(ParseDurationFlag("--x", "1h2m3s4ms", false, d), IsOk());
  EXPECT_EQ(d.seconds(), 3723);
  EXPECT_EQ(d.nanos(), 4'000'000);
  EXPECT_THAT(ParseDurationFlag("--x", "", true, d), Not(IsOk()));
  EXPECT_THAT(ParseDurationFlag("--x", "0", false, d), Not(IsOk()));
}

TEST(ParseArgs, ParsesRetryCommand) {
  absl::StatusOr<Command> cmd = ParseArgs({"retry", "j9"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->kind, CommandKind::kRetry);
  EXPECT_EQ(cmd->job_id, "j9");
  EXPECT_FALSE(cmd->wait);
  cmd = ParseArgs({"retry", "--wait", "j9"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_TRUE(cmd->wait);
  EXPECT_NE(
      ErrorOf({"retry", "j9", "--task", "t"}).find("--task: not a flag of \"retry\""),
      std::string::npos);
}

TEST(ParseArgs, RejectsSubmitWithoutTask) {
  EXPECT_NE(ErrorOf({"submit", "--range", "0:10", "--shards", "2"}).find("--task"),
            std::string::npos);
}

TEST(ParseArgs, RejectsSubmitWithoutRange) {
  EXPECT_NE(ErrorOf({"submit", "--task", "t", "--shards", "2"}).find("--range"),
            std::string::npos);
}

TEST(ParseArgs, RequiresExactlyOneOfShardsAndShardSize) {
  EXPECT_NE(ErrorOf({"submit", "--task", "t", "--range", "0:10"}).find("--shards"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"submit", "--task", "t", "--range", "0:10", "--shards", "2",
                     "--shard-size", "5"})
                .find("not both"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"submit", "--task", "t", "--range", "0:10", "--shards", "0"})
                .find("--shards: must be >= 1"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"submit", "--task", "t", "--range", "0:10", "--shard-size", "x"})
                .find("--shard-size: expected an integer"),
            std::string::npos);
}

TEST(ParseArgs, RejectsRangeWithoutColon) {
  EXPECT_EQ(ErrorOf({"submit", "--task", "t", "--range", "100", "--shards", "2"}),
            "--range: expected START:END (e.g. 0:1000), got \"100\"");
}

TEST(ParseRange, RejectsNonIntegerBoundsAndEmptyRanges) {
  tessera::v1::RangeInput range;
  EXPECT_NE(ParseRange("a:10", range).message().find("START \"a\""), std::string::npos);
  EXPECT_NE(ParseRange("0:1e6", range).message().find("END \"1e6\""), std::string::npos);
  EXPECT_NE(ParseRange(":", range).message().find("START"), std::string::npos);
  EXPECT_NE(ParseRange("10:10", range).message().find("END must be greater than START"),
            std::string::npos);
  EXPECT_NE(ParseRange("10:5", range).message().find("got 10:5"), std::string::npos);
  EXPECT_THAT(ParseRange("0:10:20", range), Not(IsOk()));
}

TEST(ParseRange, AcceptsNegativeBounds) {
  tessera::v1::RangeInput range;
  ASSERT_THAT(ParseRange("-10:-5", range), IsOk());
  EXPECT_EQ(range.start(), -10);
  EXPECT_EQ(range.end(), -5);
}

TEST(ParseArgs, RejectsParamsThatAreNotAJsonObject) {
  Args base = {"submit", "--task", "t", "--range", "0:10", "--shards", "2", "--params"};
  Args bad = base;
  bad.push_back("{ms: 5}");
  EXPECT_NE(ErrorOf(bad).find("--params: not valid JSON"), std::string::npos);
  Args array = base;
  array.push_back("[1, 2]");
  EXPECT_NE(ErrorOf(array).find("--params: must be a JSON object"), std::string::npos);
}

TEST(ParseArgs, ParsesNestedParams) {
  absl::StatusOr<Command> cmd =
      ParseArgs({"submit", "--task", "t", "--range", "0:10", "--shards", "2", "--params",
                 R"({"a": {"b": [1, "x", true, null]}})"});
  ASSERT_THAT(cmd, IsOk());
  const auto& b = cmd->spec.params().fields().at("a").struct_value().fields().at("b");
  ASSERT_EQ(b.list_value().values_size(), 4);
  EXPECT_EQ(b.list_value().values(1).string_value(), "x");
}

TEST(ParseArgs, RejectsUnknownCommand) {
  EXPECT_EQ(ErrorOf({"frobnicate"}),
            "unknown command \"frobnicate\" (see tessera --help)");
}

TEST(ParseArgs, RejectsUnknownFlagAndFlagOfAnotherCommand) {
  EXPECT_NE(ErrorOf({"get", "j1", "--bogus"}).find("--bogus: unknown flag"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"get", "j1", "--task", "t"}).find("--task: not a flag of \"get\""),
            std::string::npos);
  EXPECT_NE(ErrorOf({"-x", "get", "j1"}).find("-x: unknown flag"), std::string::npos);
}

TEST(ParseArgs, RejectsFlagWithoutValueOrGivenTwice) {
  EXPECT_EQ(ErrorOf({"submit", "--task"}), "--task: missing value");
  EXPECT_NE(
      ErrorOf({"submit", "--task", "a", "--task", "b"}).find("given more than once"),
      std::string::npos);
  EXPECT_EQ(ErrorOf({"--json=yes", "queue"}), "--json: takes no value");
  EXPECT_EQ(ErrorOf({"submit", "--wait=1"}), "--wait: takes no value");
}

TEST(ParseArgs, RequiresExactlyOneJobIdForJobCommands) {
  for (const char* name : {"get", "watch", "result", "cancel", "retry"}) {
    EXPECT_NE(ErrorOf({name}).find("JOB_ID is required"), std::string::npos) << name;
    EXPECT_NE(ErrorOf({name, "a", "b"}).find("unexpected argument \"b\""),
              std::string::npos)
        << name;
  }
  EXPECT_NE(ErrorOf({"queue", "extra"}).find("unexpected argument"), std::string::npos);
}

TEST(ParseArgs, ParsesJobCommandsWithGlobalFlagsAfterTheCommand) {
  absl::StatusOr<Command> cmd =
      ParseArgs({"watch", "job-7", "--json", "--scheduler=h:1"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->kind, CommandKind::kWatch);
  EXPECT_EQ(cmd->job_id, "job-7");
  EXPECT_TRUE(cmd->json);
  EXPECT_EQ(cmd->scheduler, "h:1");
}

TEST(ParseArgs, ParsesListFilters) {
  absl::StatusOr<Command> cmd = ParseArgs(
      {"list", "--state", "Running", "--page-size", "20", "--page-token", "abc"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->list.state(), tessera::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(cmd->list.page_size(), 20);
  EXPECT_EQ(cmd->list.page_token(), "abc");
  EXPECT_NE(ErrorOf({"list", "--state", "done"}).find("--state: expected queued|running"),
            std::string::npos);
  cmd = ParseArgs({"list", "--state", "partial"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->list.state(), tessera::v1::JOB_STATE_PARTIAL);
  EXPECT_NE(ErrorOf({"list", "--page-size", "5000"}).find("at most 1000"),
            std::string::npos);
}

TEST(ParseArgs, TreatsHelpAnywhereAsHelp) {
  for (const Args& args : {Args{"--help"}, Args{"-h"}, Args{"help"},
                           Args{"submit", "--help"}, Args{"bogus", "--help"}}) {
    absl::StatusOr<Command> cmd = ParseArgs(args);
    ASSERT_THAT(cmd, IsOk());
    EXPECT_EQ(cmd->kind, CommandKind::kHelp);
  }
}

TEST(ParseArgs, TreatsVersionAnywhereAsVersionUnlessHelpIsAsked) {
  for (const Args& args : {Args{"--version"}, Args{"executors", "--version"},
                           Args{"bogus", "--version"}, Args{"--version", "--json"}}) {
    absl::StatusOr<Command> cmd = ParseArgs(args);
    ASSERT_THAT(cmd, IsOk());
    EXPECT_EQ(cmd->kind, CommandKind::kVersion);
  }
  absl::StatusOr<Command> cmd = ParseArgs({"--version", "--help"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->kind, CommandKind::kHelp);
}

TEST(UsageText, MentionsEveryCommandAndFlag) {
  std::string usage = UsageText();
  for (const char* word : {"submit",
                           "get",
                           "watch",
                           "result",
                           "list",
                           "cancel",
                           "retry",
                           "executors",
                           "queue",
                           "help",
                           "--scheduler",
                           "--json",
                           "--version",
                           "--task",
                           "--range",
                           "--shards",
                           "--shard-size",
                           "--name",
                           "--params",
                           "--aggregate",
                           "--default-reducer",
                           "--max-parallel",
                           "--max-attempts",
                           "--backoff",
                           "--max-backoff",
                           "--shard-timeout",
                           "--max-failed-shards",
                           "--wait",
                           "--state",
                           "--page-size",
                           "--page-token",
                           "update",
                           "--items-file",
                           "--batch-size",
                           "--idempotency-key",
                           "--concurrency-key",
                           "--concurrency-limit",
                           "--queue",
                           "--priority",
                           "--rate-limit",
                           "--label",
                           "JSON lines",
                           "partial",
                           "PARTIAL",
                           "TESSERA_SCHEDULER"}) {
    EXPECT_NE(usage.find(word), std::string::npos) << word;
  }
}

TEST(UsageText, MentionsEveryCommandAndFlagTheParserKnows) {
  std::string usage = UsageText();
  std::vector<std::string> words = KnownWords();
  EXPECT_GT(words.size(), 40u);
  for (const std::string& word : words) {
    EXPECT_NE(usage.find(word), std::string::npos) << word;
  }
}

TEST(ParseArgs, TakesValuesThatLookLikeCommandsOrNegativeNumbers) {
  absl::StatusOr<Command> cmd = ParseArgs({"get", "queue"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->kind, CommandKind::kGet);
  EXPECT_EQ(cmd->job_id, "queue");
  cmd = ParseArgs({"submit", "--name", "queue", "--task", "t", "--range", "-50",
                   "--shards", "2", "--priority", "-5"});
  EXPECT_THAT(cmd, Not(IsOk()));  // "-50" is the range's value, not a flag
  EXPECT_NE(ErrorOf({"submit", "--name", "queue", "--task", "t", "--range", "-50",
                     "--shards", "2"})
                .find("--range: expected START:END"),
            std::string::npos);
  cmd = ParseArgs({"submit", "--name", "queue", "--task", "t", "--range", "-50:-10",
                   "--shards", "2", "--priority", "-5"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->spec.name(), "queue");
  EXPECT_EQ(cmd->spec.range().start(), -50);
  EXPECT_EQ(cmd->spec.priority(), -5);
}

TEST(ParseArgs, ChecksGlobalFlagsBeforeAndAfterTheCommand) {
  EXPECT_EQ(ErrorOf({"--scheduler", "a:1", "queue", "--scheduler", "b:2"}),
            "--scheduler: given more than once");
  EXPECT_EQ(ErrorOf({"queue", "--scheduler="}), "--scheduler: must not be empty");
  EXPECT_EQ(ErrorOf({"queue", "--tls-ca"}), "--tls-ca: missing value");
  EXPECT_EQ(ErrorOf({"--token-file", "/t", "queue", "--token", "x"}),
            "--token: and --token-file are exclusive");
  absl::StatusOr<Command> cmd =
      ParseArgs({"--tls-ca=/ca.pem", "list", "--token-file", "/t", "--json"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->tls_ca, "/ca.pem");
  EXPECT_EQ(cmd->token_file, "/t");
  EXPECT_TRUE(cmd->json);
}

TEST(ParseArgs, NeverShowsATokenInAnError) {
  for (const Args& args :
       {Args{"--token", "s3cret", "--token", "s3cret"},
        Args{"--token", "s3cret", "--token-file", "/t", "queue"}, Args{"--token=s3cret"},
        Args{"--token", "s3cret", "bogus"}, Args{"get", "--token", "s3cret"},
        Args{"--token", "s3cret", "--bogus", "queue"}}) {
    std::string error = ErrorOf(args);
    EXPECT_FALSE(error.empty()) << args.size();
    EXPECT_EQ(error.find("s3cret"), std::string::npos) << error;
  }
}

TEST(ParseArgs, NamesTheFirstWordNoCommandKnows) {
  EXPECT_EQ(ErrorOf({}), "no command given (see tessera --help)");
  EXPECT_EQ(ErrorOf({"--json"}), "no command given (see tessera --help)");
  EXPECT_EQ(ErrorOf({"--json", "frobnicate", "x"}),
            "unknown command \"frobnicate\" (see tessera --help)");
  EXPECT_EQ(ErrorOf({"queue", "--version=2"}), "--version: takes no value");
  EXPECT_EQ(ErrorOf({"get", "j1", "--bogus=1"}),
            "--bogus: unknown flag (see tessera --help)");
  EXPECT_EQ(ErrorOf({"get", ""}), "get: JOB_ID is empty");
}

TEST(ParseArgs, ParsesAnItemsSubmitWithBatchSizeAndNoItemsYet) {
  absl::StatusOr<Command> cmd = ParseArgs(
      {"submit", "--task", "square", "--items-file", "-", "--batch-size", "50"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->items_file, "-");
  EXPECT_FALSE(cmd->spec.has_range());
  ASSERT_TRUE(cmd->spec.has_items());
  EXPECT_EQ(cmd->spec.items().batch_size(), 50);
  EXPECT_EQ(cmd->spec.items().items_size(), 0);  // RunCli reads them
}

TEST(ParseArgs, ItemsAndRangeFlagsExcludeEachOther) {
  Args items = {"submit", "--task", "t", "--items-file", "i.json", "--batch-size", "2"};
  for (const char* flag : {"--range", "--shards", "--shard-size"}) {
    Args args = items;
    args.push_back(flag);
    args.push_back(std::string(flag) == "--range" ? "0:10" : "2");
    EXPECT_EQ(ErrorOf(args), absl::StrCat(flag,
                                          ": not allowed with --items-file (items "
                                          "are cut by --batch-size)"));
  }
  EXPECT_EQ(ErrorOf({"submit", "--task", "t", "--items-file", "i.json"}),
            "--batch-size: required with --items-file (items per shard, e.g. "
            "--batch-size 100)");
  EXPECT_NE(ErrorOf({"submit", "--task", "t", "--range", "0:10", "--shards", "2",
                     "--batch-size", "2"})
                .find("--batch-size: only with --items-file"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf({"submit", "--task", "t", "--items-file", "i.json", "--batch-size", "0"})
          .find("--batch-size: must be >= 1"),
      std::string::npos);
  EXPECT_NE(ErrorOf({"submit", "--task", "t", "--items-file=", "--batch-size", "1"})
                .find("--items-file: must not be empty"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"submit", "--task", "t"}).find("or --items-file PATH"),
            std::string::npos);
}

TEST(ParseArgs, ParsesJobControlFlags) {
  absl::StatusOr<Command> cmd = ParseArgs({"submit", "--task",
                                           "t",      "--range",
                                           "0:10",   "--shards",
                                           "2",      "--idempotency-key",
                                           "k1",     "--concurrency-key",
                                           "ck",     "--concurrency-limit",
                                           "3",      "--queue",
                                           "gpu",    "--priority",
                                           "-1000",  "--rate-limit",
                                           "0.25",   "--label",
                                           "a=1",    "--label",
                                           "b="});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->spec.idempotency_key(), "k1");
  EXPECT_EQ(cmd->spec.concurrency_key(), "ck");
  EXPECT_EQ(cmd->spec.concurrency_limit(), 3);
  EXPECT_EQ(cmd->spec.queue(), "gpu");
  EXPECT_EQ(cmd->spec.priority(), -1000);
  EXPECT_EQ(cmd->spec.rate_limit(), 0.25);
  EXPECT_EQ(cmd->spec.labels().at("a"), "1");
  EXPECT_EQ(cmd->spec.labels().at("b"), "");
}

TEST(ParseArgs, LeavesJobControlUnsetWithoutItsFlags) {
  absl::StatusOr<Command> cmd =
      ParseArgs({"submit", "--task", "t", "--range", "0:10", "--shards", "2"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->spec.queue(), "");
  EXPECT_EQ(cmd->spec.concurrency_limit(), 0);
  EXPECT_EQ(cmd->spec.rate_limit(), 0);
  EXPECT_TRUE(cmd->spec.labels().empty());
  EXPECT_TRUE(cmd->items_file.empty());
}

TEST(ParseArgs, RejectsBadJobControlFlagsNamingTheFlag) {
  Args base = {"submit", "--task", "t", "--range", "0:10", "--shards", "2"};
  auto error = [&](Args extra) {
    Args args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return ErrorOf(args);
  };
  EXPECT_EQ(error({"--concurrency-limit", "2"}),
            "--concurrency-limit: only with --concurrency-key");
  EXPECT_NE(error({"--concurrency-key", "k", "--concurrency-limit", "0"})
                .find("--concurrency-limit: must be >= 1"),
            std::string::npos);
  EXPECT_EQ(error({"--priority", "1001"}), "--priority: at most 1000 (got 1001)");
  EXPECT_NE(error({"--priority", "-1001"}).find("--priority: must be >= -1000"),
            std::string::npos);
  EXPECT_NE(error({"--priority", "high"}).find("--priority: expected an integer"),
            std::string::npos);
  EXPECT_NE(error({"--rate-limit", "-1"}).find("--rate-limit: must be >= 0"),
            std::string::npos);
  for (const char* bad : {"fast", "inf", "nan"}) {
    EXPECT_NE(
        error({"--rate-limit", bad}).find("--rate-limit: expected shards per second"),
        std::string::npos)
        << bad;
  }
  EXPECT_NE(error({"--label", "team"}).find("--label: expected KEY=VALUE"),
            std::string::npos);
  EXPECT_NE(error({"--label", "=ml"}).find("--label: expected KEY=VALUE"),
            std::string::npos);
  EXPECT_EQ(error({"--label", "a=1", "--label", "a=2"}),
            "--label: key \"a\" given twice");
  EXPECT_EQ(error({"--queue", ""}), "--queue: must not be empty");
  EXPECT_EQ(error({"--idempotency-key="}), "--idempotency-key: must not be empty");
  EXPECT_EQ(error({"--queue", "a", "--queue", "b"}), "--queue: given more than once");
}

TEST(ParseArgs, ParsesListQueueAndLabelFilters) {
  absl::StatusOr<Command> cmd =
      ParseArgs({"list", "--queue", "gpu", "--label", "team=ml", "--state", "running"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->list.queue(), "gpu");
  EXPECT_EQ(cmd->list.labels().at("team"), "ml");
  EXPECT_EQ(cmd->list.state(), tessera::v1::JOB_STATE_RUNNING);
  EXPECT_NE(ErrorOf({"list", "--label", "nope"}).find("--label"), std::string::npos);
}

TEST(ParseArgs, ParsesUpdateWithAMaskOfTheGivenFields) {
  absl::StatusOr<Command> cmd = ParseArgs({"update", "j7", "--max-parallel", "0"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->kind, CommandKind::kUpdate);
  EXPECT_EQ(cmd->update.job_id(), "j7");
  EXPECT_EQ(cmd->update.update().max_parallel(), 0);
  ASSERT_EQ(cmd->update.update_mask().paths_size(), 1);
  EXPECT_EQ(cmd->update.update_mask().paths(0), "max_parallel");

  cmd = ParseArgs({"update", "--rate-limit", "1.5", "j7", "--max-parallel", "4"});
  ASSERT_THAT(cmd, IsOk());
  EXPECT_EQ(cmd->update.update().max_parallel(), 4);
  EXPECT_EQ(cmd->update.update().rate_limit(), 1.5);
  EXPECT_EQ(cmd->update.update_mask().paths_size(), 2);
}

TEST(ParseArgs, RejectsUpdateWithoutFieldsOrJobIdOrWithBadValues) {
  EXPECT_EQ(ErrorOf({"update", "j7"}),
            "update: nothing to change (give --max-parallel N and/or --rate-limit R)");
  EXPECT_NE(ErrorOf({"update", "--max-parallel", "2"}).find("JOB_ID is required"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"update", "j7", "--max-parallel", "-1"})
                .find("--max-parallel: must be >= 0"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"update", "j7", "--rate-limit", "x"}).find("--rate-limit"),
            std::string::npos);
  EXPECT_EQ(ErrorOf({"update", "j7", "--queue", "q"}),
            "--queue: not a flag of \"update\"");
}

TEST(ParseItems, ReadsAJsonArray) {
  tessera::v1::ItemsInput items;
  ASSERT_THAT(ParseItems(" [1, \"a\", true, {\"k\": [null]}]\n", items), IsOk());
  ASSERT_EQ(items.items_size(), 4);
  EXPECT_EQ(items.items(0).number_value(), 1);
  EXPECT_EQ(items.items(1).string_value(), "a");
  EXPECT_TRUE(items.items(2).bool_value());
  EXPECT_TRUE(items.items(3)
                  .struct_value()
                  .fields()
                  .at("k")
                  .list_value()
                  .values(0)
                  .has_null_value());
}

TEST(ParseItems, ReadsJsonLinesSkippingBlankLines) {
  tessera::v1::ItemsInput items;
  ASSERT_THAT(ParseItems("1\r\n\n  \"two\"  \n{\"n\": 3}", items), IsOk());
  ASSERT_EQ(items.items_size(), 3);
  EXPECT_EQ(items.items(1).string_value(), "two");
  // A single non-array value is one JSON line.
  tessera::v1::ItemsInput one;
  ASSERT_THAT(ParseItems("{\"n\": 1}\n", one), IsOk());
  EXPECT_EQ(one.items_size(), 1);
}

TEST(ParseItems, RejectsEmptyInputAndBadLinesNamingTheLine) {
  tessera::v1::ItemsInput items;
  EXPECT_EQ(ParseItems("", items).message(),
            "--items-file: no items (expected a JSON array or one JSON value per line)");
  EXPECT_EQ(ParseItems("  \n\n", items).message(),
            "--items-file: no items (expected a JSON array or one JSON value per line)");
  EXPECT_EQ(ParseItems("[]", items).message(),
            "--items-file: the JSON array has no items");
  absl::Status status = ParseItems("1\n2\n[3,\n", items);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               StartsWith("--items-file: line 3 is not valid JSON")));
}

TEST(ParseItems, RefusesWhatProtobufWouldTakeButIsNotJson) {
  tessera::v1::ItemsInput items;
  EXPECT_TRUE(absl::StartsWith(ParseItems("{n: 1}\n", items).message(),
                               "--items-file: line 1 is not valid JSON"));
  EXPECT_TRUE(absl::StartsWith(ParseItems("'x'\n", items).message(),
                               "--items-file: line 1 is not valid JSON"));
  EXPECT_TRUE(absl::StartsWith(ParseItems("[1, 'x']", items).message(),
                               "--items-file: line 1 is not valid JSON"));
}

TEST(ParseItems, RefusesItemsNestedDeeperThanTheSchedulerTakes) {
  tessera::v1::ItemsInput items;
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_EQ(ParseItems(deep, items).message(),
            "--items-file: nests deeper than 64 levels");
  EXPECT_EQ(ParseItems("1\n" + deep, items).message(),
            "--items-file: line 2: nests deeper than 64 levels");
}

TEST(ParseArgs, RefusesParamsThatAreNotJsonOrTooDeep) {
  Args base = {"submit", "--task", "t", "--range", "0:10", "--shards", "2", "--params"};
  for (const char* bad : {"{'ms': 5}", "{\"a\": 1,}", "{\"a\": NaN}"}) {
    Args args = base;
    args.push_back(bad);
    EXPECT_NE(ErrorOf(args).find("--params: not valid JSON"), std::string::npos) << bad;
  }
  Args deep = base;
  std::string text;
  for (int i = 0; i < 70; ++i) text += "{\"a\":";
  text += "1" + std::string(70, '}');
  deep.push_back(text);
  EXPECT_EQ(ErrorOf(deep), "--params: nests deeper than 64 levels");
  Args string = base;
  string.push_back("\"x\"");
  EXPECT_EQ(ErrorOf(string),
            "--params: must be a JSON object like {\"ms\": 5}, got string");
}

TEST(ResolveSchedulerAddress, PrefersFlagThenEnvironmentThenDefault) {
  EXPECT_EQ(ResolveSchedulerAddress("flag:1", "env:2"), "flag:1");
  EXPECT_EQ(ResolveSchedulerAddress("", "env:2"), "env:2");
  EXPECT_EQ(ResolveSchedulerAddress("", ""), "127.0.0.1:50051");
  EXPECT_EQ(ResolveSchedulerAddress("", nullptr), "127.0.0.1:50051");
}

}  // namespace
}  // namespace tessera::cli
