// Retention through the runtime, over a real SQLite store and file sink and a
// fake clock: a job retires a tick after its retention, its rows go, its
// result file stays (or goes, with --delete-results-with-jobs).
#include <filesystem>

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

class RuntimeRetentionTest : public ::testing::TestWithParam<bool> {
 protected:
  static constexpr absl::Duration kRetention = absl::Hours(1);

  void SetUp() override {
    auto store = SqliteStore::Open(dir_);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    auto sink = FileSink::Create(dir_ + "/results");
    ASSERT_THAT(sink, IsOk());
    sink_ = *std::move(sink);
    CoreConfig config;
    config.job_retention = kRetention;
    runtime_ = std::make_unique<Runtime>(config, &clock_, store_.get(), sink_.get());
    runtime_->SetDeleteResultsWithJobs(GetParam());
    ASSERT_THAT(runtime_->Recover(), IsOk());
    runtime_->Start();
    ExecutorHello hello{"e1", "e1", {"noop"}, 1, "test"};
    conn_ = *runtime_->Connect(hello, &stream_);
  }
  void TearDown() override {
    runtime_->Disconnect(conn_);
    runtime_->Stop();
    runtime_.reset();
    store_.reset();
  }

  // Runs a job of `shards` noop shards to SUCCEEDED.
  JobView RunJob(int64_t shards) {
    JobSpec spec;
    spec.task = "noop";
    spec.range = {0, shards, 0, shards};
    absl::StatusOr<JobView> job = SubmitAndWait(*runtime_, spec);
    EXPECT_THAT(job, IsOk());
    for (int64_t i = 0; i < shards; ++i) {
      const std::vector<Assignment> got = stream_.WaitAssigned(sent_ + 1);
      if (got.size() <= sent_) break;
      const Assignment& a = got[sent_++];
      runtime_->Results(conn_, {{a.lease_id, a.job_id, a.shard, R"({"items":1})"}});
    }
    for (int i = 0; i < 500; ++i) {
      absl::StatusOr<JobView> v = runtime_->GetJob(job->id);
      if (v.ok() && v->state == JobState::kSucceeded) return *v;
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << "job did not succeed";
    return {};
  }

  // Declared first: removed after the store and sink are gone.
  const testing::TempDir tmp_{"tessera-rt"};
  const std::string dir_ = tmp_.path();
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<FileSink> sink_;
  std::unique_ptr<Runtime> runtime_;
  RecordingStream stream_;
  ExecutorConn conn_;
  size_t sent_ = 0;
};

TEST_P(RuntimeRetentionTest, ARetiredJobLeavesNoRowAndItsResultFileStaysUnlessTold) {
  const JobView old = RunJob(3);
  ASSERT_FALSE(old.result_location.empty());
  // Compaction: its shard results went with its "done" record.
  ASSERT_TRUE(WaitUntil([&] { return store_->CountRows()->results == 0; }));
  EXPECT_EQ(store_->CountRows()->jobs, 1);

  clock_.Advance(kRetention - absl::Minutes(1));
  const JobView young = RunJob(1);
  absl::SleepFor(absl::Milliseconds(300));  // ticks pass: nothing is old enough
  ASSERT_THAT(runtime_->GetJob(old.id), IsOk());

  clock_.Advance(absl::Minutes(2));
  ASSERT_TRUE(WaitUntil([&] {
    return runtime_->GetJob(old.id).status().code() == absl::StatusCode::kNotFound;
  }));
  absl::Status gone = runtime_->GetJob(old.id).status();
  EXPECT_NE(gone.message().find("retired"), std::string::npos) << gone;
  EXPECT_THAT(runtime_->GetResult(old.id, 1 << 20),
              StatusIs(absl::StatusCode::kNotFound));
  // Only the young job's record is left, also after a restart.
  ASSERT_TRUE(WaitUntil([&] { return store_->CountRows()->jobs == 1; }));
  absl::StatusOr<StoredState> loaded = store_->Load();
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->jobs.size(), 1u);
  EXPECT_EQ(loaded->jobs[0].id, young.id);
  // The result file is the user's data: it stays unless told otherwise.
  const bool deleted = GetParam();
  EXPECT_TRUE(WaitUntil(
      [&] { return std::filesystem::exists(old.result_location) == !deleted; }));
  EXPECT_TRUE(std::filesystem::exists(young.result_location));
}

INSTANTIATE_TEST_SUITE_P(DeleteResultsWithJobs, RuntimeRetentionTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "ResultsDeleted" : "ResultsKept";
                         });

}  // namespace
}  // namespace tessera::scheduler
