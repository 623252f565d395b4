#include "cli/progress.h"

#include <gtest/gtest.h>

namespace tessera::cli {
namespace {

namespace v1 = tessera::v1;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

v1::Job MakeJob(v1::JobState state, int64_t succeeded, int64_t total, int64_t items_done,
                int64_t items_total) {
  v1::Job job;
  job.set_id("j1");
  job.set_state(state);
  job.mutable_shards()->set_succeeded(succeeded);
  job.mutable_shards()->set_total(total);
  job.set_items_done(items_done);
  job.set_items_total(items_total);
  return job;
}

TEST(FormatProgressBar, FormatsProgressBarWithRateAndEta) {
  ProgressSnapshot s;
  s.shards_done = 32;
  s.shards_total = 64;
  s.items_done = 45;
  s.items_total = 100;
  s.items_per_second = 12.3e6;
  s.eta = absl::Milliseconds(2100);
  EXPECT_EQ(FormatProgressBar(s, 20),
            "[#########...........]  32/64 shards  45%  12.3M items/s  ETA 3s");
}

TEST(FormatProgressBar, ShowsPlaceholdersBeforeTheRateIsKnown) {
  ProgressSnapshot s;
  s.shards_total = 8;
  EXPECT_EQ(FormatProgressBar(s, 10), "[..........]  0/8 shards  0%  -- items/s  ETA --");
}

TEST(FormatProgressBar, FallsBackToShardsWhenItemsAreUnknownAndShowsFailures) {
  ProgressSnapshot s;
  s.shards_done = 3;
  s.shards_total = 4;
  s.shards_failed = 1;
  EXPECT_EQ(FormatProgressBar(s, 8),
            "[######..]  3/4 shards  75%  -- items/s  ETA --  1 failed");
}

TEST(FormatProgressBar, FillsTheWholeBarOnlyWhenDone) {
  ProgressSnapshot s;
  s.items_done = 999;
  s.items_total = 1000;
  EXPECT_EQ(PercentDone(s), 99);
  EXPECT_EQ(FormatProgressBar(s, 4).substr(0, 6), "[###.]");
  s.items_done = 1000;
  EXPECT_EQ(PercentDone(s), 100);
  EXPECT_EQ(FormatProgressBar(s, 4).substr(0, 6), "[####]");
}

TEST(PercentDone, RoundsDownWithoutFloatingPointError) {
  ProgressSnapshot s;
  s.items_done = 29;
  s.items_total = 100;
  EXPECT_EQ(PercentDone(s), 29);
}

TEST(FormatProgressLine, FormatsPlainLineWithStateAndId) {
  ProgressSnapshot s;
  s.shards_done = 32;
  s.shards_total = 64;
  s.items_done = 450;
  s.items_total = 1000;
  s.items_per_second = 1500;
  s.eta = absl::Seconds(65);
  EXPECT_EQ(FormatProgressLine("7f3a", v1::JOB_STATE_RUNNING, s),
            "job 7f3a RUNNING 32/64 shards 45% 1.5k items/s ETA 1m05s");
}

TEST(HumanCount, UsesSiSuffixesWithOneDecimal) {
  EXPECT_EQ(HumanCount(0), "0");
  EXPECT_EQ(HumanCount(2.5), "2.5");
  EXPECT_EQ(HumanCount(950), "950");
  EXPECT_EQ(HumanCount(999.96), "1.0k");
  EXPECT_EQ(HumanCount(12'345), "12.3k");
  EXPECT_EQ(HumanCount(12'345'678), "12.3M");
  EXPECT_EQ(HumanCount(4.2e9), "4.2G");
}

TEST(FormatEta, RoundsUpToWholeSecondsAndUsesMinutesAndHours) {
  EXPECT_EQ(FormatEta(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatEta(absl::Milliseconds(100)), "1s");
  EXPECT_EQ(FormatEta(absl::Seconds(59)), "59s");
  EXPECT_EQ(FormatEta(absl::Seconds(65)), "1m05s");
  EXPECT_EQ(FormatEta(absl::Hours(2) + absl::Minutes(3) + absl::Seconds(4)), "2h03m");
}

TEST(RateTracker, ComputesRateFromSuccessiveSamples) {
  RateTracker rate;
  EXPECT_FALSE(rate.Rate().has_value());
  rate.Add(kT0, 0);
  EXPECT_FALSE(rate.Rate().has_value());
  rate.Add(kT0 + absl::Seconds(2), 1000);
  ASSERT_TRUE(rate.Rate().has_value());
  EXPECT_DOUBLE_EQ(*rate.Rate(), 500);
}

TEST(RateTracker, ForgetsSamplesOlderThanTheWindow) {
  RateTracker rate(absl::Seconds(5));
  rate.Add(kT0, 0);
  rate.Add(kT0 + absl::Seconds(1), 10'000);  // a fast start
  for (int i = 2; i <= 12; ++i) rate.Add(kT0 + absl::Seconds(i), 10'000 + (i - 1) * 100);
  // Only the last ~5 s count: 100 items/s, not the early burst.
  EXPECT_DOUBLE_EQ(*rate.Rate(), 100);
}

TEST(RateTracker, RestartsWhenTheCountGoesDown) {
  RateTracker rate;
  rate.Add(kT0, 500);
  rate.Add(kT0 + absl::Seconds(1), 100);
  EXPECT_FALSE(rate.Rate().has_value());
}

TEST(ProgressRenderer, RedrawsOneTerminalLineAndBlanksLeftovers) {
  ProgressRenderer renderer(ProgressMode::kTerminal, 10);
  std::string first = renderer.OnEvent(MakeJob(v1::JOB_STATE_QUEUED, 0, 4, 0, 100), kT0);
  EXPECT_EQ(first, "\r[..........]  0/4 shards  0%  -- items/s  ETA --  QUEUED");
  std::string second = renderer.OnEvent(MakeJob(v1::JOB_STATE_RUNNING, 2, 4, 50, 100),
                                        kT0 + absl::Seconds(1));
  const std::string expected = "\r[#####.....]  2/4 shards  50%  50 items/s  ETA 1s";
  ASSERT_EQ(second.size(), first.size());
  EXPECT_EQ(second, expected + std::string(first.size() - expected.size(), ' '));
  EXPECT_EQ(renderer.Finish(), "\n");
  EXPECT_EQ(renderer.Finish(), "");
}

TEST(ProgressRenderer, CutsTheTerminalLineToTheGivenWidth) {
  ProgressRenderer renderer(ProgressMode::kTerminal, 10, /*max_width=*/12);
  EXPECT_EQ(renderer.OnEvent(MakeJob(v1::JOB_STATE_RUNNING, 0, 4, 0, 100), kT0),
            "\r[..........]");
}

TEST(ProgressRenderer, PrintsPlainLinesAtMostOncePerSecond) {
  ProgressRenderer renderer(ProgressMode::kPlain);
  v1::Job running = MakeJob(v1::JOB_STATE_RUNNING, 1, 4, 10, 100);
  EXPECT_EQ(renderer.OnEvent(running, kT0),
            "job j1 RUNNING 1/4 shards 10% -- items/s ETA --\n");
  EXPECT_EQ(renderer.OnEvent(running, kT0 + absl::Milliseconds(300)), "");
  EXPECT_EQ(renderer.OnEvent(running, kT0 + absl::Milliseconds(900)), "");
  EXPECT_NE(renderer.OnEvent(running, kT0 + absl::Milliseconds(1000)), "");
  EXPECT_EQ(renderer.OnEvent(running, kT0 + absl::Milliseconds(1500)), "");
  // The finished state is left to the caller's summary.
  EXPECT_EQ(renderer.OnEvent(MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 4, 100, 100),
                             kT0 + absl::Seconds(3)),
            "");
  EXPECT_EQ(renderer.Finish(), "");
}

TEST(ProgressRenderer, PrintsPlainLineOnStateChangeEvenWithinASecond) {
  ProgressRenderer renderer(ProgressMode::kPlain);
  EXPECT_NE(renderer.OnEvent(MakeJob(v1::JOB_STATE_QUEUED, 0, 4, 0, 100), kT0), "");
  EXPECT_NE(renderer.OnEvent(MakeJob(v1::JOB_STATE_RUNNING, 0, 4, 0, 100),
                             kT0 + absl::Milliseconds(100)),
            "");
}

TEST(StateName, StripsTheEnumPrefix) {
  EXPECT_EQ(StateName(v1::JOB_STATE_CANCELLED), "CANCELLED");
  EXPECT_EQ(StateName(v1::JOB_STATE_PARTIAL), "PARTIAL");
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_FAILED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_RUNNING));
}

TEST(IsTerminal, IncludesPartial) {
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_SUCCEEDED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_CANCELLED));
  EXPECT_TRUE(IsTerminal(v1::JOB_STATE_PARTIAL));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_QUEUED));
  EXPECT_FALSE(IsTerminal(v1::JOB_STATE_UNSPECIFIED));
}

TEST(ProgressRenderer, LeavesThePartialStateToTheSummaryInPlainMode) {
  ProgressRenderer renderer(ProgressMode::kPlain);
  EXPECT_NE(renderer.OnEvent(MakeJob(v1::JOB_STATE_RUNNING, 3, 4, 75, 100), kT0), "");
  EXPECT_EQ(renderer.OnEvent(MakeJob(v1::JOB_STATE_PARTIAL, 3, 4, 75, 100),
                             kT0 + absl::Seconds(2)),
            "");
}

}  // namespace
}  // namespace tessera::cli
