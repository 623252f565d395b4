#include "cli/format.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "tests/util/status_matchers.h"

namespace tessera::cli {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

namespace v1 = tessera::v1;

google::protobuf::Timestamp Ts(int64_t seconds) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  return ts;
}

TEST(FormatTable, AlignsColumnsToTheWidestCell) {
  EXPECT_EQ(FormatTable({"ID", "STATE"}, {{"a", "RUNNING"}, {"long-id", "QUEUED"}}),
            "ID       STATE\n"
            "a        RUNNING\n"
            "long-id  QUEUED\n");
}

TEST(FormatJobsTable, ShowsIdStateNameTaskQueueShardsAndCreated) {
  v1::ListJobsResponse response;
  v1::Job* job = response.add_jobs();
  job->set_id("7f3a");
  job->set_state(v1::JOB_STATE_RUNNING);
  job->mutable_spec()->set_task("primes");
  job->mutable_shards()->set_succeeded(3);
  job->mutable_shards()->set_total(8);
  *job->mutable_create_time() = Ts(1'700'000'000);
  EXPECT_EQ(FormatJobsTable(response, absl::UTCTimeZone()),
            "ID    STATE    NAME  TASK    QUEUE    SHARDS  CREATED\n"
            "7f3a  RUNNING  -     primes  default  3/8     2023-11-14 22:13:20\n");
  job->mutable_spec()->set_queue("batch");
  EXPECT_NE(FormatJobsTable(response, absl::UTCTimeZone()).find("  primes  batch  "),
            std::string::npos);
}

TEST(FormatExecutorsTable, ShowsTasksQueuesSlotsDrainingVersionAndLastSeen) {
  v1::ListExecutorsResponse response;
  v1::Executor* e = response.add_executors();
  e->set_id("ex1");
  e->set_name("pod-a");
  e->add_tasks("primes");
  e->add_tasks("sleep");
  e->add_queues("default");
  e->add_queues("batch");
  e->set_slots(4);
  e->set_assigned(5);
  e->set_draining(true);
  e->set_version("0.1.0+abc1234");
  *e->mutable_last_seen_time() = Ts(1'700'000'000);
  v1::Executor* old = response.add_executors();  // from before versions were sent
  old->set_id("ex2");
  old->set_slots(1);
  *old->mutable_last_seen_time() = Ts(1'700'000'001);
  EXPECT_EQ(
      FormatExecutorsTable(response, absl::FromUnixSeconds(1'700'000'003)),
      "ID   NAME   TASKS         QUEUES         SLOTS  ASSIGNED  DRAINING  VERSION   "
      "     LAST SEEN\n"
      "ex1  pod-a  primes,sleep  default,batch  4      5         yes       "
      "0.1.0+abc1234  3s ago\n"
      "ex2  -      -             -              1      0         no        -       "
      "       2s ago\n");
}

TEST(FormatAgo, UsesTheLargestWholeUnit) {
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  EXPECT_EQ(FormatAgo(Ts(1'700'000'000 - 90), now), "1m ago");
  EXPECT_EQ(FormatAgo(Ts(1'700'000'000 - 7200), now), "2h ago");
  EXPECT_EQ(FormatAgo(google::protobuf::Timestamp(), now), "-");
}

TEST(FormatJobSummary, ListsShardErrorsOfAFailedJob) {
  v1::Job job;
  job.set_id("j1");
  job.set_state(v1::JOB_STATE_FAILED);
  job.mutable_shards()->set_total(4);
  job.mutable_shards()->set_succeeded(3);
  job.mutable_shards()->set_failed(1);
  job.set_items_done(30);
  *job.mutable_start_time() = Ts(100);
  *job.mutable_end_time() = Ts(103);
  job.set_message("shard 3 failed after 3 attempts");
  v1::ShardError* error = job.add_errors();
  error->set_shard(3);
  error->set_start(30);
  error->set_end(40);
  error->set_executor("ex1");
  error->set_message("boom");
  EXPECT_EQ(FormatJobSummary(job),
            "job j1 FAILED  3/4 shards (1 failed)  30 items  in 3.0s\n"
            "  shard 3 failed after 3 attempts\n"
            "  shard 3 [30, 40) on ex1: boom\n");
}

TEST(FormatJobDetail, DescribesRangeShardsItemsAndResult) {
  v1::Job job;
  job.set_id("j1");
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  job.mutable_spec()->set_task("noop");
  job.mutable_spec()->mutable_range()->set_end(100);
  job.mutable_spec()->mutable_range()->set_shard_count(4);
  job.mutable_shards()->set_total(4);
  job.mutable_shards()->set_succeeded(4);
  job.set_items_done(100);
  job.set_items_total(100);
  job.set_result_location("/data/j1.json");
  job.set_result_sha256("abc");
  std::string detail = FormatJobDetail(job, absl::UTCTimeZone());
  EXPECT_NE(detail.find("range:        [0, 100), 4 shards\n"), std::string::npos)
      << detail;
  EXPECT_NE(detail.find("items:        100/100 (100%)\n"), std::string::npos) << detail;
  EXPECT_NE(detail.find("result:       /data/j1.json (sha256 abc)\n"), std::string::npos)
      << detail;
  EXPECT_NE(detail.find("started:      -\n"), std::string::npos) << detail;
}

TEST(FormatJobDetail, ShowsDefaultQueuePriorityAndNoLimits) {
  v1::Job job;
  job.mutable_spec()->mutable_range()->set_end(10);
  std::string detail = FormatJobDetail(job, absl::UTCTimeZone());
  EXPECT_NE(detail.find("queue:        default\n"
                        "priority:     0\n"
                        "max parallel: no cap\n"
                        "rate limit:   no limit\n"
                        "labels:       -\n"),
            std::string::npos)
      << detail;
  EXPECT_EQ(detail.find("concurrency:"), std::string::npos) << detail;
  EXPECT_EQ(detail.find("idempotency:"), std::string::npos) << detail;
  EXPECT_EQ(detail.find("input:"), std::string::npos) << detail;
}

TEST(FormatJobDetail, DescribesAnItemsJobAndItsControls) {
  v1::Job job;
  job.set_id("j2");
  v1::JobSpec& spec = *job.mutable_spec();
  spec.mutable_items()->set_item_count(10000);
  spec.mutable_items()->set_batch_size(100);
  spec.set_queue("batch");
  spec.set_priority(-5);
  spec.set_max_parallel(8);
  spec.set_rate_limit(2.5);
  spec.set_concurrency_key("nightly");
  spec.set_concurrency_limit(2);
  spec.set_idempotency_key("run-42");
  (*spec.mutable_labels())["team"] = "ml";
  (*spec.mutable_labels())["env"] = "prod";
  std::string detail = FormatJobDetail(job, absl::UTCTimeZone());
  EXPECT_NE(detail.find("input:        10000 items, batch size 100\n"
                        "queue:        batch\n"
                        "priority:     -5\n"
                        "max parallel: 8\n"
                        "rate limit:   2.5 shards/s\n"
                        "concurrency:  nightly (at most 2 running)\n"
                        "idempotency:  run-42\n"
                        "labels:       env=prod, team=ml\n"),
            std::string::npos)
      << detail;
  EXPECT_EQ(detail.find("range:"), std::string::npos) << detail;
}

TEST(FormatJobDetail, CountsItemsSentWhenTheJobHasNoItemCount) {
  v1::Job job;
  job.mutable_spec()->mutable_items()->set_batch_size(1);
  job.mutable_spec()->mutable_items()->add_items()->set_number_value(1);
  job.mutable_spec()->set_concurrency_key("k");
  std::string detail = FormatJobDetail(job, absl::UTCTimeZone());
  EXPECT_NE(detail.find("input:        1 item, batch size 1\n"), std::string::npos)
      << detail;
  EXPECT_NE(detail.find("concurrency:  k (at most 1 running)\n"), std::string::npos)
      << detail;
}

TEST(FormatLimits, SayNoCapAndNoLimitForZero) {
  EXPECT_EQ(FormatMaxParallel(0), "no cap");
  EXPECT_EQ(FormatMaxParallel(16), "16");
  EXPECT_EQ(FormatRateLimit(0), "no limit");
  EXPECT_EQ(FormatRateLimit(0.5), "0.5 shards/s");
  EXPECT_EQ(FormatRateLimit(100), "100 shards/s");
}

v1::Job PartialJob() {
  v1::Job job;
  job.set_id("j1");
  job.set_state(v1::JOB_STATE_PARTIAL);
  job.mutable_shards()->set_total(4);
  job.mutable_shards()->set_succeeded(2);
  job.mutable_shards()->set_failed(2);
  job.set_items_done(20);
  job.set_items_total(40);
  job.set_message("2 shards failed (at most 2 allowed)");
  v1::ShardError* error = job.add_errors();
  error->set_shard(1);
  error->set_message("boom");
  v1::FailedShard* f = job.add_failed_shards();
  f->set_shard(1);
  f->set_start(10);
  f->set_end(20);
  f->set_attempts(3);
  f->set_last_error("boom");
  f = job.add_failed_shards();
  f->set_shard(3);
  f->set_start(30);
  f->set_end(40);
  f->set_attempts(1);
  f->set_last_error("timed out after 2s");
  job.set_result_location("/data/j1.json");
  job.set_result_sha256("abc");
  job.set_result_version(2);
  return job;
}

TEST(FormatJobSummary, LeavesAPartialJobsShardErrorsToTheFailedShards) {
  EXPECT_EQ(FormatJobSummary(PartialJob()),
            "job j1 PARTIAL  2/4 shards (2 failed)  20 items\n"
            "  2 shards failed (at most 2 allowed)\n");
}

TEST(FormatFailedShards, ListsShardRangeAttemptsAndLastError) {
  EXPECT_EQ(FormatFailedShards(PartialJob()),
            "failed shards:\n"
            "  shard 1 [10, 20) after 3 attempts: boom\n"
            "  shard 3 [30, 40) after 1 attempt: timed out after 2s\n");
}

TEST(FormatFailedShards, CutsTheListAndSaysHowManyMore) {
  EXPECT_EQ(FormatFailedShards(PartialJob(), 1),
            "failed shards:\n"
            "  shard 1 [10, 20) after 3 attempts: boom\n"
            "  ... and 1 more (tessera get j1)\n");
  EXPECT_EQ(FormatFailedShards(v1::Job()), "");
}

TEST(FormatJobDetail, ShowsResultVersionAndFailedShardsOfAPartialJob) {
  std::string detail = FormatJobDetail(PartialJob(), absl::UTCTimeZone());
  EXPECT_NE(detail.find("state:        PARTIAL\n"), std::string::npos) << detail;
  EXPECT_NE(detail.find("result:       /data/j1.json (sha256 abc, version 2)\n"),
            std::string::npos)
      << detail;
  EXPECT_TRUE(absl::EndsWith(detail,
                             "failed shards:\n"
                             "  shard 1 [10, 20) after 3 attempts: boom\n"
                             "  shard 3 [30, 40) after 1 attempt: timed out after 2s\n"))
      << detail;
}

TEST(PrettyResultJson, KeepsPersistedKeyOrderAndIntegerPrecision) {
  v1::GetResultResponse response;
  response.set_result_json(
      R"({"z":9007199254740993,"a":[1,2],"_metadata":{"job":"j1"}})");
  absl::StatusOr<std::string> pretty = PrettyResultJson(response);
  ASSERT_THAT(pretty, IsOk());
  EXPECT_EQ(*pretty,
            "{\n  \"z\": 9007199254740993,\n  \"a\": [\n    1,\n    2\n  ],\n"
            "  \"_metadata\": {\n    \"job\": \"j1\"\n  }\n}");
}

TEST(PrettyResultJson, FallsBackToTheStructWhenBytesAreMissing) {
  v1::GetResultResponse response;
  (*response.mutable_result()->mutable_fields())["count"].set_number_value(3);
  absl::StatusOr<std::string> pretty = PrettyResultJson(response);
  ASSERT_THAT(pretty, IsOk());
  EXPECT_EQ(*pretty, "{\n  \"count\": 3\n}");
}

TEST(PrettyResultJson, ReportsCorruptResultBytes) {
  v1::GetResultResponse response;
  response.set_job_id("j1");
  response.set_result_json("{not json");
  EXPECT_THAT(PrettyResultJson(response), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(PrettyResultJson, SaysWhereToReadAResultTooLargeForAMessage) {
  v1::GetResultResponse response;
  response.set_job_id("j1");
  response.set_location("s3://results/jobs/j1.json");
  response.set_sha256("ab12");
  response.set_size_bytes(90000000);
  response.set_content_omitted(true);
  absl::Status s = PrettyResultJson(response).status();
  EXPECT_THAT(
      s,
      StatusIs(
          absl::StatusCode::kResourceExhausted,
          "job j1: the result (90000000 bytes) is too large for one message; read it at "
          "s3://results/jobs/j1.json (sha256 ab12)"));
}

TEST(FormatResultLocation, PrintsLocationAndDigest) {
  EXPECT_EQ(FormatResultLocation("/r/j1.json", "ab12"),
            "result: /r/j1.json (sha256 ab12)");
  EXPECT_EQ(FormatResultLocation("/r/j1.json", "ab12", 1),
            "result: /r/j1.json (sha256 ab12)");
  EXPECT_EQ(FormatResultLocation("/r/j1.json", "ab12", 3),
            "result: /r/j1.json (sha256 ab12, version 3)");
}

TEST(ToJsonLine, PrintsDefaultValuedFieldsOnOneLine) {
  v1::GetQueueStatsResponse stats;
  stats.set_executors(2);
  std::string json = ToJsonLine(stats);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_NE(json.find("\"executors\":2"), std::string::npos) << json;
  EXPECT_NE(json.find("\"jobsQueued\":\"0\""), std::string::npos) << json;
}

}  // namespace
}  // namespace tessera::cli
