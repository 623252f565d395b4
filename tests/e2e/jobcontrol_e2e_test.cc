// Job control with the real binaries: items jobs, idempotent submission under
// concurrency and across a restart, concurrency keys, priorities, and the
// per-job cap on shards in flight.
#include <google/protobuf/util/time_util.h>

#include <thread>

#include "tests/e2e/cluster.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::GrpcStatusIs;
using ::tessera::testing::IsOk;

using json = nlohmann::json;
using JobControl = Cluster;

TEST_F(JobControl, TenThousandItemsInBatchesOfAHundredConcatInTheOriginalOrder) {
  StartScheduler();
  StartExecutor("exec-1", 2);
  StartExecutor("exec-2", 2);
  json items = json::array();
  for (int i = 0; i < 10'000; ++i) items.push_back(i);
  json request = {{"spec",
                   {{"task", "square"},
                    {"items", {{"items", items}, {"batchSize", 100}}},
                    {"aggregate", {{"fields", {{"squares", "concat"}}}}}}}};
  v1::Job job = Submit(request.dump());
  EXPECT_EQ(job.shards().total(), 100);
  EXPECT_EQ(job.spec().items().item_count(), 10'000);
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  json result = json::parse(Result(job.id()).result_json());
  ASSERT_EQ(result["squares"].size(), 10'000u);
  for (int64_t i = 0; i < 10'000; ++i) ASSERT_EQ(result["squares"][i], i * i) << i;
  EXPECT_EQ(result["_metadata"]["items"]["count"], 10'000);
}

TEST_F(JobControl, FiftyConcurrentSubmitsWithOneKeyMakeOneJobThatSurvivesARestart) {
  StartScheduler({"--reattach-grace=1s"});
  const std::string spec =
      R"({"spec":{"name":"import","task":"noop","idempotencyKey":"import-2026-11-23",)"
      R"("range":{"start":"0","end":"100","shardCount":4}}})";
  std::vector<std::string> ids(50);
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      v1::SubmitJobRequest req;
      google::protobuf::util::JsonStringToMessage(spec, &req);
      v1::Job job;
      if (jobs()->SubmitJob(Ctx().get(), req, &job).ok()) ids[i] = job.id();
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& id : ids) EXPECT_EQ(id, ids[0]);
  ASSERT_FALSE(ids[0].empty());
  v1::ListJobsResponse list;
  ASSERT_THAT(jobs()->ListJobs(Ctx().get(), v1::ListJobsRequest(), &list), IsOk());
  EXPECT_EQ(list.jobs_size(), 1);

  v1::SubmitJobRequest other;
  google::protobuf::util::JsonStringToMessage(
      R"({"spec":{"name":"import","task":"noop","idempotencyKey":"import-2026-11-23",)"
      R"("range":{"start":"0","end":"999","shardCount":4}}})",
      &other);
  v1::Job refused;
  grpc::Status s = jobs()->SubmitJob(Ctx().get(), other, &refused);
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::ALREADY_EXISTS));
  EXPECT_NE(s.error_message().find(ids[0]), std::string::npos) << s.error_message();

  KillScheduler();
  StartScheduler({"--reattach-grace=1s"});
  EXPECT_EQ(Submit(spec).id(), ids[0]);
}

TEST_F(JobControl, JobsWithOneConcurrencyKeyNeverRunTogether) {
  StartScheduler();
  StartExecutor("exec-1", 4);
  const std::string spec =
      R"({"spec":{"task":"sleep","params":{"ms":10},"concurrencyKey":"nightly",)"
      R"("range":{"start":"0","end":"100","shardSize":"20"}}})";
  v1::Job first = Submit(spec);
  v1::Job second = Submit(spec);
  bool overlap = false;
  bool second_waited_with_reason = false;
  for (int i = 0; i < 1000; ++i) {
    // The second job first: once it runs the first has ended, so a first that
    // still runs when read after it is a real overlap (the other order could
    // see the first just before it ended and the second just after).
    v1::Job b = Get(second.id());
    v1::Job a = Get(first.id());
    overlap |= a.state() == v1::JOB_STATE_RUNNING && b.state() == v1::JOB_STATE_RUNNING;
    second_waited_with_reason |= b.state() == v1::JOB_STATE_QUEUED &&
                                 b.message().find(first.id()) != std::string::npos;
    if (b.state() >= v1::JOB_STATE_SUCCEEDED) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(overlap);
  EXPECT_TRUE(second_waited_with_reason);
  v1::Job a = WaitForEnd(first.id());
  v1::Job b = WaitForEnd(second.id());
  ASSERT_EQ(b.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_GE(google::protobuf::util::TimeUtil::TimestampToNanoseconds(b.start_time()),
            google::protobuf::util::TimeUtil::TimestampToNanoseconds(a.end_time()));
}

TEST_F(JobControl, AHighPriorityJobSubmittedBehindALongOneGetsTheNextFreeSlots) {
  StartScheduler();
  StartExecutor("exec-1", 1);
  v1::Job low = Submit(
      R"({"spec":{"task":"sleep","params":{"ms":10},"range":{"start":"0","end":"400","shardSize":"20"}}})");
  WaitFor(
      low.id(), [](const v1::Job& j) { return j.shards().succeeded() >= 1; },
      absl::Seconds(30));
  v1::Job high = Submit(
      R"({"spec":{"task":"sleep","params":{"ms":10},"priority":10,"range":{"start":"0","end":"60","shardSize":"20"}}})");
  v1::Job high_done = WaitForEnd(high.id(), absl::Seconds(60));
  ASSERT_EQ(high_done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  // The long job had 20 shards; at most the ones already at the executor (a
  // slot plus the prefetch) ran before the high-priority job took over.
  v1::Job low_now = Get(low.id());
  EXPECT_LE(low_now.shards().succeeded(), 1 + 3 + 1) << low_now.DebugString();
  EXPECT_EQ(WaitForEnd(low.id()).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(JobControl, MaxParallelHoldsAcrossManyExecutorsAndChangesOnARunningJob) {
  StartScheduler();
  for (int i = 0; i < 6; ++i) StartExecutor(absl::StrCat("exec-", i), 4);
  v1::Job job = Submit(
      R"({"spec":{"task":"sleep","params":{"ms":20},"maxParallel":3,"range":{"start":"0","end":"600","shardSize":"10"}}})");
  int64_t most = 0;
  for (int i = 0; i < 60; ++i) {
    most = std::max<int64_t>(most, Get(job.id()).shards().running());
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_LE(most, 3);
  EXPECT_GE(most, 1);
  v1::UpdateJobRequest update;
  update.set_job_id(job.id());
  update.mutable_update()->set_max_parallel(12);
  update.mutable_update_mask()->add_paths("max_parallel");
  v1::Job updated;
  ASSERT_THAT(jobs()->UpdateJob(Ctx().get(), update, &updated), IsOk());
  EXPECT_EQ(updated.spec().max_parallel(), 12);
  int64_t after = 0;
  for (int i = 0; i < 60 && Get(job.id()).state() == v1::JOB_STATE_RUNNING; ++i) {
    after = std::max<int64_t>(after, Get(job.id()).shards().running());
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT(after, 3);
  EXPECT_LE(after, 12);
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace tessera::testing
