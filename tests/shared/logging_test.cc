#include "shared/logging.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/status_matchers.h"

namespace tessera {
namespace {

using ::tessera::testing::IsOk;
using ::testing::Not;

const absl::Time kT = absl::FromUnixMillis(1767323045678);  // 2026-01-02T03:04:05.678Z

TEST(JsonLogLineTest, CarriesTimeLevelServiceAndMessage) {
  nlohmann::json j = nlohmann::json::parse(
      FormatJsonLogLine(kT, "info", "scheduler", "store sqlite: recovered 3 jobs"));
  EXPECT_EQ(j["time"], "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["service"], "scheduler");
  EXPECT_EQ(j["msg"], "store sqlite: recovered 3 jobs");
  EXPECT_FALSE(j.contains("job"));
}

TEST(JsonLogLineTest, LiftsJobShardExecutorAndLeaseTokensIntoFields) {
  nlohmann::json j = nlohmann::json::parse(FormatJsonLogLine(
      kT, "warning", "executor",
      "executor=ex-1 job=7f3a shard=12 lease=L9; failed (retryable) after 1s: boom"));
  EXPECT_EQ(j["job"], "7f3a");
  EXPECT_EQ(j["shard"], "12");
  EXPECT_EQ(j["executor"], "ex-1");
  EXPECT_EQ(j["lease"], "L9");
  EXPECT_EQ(
      j["msg"],
      "executor=ex-1 job=7f3a shard=12 lease=L9; failed (retryable) after 1s: boom");
}

TEST(JsonLogLineTest, TakesTheFirstTokenAndDropsTrailingPunctuation) {
  nlohmann::json j = nlohmann::json::parse(FormatJsonLogLine(
      kT, "info", "scheduler", "job=abc, cancel requested; other job=def"));
  EXPECT_EQ(j["job"], "abc");
}

TEST(JsonLogLineTest, IgnoresLookalikeKeys) {
  nlohmann::json j = nlohmann::json::parse(
      FormatJsonLogLine(kT, "info", "scheduler", "jobs=3 myjob=x job= shard"));
  EXPECT_FALSE(j.contains("job"));
  EXPECT_FALSE(j.contains("shard"));
}

TEST(JsonLogLineTest, EscapesQuotesControlCharactersAndBadUtf8) {
  const std::string line = FormatJsonLogLine(
      kT, "error", "scheduler", "job=q1 name=\"a\\b\"\n\ttab \x01 bad \xff end");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["job"], "q1");
  EXPECT_NE(j["msg"].get<std::string>().find("name=\"a\\b\"\n\ttab \x01 bad "),
            std::string::npos);
}

TEST(LogConfigTest, RejectsUnknownFormatsAndLevels) {
  EXPECT_THAT((LogConfig{"json", "debug"}).Validate(), IsOk());
  EXPECT_THAT((LogConfig{"xml", "info"}).Validate(), Not(IsOk()));
  EXPECT_THAT((LogConfig{"text", "loud"}).Validate(), Not(IsOk()));
}

}  // namespace
}  // namespace tessera
