#include <thread>

#include "absl/random/random.h"
#include "executor/core/backoff.h"
#include "executor/core/cancel_token.h"
#include "executor/core/progress_throttle.h"
#include "executor/core/result_buffer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared/clock.h"

namespace tessera::executor {
namespace {

TEST(BackoffTest, DoublesFromInitialUpToMaxWithinJitter) {
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(5));
  absl::BitGen gen;
  absl::Duration base = absl::Milliseconds(100);
  for (int i = 0; i < 12; ++i) {
    const absl::Duration d = backoff.Next(gen);
    EXPECT_GE(d, base * 0.8) << "attempt " << i;
    EXPECT_LE(d, std::min(base * 1.2, absl::Seconds(5))) << "attempt " << i;
    base = std::min(base * 2, absl::Seconds(5));
  }
}

TEST(BackoffTest, ResetStartsAgainFromInitial) {
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(5), 2.0, /*jitter=*/0);
  absl::BitGen gen;
  for (int i = 0; i < 5; ++i) backoff.Next(gen);
  backoff.Reset();
  EXPECT_EQ(backoff.Next(gen), absl::Milliseconds(100));
  EXPECT_EQ(backoff.Next(gen), absl::Milliseconds(200));
}

TEST(ProgressThrottleTest, SendsAtMostTwicePerSecondAndNeverTheFinalCount) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  ProgressThrottle throttle(t0);
  EXPECT_FALSE(throttle.ShouldSend(t0 + absl::Milliseconds(100), 1, 10));
  EXPECT_TRUE(throttle.ShouldSend(t0 + absl::Milliseconds(500), 2, 10));
  EXPECT_FALSE(throttle.ShouldSend(t0 + absl::Milliseconds(900), 3, 10));
  EXPECT_TRUE(throttle.ShouldSend(t0 + absl::Milliseconds(1000), 4, 10));
  EXPECT_FALSE(throttle.ShouldSend(t0 + absl::Seconds(2), 4, 10)) << "nothing moved";
  EXPECT_FALSE(throttle.ShouldSend(t0 + absl::Seconds(3), 10, 10)) << "done";
}

TEST(CancelTokenTest, WaitForReturnsEarlyWhenCancelled) {
  CancelToken token;
  EXPECT_FALSE(token.WaitFor(absl::Milliseconds(1)));
  // Whether the cancel lands before or during the wait, the wait ends with it
  // (the 10 s would fail the test's timeout).
  std::thread canceller([&] { token.Cancel(); });
  EXPECT_TRUE(token.WaitFor(absl::Seconds(10)));
  canceller.join();
  EXPECT_TRUE(token.cancelled());
  token.Cancel();  // idempotent
}

TEST(CancelTokenTest, ReadsTheDeadlineOnTheClockItIsGiven) {
  FakeClock clock;
  CancelToken token;
  token.SetDeadline(clock.Now() + absl::Seconds(30), &clock);
  EXPECT_FALSE(token.cancelled());
  clock.Advance(absl::Seconds(29));
  EXPECT_FALSE(token.expired());
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(token.expired());
  EXPECT_TRUE(token.cancelled());
  EXPECT_FALSE(token.cancel_requested());
  EXPECT_TRUE(token.WaitFor(absl::Hours(1))) << "past the deadline: no wait";
}

ShardOutcome Outcome(const std::string& lease) {
  ShardOutcome o;
  o.lease_id = lease;
  return o;
}

TEST(ResultBufferTest, KeepsOrderAndDropsTheOldestWhenFull) {
  ResultBuffer buffer(2);
  EXPECT_EQ(buffer.Add(Outcome("a")), 0u);
  EXPECT_EQ(buffer.Add(Outcome("b")), 0u);
  EXPECT_EQ(buffer.Add(Outcome("c")), 1u);
  std::vector<ShardOutcome> all = buffer.TakeAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].lease_id, "b");
  EXPECT_EQ(all[1].lease_id, "c");
  EXPECT_TRUE(buffer.empty());
}

TEST(ResultBufferTest, PutBackGoesAheadOfNewerOutcomes) {
  ResultBuffer buffer(10);
  buffer.Add(Outcome("new"));
  buffer.PutBack({Outcome("old1"), Outcome("old2")});
  std::vector<ShardOutcome> all = buffer.TakeAll();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].lease_id, "old1");
  EXPECT_EQ(all[1].lease_id, "old2");
  EXPECT_EQ(all[2].lease_id, "new");
}

}  // namespace
}  // namespace tessera::executor
