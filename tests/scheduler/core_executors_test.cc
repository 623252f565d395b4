// SchedulerCore and its executors: streams closing and coming back, leases
// expiring, heartbeats, draining, progress, crash loops and results that
// arrive without a live lease.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "scheduler/core/scheduler_core.h"
#include "tests/scheduler/core_fixture.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;

TEST_F(SchedulerCoreTest, RequeuesShardsWhenAnExecutorStreamClosesAndItDoesNotComeBack) {
  Submit(RangeJob(40, 4));
  ExecutorConn e1 = Connect(Hello("e1", 3));
  ASSERT_EQ(assigns_.size(), 4u);
  std::vector<int64_t> lost;
  for (const auto& a : assigns_) lost.push_back(a.assignment.shard);
  assigns_.clear();
  ExecutorConn e2 = Connect(Hello("e2", 1));
  EXPECT_TRUE(assigns_.empty());  // nothing left to give
  Actions out;
  core_.Disconnect(e1, now_, out);
  Take(out);
  // Held for e1 to re-attach (a reconnect is not a loss)...
  EXPECT_TRUE(assigns_.empty());
  TickAt(now_ + absl::Seconds(4));
  EXPECT_TRUE(assigns_.empty());
  // ...then given to another executor.
  TickAt(now_ + absl::Seconds(1));
  core_.Heartbeat(e2, now_);
  EXPECT_EQ(AssignedTo("e2"), 2);  // 1 slot + 1 prefetch
  EXPECT_EQ(assigns_[0].assignment.attempt, 2);
  EXPECT_EQ(core_.counters().shards_requeued, 4);
  EXPECT_EQ(Get("job1").shards.pending, 2);
  RunAll();
  EXPECT_EQ(persists_.size(), 1u);
  (void)e2;
}

TEST_F(SchedulerCoreTest, AcceptsTheFirstResultAndDropsLaterOnes) {
  Submit(RangeJob(10, 1));
  Connect(Hello("e1", 1));
  AssignAction a = PopAssign();
  Succeed(a, json{{"items", 10}});
  Succeed(a, json{{"items", 10}});
  EXPECT_EQ(core_.counters().results_dropped, 1);
  EXPECT_EQ(Get("job1").shards.succeeded, 1);
  ASSERT_EQ(persists_.size(), 1u);
  EXPECT_EQ(json::parse(persists_[0].bytes)["items"], 10);
}

TEST_F(SchedulerCoreTest, IgnoresMessagesFromAReplacedConnection) {
  Submit(RangeJob(10, 2));
  ExecutorConn old_conn = Connect(Hello("e1", 1));
  AssignAction stale = PopAssign();
  assigns_.clear();
  ExecutorConn new_conn = Connect(Hello("e1", 1));  // same executor reconnects
  EXPECT_NE(old_conn.generation, new_conn.generation);
  Succeed(stale, json{{"items", 5}});
  EXPECT_EQ(core_.counters().results_dropped, 1);
  EXPECT_EQ(Get("job1").shards.succeeded, 0);
  Actions out;
  core_.Disconnect(old_conn, now_, out);  // the old stream's late close
  EXPECT_EQ(core_.ListExecutors().size(), 1u);
}

TEST_F(SchedulerCoreTest, ClosesAnExecutorThatMissesHeartbeatsAndRequeuesItsShards) {
  Submit(RangeJob(10, 2));
  ExecutorConn e1 = Connect(Hello("e1", 1));
  ASSERT_EQ(assigns_.size(), 2u);
  assigns_.clear();
  now_ += absl::Seconds(4);
  core_.Heartbeat(e1, now_);
  Actions out;
  now_ += absl::Seconds(5);
  core_.Tick(now_, out);  // 5s since the heartbeat: not yet
  EXPECT_TRUE(out.closes.empty());
  now_ += absl::Seconds(1);
  core_.Tick(now_, out);
  ASSERT_EQ(out.closes.size(), 1u);
  EXPECT_EQ(out.closes[0].conn.executor_id, "e1");
  EXPECT_EQ(core_.counters().executors_expired, 1);
  EXPECT_EQ(Get("job1").shards.pending, 2);
  EXPECT_TRUE(core_.ListExecutors().empty());
}

TEST_F(SchedulerCoreTest, DrainingExecutorGetsNoMoreWorkAndReleasedShardsMoveOn) {
  Submit(RangeJob(100, 10));
  ExecutorConn e1 = Connect(Hello("e1", 1));
  ASSERT_EQ(assigns_.size(), 2u);
  Actions out;
  core_.Draining(e1, now_, out);
  AssignAction running = PopAssign();
  AssignAction queued = PopAssign();
  core_.Release(e1, {queued.assignment.lease_id}, now_, out);
  Take(out);
  EXPECT_TRUE(assigns_.empty());  // no other executor, and e1 is draining
  Succeed(running, json{{"items", 10}});
  EXPECT_TRUE(assigns_.empty());
  Connect(Hello("e2", 1));
  ASSERT_FALSE(assigns_.empty());
  EXPECT_EQ(assigns_[0].assignment.shard, queued.assignment.shard);
  EXPECT_EQ(assigns_[0].assignment.attempt, 2);
}

TEST_F(SchedulerCoreTest, ProgressCountsTowardsItemsDone) {
  Submit(RangeJob(100, 2));
  ExecutorConn e = Connect(Hello("e1", 2));
  core_.Progress(e, assigns_[0].assignment.lease_id, 20, now_);
  core_.Progress(e, assigns_[1].assignment.lease_id, 500, now_);  // clamped to 50
  EXPECT_EQ(Get("job1").items_done, 70);
  EXPECT_EQ(Get("job1").items_total, 100);
}

TEST_F(SchedulerCoreTest, ShardTimeoutTakesTheLeaseBackAndRetries) {
  JobSpec spec = RangeJob(10, 1);
  spec.shard_timeout = absl::Seconds(3);
  Submit(spec);
  ExecutorConn e = Connect(Hello("e1", 1));
  AssignAction a = PopAssign();
  EXPECT_EQ(a.assignment.timeout, absl::Seconds(3));
  now_ += absl::Seconds(4);
  core_.Heartbeat(e, now_);
  TickAt(now_ + absl::Seconds(3));  // 7 s: timeout + 5 s lease grace not yet past
  core_.Heartbeat(e, now_);
  EXPECT_TRUE(cancels_.empty());
  TickAt(now_ + absl::Seconds(2));
  ASSERT_EQ(cancels_.size(), 1u);
  EXPECT_EQ(cancels_[0].lease_id, a.assignment.lease_id);
  EXPECT_EQ(core_.counters().leases_expired, 1);
  ASSERT_EQ(assigns_.size(), 1u);  // retried at once (zero backoff in these tests)
  EXPECT_EQ(assigns_[0].assignment.attempt, 2);
  EXPECT_NE(Get("job1").errors[0].message.find("timed out"), std::string::npos);
}

TEST_F(SchedulerCoreTest, AShardThatKeepsKillingItsExecutorIsStopped) {
  Submit(RangeJob(10, 1));
  for (int i = 0; i < 3; ++i) {
    ExecutorConn e = Connect(Hello(absl::StrCat("e", i), 1));
    ASSERT_EQ(assigns_.size(), 1u) << "loss " << i;
    assigns_.clear();
    Actions out;
    core_.Disconnect(e, now_, out);
    Take(out);
    TickAt(now_ + Config().reattach_grace);  // it does not come back
  }
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kFailed);
  EXPECT_NE(v.message.find("crash loop"), std::string::npos) << v.message;
}

TEST_F(SchedulerCoreTest,
       AnExecutorThatReconnectsThreeTimesDuringOneShardCostsItNothing) {
  Submit(RangeJob(10, 1));
  ExecutorConn e = Connect(Hello("e1", 1));
  ASSERT_EQ(assigns_.size(), 1u);
  const AssignAction a = PopAssign();
  for (int i = 0; i < 3; ++i) {
    Actions out;
    core_.Disconnect(e, now_, out);
    Take(out);
    now_ += absl::Seconds(2);  // back within the grace, still running the shard
    ExecutorHello back = Hello("e1", 1);
    back.held.push_back({a.assignment.lease_id, "job1", 0, a.assignment.attempt});
    e = Connect(back);
    EXPECT_TRUE(assigns_.empty()) << "reconnect " << i;  // not given out again
    EXPECT_TRUE(cancels_.empty());
    TickAt(now_ + absl::Seconds(4));
    core_.Heartbeat(e, now_);
  }
  Actions out;
  core_.Result(e, a.assignment.lease_id, "job1", 0, json{{"items", 10}}.dump(), now_,
               out);
  Take(out);
  EXPECT_EQ(persists_.size(), 1u);
  EXPECT_EQ(Get("job1").shards.failed, 0);
}

TEST_F(SchedulerCoreTest, AnExecutorBackWithoutItsShardLosesItAtOnce) {
  Submit(RangeJob(10, 1));
  ExecutorConn e = Connect(Hello("e1", 1));
  ASSERT_EQ(assigns_.size(), 1u);
  assigns_.clear();
  Actions out;
  core_.Disconnect(e, now_, out);
  Take(out);
  Connect(Hello("e1", 1));         // back, but no longer running it (claims nothing)
  ASSERT_EQ(assigns_.size(), 1u);  // given out again without waiting for the grace
  EXPECT_EQ(assigns_[0].assignment.shard, 0);
}

TEST_F(SchedulerCoreTest, ALossCountsBeforeTheShardGoesOutAgainWhateverDispatchesIt) {
  CoreConfig c = Config();
  c.max_executor_losses = 1;
  SchedulerCore core(c);
  Actions out;
  ASSERT_THAT(core.Submit(RangeJob(10, 1), "job1", now_, out), IsOk());
  ExecutorConn e1 = core.Connect(Hello("e1", 1), now_, out);
  ASSERT_EQ(out.assigns.size(), 1u);
  Actions gone;
  core.Disconnect(e1, now_, gone);
  // The grace passes with no tick; a new executor's arrival dispatches.
  Actions later;
  core.Connect(Hello("e2", 1), now_ + c.reattach_grace, later);
  EXPECT_TRUE(later.assigns.empty());  // the crash loop is caught, not handed on
  auto v = core.GetJob("job1", now_ + c.reattach_grace);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->state, JobState::kFailed);
  EXPECT_NE(v->message.find("crash loop"), std::string::npos) << v->message;
}

TEST_F(SchedulerCoreTest, AResultWithoutALiveLeaseIsAcceptedWhileTheShardIsOpen) {
  Submit(RangeJob(20, 2));
  ExecutorConn e1 = Connect(Hello("e1", 1));
  ASSERT_EQ(assigns_.size(), 2u);
  assigns_.clear();
  Actions out;
  core_.Disconnect(e1, now_, out);                // its leases go back to the queue
  ExecutorConn e2 = Connect(Hello("e1", 1, {}));  // back, advertising nothing yet
  Actions first;
  core_.Result(e2, "job1.0.1", "job1", 0, json{{"items", 10}}.dump(), now_, first);
  Take(first);
  EXPECT_EQ(Get("job1").shards.succeeded, 1);
  EXPECT_EQ(core_.counters().results_adopted, 1);
  ASSERT_EQ(acks_.size(), 1u);
  // The same result again: no longer needed, dropped, and acked so that the
  // executor forgets it.
  Actions second;
  core_.Result(e2, "job1.0.1", "job1", 0, json{{"items", 10}}.dump(), now_, second);
  Take(second);
  EXPECT_EQ(Get("job1").shards.succeeded, 1);
  EXPECT_EQ(core_.counters().results_dropped, 1);
  EXPECT_EQ(acks_.size(), 2u);
}

TEST_F(SchedulerCoreTest, HeldShardsOfACancelledJobAreCancelledOnReattach) {
  Submit(RangeJob(10, 1));
  Connect(Hello("e1", 1));
  AssignAction a = PopAssign();
  Actions out;
  ASSERT_THAT(core_.Cancel("job1", now_, out), IsOk());
  ExecutorHello back = Hello("e1", 1);
  back.held.push_back({a.assignment.lease_id, "job1", 0, 1});
  Actions out2;
  core_.Connect(back, now_, out2);
  ASSERT_EQ(out2.cancels.size(), 1u);
  EXPECT_EQ(out2.cancels[0].lease_id, a.assignment.lease_id);
}

}  // namespace
}  // namespace tessera::scheduler
