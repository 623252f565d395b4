// One job's shard bookkeeping on its own: what runs next, what is done, the
// in-order fold, detached shards, and rebuilding from stored results.
#include "scheduler/core/job_shards.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kNow = absl::UnixEpoch() + absl::Hours(1);

JobShards Shards(int64_t n) {
  return JobShards(*RangePartition::Create({0, n * 10, 10, 0}, 1000), {});
}

TEST(JobShardsTest, HandsOutDueRetriesBeforeNewShards) {
  JobShards s = Shards(5);
  EXPECT_EQ(s.TakeNext(kNow).shard, 0);
  EXPECT_EQ(s.TakeNext(kNow).shard, 1);
  s.RetryAt(0, 1, kNow + absl::Seconds(1));  // in backoff
  JobShards::Next next = s.TakeNext(kNow);
  EXPECT_EQ(next.shard, 2);
  EXPECT_EQ(next.attempt, 1);
  next = s.TakeNext(kNow + absl::Seconds(1));
  EXPECT_EQ(next.shard, 0);
  EXPECT_EQ(next.attempt, 2);
  EXPECT_EQ(s.pending(), 2);  // 3 and 4
}

TEST(JobShardsTest, ClaimingAShardAheadQueuesTheOnesItSkipped) {
  JobShards s = Shards(6);
  s.Claim(3);
  EXPECT_EQ(s.next_shard(), 4);
  EXPECT_EQ(s.retry().size(), 3u);  // 0, 1, 2
  EXPECT_EQ(s.pending(), 5);
}

TEST(JobShardsTest, FoldsInShardOrderWhateverOrderResultsArriveIn) {
  JobShards s = Shards(3);
  s.Accept(2, json{{"n", 2}});
  s.Accept(1, json{{"n", 1}});
  ASSERT_THAT(s.FoldPrefix(), IsOk());
  EXPECT_EQ(s.folded(), 0);
  EXPECT_EQ(s.buffered(), 2u);
  EXPECT_TRUE(s.IsDone(2));
  EXPECT_FALSE(s.IsDone(0));
  s.Fail(0, 3, "boom");  // a failed shard is skipped
  ASSERT_THAT(s.FoldPrefix(), IsOk());
  EXPECT_TRUE(s.AllFolded());
  EXPECT_EQ(s.folded_value(), (json{{"n", 3}}));
  EXPECT_EQ(s.succeeded(), 2);
  EXPECT_EQ(s.items_completed(), 20);
  EXPECT_EQ(s.failed().at(0).attempts, 3);
}

TEST(JobShardsTest, ARequeuedShardRunsAgainUnlessItIsDone) {
  JobShards s = Shards(3);
  s.Run(s.TakeNext(kNow).shard, "l0");
  s.Run(s.TakeNext(kNow).shard, "l1");
  s.Stop(0, 1, /*requeue=*/true);
  EXPECT_TRUE(s.QueuedAgain(0));
  s.Accept(1, json::object());
  s.Stop(1, 1, /*requeue=*/true);
  EXPECT_FALSE(s.QueuedAgain(1));
  EXPECT_TRUE(s.running().empty());
}

TEST(JobShardsTest, ADetachedShardIsLostAfterItsGraceOrWhenItsExecutorAbandonsIt) {
  JobShards s = Shards(3);
  s.Run(s.TakeNext(kNow).shard, "l0");
  s.Run(s.TakeNext(kNow).shard, "l1");
  s.Stop(0, 1, /*requeue=*/true);
  s.Stop(1, 2, /*requeue=*/true);
  s.Detach(0, 1, kNow + absl::Seconds(10), "e1");
  s.Detach(1, 2, kNow + absl::Seconds(10), "e2");
  EXPECT_FALSE(s.HasLost(kNow));
  EXPECT_EQ(s.retry().at(0).not_before, kNow + absl::Seconds(10));
  EXPECT_TRUE(s.AbandonDetached("e2", kNow));
  EXPECT_FALSE(s.AbandonDetached("e3", kNow));
  std::vector<JobShards::Lost> lost = s.TakeLost(kNow);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].shard, 1);
  EXPECT_EQ(lost[0].attempt, 2);
  EXPECT_EQ(s.CountLoss(1), 1);
  EXPECT_EQ(s.TakeLost(kNow + absl::Seconds(10)).size(), 1u);
  EXPECT_FALSE(s.HasLost(kNow + absl::Seconds(20)));
}

TEST(JobShardsTest, RebuildRestoresResultsAndQueuesTheGaps) {
  JobShards s = Shards(5);
  ASSERT_THAT(s.Rebuild({{0, R"({"n":1})"}, {3, R"({"n":2})"}}, 64, {}), IsOk());
  EXPECT_EQ(s.succeeded(), 2);
  EXPECT_EQ(s.next_shard(), 4);
  EXPECT_EQ(s.retry().size(), 2u);  // 1 and 2
  ASSERT_THAT(s.FoldPrefix(), IsOk());
  EXPECT_EQ(s.folded(), 1);

  absl::Status bad = s.Rebuild({{2, "[1]"}}, 64, {});
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("shard 2")));
}

TEST(JobShardsTest, RetryingFailedShardsKeepsCountingTheirAttempts) {
  JobShards s = Shards(2);
  s.Fail(0, 3, "boom");
  ASSERT_THAT(s.RetryFailed({{1, R"({"n":1})"}}, 64, {}), IsOk());
  EXPECT_TRUE(s.failed().empty());
  JobShards::Next next = s.TakeNext(kNow);
  EXPECT_EQ(next.shard, 0);
  EXPECT_EQ(next.attempt, 4);
}

TEST(JobShardsTest, KeepFailedIgnoresAShardTheJobDoesNotHave) {
  JobShards s = Shards(2);
  s.KeepFailed({5, {}, 1, "?"});
  s.KeepFailed({1, {}, 1, "boom"});
  EXPECT_EQ(s.failed().size(), 1u);
}

}  // namespace
}  // namespace tessera::scheduler
