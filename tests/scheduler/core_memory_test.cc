// Memory tracks live work: a finished job leaves the core once its last record
// is committed; the core keeps a few bytes of it (counts, retirement, its
// idempotency key) and takes its stored record back when asked to retry it.
#include "scheduler/store/store.h"
#include "tests/scheduler/core_fixture.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

class CoreMemoryTest : public SchedulerCoreTest {
 protected:
  static constexpr absl::Duration kRetention = absl::Hours(24 * 7);

  // Carries out `out` like the runtime: collects it, and remembers the job
  // records (as ops, whose identity Committed checks).
  void Record(Actions& out) {
    for (const DurableOp& op : out.durable) {
      if (const auto* s = std::get_if<SaveJobOp>(&op)) ops_.push_back(*s);
    }
    Take(out);
  }
  // Commits every record saved so far, in order, as the store writer does.
  void CommitAll() {
    for (const SaveJobOp& op : ops_) {
      core_.Committed(op);
      last_[op.record().id] = op.record();
    }
    ops_.clear();
  }
  // Runs `id` (one shard, or two with `fail_one`: PARTIAL) to its end.
  void Run(const std::string& id, JobSpec spec, bool fail_one = false) {
    Actions a;
    ASSERT_THAT(core_.Submit(spec, id, now_, a), IsOk());
    Record(a);
    if (!connected_) {
      Actions c;
      core_.Connect(Hello("e1", 4), now_, c);
      Record(c);
      connected_ = true;
    }
    bool failed = false;
    while (!assigns_.empty()) {
      AssignAction x = PopAssign();
      Actions out;
      if (fail_one && !failed) {
        failed = true;
        core_.Failure(x.conn, x.assignment.lease_id, "boom", false, now_, out);
      } else {
        core_.Result(x.conn, x.assignment.lease_id, x.assignment.job_id,
                     x.assignment.shard, R"({"n":1})", now_, out);
      }
      Record(out);
    }
    Actions p;
    core_.Persisted(id, "/r/" + id + ".json", "abc", now_, p);
    Record(p);
  }
  std::vector<SaveJobOp> ops_;
  std::map<std::string, JobRecord> last_;  // the committed records: "the store"
  bool connected_ = false;
};

TEST_F(CoreMemoryTest, AFinishedJobLeavesMemoryOnceItsLastRecordIsCommitted) {
  Run("a", RangeJob(10, 1));
  ASSERT_EQ(Get("a").state, JobState::kSucceeded);
  EXPECT_EQ(core_.JobsHeld(), 1u);
  EXPECT_FALSE(core_.InStoreOnly("a"));
  // An earlier record of it (QUEUED, RUNNING, finalizing) is not its last.
  ASSERT_GE(ops_.size(), 2u);
  EXPECT_FALSE(core_.Committed(ops_.front()));
  EXPECT_EQ(core_.JobsHeld(), 1u);
  CommitAll();
  EXPECT_EQ(core_.JobsHeld(), 0u);
  EXPECT_TRUE(core_.InStoreOnly("a"));
  EXPECT_EQ(core_.JobsFinished(), 1u);
  // Still counted; the runtime reads it from the store now.
  EXPECT_EQ(core_.JobCountsByQueue().at("default").at(JobState::kSucceeded), 1);
  EXPECT_THAT(core_.GetJob("a", now_), StatusIs(absl::StatusCode::kNotFound));
  int64_t next = 0;
  EXPECT_TRUE(core_.ListJobs({}, -1, 10, now_, &next).empty());
  // Its view from the stored record is what GetJob gave.
  const JobView v = SchedulerCore::FinishedView(last_.at("a"));
  EXPECT_EQ(v.state, JobState::kSucceeded);
  EXPECT_EQ(v.shards.total, 1);
  EXPECT_EQ(v.shards.succeeded, 1);
  EXPECT_EQ(v.items_total, 10);
  EXPECT_EQ(v.items_done, 10);
  EXPECT_EQ(v.result_location, "/r/a.json");
}

TEST_F(CoreMemoryTest, UnfinishedJobsStayWhateverIsCommitted) {
  Submit(RangeJob(10, 1), "queued");  // no executor: stays QUEUED
  Actions a;
  ASSERT_THAT(core_.Submit(RangeJob(10, 1, "other"), "q2", now_, a), IsOk());
  Record(a);
  CommitAll();
  EXPECT_EQ(core_.JobsHeld(), 2u);
  EXPECT_FALSE(core_.InStoreOnly("queued"));
}

TEST_F(CoreMemoryTest, AJobInTheStoreOnlyRetiresOnTime) {
  Run("old", RangeJob(10, 1));
  const absl::Time ended = now_;
  CommitAll();
  TickAt(ended + kRetention - absl::Seconds(1));
  EXPECT_TRUE(retired_.empty());
  TickAt(ended + kRetention);
  ASSERT_EQ(retired_.size(), 1u);
  EXPECT_EQ(retired_[0].job_id, "old");
  EXPECT_EQ(retired_[0].result_location, "");  // the writer reads it from the store
  EXPECT_FALSE(core_.InStoreOnly("old"));
  EXPECT_EQ(core_.JobsFinished(), 0u);
  EXPECT_EQ(core_.JobCountsByQueue().at("default").at(JobState::kSucceeded), 0);
  absl::Status gone = core_.GetJob("old", now_).status();
  EXPECT_NE(gone.message().find("was retired"), std::string::npos) << gone;
}

TEST_F(CoreMemoryTest, RestoreFinishedCountsRetiresAndNeverReusesANumber) {
  std::vector<FinishedJob> finished = {
      {"f1", 3, JobState::kSucceeded, "q1", kT0 - absl::Hours(2), kT0 - absl::Hours(1),
       ""},
      {"f2", 7, JobState::kPartial, "default", kT0 - kRetention, kT0 - kRetention, ""}};
  core_.RestoreFinished(finished, /*max_seq=*/40, now_);
  EXPECT_EQ(core_.JobsHeld(), 0u);
  EXPECT_EQ(core_.JobsFinished(), 2u);
  EXPECT_TRUE(core_.InStoreOnly("f1"));
  EXPECT_EQ(core_.JobCountsByQueue().at("q1").at(JobState::kSucceeded), 1);
  EXPECT_EQ(core_.JobCountsByQueue().at("default").at(JobState::kPartial), 1);
  Submit(RangeJob(10, 1), "new");
  EXPECT_EQ(core_.SeqOf("new"), 41);
  TickAt(now_);  // f2 ended a retention ago
  ASSERT_EQ(retired_.size(), 1u);
  EXPECT_EQ(retired_[0].job_id, "f2");
  EXPECT_EQ(core_.JobCountsByQueue().at("default").at(JobState::kPartial), 0);
  EXPECT_TRUE(core_.InStoreOnly("f1"));
}

TEST_F(CoreMemoryTest, AnIdempotencyKeyOfAJobInTheStoreOnlyComparesItsStoredSpec) {
  JobSpec spec = RangeJob(10, 1);
  spec.idempotency_key = "k";
  Run("first", spec);
  CommitAll();
  ASSERT_TRUE(core_.InStoreOnly("first"));
  EXPECT_EQ(core_.IdempotentJobInStore(spec, now_), std::optional<std::string>("first"));
  Actions out;
  // The runtime must read the record first.
  EXPECT_THAT(core_.Submit(spec, "second", now_, out),
              StatusIs(absl::StatusCode::kUnavailable));
  const JobRecord& stored = last_.at("first");
  absl::StatusOr<JobView> again = core_.Submit(spec, "second", now_, out, &stored);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->id, "first");
  EXPECT_EQ(again->state, JobState::kSucceeded);
  JobSpec other = spec;
  other.range.end = 20;
  EXPECT_THAT(core_.Submit(other, "second", now_, out, &stored),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(core_.JobsHeld(), 0u);
  // Restored after a restart, the key still names the job.
  SchedulerCore restarted(Config());
  restarted.RestoreFinished({SummaryOf(stored)}, stored.seq, now_);
  EXPECT_EQ(restarted.IdempotentJobInStore(spec, now_),
            std::optional<std::string>("first"));
}

TEST_F(CoreMemoryTest, AKeyWhoseJobRetiredFromTheStoreMakesANewJob) {
  // A key kept longer than its job (both retentions are flags).
  CoreConfig config = Config();
  config.job_retention = absl::Hours(1);
  config.idempotency_retention = absl::Hours(48);
  SchedulerCore core(config);
  JobSpec spec = RangeJob(10, 1);
  spec.idempotency_key = "k";
  Actions out;
  ASSERT_THAT(core.Submit(spec, "first", now_, out), IsOk());
  core.Connect(Hello("e1", 1), now_, out);
  ASSERT_EQ(out.assigns.size(), 1u);
  const AssignAction x = out.assigns[0];
  core.Result(x.conn, x.assignment.lease_id, "first", 0, R"({"n":1})", now_, out);
  core.Persisted("first", "/r/first.json", "abc", now_, out);
  for (const DurableOp& op : out.durable) {
    if (const auto* s = std::get_if<SaveJobOp>(&op)) core.Committed(*s);
  }
  ASSERT_TRUE(core.InStoreOnly("first"));
  Actions tick;
  core.Tick(now_ + absl::Hours(2), tick);
  ASSERT_FALSE(core.InStoreOnly("first"));
  EXPECT_EQ(core.IdempotentJobInStore(spec, now_ + absl::Hours(2)), std::nullopt);
  Actions again;
  absl::StatusOr<JobView> fresh =
      core.Submit(spec, "second", now_ + absl::Hours(2), again);
  ASSERT_THAT(fresh, IsOk());
  EXPECT_EQ(fresh->id, "second");
}

TEST_F(CoreMemoryTest, RetryFailedShardsTakesAPartialJobBackFromTheStore) {
  JobSpec spec = RangeJob(20, 2);
  spec.max_failed_shards = 1;
  Run("p", spec, /*fail_one=*/true);
  ASSERT_EQ(Get("p").state, JobState::kPartial);
  CommitAll();
  ASSERT_TRUE(core_.InStoreOnly("p"));
  const JobRecord stored = last_.at("p");
  ASSERT_EQ(stored.failed.size(), 1u);
  const int64_t failed_shard = stored.failed[0].shard;
  Actions out;
  EXPECT_THAT(core_.RetryFailedShards("p", {}, now_, out),
              StatusIs(absl::StatusCode::kUnavailable));
  std::vector<StoredResult> results = {{1 - failed_shard, R"({"n":1})"}};
  absl::StatusOr<JobView> retried =
      core_.RetryFailedShards("p", results, now_, out, &stored);
  ASSERT_THAT(retried, IsOk());
  Record(out);
  EXPECT_FALSE(core_.InStoreOnly("p"));
  EXPECT_EQ(core_.JobsHeld(), 1u);
  EXPECT_EQ(core_.JobCountsByQueue().at("default").at(JobState::kPartial), 0);
  ASSERT_EQ(assigns_.size(), 1u);
  EXPECT_EQ(assigns_[0].assignment.shard, failed_shard);
  // The old PARTIAL record, committed late, does not send the job away.
  EXPECT_FALSE(core_.Committed(SaveJobOp(stored)));
  AssignAction x = PopAssign();
  Actions r;
  core_.Result(x.conn, x.assignment.lease_id, "p", x.assignment.shard, R"({"n":1})", now_,
               r);
  Record(r);
  Actions p;
  core_.Persisted("p", "/r/p.v2.json", "def", now_, p);
  Record(p);
  EXPECT_EQ(Get("p").state, JobState::kSucceeded);
  CommitAll();
  EXPECT_EQ(core_.JobsHeld(), 0u);
  EXPECT_EQ(core_.JobCountsByQueue().at("default").at(JobState::kSucceeded), 1);
  EXPECT_EQ(core_.JobCountsByQueue().at("default").at(JobState::kPartial), 0);
  EXPECT_EQ(last_.at("p").result_version, 2);
}

TEST_F(CoreMemoryTest, ASucceededJobInTheStoreIsNotTakenBackToRetry) {
  Run("ok", RangeJob(10, 1));
  CommitAll();
  Actions out;
  const JobRecord stored = last_.at("ok");
  EXPECT_THAT(core_.RetryFailedShards("ok", {}, now_, out, &stored),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(core_.JobsHeld(), 0u);
}

}  // namespace
}  // namespace tessera::scheduler
