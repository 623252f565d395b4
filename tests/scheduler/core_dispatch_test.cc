// SchedulerCore dispatching through its policy, end to end: slots and
// prefetch, round robin, priorities and queues, max_parallel, concurrency keys
// and rate limits. The policy's rules alone: dispatch_policy_test.cc.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/scheduler_core.h"
#include "tests/scheduler/core_fixture.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::HasSubstr;

TEST_F(SchedulerCoreTest, DispatchRespectsSlotsAndPrefetch) {
  Submit(RangeJob(100, 10));
  Connect(Hello("e1", 2));
  ASSERT_EQ(assigns_.size(), 3u);  // 2 slots + 1 prefetch
  EXPECT_EQ(Get("job1").state, JobState::kRunning);
  AssignAction first = PopAssign();
  Succeed(first, json{{"items", 10}});
  ASSERT_EQ(assigns_.size(), 3u);  // one freed, one more sent
  EXPECT_EQ(core_.ListExecutors()[0].assigned, 3);
}

TEST_F(SchedulerCoreTest, PrefetchGrowsForShortShardsUpToTheWindowAndTheCap) {
  // Config(): prefetch 1; defaults: max_prefetch 256, window 2ms.
  Submit(RangeJob(100'000, 100'000));
  Connect(Hello("e1", 2));
  ASSERT_EQ(assigns_.size(), 3u);  // no run time reported yet: 2 slots + 1
  // Shards of 100us: 2 slots x 2ms / 100us = 40 beyond the slots.
  Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(100));
  EXPECT_EQ(core_.ListExecutors()[0].assigned, 2 + 40);
  // Shards of a microsecond would ask for 4,000: capped at 256.
  int64_t most = 0;
  for (int i = 0; i < 100; ++i) {
    Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(1));
    most = std::max<int64_t>(most, core_.ListExecutors()[0].assigned);
  }
  EXPECT_EQ(most, 2 + 256);
}

TEST_F(SchedulerCoreTest, AnExecutorHoldingManyShortShardsIsRefilledInBatches) {
  Submit(RangeJob(100'000, 100'000));
  Connect(Hello("e1", 2));
  Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(100));
  ASSERT_EQ(core_.ListExecutors()[0].assigned, 2 + 40);
  // Not topped up shard by shard while it holds more than half of its
  // prefetch beyond its slots...
  const size_t queued = assigns_.size();
  for (int i = 0; i < 19; ++i) {
    Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(100));
  }
  EXPECT_EQ(core_.ListExecutors()[0].assigned, 2 + 40 - 19);
  EXPECT_EQ(assigns_.size(), queued - 19);
  // ...then refilled all the way at once.
  Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(100));
  EXPECT_EQ(core_.ListExecutors()[0].assigned, 2 + 40);
  EXPECT_EQ(assigns_.size(), queued);  // 20 run, 20 sent in one go
}

TEST_F(SchedulerCoreTest, ARefillComesBeforeTheQueueRunsDry) {
  Submit(RangeJob(100'000, 100'000));
  Connect(Hello("e1", 1));
  Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(100));
  ASSERT_EQ(core_.ListExecutors()[0].assigned, 1 + 20);
  // Everything it holds finishes: each result leaves it fewer, and once its
  // slot would idle it gets work again.
  int64_t least = 1 + 20;
  while (!assigns_.empty()) {
    Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(100));
    least = std::min<int64_t>(least, core_.ListExecutors()[0].assigned);
    if (core_.ListExecutors()[0].assigned == 1 + 20) break;
  }
  EXPECT_GE(least, 1 + 10);  // refilled at half, never run dry
  EXPECT_EQ(core_.ListExecutors()[0].assigned, 1 + 20);
}

TEST_F(SchedulerCoreTest, LongShardsKeepTheMinimalPrefetch) {
  Submit(RangeJob(100, 100));
  Connect(Hello("e1", 2));
  for (int i = 0; i < 10; ++i) {
    Succeed(PopAssign(), json{{"items", 1}}, absl::Seconds(2));
    EXPECT_EQ(core_.ListExecutors()[0].assigned, 3);  // 2 slots + 1, never more
  }
}

TEST_F(SchedulerCoreTest, ASlowShardCutsThePrefetchAtOnce) {
  Submit(RangeJob(100'000, 100'000));
  Connect(Hello("e1", 2));
  Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(100));
  ASSERT_EQ(core_.ListExecutors()[0].assigned, 2 + 40);
  // One shard of 2 s: no more than the minimum is handed out from now on.
  Succeed(PopAssign(), json{{"items", 1}}, absl::Seconds(2));
  for (int i = 0; i < 10; ++i) Succeed(PopAssign(), json{{"items", 1}});
  EXPECT_EQ(core_.ListExecutors()[0].assigned, 2 + 40 - 11);
}

TEST_F(SchedulerCoreTest, AJobWithAShardTimeoutKeepsTheMinimalPrefetch) {
  // Its timeout runs from the assignment: shards queued on the executor
  // must not wait out their time there.
  JobSpec spec = RangeJob(1'000, 1'000);
  spec.shard_timeout = absl::Seconds(60);
  Submit(spec);
  Connect(Hello("e1", 2));
  for (int i = 0; i < 10; ++i) {
    Succeed(PopAssign(), json{{"items", 1}}, absl::Microseconds(1));
    EXPECT_EQ(core_.ListExecutors()[0].assigned, 3);  // 2 slots + 1
  }
}

TEST(CoreConfigTest, RefusesAMaxPrefetchBelowThePrefetch) {
  CoreConfig c;
  c.prefetch = 8;
  c.max_prefetch = 4;
  const absl::Status s = c.Validate();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_prefetch")));
  c.max_prefetch = 8;
  c.prefetch_window = absl::Milliseconds(-1);
  EXPECT_NE(c.Validate().message().find("prefetch_window"), std::string::npos);
}

TEST_F(SchedulerCoreTest, DispatchesOnlyToExecutorsThatAdvertiseTheTask) {
  Submit(RangeJob(100, 4, "primes"));
  Connect(Hello("sleepy", 4, {"sleep"}));
  EXPECT_TRUE(assigns_.empty());
  EXPECT_EQ(Get("job1").state, JobState::kQueued);
  Connect(Hello("worker", 4, {"primes"}));
  EXPECT_EQ(AssignedTo("worker"), 4);
  EXPECT_EQ(AssignedTo("sleepy"), 0);
}

TEST_F(SchedulerCoreTest, SharesExecutorsRoundRobinBetweenRunningJobs) {
  Submit(RangeJob(100, 10), "a");
  Submit(RangeJob(100, 10), "b");
  Connect(Hello("e1", 3));  // 3 + 1 prefetch = 4 assignments
  ASSERT_EQ(assigns_.size(), 4u);
  int a = 0, b = 0;
  for (const auto& x : assigns_) (x.assignment.job_id == "a" ? a : b)++;
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, 2);
}

TEST_F(SchedulerCoreTest, MaxParallelCapsShardsInFlightAcrossExecutors) {
  JobSpec spec = RangeJob(100, 10);
  spec.max_parallel = 3;
  Submit(spec);
  Connect(Hello("e1", 4));
  Connect(Hello("e2", 4));
  EXPECT_EQ(assigns_.size(), 3u);
  Succeed(PopAssign(), json{{"items", 10}});
  EXPECT_EQ(assigns_.size(), 3u);
}

TEST_F(SchedulerCoreTest, QueuedJobSaysWhatItWaitsFor) {
  Submit(RangeJob(10, 1, "promo"));
  EXPECT_EQ(Get("job1").message, "waiting for an executor that runs task \"promo\"");
  Connect(Hello("e1", 1, {"noop"}));
  now_ += absl::Seconds(31);
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kQueued);
  EXPECT_NE(v.message.find("no executor has advertised task \"promo\""),
            std::string::npos)
      << v.message;
  EXPECT_NE(v.message.find("noop"), std::string::npos);
}

TEST_F(SchedulerCoreTest, AConcurrencyKeyRunsOneJobAtATimeInSubmissionOrder) {
  JobSpec spec = RangeJob(10, 1);
  spec.concurrency_key = "nightly-import";
  Submit(spec, "a");
  Submit(spec, "b");
  Submit(spec, "c");
  Connect(Hello("e1", 4));
  ASSERT_EQ(assigns_.size(), 1u);
  EXPECT_EQ(assigns_[0].assignment.job_id, "a");
  EXPECT_EQ(Get("b").state, JobState::kQueued);
  EXPECT_NE(Get("b").message.find("waiting for job a"), std::string::npos)
      << Get("b").message;
  Succeed(PopAssign(), json{{"items", 10}});
  EXPECT_TRUE(assigns_.empty());  // a is finishing (persist), still holds the key
  Actions out;
  core_.Persisted("a", "/r/a.json", "x", now_, out);
  Take(out);
  ASSERT_EQ(assigns_.size(), 1u);
  EXPECT_EQ(assigns_[0].assignment.job_id, "b");
  EXPECT_EQ(Get("c").state, JobState::kQueued);
}

TEST_F(SchedulerCoreTest, HigherPriorityDispatchesFirstAndQueuesRouteJobs) {
  JobSpec low = RangeJob(100, 10);
  Submit(low, "low");
  JobSpec high = RangeJob(100, 10);
  high.priority = 10;
  Submit(high, "high");
  JobSpec other = RangeJob(100, 10);
  other.queue = "gpu";
  other.priority = 100;
  Submit(other, "other");
  Connect(Hello("e1", 3));  // serves "default" only
  ASSERT_EQ(assigns_.size(), 4u);
  for (const auto& a : assigns_) EXPECT_EQ(a.assignment.job_id, "high");
  ExecutorHello gpu = Hello("g1", 1);
  gpu.queues = {"gpu"};
  assigns_.clear();
  Connect(gpu);
  ASSERT_EQ(assigns_.size(), 2u);
  EXPECT_EQ(assigns_[0].assignment.job_id, "other");
  EXPECT_EQ(core_.Stats().pending_by_queue["gpu"], 8);
}

TEST_F(SchedulerCoreTest, RateLimitPacesDispatchAcrossAllExecutors) {
  JobSpec spec = RangeJob(100, 100);
  spec.rate_limit = 20;
  Submit(spec);
  std::vector<ExecutorConn> conns;
  for (int i = 0; i < 6; ++i) conns.push_back(Connect(Hello(absl::StrCat("e", i), 4)));
  std::vector<absl::Time> dispatched;
  for (int step = 0; step < 1000 && dispatched.size() < 100; ++step) {
    dispatched.insert(dispatched.end(), assigns_.size(), now_);
    SucceedAllThenTick(conns, absl::Milliseconds(10));
  }
  ASSERT_EQ(dispatched.size(), 100u);
  const double secs = absl::ToDoubleSeconds(dispatched.back() - dispatched.front());
  EXPECT_NEAR(secs, 4.95, 0.1);
  // No second ever saw more than 20 + the 2-shard burst.
  for (size_t i = 0; i + 22 < dispatched.size(); ++i) {
    EXPECT_GE(dispatched[i + 22] - dispatched[i], absl::Seconds(1)) << i;
  }
}

TEST_F(SchedulerCoreTest, MaxParallelAndRateLimitChangeOnARunningJob) {
  JobSpec spec = RangeJob(100, 100);
  spec.max_parallel = 3;
  Submit(spec);
  for (int i = 0; i < 6; ++i) Connect(Hello(absl::StrCat("e", i), 4));
  EXPECT_EQ(assigns_.size(), 3u);
  Actions out;
  JobUpdate update;
  update.max_parallel = 5;
  auto v = core_.UpdateJob("job1", update, now_, out);
  Take(out);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->spec.max_parallel, 5);
  EXPECT_EQ(assigns_.size(), 5u);
  JobUpdate bad;
  bad.rate_limit = -1;
  auto refused = core_.UpdateJob("job1", bad, now_, out);
  EXPECT_NE(refused.status().message().find("spec.rate_limit"), std::string::npos);
  EXPECT_EQ(Get("job1").spec.rate_limit, 0);
}

TEST_F(SchedulerCoreTest, ARetriedJobWaitsForItsConcurrencyKeyLikeANewOne) {
  JobSpec a = RangeJob(20, 2);
  a.concurrency_key = "k";
  a.max_failed_shards = 1;
  a.retry.max_attempts = 1;
  Submit(a, "a");
  Connect(Hello("e1", 1));
  std::vector<AssignAction> first = assigns_;
  assigns_.clear();
  Fail(first[0], /*retryable=*/false);
  Succeed(first[1], json{{"items", 10}});
  Actions out;
  core_.Persisted("a", "/r/a.json", "x", now_, out);
  ASSERT_EQ(Get("a").state, JobState::kPartial);
  JobSpec b = RangeJob(100, 10);
  b.concurrency_key = "k";
  Submit(b, "b");  // b runs now
  ASSERT_EQ(Get("b").state, JobState::kRunning);
  assigns_.clear();
  std::vector<StoredResult> stored;
  for (const auto& r : saved_results_) stored.push_back({r.shard, r.result_json});
  Actions retry;
  auto v = core_.RetryFailedShards("a", stored, now_, retry);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->state, JobState::kQueued);
  EXPECT_NE(v->message.find("waiting for job b"), std::string::npos) << v->message;
}

TEST_F(SchedulerCoreTest, ChangingTheRateLimitOfARunningJobTakesEffect) {
  JobSpec spec = RangeJob(1000, 1000);
  spec.rate_limit = 5;
  Submit(spec);
  std::vector<ExecutorConn> conns;
  for (int i = 0; i < 4; ++i) conns.push_back(Connect(Hello(absl::StrCat("e", i), 8)));
  auto run_for = [&](absl::Duration d) {
    int started = 0;
    const absl::Time end = now_ + d;
    while (now_ < end) started += SucceedAllThenTick(conns, absl::Milliseconds(10));
    return started;
  };
  EXPECT_NEAR(run_for(absl::Seconds(2)), 10, 2);
  Actions out;
  JobUpdate faster;
  faster.rate_limit = 50;
  ASSERT_THAT(core_.UpdateJob("job1", faster, now_, out), IsOk());
  Take(out);
  EXPECT_NEAR(run_for(absl::Seconds(2)), 100, 6);
}

}  // namespace
}  // namespace tessera::scheduler
