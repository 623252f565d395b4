#include "executor/core/slot_pool.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::executor {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Assignment Lease(const std::string& id) {
  Assignment a;
  a.lease_id = id;
  a.job_id = "job";
  a.task = "noop";
  return a;
}

std::vector<std::string> Ids(const std::vector<Assignment>& as) {
  std::vector<std::string> ids;
  for (const Assignment& a : as) ids.push_back(a.lease_id);
  return ids;
}

TEST(SlotPoolTest, StartsAtMostSlotsAndQueuesTheRest) {
  SlotPool pool(2);
  EXPECT_THAT(Ids(pool.Offer(Lease("a")).start), ElementsAre("a"));
  EXPECT_THAT(Ids(pool.Offer(Lease("b")).start), ElementsAre("b"));
  EXPECT_THAT(pool.Offer(Lease("c")).start, IsEmpty());
  EXPECT_THAT(pool.Offer(Lease("d")).start, IsEmpty());
  EXPECT_EQ(pool.running(), 2);
  EXPECT_EQ(pool.queued(), 2);
}

TEST(SlotPoolTest, StartsTheOldestQueuedWhenASlotFrees) {
  SlotPool pool(1);
  pool.Offer(Lease("a"));
  pool.Offer(Lease("b"));
  pool.Offer(Lease("c"));
  EXPECT_THAT(Ids(pool.Finish("a").start), ElementsAre("b"));
  EXPECT_THAT(pool.RunningLeases(), ElementsAre("b"));
  EXPECT_THAT(Ids(pool.Finish("b").start), ElementsAre("c"));
  EXPECT_THAT(pool.Finish("c").start, IsEmpty());
  EXPECT_TRUE(pool.idle());
}

TEST(SlotPoolTest, NeverRunsMoreThanSlotsWhateverTheOrderOfEvents) {
  SlotPool pool(3);
  int next = 0;
  std::vector<std::string> running;
  for (int round = 0; round < 50; ++round) {
    for (int k = 0; k < round % 4; ++k) {
      for (Assignment& a : pool.Offer(Lease("l" + std::to_string(next++))).start) {
        running.push_back(a.lease_id);
      }
    }
    if (!running.empty() && round % 3 != 0) {
      const std::string done = running.front();
      running.erase(running.begin());
      for (Assignment& a : pool.Finish(done).start) running.push_back(a.lease_id);
    }
    ASSERT_LE(pool.running(), 3);
    ASSERT_EQ(pool.running(), static_cast<int>(running.size()));
  }
}

TEST(SlotPoolTest, IgnoresALeaseOfferedTwice) {
  SlotPool pool(1);
  pool.Offer(Lease("a"));
  pool.Offer(Lease("b"));
  EXPECT_THAT(pool.Offer(Lease("a")).start, IsEmpty());
  EXPECT_THAT(pool.Offer(Lease("b")).start, IsEmpty());
  EXPECT_EQ(pool.queued(), 1);
}

TEST(SlotPoolTest, DrainReleasesQueuedAndKeepsRunning) {
  SlotPool pool(1);
  pool.Offer(Lease("a"));
  pool.Offer(Lease("b"));
  pool.Offer(Lease("c"));
  SlotActions actions = pool.Drain();
  EXPECT_THAT(actions.release, ElementsAre("b", "c"));
  EXPECT_THAT(pool.RunningLeases(), ElementsAre("a"));
  EXPECT_TRUE(pool.draining());
  // A finished slot starts nothing new, and later offers go straight back.
  EXPECT_THAT(pool.Finish("a").start, IsEmpty());
  SlotActions late = pool.Offer(Lease("d"));
  EXPECT_THAT(late.start, IsEmpty());
  EXPECT_THAT(late.release, ElementsAre("d"));
  EXPECT_TRUE(pool.idle());
}

TEST(SlotPoolTest, CancelDequeuesQueuedAndLeavesRunningUntilFinished) {
  SlotPool pool(1);
  pool.Offer(Lease("a"));
  pool.Offer(Lease("b"));
  EXPECT_EQ(pool.Cancel("b"), SlotPool::CancelResult::kDequeued);
  EXPECT_EQ(pool.Cancel("a"), SlotPool::CancelResult::kRunning);
  EXPECT_EQ(pool.Cancel("zzz"), SlotPool::CancelResult::kUnknown);
  EXPECT_EQ(pool.running(), 1);
  EXPECT_EQ(pool.queued(), 0);
  EXPECT_THAT(pool.Finish("a").start, IsEmpty());
}

TEST(SlotPoolTest, DropQueuedForgetsQueuedButKeepsTakingWork) {
  SlotPool pool(1);
  pool.Offer(Lease("a"));
  pool.Offer(Lease("b"));
  EXPECT_THAT(pool.DropQueued(), ElementsAre("b"));
  EXPECT_FALSE(pool.draining());
  pool.Offer(Lease("c"));
  EXPECT_THAT(Ids(pool.Finish("a").start), ElementsAre("c"));
}

}  // namespace
}  // namespace tessera::executor
