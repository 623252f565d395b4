// Retention and the costs of history: finished jobs retire after
// --job-retention, unfinished ones never; failed shards cost one small row
// each; job counts are kept, not recounted.
#include <chrono>

#include "gmock/gmock.h"
#include "scheduler/store/store.h"
#include "tests/scheduler/core_fixture.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

class CoreRetentionTest : public SchedulerCoreTest {
 protected:
  // Runs job `id` (range 10, one shard) to SUCCEEDED; returns when it ended.
  absl::Time RunToSuccess(const std::string& id, JobSpec spec = RangeJob(10, 1)) {
    Submit(spec, id);
    if (!connected_) {
      Connect(Hello("e1", 4));
      connected_ = true;
    }
    RunAll();
    Actions out;
    core_.Persisted(id, "/r/" + id + ".json", "abc", now_, out);
    Take(out);
    EXPECT_EQ(Get(id).state, JobState::kSucceeded);
    return now_;
  }
  static constexpr absl::Duration kRetention = absl::Hours(24 * 7);
  bool connected_ = false;
};

TEST_F(CoreRetentionTest, AJobFinishedLongerAgoThanTheRetentionIsGoneOnTheNextTick) {
  const absl::Time ended = RunToSuccess("old");
  TickAt(ended + kRetention - absl::Seconds(1));
  EXPECT_THAT(core_.GetJob("old", now_), IsOk());
  EXPECT_TRUE(retired_.empty());

  TickAt(ended + kRetention);
  absl::StatusOr<JobView> gone = core_.GetJob("old", now_);
  ASSERT_THAT(gone, StatusIs(absl::StatusCode::kNotFound, HasSubstr("was retired")));
  // The store is told to delete every row of it; the result's location comes
  // with it (the file stays unless --delete-results-with-jobs).
  ASSERT_EQ(retired_.size(), 1u);
  EXPECT_EQ(retired_[0].job_id, "old");
  EXPECT_EQ(retired_[0].result_location, "/r/old.json");
  int64_t next = 0;
  EXPECT_TRUE(core_.ListJobs({}, -1, 10, now_, &next).empty());
  EXPECT_EQ(core_.JobCountsByQueue().at("default").at(JobState::kSucceeded), 0);
  EXPECT_EQ(core_.JobsHeld(), 0u);
  // A job never seen is not called retired.
  absl::Status unknown = core_.GetJob("never", now_).status();
  EXPECT_THAT(unknown,
              StatusIs(absl::StatusCode::kNotFound, Not(HasSubstr("was retired"))));
  Actions out;
  EXPECT_THAT(core_.Cancel("old", now_, out), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(core_.RetryFailedShards("old", {}, now_, out),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(CoreRetentionTest, UnfinishedJobsAreNeverRetired) {
  Submit(RangeJob(10, 1), "queued");  // no executor: stays QUEUED
  JobSpec running = RangeJob(20, 2);
  running.task = "primes";
  Submit(running, "running");
  Connect(Hello("e2", 1, {"primes"}));
  ASSERT_EQ(Get("running").state, JobState::kRunning);
  // Keep e2 alive through the years.
  for (int day = 1; day <= 3 * 365; day += 30) {
    now_ = kT0 + absl::Hours(24) * day;
    core_.Heartbeat({"e2", 1}, now_);
    TickAt(now_);
  }
  EXPECT_EQ(Get("queued").state, JobState::kQueued);
  EXPECT_EQ(Get("running").state, JobState::kRunning);
  EXPECT_TRUE(retired_.empty());
}

TEST_F(CoreRetentionTest, EachFinishedStateRetiresAndTheOldestGoFirst) {
  RunToSuccess("succeeded");
  now_ += absl::Hours(1);
  Submit(RangeJob(10, 1), "cancelled");  // queued behind nothing: e1 takes it
  Actions out;
  ASSERT_THAT(core_.Cancel("cancelled", now_, out), IsOk());
  Take(out);
  assigns_.clear();
  now_ += absl::Hours(1);
  JobSpec failing = RangeJob(10, 1);
  failing.retry.max_attempts = 1;
  Submit(failing, "failed");
  Fail(PopAssign(), /*retryable=*/false);
  ASSERT_EQ(Get("failed").state, JobState::kFailed);

  TickAt(kT0 + kRetention + absl::Minutes(30));
  ASSERT_EQ(retired_.size(), 1u);
  EXPECT_EQ(retired_[0].job_id, "succeeded");
  TickAt(kT0 + kRetention + absl::Hours(3));
  ASSERT_EQ(retired_.size(), 3u);
  EXPECT_EQ(retired_[1].job_id, "cancelled");
  EXPECT_EQ(retired_[2].job_id, "failed");
}

TEST_F(CoreRetentionTest, ARetriedPartialJobIsNotRetiredWhileItRunsAgain) {
  JobSpec spec = RangeJob(20, 2);
  spec.max_failed_shards = 1;
  spec.retry.max_attempts = 1;
  Submit(spec, "partial");
  Connect(Hello("e1", 1));
  AssignAction first = PopAssign();
  AssignAction second = PopAssign();
  Fail(first, /*retryable=*/false);
  Succeed(second, json{{"items", 10}});
  ASSERT_EQ(persists_.size(), 1u);
  Actions out;
  core_.Persisted("partial", "/r/partial.json", "abc", now_, out);
  Take(out);
  ASSERT_EQ(Get("partial").state, JobState::kPartial);
  // Its failed shard is in its finished record (one row while it ran).
  ASSERT_EQ(saved_failed_.size(), 1u);
  ASSERT_EQ(saved_jobs_.back().failed.size(), 1u);

  now_ += absl::Hours(1);
  ASSERT_THAT(core_.RetryFailedShards("partial", {{1, R"({"items":10})"}}, now_, out),
              IsOk());
  Take(out);
  EXPECT_FALSE(IsTerminal(Get("partial").state));
  TickAt(kT0 + kRetention + absl::Hours(2));
  EXPECT_TRUE(retired_.empty());
  EXPECT_THAT(core_.GetJob("partial", now_), IsOk());
}

TEST_F(CoreRetentionTest, AnIdempotencyKeyIsForgottenWithItsRetiredJob) {
  JobSpec spec = RangeJob(10, 1);
  spec.idempotency_key = "import-42";
  const absl::Time ended = RunToSuccess("first", spec);
  // Within both retentions: the same job.
  Actions out;
  auto again = core_.Submit(spec, "second", now_, out);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->id, "first");

  // The idempotency retention (24 h) ends first: a new job, as before.
  CoreConfig config = Config();
  config.idempotency_retention = absl::Hours(24 * 30);  // longer than the job's
  SchedulerCore long_keys(config);
  Actions a;
  ASSERT_THAT(long_keys.Submit(spec, "first", kT0, a), IsOk());
  ExecutorConn e = long_keys.Connect(Hello("e1", 4), kT0, a);
  long_keys.Result(e, a.assigns[0].assignment.lease_id, "first", 0, R"({"n":1})", kT0, a);
  long_keys.Persisted("first", "/r/first.json", "abc", kT0, a);
  ASSERT_EQ(long_keys.GetJob("first", kT0)->state, JobState::kSucceeded);
  // After the job retired, its key names nothing: the key is forgotten with
  // it and the same submission makes a new job (documented in docs/retention.md).
  long_keys.Tick(kT0 + kRetention, a);
  ASSERT_THAT(long_keys.GetJob("first", kT0 + kRetention),
              StatusIs(absl::StatusCode::kNotFound));
  auto fresh = long_keys.Submit(spec, "third", kT0 + kRetention, a);
  ASSERT_THAT(fresh, IsOk());
  EXPECT_EQ(fresh->id, "third");
  (void)ended;
}

TEST_F(CoreRetentionTest, ZeroRetentionKeepsFinishedJobsForever) {
  CoreConfig config = Config();
  config.job_retention = absl::ZeroDuration();
  SchedulerCore core(config);
  Actions a;
  ASSERT_THAT(core.Submit(RangeJob(10, 1), "j", kT0, a), IsOk());
  ASSERT_THAT(core.Cancel("j", kT0, a), IsOk());
  core.Tick(kT0 + absl::Hours(24 * 3650), a);
  EXPECT_THAT(core.GetJob("j", kT0), IsOk());
  EXPECT_FALSE(absl::c_any_of(a.durable, [](const DurableOp& op) {
    return std::holds_alternative<RetireJobOp>(op);
  }));
}

TEST_F(CoreRetentionTest, PageTokensStayValidWhileOlderJobsRetire) {
  // Five jobs an hour apart, cancelled as they come (finished at once).
  for (int i = 0; i < 5; ++i) {
    Actions out;
    const std::string id = absl::StrCat("j", i);
    ASSERT_THAT(core_.Submit(RangeJob(10, 1), id, now_, out), IsOk());
    ASSERT_THAT(core_.Cancel(id, now_, out), IsOk());
    now_ += absl::Hours(1);
  }
  int64_t next = -1;
  auto page = core_.ListJobs({}, -1, 2, now_, &next);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, "j4");
  EXPECT_EQ(page[1].id, "j3");
  // j0 and j1 retire between the pages: the next page still starts at j2.
  TickAt(kT0 + kRetention + absl::Minutes(90));
  auto rest = core_.ListJobs({}, next, 10, now_, &next);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, "j2");
  EXPECT_EQ(next, -1);
}

TEST_F(CoreRetentionTest, JobCountsByStateAreKeptInStepWithTheJobs) {
  Connect(Hello("e1", 1));
  Submit(RangeJob(10, 1), "a");  // runs
  Submit(RangeJob(10, 1), "b");  // waits (1 slot + 1 prefetch: assigned too)
  JobSpec other = RangeJob(10, 1);
  other.queue = "batch";
  Submit(other, "c");
  Actions out;
  ASSERT_THAT(core_.Cancel("b", now_, out), IsOk());
  Take(out);
  auto counts = core_.JobCountsByQueue();
  int64_t total = 0;
  for (const auto& [queue, by_state] : counts) {
    for (const auto& [state, n] : by_state) {
      EXPECT_GE(n, 0);
      total += n;
    }
  }
  EXPECT_EQ(total, 3);
  EXPECT_EQ(counts["default"][JobState::kRunning], 1);
  EXPECT_EQ(counts["default"][JobState::kCancelled], 1);
  EXPECT_EQ(counts["batch"][JobState::kQueued], 1);
  RunAll();
  core_.Persisted("a", "/r/a.json", "x", now_, out);
  counts = core_.JobCountsByQueue();
  EXPECT_EQ(counts["default"][JobState::kRunning], 0);
  EXPECT_EQ(counts["default"][JobState::kSucceeded], 1);
}

// Bytes of job records the core asks the store to write while `shards`
// shards of a continue-policy job fail one by one, and the time it took.
std::pair<int64_t, double> FailEveryShard(int64_t shards) {
  CoreConfig config;
  config.prefetch = 1;
  SchedulerCore core(config);
  JobSpec spec = RangeJob(shards, shards);
  spec.max_failed_shards = shards;
  spec.retry.max_attempts = 1;
  Actions a;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THAT(core.Submit(spec, "many", kT0, a), IsOk());
  ExecutorConn e = core.Connect(Hello("e1", 64), kT0, a);
  int64_t record_bytes = 0;
  auto drain = [&](Actions& out) {
    for (const DurableOp& op : out.durable) {
      if (const auto* s = std::get_if<SaveJobOp>(&op)) {
        record_bytes += static_cast<int64_t>(EncodeJobRecord(s->record()).size());
      }
    }
    out.durable.clear();
  };
  drain(a);
  while (!a.assigns.empty()) {
    std::vector<AssignAction> batch;
    batch.swap(a.assigns);
    for (const AssignAction& x : batch) {
      core.Failure(e, x.assignment.lease_id, "boom", /*retryable=*/false, kT0, a);
      drain(a);
    }
  }
  core.Persisted("many", "/r/many.json", "abc", kT0, a);
  drain(a);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(core.GetJob("many", kT0)->state, JobState::kPartial);
  EXPECT_EQ(core.GetJob("many", kT0)->shards.failed, shards);
  return {record_bytes, seconds};
}

TEST(CoreCostTest, AFailedShardUnderTheContinuePolicyCostsOneSmallRow) {
  const auto [small_bytes, small_seconds] = FailEveryShard(2'000);
  const auto [bytes, seconds] = FailEveryShard(10'000);
  // Re-encoding the record per failure wrote ~ n^2/2 failed entries (over
  // 2 GB of JSON for 10,000 shards); now the records are a handful, the last
  // listing every failed shard once.
  EXPECT_LT(bytes, 10'000 * 400) << "record bytes written: " << bytes;
  EXPECT_LT(static_cast<double>(bytes) / small_bytes, 5.0 * 1.5);
  // Linear in shards: 5x the shards in well under 25x (quadratic) the time.
  EXPECT_LT(seconds / std::max(small_seconds, 1e-3), 12.0)
      << small_seconds << " s for 2,000; " << seconds << " s for 10,000";
  EXPECT_LT(seconds, 30.0);
}

}  // namespace
}  // namespace tessera::scheduler
