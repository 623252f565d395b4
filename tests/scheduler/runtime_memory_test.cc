// Memory tracks live work, through the runtime over a real SQLite store: a
// finished job leaves memory once its last record is committed and is served
// from the store (GetJob, ListJobs merged with live jobs in creation order,
// GetResult, an idempotent resubmission, RetryFailedShards), also after a
// restart that loads the unfinished jobs only.

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "scheduler/service/runtime.h"
#include "scheduler/sink/file_sink.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/scheduler/runtime_fixture.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

class RuntimeMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void TearDown() override { Close(); }
  void Open() {
    auto store = SqliteStore::Open(dir_);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    auto sink = FileSink::Create(dir_ + "/results");
    ASSERT_THAT(sink, IsOk());
    sink_ = *std::move(sink);
    runtime_ =
        std::make_unique<Runtime>(CoreConfig(), &clock_, store_.get(), sink_.get());
    ASSERT_THAT(runtime_->Recover(), IsOk());
    runtime_->Start();
    stream_ = std::make_unique<RecordingStream>();
    sent_ = 0;
    ExecutorHello hello{"e1", "e1", {"noop"}, 1, "test"};
    conn_ = *runtime_->Connect(hello, stream_.get());
  }
  void Close() {
    if (runtime_ == nullptr) return;
    runtime_->Disconnect(conn_);
    runtime_->Stop();
    runtime_.reset();
    store_.reset();
  }

  absl::StatusOr<JobView> Submit(const JobSpec& spec) {
    return SubmitAndWait(*runtime_, spec);
  }
  static JobSpec Noop(int64_t shards, const std::string& task = "noop") {
    JobSpec spec;
    spec.task = task;
    spec.range = {0, shards * 10, 0, shards};
    spec.retry.max_attempts = 1;
    return spec;
  }
  // Answers the next `n` assignments: a result, or a failure for those
  // `fail` says.
  void Answer(int n, const std::function<bool(const Assignment&)>& fail = nullptr) {
    for (int i = 0; i < n; ++i) {
      const std::vector<Assignment> got = stream_->WaitAssigned(sent_ + 1);
      ASSERT_GT(got.size(), sent_);
      const Assignment& a = got[sent_++];
      if (fail && fail(a)) {
        runtime_->Failure(conn_, a.lease_id, "boom", /*retryable=*/false);
      } else {
        runtime_->Results(conn_, {{a.lease_id, a.job_id, a.shard, R"({"items":1})"}});
      }
    }
  }
  JobState StateOf(const std::string& id) {
    absl::StatusOr<JobView> v = runtime_->GetJob(id);
    return v.ok() ? v->state : JobState::kQueued;
  }
  // Runs a job of `shards` to its end; returns its id.
  std::string Run(JobSpec spec, int shards, JobState end = JobState::kSucceeded,
                  const std::function<bool(const Assignment&)>& fail = nullptr) {
    absl::StatusOr<JobView> job = Submit(spec);
    EXPECT_THAT(job, IsOk());
    if (!job.ok()) return "";
    Answer(shards, fail);
    EXPECT_TRUE(WaitUntil([&] { return StateOf(job->id) == end; })) << job->id;
    return job->id;
  }
  std::vector<std::string> Page(const JobFilter& filter, int64_t before, int limit,
                                int64_t* next) {
    absl::StatusOr<std::vector<JobView>> jobs =
        runtime_->ListJobs(filter, before, limit, next);
    EXPECT_THAT(jobs, IsOk());
    std::vector<std::string> ids;
    if (jobs.ok()) {
      for (const JobView& j : *jobs) ids.push_back(j.id);
    }
    return ids;
  }
  // Every page of ListJobs, `limit` at a time.
  std::vector<std::string> All(const JobFilter& filter, int limit) {
    std::vector<std::string> ids;
    int64_t before = -1;
    for (int pages = 0; pages < 100; ++pages) {
      int64_t next = -1;
      std::vector<std::string> page = Page(filter, before, limit, &next);
      EXPECT_LE(static_cast<int>(page.size()), limit);
      ids.insert(ids.end(), page.begin(), page.end());
      if (next < 0) break;
      before = next;
    }
    return ids;
  }

  // Declared first: removed after the store and sink are gone.
  const testing::TempDir tmp_{"tessera-mem"};
  const std::string dir_ = tmp_.path();
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<FileSink> sink_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<RecordingStream> stream_;
  ExecutorConn conn_;
  size_t sent_ = 0;
};

TEST_F(RuntimeMemoryTest, FinishedJobsLeaveMemoryAndAreServedFromTheStore) {
  const std::string a = Run(Noop(2), 2);
  const absl::StatusOr<JobView> live = runtime_->GetJob(a);
  ASSERT_THAT(live, IsOk());
  ASSERT_TRUE(WaitUntil([&] { return runtime_->JobsInMemory() == 0; }));
  absl::StatusOr<JobView> stored = runtime_->GetJob(a);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->state, JobState::kSucceeded);
  EXPECT_EQ(stored->shards.total, 2);
  EXPECT_EQ(stored->shards.succeeded, 2);
  EXPECT_EQ(stored->items_total, 20);
  EXPECT_EQ(stored->items_done, 20);
  EXPECT_EQ(stored->result_location, live->result_location);
  EXPECT_EQ(stored->result_sha256, live->result_sha256);
  EXPECT_EQ(stored->create_time, live->create_time);
  EXPECT_EQ(stored->end_time, live->end_time);
  // The API's read goes to a reader thread and gives the same.
  absl::Notification read;
  absl::StatusOr<JobView> async;
  runtime_->ReadJob(a, [&](absl::StatusOr<JobView> j) {
    async = std::move(j);
    read.Notify();
  });
  ASSERT_TRUE(read.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_THAT(async, IsOk());
  EXPECT_EQ(async->result_location, live->result_location);
  absl::StatusOr<ResultBytes> result = runtime_->GetResult(a, 1 << 20);
  ASSERT_THAT(result, IsOk());
  EXPECT_NE(result->bytes.find("\"items\": 2"), std::string::npos) << result->bytes;
  EXPECT_THAT(runtime_->GetJob("nope"), StatusIs(absl::StatusCode::kNotFound));
  // Cancel and update answer as for a finished job in memory.
  absl::Notification cancelled;
  absl::StatusOr<JobView> cancel;
  runtime_->Cancel(a, [&](absl::StatusOr<JobView> j) {
    cancel = std::move(j);
    cancelled.Notify();
  });
  ASSERT_TRUE(cancelled.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_THAT(cancel, IsOk());
  EXPECT_EQ(cancel->state, JobState::kSucceeded);
  absl::Notification updated;
  absl::Status update;
  JobUpdate change;
  change.max_parallel = 3;
  runtime_->UpdateJob(a, change, [&](absl::StatusOr<JobView> j) {
    update = j.status();
    updated.Notify();
  });
  ASSERT_TRUE(updated.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_THAT(update, StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(RuntimeMemoryTest, ListJobsMergesLiveAndFinishedJobsInCreationOrder) {
  const std::string a = Run(Noop(1), 1);
  const std::string b = Run(Noop(1), 1);
  absl::StatusOr<JobView> waiting = Submit(Noop(1, "nobody-runs-this"));
  ASSERT_THAT(waiting, IsOk());
  const std::string c = waiting->id;
  const std::string d = Run(Noop(1), 1);
  const std::string e = Run(Noop(1), 1);
  ASSERT_TRUE(WaitUntil([&] { return runtime_->JobsInMemory() == 1; }));
  const std::vector<std::string> newest_first = {e, d, c, b, a};
  EXPECT_EQ(All({}, 100), newest_first);
  for (int limit : {1, 2, 3, 4}) EXPECT_EQ(All({}, limit), newest_first) << limit;
  int64_t next = -1;
  EXPECT_EQ(Page({}, -1, 2, &next), (std::vector<std::string>{e, d}));
  ASSERT_GE(next, 0);
  EXPECT_EQ(Page({}, next, 2, &next), (std::vector<std::string>{c, b}));
  EXPECT_EQ(Page({}, next, 2, &next), (std::vector<std::string>{a}));
  EXPECT_EQ(next, -1);
  JobFilter succeeded;
  succeeded.state = JobState::kSucceeded;
  EXPECT_EQ(All(succeeded, 2), (std::vector<std::string>{e, d, b, a}));
  JobFilter queued;
  queued.state = JobState::kQueued;
  EXPECT_EQ(All(queued, 2), (std::vector<std::string>{c}));
  // The same pages after a restart, which holds the unfinished job only.
  Close();
  Open();
  EXPECT_EQ(runtime_->JobsInMemory(), 1u);
  EXPECT_EQ(All({}, 2), newest_first);
  EXPECT_EQ(All(succeeded, 3), (std::vector<std::string>{e, d, b, a}));
  absl::StatusOr<JobView> old = runtime_->GetJob(a);
  ASSERT_THAT(old, IsOk());
  EXPECT_EQ(old->state, JobState::kSucceeded);
  // New jobs never take an old number.
  const std::string f = Run(Noop(1), 1);
  EXPECT_EQ(Page({}, -1, 1, &next), (std::vector<std::string>{f}));
}

TEST_F(RuntimeMemoryTest, AnIdempotentResubmissionOfAFinishedJobReadsItsRecord) {
  JobSpec spec = Noop(1);
  spec.idempotency_key = "once";
  const std::string a = Run(spec, 1);
  ASSERT_TRUE(WaitUntil([&] { return runtime_->JobsInMemory() == 0; }));
  absl::StatusOr<JobView> again = Submit(spec);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->id, a);
  EXPECT_EQ(again->state, JobState::kSucceeded);
  JobSpec other = spec;
  other.range.end = 99;
  EXPECT_THAT(Submit(other), StatusIs(absl::StatusCode::kAlreadyExists));
  // And after a restart.
  Close();
  Open();
  again = Submit(spec);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->id, a);
  EXPECT_EQ(runtime_->JobsInMemory(), 0u);
}

TEST_F(RuntimeMemoryTest, RetryFailedShardsTakesAPartialJobBackFromTheStore) {
  JobSpec spec = Noop(2);
  spec.max_failed_shards = 1;
  const std::string p =
      Run(spec, 2, JobState::kPartial, [](const Assignment& a) { return a.shard == 1; });
  ASSERT_TRUE(WaitUntil([&] { return runtime_->JobsInMemory() == 0; }));
  // Also after a restart: the job is in the store only.
  Close();
  Open();
  ASSERT_EQ(runtime_->JobsInMemory(), 0u);
  absl::StatusOr<JobView> before = runtime_->GetJob(p);
  ASSERT_THAT(before, IsOk());
  ASSERT_EQ(before->state, JobState::kPartial);
  ASSERT_EQ(before->failed_shards.size(), 1u);
  absl::Notification done;
  absl::StatusOr<JobView> retried;
  runtime_->RetryFailedShards(p, [&](absl::StatusOr<JobView> j) {
    retried = std::move(j);
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_THAT(retried, IsOk());
  EXPECT_EQ(runtime_->JobsInMemory(), 1u);
  Answer(1);
  ASSERT_TRUE(WaitUntil([&] { return StateOf(p) == JobState::kSucceeded; }));
  ASSERT_TRUE(WaitUntil([&] { return runtime_->JobsInMemory() == 0; }));
  absl::StatusOr<JobView> after = runtime_->GetJob(p);
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->state, JobState::kSucceeded);
  EXPECT_EQ(after->result_version, 2);
  EXPECT_EQ(after->shards.succeeded, 2);
}

}  // namespace
}  // namespace tessera::scheduler
