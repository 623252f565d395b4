#include "scheduler/core/scheduler_core.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/core_fixture.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::HasSubstr;

TEST_F(SchedulerCoreTest, RefusesAnInvalidSpecWholeAndCreatesNothing) {
  Actions a;
  JobSpec no_task = RangeJob(10, 2, "");
  auto r = core_.Submit(no_task, "j", now_, a);
  ASSERT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.task")));

  JobSpec backwards = RangeJob(10, 2);
  backwards.range.start = 20;
  EXPECT_THAT(core_.Submit(backwards, "j", now_, a),
              StatusIs(absl::StatusCode::kInvalidArgument));

  JobSpec neg_parallel = RangeJob(10, 2);
  neg_parallel.max_parallel = -1;
  auto p = core_.Submit(neg_parallel, "j", now_, a);
  EXPECT_NE(p.status().message().find("spec.max_parallel"), std::string::npos);

  JobSpec too_many = RangeJob(100'000'000, 0);
  too_many.range.shard_size = 1;
  EXPECT_THAT(core_.Submit(too_many, "j", now_, a),
              StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_THAT(core_.GetJob("j", now_), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core_.counters().jobs_submitted, 0);
  EXPECT_TRUE(a.empty());
}

TEST_F(SchedulerCoreTest, AcceptsAMillionShardJobWithoutMaterialisingShards) {
  JobSpec spec = RangeJob(1'000'000'000, 0);
  spec.range.shard_size = 1'000;
  Submit(spec);
  JobView v = Get("job1");
  EXPECT_EQ(v.shards.total, 1'000'000);
  EXPECT_EQ(v.shards.pending, 1'000'000);
  EXPECT_EQ(core_.Stats().shards_pending, 1'000'000);
  Connect(Hello("e1", 4));
  EXPECT_EQ(assigns_.size(), 5u);  // slots + prefetch, nothing more
  EXPECT_EQ(Get("job1").shards.running, 5);
}

TEST_F(SchedulerCoreTest, FoldGivesTheSameBytesWhateverOrderShardsFinishIn) {
  std::string reference;
  std::mt19937 rng(7);
  for (int round = 0; round < 30; ++round) {
    SchedulerCore core(Config());
    Actions a;
    JobSpec spec = RangeJob(60, 6);
    spec.aggregate.fields["codes"] = Reducer::kConcat;
    spec.aggregate.fields["by_shard"] = Reducer::kMerge;
    ASSERT_THAT(core.Submit(spec, "job", kT0, a), IsOk());
    ExecutorConn e = core.Connect(Hello("e1", 6), kT0, a);
    ASSERT_EQ(a.assigns.size(), 6u);
    std::vector<AssignAction> order = a.assigns;
    std::shuffle(order.begin(), order.end(), rng);
    Actions out;
    for (const AssignAction& x : order) {
      const int64_t s = x.assignment.shard;
      json r = {{"n", s},
                {"f", 0.5},
                {"codes", {absl::StrCat("c", s)}},
                {"by_shard", {{absl::StrCat(s), s * s}}},
                {"stats", {{"created", 1}}}};
      core.Result(e, x.assignment.lease_id, x.assignment.job_id, x.assignment.shard,
                  r.dump(), kT0 + absl::Seconds(1), out);
    }
    std::vector<std::string> persisted;
    for (const auto& op : out.durable) {
      if (auto* p = std::get_if<PersistAction>(&op)) persisted.push_back(p->bytes);
    }
    ASSERT_EQ(persisted.size(), 1u);
    if (round == 0) {
      reference = persisted[0];
      json parsed = json::parse(reference);
      EXPECT_EQ(parsed["n"], 15);
      EXPECT_EQ(parsed["codes"], (json{"c0", "c1", "c2", "c3", "c4", "c5"}));
      EXPECT_EQ(parsed["stats"]["created"], 6);
      EXPECT_EQ(parsed["_metadata"]["shards"]["total"], 6);
      EXPECT_EQ(parsed["_metadata"]["job_id"], "job");
    } else {
      EXPECT_EQ(persisted[0], reference) << "round " << round;
    }
  }
}

TEST_F(SchedulerCoreTest, SucceedsOnlyAfterTheResultIsPersisted) {
  Submit(RangeJob(30, 3));
  Connect(Hello("e1", 4));
  RunAll();
  ASSERT_EQ(persists_.size(), 1u);
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kRunning);
  EXPECT_EQ(v.shards.succeeded, 3);
  EXPECT_EQ(v.items_done, 30);
  Actions out;
  core_.Persisted("job1", "/r/job1.json", "abc", now_ + absl::Seconds(1), out);
  v = Get("job1");
  EXPECT_EQ(v.state, JobState::kSucceeded);
  EXPECT_EQ(v.result_location, "/r/job1.json");
  EXPECT_EQ(v.end_time, now_ + absl::Seconds(1));
  core_.Persisted("job1", "/elsewhere", "def", now_,
                  out);  // a second report changes nothing
  EXPECT_EQ(Get("job1").result_location, "/r/job1.json");
  EXPECT_EQ(core_.counters().results_persisted, 1);
}

TEST_F(SchedulerCoreTest, FailsTheJobWhenPersistingFails) {
  Submit(RangeJob(10, 1));
  Connect(Hello("e1", 1));
  RunAll();
  Actions out;
  core_.PersistFailed("job1", "disk full", now_, out);
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kFailed);
  EXPECT_NE(v.message.find("disk full"), std::string::npos);
}

TEST_F(SchedulerCoreTest, RetriesARetryableFailureThenFailsTheJobAndCancelsTheRest) {
  Submit(RangeJob(20, 2));
  Connect(Hello("e1", 1));  // 1 slot + 1 prefetch: both shards out
  ASSERT_EQ(assigns_.size(), 2u);
  AssignAction a = PopAssign();
  for (int attempt = 1; attempt <= 2; ++attempt) {
    EXPECT_EQ(a.assignment.attempt, attempt);
    Fail(a, /*retryable=*/true);
    ASSERT_EQ(Get("job1").state, JobState::kRunning);
    a = assigns_.back();
    assigns_.pop_back();
    ASSERT_EQ(a.assignment.shard, 0);
  }
  Fail(a, /*retryable=*/true);  // third failure: out of attempts
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kFailed);
  EXPECT_EQ(v.shards.failed, 1);
  EXPECT_NE(v.message.find("shard 0 failed after 3 attempts"), std::string::npos)
      << v.message;
  ASSERT_EQ(cancels_.size(), 1u);  // shard 1 was still running
  EXPECT_FALSE(v.errors.empty());
  EXPECT_TRUE(persists_.empty());
}

TEST_F(SchedulerCoreTest, NonRetryableFailureFailsTheJobAtOnce) {
  Submit(RangeJob(20, 2));
  Connect(Hello("e1", 1));
  Fail(PopAssign(), /*retryable=*/false, "bad params.ms");
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kFailed);
  EXPECT_NE(v.message.find("bad params.ms"), std::string::npos);
  ASSERT_EQ(v.errors.size(), 1u);
  EXPECT_EQ(v.errors[0].executor, "e1-name");
}

TEST_F(SchedulerCoreTest, CancelStopsRunningShardsAndDropsLateResults) {
  Submit(RangeJob(100, 10));
  Connect(Hello("e1", 2));
  ASSERT_EQ(assigns_.size(), 3u);
  Actions out;
  auto v = core_.Cancel("job1", now_, out);
  Take(out);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->state, JobState::kCancelled);
  EXPECT_EQ(cancels_.size(), 3u);
  Succeed(assigns_[0], json{{"items", 10}});
  EXPECT_EQ(core_.counters().results_dropped, 1);
  EXPECT_TRUE(persists_.empty());
  EXPECT_EQ(core_.ListExecutors()[0].assigned, 0);
  // Cancelling again, or a finished job, changes nothing.
  auto again = core_.Cancel("job1", now_, out);
  EXPECT_EQ(again->state, JobState::kCancelled);
  EXPECT_THAT(core_.Cancel("nope", now_, out), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SchedulerCoreTest, AggregateConflictFailsTheJobNamingShardAndField) {
  Submit(RangeJob(20, 2));
  Connect(Hello("e1", 2));
  AssignAction a = PopAssign();
  AssignAction b = PopAssign();
  Succeed(a, json{{"kind", "x"}});
  Succeed(b, json{{"kind", "y"}});
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kFailed);
  EXPECT_NE(v.message.find("shard 1"), std::string::npos) << v.message;
  EXPECT_NE(v.message.find("kind"), std::string::npos) << v.message;
}

TEST_F(SchedulerCoreTest, AResultThatIsNotAnObjectFailsTheJob) {
  Submit(RangeJob(10, 1));
  ExecutorConn e = Connect(Hello("e1", 1));
  AssignAction a = PopAssign();
  Actions out;
  core_.Result(e, a.assignment.lease_id, a.assignment.job_id, a.assignment.shard, "[1,2",
               now_, out);
  EXPECT_EQ(Get("job1").state, JobState::kFailed);
}

TEST_F(SchedulerCoreTest, ListsJobsNewestFirstWithStateFilterAndPages) {
  for (int i = 0; i < 5; ++i) Submit(RangeJob(10, 1), absl::StrCat("j", i));
  Actions out;
  ASSERT_THAT(core_.Cancel("j3", now_, out), IsOk());
  int64_t next = 0;
  auto page = core_.ListJobs({}, -1, 2, now_, &next);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, "j4");
  EXPECT_EQ(page[1].id, "j3");
  auto rest = core_.ListJobs({}, next, 10, now_, &next);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[2].id, "j0");
  EXPECT_EQ(next, -1);
  JobFilter only_cancelled;
  only_cancelled.state = JobState::kCancelled;
  auto cancelled = core_.ListJobs(only_cancelled, -1, 10, now_, &next);
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0].id, "j3");
}

TEST_F(SchedulerCoreTest, QueueStatsAndJobCountsFollowTheJobs) {
  Submit(RangeJob(100, 10), "a");
  Submit(RangeJob(100, 10, "primes"), "b");
  Connect(Hello("e1", 2, {"noop"}));
  QueueStats s = core_.Stats();
  EXPECT_EQ(s.jobs_running, 1);
  EXPECT_EQ(s.jobs_queued, 1);
  EXPECT_EQ(s.shards_running, 3);
  EXPECT_EQ(s.shards_pending, 17);
  EXPECT_EQ(s.slots_total, 2);
  EXPECT_EQ(s.slots_busy, 2);
  EXPECT_EQ(core_.JobCountsByQueue()["default"][JobState::kRunning], 1);
}

}  // namespace
}  // namespace tessera::scheduler

namespace tessera::scheduler {
namespace {

TEST_F(SchedulerCoreTest, CommitsEachResultBeforeAckingIt) {
  Submit(RangeJob(10, 1));
  Connect(Hello("e1", 1));
  AssignAction a = PopAssign();
  Succeed(a, json{{"items", 10}});
  ASSERT_EQ(saved_results_.size(), 1u);
  EXPECT_EQ(saved_results_[0].shard, 0);
  ASSERT_EQ(acks_.size(), 1u);
  EXPECT_EQ(acks_[0].lease_id, a.assignment.lease_id);
  // The finalizing record, with the exact bytes, comes before the persist.
  ASSERT_FALSE(saved_jobs_.empty());
  EXPECT_TRUE(saved_jobs_.back().finalizing);
  ASSERT_EQ(persists_.size(), 1u);
  EXPECT_EQ(saved_jobs_.back().final_bytes, persists_[0].bytes);
}

TEST_F(SchedulerCoreTest, RetryWaitsForItsBackoff) {
  JobSpec spec = RangeJob(10, 1);
  spec.retry.initial_backoff = absl::Seconds(2);
  spec.retry.max_backoff = absl::Seconds(60);
  spec.retry.jitter = 0;
  Submit(spec);
  Connect(Hello("e1", 1));
  Fail(PopAssign(), /*retryable=*/true);
  EXPECT_TRUE(assigns_.empty());
  TickAt(now_ + absl::Milliseconds(1900));
  EXPECT_TRUE(assigns_.empty());
  TickAt(now_ + absl::Milliseconds(200));
  ASSERT_EQ(assigns_.size(), 1u);
  EXPECT_EQ(assigns_[0].assignment.attempt, 2);
  Fail(PopAssign(), /*retryable=*/true);  // the next wait doubles: 4 s
  TickAt(now_ + absl::Milliseconds(3900));
  EXPECT_TRUE(assigns_.empty());
  TickAt(now_ + absl::Milliseconds(200));
  EXPECT_EQ(assigns_.size(), 1u);
  EXPECT_EQ(core_.counters().shards_retried, 2);
}

TEST_F(SchedulerCoreTest, BackoffGrowsByTheMultiplierUpToTheCapWithinTheJitter) {
  RetryPolicy p;
  p.initial_backoff = absl::Seconds(1);
  p.max_backoff = absl::Seconds(5);
  p.multiplier = 3;
  p.jitter = 0.2;
  EXPECT_EQ(RetryBackoff(p, 1, 0.5), absl::Seconds(1));
  EXPECT_EQ(RetryBackoff(p, 2, 0.5), absl::Seconds(3));
  EXPECT_EQ(RetryBackoff(p, 3, 0.5), absl::Seconds(5));
  EXPECT_EQ(RetryBackoff(p, 2, 0.0), absl::Seconds(2.4));
  EXPECT_EQ(RetryBackoff(p, 2, 1.0), absl::Seconds(3.6));
}

TEST_F(SchedulerCoreTest, ContinuePolicyEndsPartialAndRetryFailedShardsCompletesIt) {
  JobSpec spec = RangeJob(40, 4);
  spec.max_failed_shards = 2;
  spec.retry.max_attempts = 1;
  Submit(spec);
  Connect(Hello("e1", 4));
  ASSERT_EQ(assigns_.size(), 4u);
  std::vector<AssignAction> all = assigns_;
  assigns_.clear();
  Fail(all[1], /*retryable=*/true, "flaky api");
  for (int i : {0, 2, 3}) Succeed(all[i], json{{"items", 10}});
  ASSERT_EQ(persists_.size(), 1u);
  json partial = json::parse(persists_[0].bytes);
  EXPECT_EQ(partial["items"], 30);
  EXPECT_EQ(partial["_metadata"]["failed_shards"][0]["shard"], 1);
  Actions out;
  core_.Persisted("job1", "/r/job1.json", "aa", now_, out);
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kPartial);
  ASSERT_EQ(v.failed_shards.size(), 1u);
  EXPECT_EQ(v.failed_shards[0].shard, 1);
  EXPECT_EQ(v.failed_shards[0].bounds, (ShardBounds{10, 20}));
  EXPECT_EQ(v.failed_shards[0].last_error, "flaky api");
  EXPECT_EQ(v.result_version, 1);

  std::vector<StoredResult> stored;
  for (const auto& r : saved_results_) stored.push_back({r.shard, r.result_json});
  auto retried = core_.RetryFailedShards("job1", stored, now_, out);
  Take(out);
  ASSERT_THAT(retried, IsOk());
  EXPECT_EQ(retried->state, JobState::kRunning);
  ASSERT_EQ(assigns_.size(), 1u);  // only the failed shard runs again
  EXPECT_EQ(assigns_[0].assignment.shard, 1);
  Succeed(PopAssign(), json{{"items", 10}});
  ASSERT_EQ(persists_.size(), 2u);
  EXPECT_EQ(persists_[1].version, 2);
  EXPECT_EQ(json::parse(persists_[1].bytes)["items"], 40);
  core_.Persisted("job1", "/r/job1.v2.json", "bb", now_, out);
  EXPECT_EQ(Get("job1").state, JobState::kSucceeded);
  EXPECT_EQ(Get("job1").result_version, 2);
}

TEST_F(SchedulerCoreTest, ContinuePolicyFailsTheJobPastItsLimit) {
  JobSpec spec = RangeJob(30, 3);
  spec.max_failed_shards = 1;
  spec.retry.max_attempts = 1;
  Submit(spec);
  Connect(Hello("e1", 3));
  std::vector<AssignAction> all = assigns_;
  assigns_.clear();
  Fail(all[0], /*retryable=*/false);
  EXPECT_EQ(Get("job1").state, JobState::kRunning);
  Fail(all[1], /*retryable=*/false);
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kFailed);
  EXPECT_NE(v.message.find("more than 1 allowed"), std::string::npos) << v.message;
  EXPECT_EQ(cancels_.size(), 1u);
}

TEST_F(SchedulerCoreTest, RetryFailedShardsRefusesAJobThatHasNone) {
  Submit(RangeJob(10, 1));
  Actions out;
  auto r = core_.RetryFailedShards("job1", {}, now_, out);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(core_.RetryFailedShards("nope", {}, now_, out),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SchedulerCoreTest, RestartRebuildsFromTheStoreAndAdoptsHeldShards) {
  Submit(RangeJob(40, 4));
  Connect(Hello("e1", 4));
  ASSERT_EQ(assigns_.size(), 4u);
  std::vector<AssignAction> all = assigns_;
  Succeed(all[0], json{{"items", 10}});
  Succeed(all[2], json{{"items", 10}});
  // The scheduler dies; a new one starts from what was committed.
  std::map<std::string, std::vector<StoredResult>> results;
  for (const auto& r : saved_results_)
    results[r.job_id].push_back({r.shard, r.result_json});
  SchedulerCore restarted(Config());
  Actions out;
  restarted.Restore({saved_jobs_.back()}, results, now_, out);
  auto v = restarted.GetJob("job1", now_);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->state, JobState::kRunning);
  EXPECT_EQ(v->shards.succeeded, 2);
  // e1 re-attaches still running shard 1; a new executor must not get it.
  ExecutorHello back = Hello("e1", 4);
  back.held.push_back({all[1].assignment.lease_id, "job1", 1, 1});
  ExecutorConn e1 = restarted.Connect(back, now_, out);
  ExecutorConn e2 = restarted.Connect(Hello("e2", 4), now_, out);
  EXPECT_TRUE(out.assigns.empty());  // shard 3 waits for the re-attach grace
  now_ += absl::Seconds(6);
  restarted.Heartbeat(e1, now_);
  restarted.Heartbeat(e2, now_);
  restarted.Tick(now_, out);
  ASSERT_EQ(out.assigns.size(), 1u);
  EXPECT_EQ(out.assigns[0].assignment.shard, 3);
  restarted.Result(e1, all[1].assignment.lease_id, "job1", 1, json{{"items", 10}}.dump(),
                   now_, out);
  restarted.Result(out.assigns[0].conn, out.assigns[0].assignment.lease_id, "job1", 3,
                   json{{"items", 10}}.dump(), now_, out);
  std::vector<PersistAction> persisted;
  for (const auto& op : out.durable) {
    if (auto* p = std::get_if<PersistAction>(&op)) persisted.push_back(*p);
  }
  ASSERT_EQ(persisted.size(), 1u);
  EXPECT_EQ(json::parse(persisted[0].bytes)["items"], 40);
  (void)e2;
}

TEST_F(SchedulerCoreTest, AJobCaughtFinalizingIsPersistedAgainWithTheSameBytes) {
  Submit(RangeJob(10, 1));
  Connect(Hello("e1", 1));
  RunAll();
  ASSERT_EQ(persists_.size(), 1u);
  ASSERT_TRUE(saved_jobs_.back().finalizing);
  SchedulerCore restarted(Config());
  Actions out;
  restarted.Restore({saved_jobs_.back()}, {}, now_ + absl::Minutes(1), out);
  std::vector<PersistAction> persisted;
  for (const auto& op : out.durable) {
    if (auto* p = std::get_if<PersistAction>(&op)) persisted.push_back(*p);
  }
  ASSERT_EQ(persisted.size(), 1u);
  EXPECT_EQ(persisted[0].bytes, persists_[0].bytes);
  restarted.Persisted("job1", "/r/job1.json", "abc", now_, out);
  EXPECT_EQ(restarted.GetJob("job1", now_)->state, JobState::kSucceeded);
}

// Found by tests/fuzz (record_codec_fuzzer): a damaged record naming a failed
// shard the job does not have made Restore count up to it (for 10^12: hours,
// and past the job's shards, which breaks the core's invariants).
TEST_F(SchedulerCoreTest, RestoreIgnoresAFailedShardTheJobDoesNotHave) {
  Submit(RangeJob(40, 4));
  JobRecord damaged = saved_jobs_.back();
  damaged.state = JobState::kRunning;
  damaged.spec.max_failed_shards = 10;
  damaged.failed.push_back({1'000'000'000'000, {0, 1}, 1, "boom"});
  damaged.failed.push_back({-1, {0, 1}, 1, "boom"});
  SchedulerCore restarted(Config());
  Actions out;
  restarted.Restore({damaged}, {}, now_, out);
  ExecutorConn e = restarted.Connect(Hello("e1", 4), now_, out);
  restarted.Heartbeat(e, now_ + absl::Seconds(6));
  restarted.Tick(now_ + absl::Seconds(6), out);  // past the re-attach grace
  ASSERT_EQ(out.assigns.size(), 4u);
  for (const AssignAction& a : out.assigns) {
    restarted.Result(e, a.assignment.lease_id, "job1", a.assignment.shard,
                     json{{"items", 10}}.dump(), now_ + absl::Seconds(6), out);
  }
  std::vector<PersistAction> persisted;
  for (const auto& op : out.durable) {
    if (auto* p = std::get_if<PersistAction>(&op)) persisted.push_back(*p);
  }
  ASSERT_EQ(persisted.size(), 1u);
  EXPECT_EQ(json::parse(persisted[0].bytes)["items"], 40);
}

TEST_F(SchedulerCoreTest, ReportsQueueWaitAndShardRunTimesForMetrics) {
  Submit(RangeJob(20, 2));
  now_ += absl::Seconds(3);
  Actions connect;
  ExecutorConn e = core_.Connect(Hello("e1", 2), now_, connect);
  ASSERT_EQ(connect.job_starts.size(), 1u);
  EXPECT_EQ(connect.job_starts[0].queue_wait, absl::Seconds(3));
  now_ += absl::Milliseconds(250);
  Actions done;
  core_.Result(e, connect.assigns[0].assignment.lease_id, "job1", 0,
               json{{"items", 10}}.dump(), now_, done);
  core_.Failure(e, connect.assigns[1].assignment.lease_id, "boom", false, now_, done);
  ASSERT_EQ(done.shard_events.size(), 2u);
  EXPECT_EQ(done.shard_events[0].outcome, "succeeded");
  EXPECT_EQ(done.shard_events[0].task, "noop");
  EXPECT_EQ(done.shard_events[0].run_time, absl::Milliseconds(250));
  EXPECT_EQ(done.shard_events[1].outcome, "failed");
}

}  // namespace
}  // namespace tessera::scheduler

namespace tessera::scheduler {
namespace {

JobSpec ItemsJob(int n, int batch, const std::string& task = "square") {
  JobSpec s = RangeJob(1, 1, task);
  s.has_items = true;
  std::vector<json> items;
  for (int i = 0; i < n; ++i) items.push_back(i);
  s.items = ItemList(std::move(items));
  s.batch_size = batch;
  return s;
}

TEST_F(SchedulerCoreTest, ItemsJobsSendEachShardItsBatch) {
  Submit(ItemsJob(10, 4));
  Connect(Hello("e1", 4, {"square"}));
  ASSERT_EQ(assigns_.size(), 3u);
  EXPECT_EQ(assigns_[0].assignment.items_json, "[0,1,2,3]");
  EXPECT_EQ(assigns_[2].assignment.items_json, "[8,9]");
  EXPECT_EQ(assigns_[2].assignment.bounds, (ShardBounds{8, 10}));
  EXPECT_EQ(Get("job1").items_total, 10);
}

TEST_F(SchedulerCoreTest, ItemsJobsRefuseBadBatchesAndOversizedItems) {
  Actions a;
  JobSpec zero = ItemsJob(3, 0);
  EXPECT_NE(
      core_.Submit(zero, "j", now_, a).status().message().find("spec.items.batch_size"),
      std::string::npos);
  JobSpec empty = ItemsJob(0, 10);
  EXPECT_THAT(core_.Submit(empty, "j", now_, a),
              StatusIs(absl::StatusCode::kInvalidArgument));
  JobSpec big = ItemsJob(1, 1);
  big.items = ItemList(std::vector<json>{json(std::string(70 << 10, 'x'))});
  auto r = core_.Submit(big, "j", now_, a);
  EXPECT_NE(r.status().message().find("spec.items.items[0]"), std::string::npos)
      << r.status();
}

TEST_F(SchedulerCoreTest, TheSameIdempotencyKeyAndSpecGiveTheSameJob) {
  JobSpec spec = RangeJob(10, 1);
  spec.idempotency_key = "import-2026-11-23";
  Submit(spec, "first");
  Actions a;
  auto again = core_.Submit(spec, "second", now_, a);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->id, "first");
  EXPECT_THAT(core_.GetJob("second", now_), StatusIs(absl::StatusCode::kNotFound));
  JobSpec other = spec;
  other.name = "something else";
  auto refused = core_.Submit(other, "third", now_, a);
  ASSERT_THAT(refused, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("first")));
  // Past the retention the key is free again.
  now_ += absl::Hours(25);
  auto later = core_.Submit(spec, "fourth", now_, a);
  ASSERT_THAT(later, IsOk());
  EXPECT_EQ(later->id, "fourth");
}

TEST_F(SchedulerCoreTest, IdempotencyKeysSurviveARestart) {
  JobSpec spec = RangeJob(10, 1);
  spec.idempotency_key = "k";
  Submit(spec, "first");
  SchedulerCore restarted(Config());
  Actions out;
  restarted.Restore({saved_jobs_.back()}, {}, now_, out);
  auto again = restarted.Submit(spec, "second", now_, out);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->id, "first");
}

TEST_F(SchedulerCoreTest, ListJobsFiltersByQueueAndLabels) {
  JobSpec a = RangeJob(10, 1);
  a.labels = {{"team", "growth"}, {"env", "prod"}};
  Submit(a, "a");
  JobSpec b = RangeJob(10, 1);
  b.queue = "batch";
  b.labels = {{"team", "growth"}};
  Submit(b, "b");
  int64_t next;
  JobFilter by_label;
  by_label.labels = {{"team", "growth"}};
  EXPECT_EQ(core_.ListJobs(by_label, -1, 10, now_, &next).size(), 2u);
  by_label.labels["env"] = "prod";
  auto prod = core_.ListJobs(by_label, -1, 10, now_, &next);
  ASSERT_EQ(prod.size(), 1u);
  EXPECT_EQ(prod[0].id, "a");
  JobFilter by_queue;
  by_queue.queue = "batch";
  auto batch = core_.ListJobs(by_queue, -1, 10, now_, &next);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].id, "b");
}

TEST_F(SchedulerCoreTest, RefusesBadJobControlFieldsNamingThem) {
  Actions a;
  auto expect_field = [&](JobSpec s, const char* field) {
    auto r = core_.Submit(s, "j", now_, a);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << field;
  };
  JobSpec s = RangeJob(10, 1);
  s.priority = 5000;
  expect_field(s, "spec.priority");
  s = RangeJob(10, 1);
  s.concurrency_limit = 0;
  expect_field(s, "spec.concurrency_limit");
  s = RangeJob(10, 1);
  s.labels = {{"bad key", "v"}};
  expect_field(s, "spec.labels");
  s = RangeJob(10, 1);
  s.queue = "";
  expect_field(s, "spec.queue");
}

// Found by tests/fuzz (spec_fuzzer): durations beyond int64 nanoseconds were
// accepted, then stored and shown shorter than submitted.
TEST_F(SchedulerCoreTest, RefusesDurationsTheStoreCannotKeep) {
  Actions a;
  JobSpec s = RangeJob(10, 1);
  s.shard_timeout = absl::Seconds(100'000'000'000);
  auto r = core_.Submit(s, "j", now_, a);
  EXPECT_THAT(
      r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.shard_timeout")));
  s = RangeJob(10, 1);
  s.retry.max_backoff = absl::InfiniteDuration();
  r = core_.Submit(s, "j", now_, a);
  EXPECT_NE(r.status().message().find("spec.retry.max_backoff"), std::string::npos);
  s = RangeJob(10, 1);
  s.shard_timeout = absl::Nanoseconds(std::numeric_limits<int64_t>::max());
  s.retry.max_backoff = s.shard_timeout;
  EXPECT_THAT(core_.Submit(s, "j", now_, a), IsOk());
}

}  // namespace
}  // namespace tessera::scheduler

namespace tessera::scheduler {
namespace {

TEST_F(SchedulerCoreTest, ANonObjectResultIsAckedAndCountsItsRealAttempt) {
  JobSpec spec = RangeJob(10, 1);
  spec.retry.max_attempts = 3;
  Submit(spec);
  ExecutorConn e = Connect(Hello("e1", 1));
  Fail(PopAssign(), /*retryable=*/true);
  AssignAction second = PopAssign();
  ASSERT_EQ(second.assignment.attempt, 2);
  Actions out;
  core_.Result(e, second.assignment.lease_id, "job1", 0, "5", now_, out);
  Take(out);
  ASSERT_FALSE(acks_.empty());
  EXPECT_EQ(acks_.back().lease_id, second.assignment.lease_id);
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kFailed);
  ASSERT_EQ(v.failed_shards.size(), 1u);
  EXPECT_EQ(v.failed_shards[0].attempts, 2);
}

TEST_F(SchedulerCoreTest, AnIdempotentResubmitStillMatchesAfterUpdateJob) {
  JobSpec spec = RangeJob(100, 10);
  spec.idempotency_key = "k";
  spec.max_parallel = 2;
  Submit(spec, "first");
  Actions out;
  JobUpdate update;
  update.max_parallel = 8;
  ASSERT_THAT(core_.UpdateJob("first", update, now_, out), IsOk());
  auto again = core_.Submit(spec, "second", now_, out);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->id, "first");
}

}  // namespace
}  // namespace tessera::scheduler

namespace tessera::scheduler {
namespace {}  // namespace
}  // namespace tessera::scheduler
