#include "scheduler/core/scheduler_core.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

JobSpec RangeJob(int64_t end, int64_t shards, const std::string& task = "noop") {
  JobSpec s;
  s.name = "test";
  s.task = task;
  s.range = {0, end, 0, shards};
  return s;
}

ExecutorHello Hello(const std::string& id, int slots,
                    std::vector<std::string> tasks = {"noop", "primes"}) {
  return {id, id + "-name", std::move(tasks), slots, "test"};
}

class SchedulerCoreTest : public ::testing::Test {
 protected:
  SchedulerCoreTest() : core_(Config()) {}

  static CoreConfig Config() {
    CoreConfig c;
    c.prefetch = 1;
    c.max_attempts = 3;
    c.heartbeat_interval = absl::Seconds(1);
    c.heartbeat_timeout = absl::Seconds(5);
    c.unknown_task_grace = absl::Seconds(30);
    return c;
  }

  std::string Submit(const JobSpec& spec, const std::string& id = "job1") {
    Actions a;
    auto job = core_.Submit(spec, id, now_, a);
    EXPECT_TRUE(job.ok()) << job.status();
    Take(a);
    return id;
  }

  ExecutorConn Connect(const ExecutorHello& h) {
    Actions a;
    ExecutorConn c = core_.Connect(h, now_, a);
    Take(a);
    return c;
  }

  // Collects actions into the pending lists the tests inspect.
  void Take(Actions& a) {
    for (auto& x : a.assigns) assigns_.push_back(std::move(x));
    for (auto& x : a.cancels) cancels_.push_back(std::move(x));
    for (auto& x : a.persists) persists_.push_back(std::move(x));
    for (auto& x : a.closes) closes_.push_back(std::move(x));
  }

  int AssignedTo(const std::string& executor) const {
    return static_cast<int>(std::count_if(
        assigns_.begin(), assigns_.end(),
        [&](const AssignAction& a) { return a.conn.executor_id == executor; }));
  }

  AssignAction PopAssign() {
    EXPECT_FALSE(assigns_.empty());
    AssignAction a = assigns_.front();
    assigns_.erase(assigns_.begin());
    return a;
  }

  void Succeed(const AssignAction& a, const json& result) {
    Actions out;
    core_.Result(a.conn, a.assignment.lease_id, result.dump(), now_, out);
    Take(out);
  }

  void Fail(const AssignAction& a, bool retryable, const std::string& msg = "boom") {
    Actions out;
    core_.Failure(a.conn, a.assignment.lease_id, msg, retryable, now_, out);
    Take(out);
  }

  // Runs every assignment to success with {"items": n} until none is left.
  void RunAll() {
    while (!assigns_.empty()) {
      AssignAction a = PopAssign();
      Succeed(a, json{{"items", a.assignment.bounds.end - a.assignment.bounds.start}});
    }
  }

  JobView Get(const std::string& id) {
    auto j = core_.GetJob(id, now_);
    EXPECT_TRUE(j.ok()) << j.status();
    return *j;
  }

  absl::Time now_ = kT0;
  SchedulerCore core_;
  std::vector<AssignAction> assigns_;
  std::vector<CancelAction> cancels_;
  std::vector<PersistAction> persists_;
  std::vector<CloseAction> closes_;
};

TEST_F(SchedulerCoreTest, RefusesAnInvalidSpecWholeAndCreatesNothing) {
  Actions a;
  JobSpec no_task = RangeJob(10, 2, "");
  auto r = core_.Submit(no_task, "j", now_, a);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("spec.task"), std::string::npos);

  JobSpec backwards = RangeJob(10, 2);
  backwards.range.start = 20;
  EXPECT_EQ(core_.Submit(backwards, "j", now_, a).status().code(),
            absl::StatusCode::kInvalidArgument);

  JobSpec neg_parallel = RangeJob(10, 2);
  neg_parallel.max_parallel = -1;
  auto p = core_.Submit(neg_parallel, "j", now_, a);
  EXPECT_NE(p.status().message().find("spec.max_parallel"), std::string::npos);

  JobSpec too_many = RangeJob(100'000'000, 0);
  too_many.range.shard_size = 1;
  EXPECT_EQ(core_.Submit(too_many, "j", now_, a).status().code(),
            absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(core_.GetJob("j", now_).status().code(), absl::StatusCode::kNotFound);
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

TEST_F(SchedulerCoreTest, RequeuesShardsAtOnceWhenAnExecutorStreamCloses) {
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
  EXPECT_EQ(AssignedTo("e2"), 2);  // 1 slot + 1 prefetch, at once
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

TEST_F(SchedulerCoreTest, FoldGivesTheSameBytesWhateverOrderShardsFinishIn) {
  std::string reference;
  std::mt19937 rng(7);
  for (int round = 0; round < 30; ++round) {
    SchedulerCore core(Config());
    Actions a;
    JobSpec spec = RangeJob(60, 6);
    spec.aggregate.fields["codes"] = Reducer::kConcat;
    spec.aggregate.fields["by_shard"] = Reducer::kMerge;
    ASSERT_TRUE(core.Submit(spec, "job", kT0, a).ok());
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
      core.Result(e, x.assignment.lease_id, r.dump(), kT0 + absl::Seconds(1), out);
    }
    ASSERT_EQ(out.persists.size(), 1u);
    if (round == 0) {
      reference = out.persists[0].bytes;
      json parsed = json::parse(reference);
      EXPECT_EQ(parsed["n"], 15);
      EXPECT_EQ(parsed["codes"], (json{"c0", "c1", "c2", "c3", "c4", "c5"}));
      EXPECT_EQ(parsed["stats"]["created"], 6);
      EXPECT_EQ(parsed["_metadata"]["shards"]["total"], 6);
      EXPECT_EQ(parsed["_metadata"]["job_id"], "job");
    } else {
      EXPECT_EQ(out.persists[0].bytes, reference) << "round " << round;
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
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->state, JobState::kCancelled);
  EXPECT_EQ(cancels_.size(), 3u);
  Succeed(assigns_[0], json{{"items", 10}});
  EXPECT_EQ(core_.counters().results_dropped, 1);
  EXPECT_TRUE(persists_.empty());
  EXPECT_EQ(core_.ListExecutors()[0].assigned, 0);
  // Cancelling again, or a finished job, changes nothing.
  auto again = core_.Cancel("job1", now_, out);
  EXPECT_EQ(again->state, JobState::kCancelled);
  EXPECT_EQ(core_.Cancel("nope", now_, out).status().code(), absl::StatusCode::kNotFound);
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
  core_.Result(e, a.assignment.lease_id, "[1,2", now_, out);
  EXPECT_EQ(Get("job1").state, JobState::kFailed);
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

TEST_F(SchedulerCoreTest, ListsJobsNewestFirstWithStateFilterAndPages) {
  for (int i = 0; i < 5; ++i) Submit(RangeJob(10, 1), absl::StrCat("j", i));
  Actions out;
  ASSERT_TRUE(core_.Cancel("j3", now_, out).ok());
  int64_t next = 0;
  auto page = core_.ListJobs(std::nullopt, -1, 2, now_, &next);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, "j4");
  EXPECT_EQ(page[1].id, "j3");
  auto rest = core_.ListJobs(std::nullopt, next, 10, now_, &next);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[2].id, "j0");
  EXPECT_EQ(next, -1);
  auto cancelled = core_.ListJobs(JobState::kCancelled, -1, 10, now_, &next);
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
  EXPECT_EQ(core_.JobCounts()[JobState::kRunning], 1);
}

}  // namespace
}  // namespace tessera::scheduler
