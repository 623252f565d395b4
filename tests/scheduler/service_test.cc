// JobService and ExecutorService against a real scheduler server on
// 127.0.0.1:0, with a hand-driven executor stream playing the executor.
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/service/scheduler_server.h"
#include "shared/sha256.h"
#include "tessera/v1/executor.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/scheduler/executor_stream.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::GrpcStatusIs;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

using json = nlohmann::json;
using Stream = grpc::ClientReaderWriter<v1::ExecutorMessage, v1::SchedulerMessage>;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SchedulerConfig config;
    config.listen = "127.0.0.1:0";
    // The metrics endpoint takes ~2 s to stop, so only tests that read it have one.
    config.metrics_listen = with_metrics_ ? "127.0.0.1:0" : "";
    config.data_dir = data_dir_;
    config.core.heartbeat_interval = absl::Milliseconds(200);
    config.core.heartbeat_timeout = absl::Seconds(2);
    // A closed stream's shards wait this long for their executor to re-attach.
    config.core.reattach_grace = absl::Milliseconds(300);
    config.max_watchers = max_watchers_;
    config.max_message_bytes = max_message_bytes_;
    auto server = SchedulerServer::Create(config, &clock_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel_);
    executors_ = v1::ExecutorService::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  grpc::Status Submit(const std::string& json_spec, v1::Job* job) {
    v1::SubmitJobRequest req;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json_spec, &req).ok());
    return jobs_->SubmitJob(Ctx().get(), req, job);
  }

  // A noop job over [0, end) in `shards` shards.
  static std::string NoopJob(int end, int shards) {
    return absl::StrCat(R"({"spec":{"task":"noop","range":{"start":"0","end":")", end,
                        R"(","shardCount":)", shards, "}}}");
  }

  v1::Job Get(const std::string& id) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    EXPECT_THAT(jobs_->GetJob(Ctx().get(), req, &job), IsOk());
    return job;
  }

  // An executor stream that has said hello and read its welcome.
  struct FakeExecutor {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<Stream> stream;
  };
  FakeExecutor Connect(const std::string& id, int slots) {
    FakeExecutor e;
    e.ctx = std::make_unique<grpc::ClientContext>();
    e.stream = executors_->Connect(e.ctx.get());
    v1::ExecutorMessage hello;
    hello.mutable_hello()->set_executor_id(id);
    hello.mutable_hello()->set_name(id);
    hello.mutable_hello()->add_tasks("noop");
    hello.mutable_hello()->set_slots(slots);
    EXPECT_TRUE(e.stream->Write(hello));
    v1::SchedulerMessage welcome;
    EXPECT_TRUE(e.stream->Read(&welcome));
    EXPECT_TRUE(welcome.has_welcome());
    EXPECT_EQ(welcome.welcome().heartbeat_interval_ms(), 200);
    return e;
  }

  static void SendResult(Stream* s, const v1::Assignment& a) {
    v1::ExecutorMessage m;
    m.mutable_result()->set_lease_id(a.lease_id());
    m.mutable_result()->set_result_json(json{{"items", a.end() - a.start()}}.dump());
    ASSERT_TRUE(s->Write(m));
  }

  v1::Job WaitForState(const std::string& id, v1::JobState state) {
    v1::Job job;
    for (int i = 0; i < 200; ++i) {
      job = Get(id);
      if (job.state() == state) break;
      absl::SleepFor(absl::Milliseconds(25));
    }
    return job;
  }

  bool with_metrics_ = false;
  int max_watchers_ = 1024;
  int max_message_bytes_ = 64 << 20;
  RealClock clock_;
  // Before the server, so that it has stopped when the dir is removed.
  const testing::TempDir tmp_{"tessera-svc"};
  const std::string data_dir_ = tmp_.path();
  std::unique_ptr<SchedulerServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::ExecutorService::Stub> executors_;
};

TEST_F(ServiceTest, RefusesAnInvalidSpecWithInvalidArgumentNamingTheField) {
  v1::Job job;
  struct Case {
    const char* spec;
    const char* field;
  } cases[] = {
      {R"({"spec":{"range":{"start":"0","end":"10","shardCount":2}}})", "spec.task"},
      {R"({"spec":{"task":"noop","range":{"start":"10","end":"10","shardCount":2}}})",
       "spec.range.end"},
      {R"({"spec":{"task":"noop","range":{"start":"0","end":"10","shardSize":"-1"}}})",
       "spec.range.shard_size"},
      {R"({"spec":{"task":"noop"}})", "spec needs an input"},
      {R"({"spec":{"task":"noop","items":{"items":[1,2],"batchSize":0}}})",
       "spec.items.batch_size"},
      {R"({"spec":{"task":"noop","queue":"no spaces","range":{"start":"0","end":"1","shardCount":1}}})",
       "spec.queue"},
      {R"({"spec":{"task":"noop","range":{"start":"0","end":"10","shardCount":2},
           "aggregate":{"fields":{"x":"avg"}}}})",
       "spec.aggregate.fields[\"x\"]"},
      {R"({"spec":{"task":"noop","range":{"start":"0","end":"100000000000","shardSize":1}}})",
       "limit"},
      {R"({})", "spec"},
  };
  for (const Case& c : cases) {
    grpc::Status s = Submit(c.spec, &job);
    EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT)) << c.spec;
    EXPECT_NE(s.error_message().find(c.field), std::string::npos)
        << c.spec << " -> " << s.error_message();
  }
  v1::ListJobsResponse list;
  ASSERT_THAT(jobs_->ListJobs(Ctx().get(), v1::ListJobsRequest(), &list), IsOk());
  EXPECT_EQ(list.jobs_size(), 0);
}

class ServiceWithOneWatcherTest : public ServiceTest {
 protected:
  ServiceWithOneWatcherTest() { max_watchers_ = 1; }
};

TEST_F(ServiceWithOneWatcherTest, WatchStreamsBeyondTheCapAreResourceExhausted) {
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(10, 1), &job), IsOk());
  v1::WatchJobRequest req;
  req.set_job_id(job.id());
  grpc::ClientContext first_ctx;
  auto first = jobs_->WatchJob(&first_ctx, req);
  v1::JobEvent event;
  ASSERT_TRUE(first->Read(&event));  // the first stream is open
  grpc::ClientContext second_ctx;
  auto second = jobs_->WatchJob(&second_ctx, req);
  EXPECT_FALSE(second->Read(&event));
  grpc::Status s = second->Finish();
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_NE(s.error_message().find("--max-watchers"), std::string::npos);
  first_ctx.TryCancel();
  first->Finish();
  // Once the first one is gone, a new stream is served again.
  grpc::Status third;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    auto again = jobs_->WatchJob(&ctx, req);
    if (again->Read(&event)) {
      ctx.TryCancel();
      again->Finish();
      third = grpc::Status::OK;
      break;
    }
    third = again->Finish();
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(third, IsOk());
}

TEST_F(ServiceTest, AHelloListingTooManyTasksOrTooLongANameIsRefused) {
  for (int variant = 0; variant < 2; ++variant) {
    grpc::ClientContext ctx;
    auto stream = executors_->Connect(&ctx);
    v1::ExecutorMessage hello;
    hello.mutable_hello()->set_executor_id("e1");
    hello.mutable_hello()->set_slots(1);
    if (variant == 0) {
      for (int i = 0; i < 300; ++i)
        hello.mutable_hello()->add_tasks(absl::StrCat("t", i));
    } else {
      hello.mutable_hello()->add_tasks(std::string(1000, 'x'));
    }
    ASSERT_TRUE(stream->Write(hello));
    v1::SchedulerMessage m;
    EXPECT_FALSE(stream->Read(&m));
    grpc::Status s = stream->Finish();
    EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT));
    EXPECT_NE(s.error_message().find(variant == 0 ? "at most 256 tasks"
                                                  : "hello.tasks[] must be at most 200"),
              std::string::npos)
        << s.error_message();
  }
}

class ServiceWithMetricsTest : public ServiceTest {
 protected:
  ServiceWithMetricsTest() { with_metrics_ = true; }
};

TEST_F(ServiceWithMetricsTest, RunsAJobOverAnExecutorStreamAndPersistsTheResultOnce) {
  v1::Job job;
  ASSERT_THAT(Submit(R"({"spec":{"name":"t","task":"noop",
      "range":{"start":"0","end":"100","shardCount":4}}})",
                     &job),
              IsOk());
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  FakeExecutor e = Connect("exec-a", 2);
  std::vector<v1::Assignment> got =
      ReadAssignments(e.stream.get(), 4);  // 2 slots + prefetch 2
  ASSERT_EQ(got.size(), 4u);
  for (const auto& a : got) SendResult(e.stream.get(), a);
  SendResult(e.stream.get(), got[0]);  // a duplicate: dropped, counted
  v1::Job done = WaitForState(job.id(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.shards().succeeded(), 4);

  v1::GetResultRequest rreq;
  rreq.set_job_id(job.id());
  v1::GetResultResponse result;
  ASSERT_THAT(jobs_->GetResult(Ctx().get(), rreq, &result), IsOk());
  EXPECT_EQ(result.result().fields().at("items").number_value(), 100);
  EXPECT_EQ(result.location(),
            std::filesystem::absolute(data_dir_).lexically_normal().string() +
                "/results/" + job.id() + ".json");
  std::ifstream in(result.location());
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  EXPECT_EQ(result.sha256(), Sha256Hex(bytes));
  EXPECT_EQ(result.result_json(), bytes);
  EXPECT_EQ(json::parse(bytes)["_metadata"]["executors"], json::array({"exec-a"}));

  const std::string metrics = testing::HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("tessera_result_writes_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tessera_stale_results_dropped_total 1"), std::string::npos);
  EXPECT_NE(metrics.find("tessera_jobs{queue=\"default\",state=\"succeeded\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("tessera_executors_connected 1"), std::string::npos);
  e.stream->WritesDone();
}

TEST_F(ServiceTest, RequeuesLeasesWhenAnExecutorStreamClosesAndItDoesNotComeBack) {
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(30, 3), &job), IsOk());
  FakeExecutor a = Connect("exec-a", 1);
  ASSERT_EQ(ReadAssignments(a.stream.get(), 3).size(), 3u);  // 1 slot + 2 prefetch
  FakeExecutor b = Connect("exec-b", 4);
  a.ctx->TryCancel();  // the stream breaks
  std::vector<v1::Assignment> moved = ReadAssignments(b.stream.get(), 3);
  ASSERT_EQ(moved.size(), 3u);
  for (const auto& m : moved) EXPECT_EQ(m.attempt(), 2);
  for (const auto& m : moved) SendResult(b.stream.get(), m);
  EXPECT_EQ(WaitForState(job.id(), v1::JOB_STATE_SUCCEEDED).state(),
            v1::JOB_STATE_SUCCEEDED);
}

TEST_F(ServiceTest, WatchJobStreamsProgressUntilTheJobEnds) {
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(20, 2), &job), IsOk());
  grpc::ClientContext wctx;
  v1::WatchJobRequest wreq;
  wreq.set_job_id(job.id());
  auto watch = jobs_->WatchJob(&wctx, wreq);
  v1::JobEvent ev;
  ASSERT_TRUE(watch->Read(&ev));
  EXPECT_EQ(ev.job().state(), v1::JOB_STATE_QUEUED);
  FakeExecutor e = Connect("exec-a", 2);
  for (const auto& a : ReadAssignments(e.stream.get(), 2)) SendResult(e.stream.get(), a);
  v1::JobState last = ev.job().state();
  int events = 1;
  while (watch->Read(&ev)) {
    last = ev.job().state();
    ++events;
  }
  EXPECT_THAT(watch->Finish(), IsOk());
  EXPECT_EQ(last, v1::JOB_STATE_SUCCEEDED);
  EXPECT_GE(events, 2);
}

TEST_F(ServiceTest, WatchJobSendsTheEndAsSoonAsItIsCommitted) {
  // Events are at least 200 ms apart, except the end: it is not held back.
  FakeExecutor e = Connect("exec-a", 2);
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(20, 2), &job), IsOk());
  const std::vector<v1::Assignment> assigned = ReadAssignments(e.stream.get(), 2);
  ASSERT_EQ(assigned.size(), 2u);
  grpc::ClientContext wctx;
  v1::WatchJobRequest wreq;
  wreq.set_job_id(job.id());
  auto watch = jobs_->WatchJob(&wctx, wreq);
  v1::JobEvent ev;
  ASSERT_TRUE(watch->Read(&ev));  // at once, not at the next tick
  EXPECT_EQ(ev.job().state(), v1::JOB_STATE_RUNNING);
  const absl::Time first = absl::Now();
  for (const auto& a : assigned) SendResult(e.stream.get(), a);
  ASSERT_TRUE(watch->Read(&ev));
  const absl::Duration gap = absl::Now() - first;
  EXPECT_EQ(ev.job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_LT(gap, absl::Milliseconds(190)) << "the end waited for the watch interval";
  EXPECT_FALSE(watch->Read(&ev));
  EXPECT_THAT(watch->Finish(), IsOk());
}

TEST_F(ServiceTest, WatchJobsEndEventCarriesTheResultAsGetResultAnswersIt) {
  FakeExecutor e = Connect("exec-a", 2);
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(20, 2), &job), IsOk());
  grpc::ClientContext wctx;
  v1::WatchJobRequest wreq;
  wreq.set_job_id(job.id());
  auto watch = jobs_->WatchJob(&wctx, wreq);
  for (const auto& a : ReadAssignments(e.stream.get(), 2)) SendResult(e.stream.get(), a);
  std::vector<v1::JobEvent> events;
  for (v1::JobEvent ev; watch->Read(&ev);) events.push_back(ev);
  ASSERT_THAT(watch->Finish(), IsOk());
  ASSERT_FALSE(events.empty());
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_FALSE(events[i].has_result()) << "only the end event carries the result";
  }
  const v1::JobEvent& end = events.back();
  ASSERT_EQ(end.job().state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(end.has_result());

  v1::GetResultRequest rreq;
  rreq.set_job_id(job.id());
  v1::GetResultResponse result;
  ASSERT_THAT(jobs_->GetResult(Ctx().get(), rreq, &result), IsOk());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(end.result(), result))
      << end.result().DebugString() << "\nvs GetResult:\n"
      << result.DebugString();
  EXPECT_EQ(end.result().result().fields().at("items").number_value(), 20);
  EXPECT_EQ(end.result().sha256(), Sha256Hex(end.result().result_json()));
  EXPECT_FALSE(end.result().content_omitted());
  e.stream->WritesDone();
}

TEST_F(ServiceTest, AFailedJobsEndEventCarriesNoResult) {
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(20, 2), &job), IsOk());
  grpc::ClientContext wctx;
  v1::WatchJobRequest wreq;
  wreq.set_job_id(job.id());
  auto watch = jobs_->WatchJob(&wctx, wreq);
  v1::CancelJobRequest creq;
  creq.set_job_id(job.id());
  v1::Job cancelled;
  ASSERT_THAT(jobs_->CancelJob(Ctx().get(), creq, &cancelled), IsOk());
  v1::JobEvent end;
  for (v1::JobEvent ev; watch->Read(&ev);) end = ev;
  ASSERT_THAT(watch->Finish(), IsOk());
  EXPECT_EQ(end.job().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(end.has_result());
}

class ServiceWithSmallMessagesTest : public ServiceTest {
 protected:
  ServiceWithSmallMessagesTest() { max_message_bytes_ = 1 << 20; }
};

TEST_F(ServiceWithSmallMessagesTest, AResultTooLargeForTheEndEventIsLeftOutOfIt) {
  FakeExecutor e = Connect("exec-a", 1);
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(1, 1), &job), IsOk());
  grpc::ClientContext wctx;
  v1::WatchJobRequest wreq;
  wreq.set_job_id(job.id());
  auto watch = jobs_->WatchJob(&wctx, wreq);
  const std::vector<v1::Assignment> got = ReadAssignments(e.stream.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  // ~700 KB of JSON: it fits a 1 MiB message alone, not twice (JSON and Struct).
  v1::ExecutorMessage m;
  m.mutable_result()->set_lease_id(got[0].lease_id());
  m.mutable_result()->set_result_json(json{{"blob", std::string(700'000, 'x')}}.dump());
  ASSERT_TRUE(e.stream->Write(m));
  v1::JobEvent end;
  for (v1::JobEvent ev; watch->Read(&ev);) end = ev;
  ASSERT_THAT(watch->Finish(), IsOk());
  ASSERT_EQ(end.job().state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(end.has_result());
  EXPECT_TRUE(end.result().content_omitted());
  EXPECT_TRUE(end.result().result_json().empty());
  EXPECT_FALSE(end.result().location().empty());
  EXPECT_FALSE(end.result().sha256().empty());
  EXPECT_GT(end.result().size_bytes(), 700'000);
  e.stream->WritesDone();
}

TEST_F(ServiceTest, CancelJobStopsTheJobAndTellsTheExecutor) {
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(20, 2), &job), IsOk());
  FakeExecutor e = Connect("exec-a", 2);
  std::vector<v1::Assignment> got = ReadAssignments(e.stream.get(), 2);
  v1::CancelJobRequest creq;
  creq.set_job_id(job.id());
  v1::Job cancelled;
  ASSERT_THAT(jobs_->CancelJob(Ctx().get(), creq, &cancelled), IsOk());
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
  v1::SchedulerMessage m;
  int cancels = 0;
  while (cancels < 2 && e.stream->Read(&m)) cancels += m.has_cancel() ? 1 : 0;
  EXPECT_EQ(cancels, 2);
  v1::GetResultRequest rreq;
  rreq.set_job_id(job.id());
  v1::GetResultResponse r;
  EXPECT_THAT(jobs_->GetResult(Ctx().get(), rreq, &r),
              GrpcStatusIs(grpc::StatusCode::FAILED_PRECONDITION));
}

TEST_F(ServiceTest, UnknownAndMissingJobIdsGetClearCodes) {
  v1::GetJobRequest req;
  v1::Job job;
  grpc::Status s = jobs_->GetJob(Ctx().get(), req, &job);
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(s.error_message().find("job_id"), std::string::npos);
  req.set_job_id("nope");
  EXPECT_THAT(jobs_->GetJob(Ctx().get(), req, &job),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND));
  grpc::ClientContext wctx;
  v1::WatchJobRequest wreq;
  wreq.set_job_id("nope");
  auto watch = jobs_->WatchJob(&wctx, wreq);
  v1::JobEvent ev;
  EXPECT_FALSE(watch->Read(&ev));
  EXPECT_THAT(watch->Finish(), GrpcStatusIs(grpc::StatusCode::NOT_FOUND));
  v1::ListJobsRequest lreq;
  lreq.set_page_token("xyz");
  v1::ListJobsResponse lresp;
  EXPECT_THAT(jobs_->ListJobs(Ctx().get(), lreq, &lresp),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT));
}

TEST_F(ServiceTest, RefusesAnExecutorStreamWithoutAValidHello) {
  grpc::ClientContext ctx;
  auto stream = executors_->Connect(&ctx);
  v1::ExecutorMessage m;
  m.mutable_hello()->set_slots(2);  // no executor_id
  ASSERT_TRUE(stream->Write(m));
  v1::SchedulerMessage in;
  EXPECT_FALSE(stream->Read(&in));
  grpc::Status s = stream->Finish();
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(s.error_message().find("executor_id"), std::string::npos);
}

TEST_F(ServiceTest, ListsExecutorsAndQueueStats) {
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(100, 10), &job), IsOk());
  FakeExecutor e = Connect("exec-a", 3);
  ASSERT_EQ(ReadAssignments(e.stream.get(), 5).size(), 5u);
  v1::ListExecutorsResponse ex;
  ASSERT_THAT(jobs_->ListExecutors(Ctx().get(), v1::ListExecutorsRequest(), &ex), IsOk());
  ASSERT_EQ(ex.executors_size(), 1);
  EXPECT_EQ(ex.executors(0).name(), "exec-a");
  EXPECT_EQ(ex.executors(0).assigned(), 5);
  v1::GetQueueStatsResponse q;
  ASSERT_THAT(jobs_->GetQueueStats(Ctx().get(), v1::GetQueueStatsRequest(), &q), IsOk());
  EXPECT_EQ(q.shards_pending(), 5);
  EXPECT_EQ(q.shards_running(), 5);
  EXPECT_EQ(q.slots_busy(), 3);
  EXPECT_EQ(q.jobs_running(), 1);
}

TEST_F(ServiceTest, ClosesAnExecutorThatStopsSendingHeartbeats) {
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(10, 1), &job), IsOk());
  FakeExecutor e = Connect("silent", 1);
  ASSERT_EQ(ReadAssignments(e.stream.get(), 1).size(), 1u);
  v1::SchedulerMessage m;
  while (e.stream->Read(&m)) {
  }  // the scheduler ends the stream after the 2 s heartbeat timeout
  grpc::Status s = e.stream->Finish();
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  EXPECT_NE(s.error_message().find("no heartbeat"), std::string::npos);
  EXPECT_EQ(Get(job.id()).shards().pending(), 1);
}

TEST_F(ServiceTest, ASecondStreamWithTheSameExecutorIdClosesTheFirst) {
  v1::Job job;
  ASSERT_THAT(Submit(NoopJob(10, 1), &job), IsOk());
  FakeExecutor first = Connect("twin", 1);
  ASSERT_EQ(ReadAssignments(first.stream.get(), 1).size(), 1u);
  FakeExecutor second = Connect("twin", 1);
  std::vector<v1::Assignment> again = ReadAssignments(second.stream.get(), 1);
  ASSERT_EQ(again.size(), 1u);  // the shard moved to the new stream
  EXPECT_EQ(again[0].attempt(), 2);
  v1::SchedulerMessage m;
  while (first.stream->Read(&m)) {
  }
  grpc::Status s = first.stream->Finish();
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  EXPECT_NE(s.error_message().find("replaced"), std::string::npos) << s.error_message();
}

TEST_F(ServiceTest, ServesHealthChecks) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_THAT(health->Check(Ctx().get(), req, &resp), IsOk());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ServiceTest, RefusesASecondServerOnTheSamePort) {
  SchedulerConfig config;
  config.listen = absl::StrCat("127.0.0.1:", server_->port());
  config.metrics_listen = "";
  const testing::TempDir other_dir("tessera-svc");
  config.data_dir = other_dir.path();
  auto second = SchedulerServer::Create(config, &clock_);
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(ServiceTest, RefusesASecondServerOnTheSameDataDirAndTheFirstServesOn) {
  SchedulerConfig config;
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.data_dir = data_dir_;
  auto second = SchedulerServer::Create(config, &clock_);
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(second.status().message().find(data_dir_ + " is in use by another scheduler"),
            std::string::npos)
      << second.status();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_THAT(health->Check(Ctx().get(), req, &resp), IsOk());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(SchedulerConfigTest, RefusesAStoreLingerOutsideZeroToOneSecond) {
  SchedulerConfig config;
  config.store_linger = absl::Milliseconds(-1);
  EXPECT_NE(config.Validate().message().find("--store-linger"), std::string::npos);
  config.store_linger = absl::Seconds(2);
  EXPECT_THAT(config.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  config.store_linger = absl::ZeroDuration();
  EXPECT_THAT(config.Validate(), IsOk());
}

}  // namespace
}  // namespace tessera::scheduler
