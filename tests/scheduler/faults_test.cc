// A scheduler server whose store and result sink fail on demand (FaultyStore,
// FaultySink in front of the real SqliteStore and FileSink), driven over gRPC
// with a hand-played executor: commits that fail for a while, a record the
// store refuses for good, a full disk under the results. Each ends with the
// exact answer written once, and health and the codes callers get behave as
// the README's Durability section says.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/service/scheduler_server.h"
#include "scheduler/store/sqlite_store.h"
#include "tessera/v1/executor.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/scheduler/faulty_sink.h"
#include "tests/scheduler/faulty_store.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::GrpcStatusIs;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

using json = nlohmann::json;
using grpc::health::v1::HealthCheckResponse;

// How long a call waits for its commit in these tests (--store-timeout).
constexpr absl::Duration kStoreTimeout = absl::Seconds(1);

// An executor played by the test over a real stream: a thread collects what
// the scheduler sends (assignments, acks).
class PlayedExecutor {
 public:
  PlayedExecutor(v1::ExecutorService::Stub* stub, const std::string& id, int slots) {
    stream_ = stub->Connect(&ctx_);
    v1::ExecutorMessage hello;
    hello.mutable_hello()->set_executor_id(id);
    hello.mutable_hello()->set_name(id);
    hello.mutable_hello()->add_tasks("noop");
    hello.mutable_hello()->set_slots(slots);
    stream_->Write(hello);
    reader_ = std::thread([this] {
      v1::SchedulerMessage m;
      while (stream_->Read(&m)) {
        absl::MutexLock lock(&mu_);
        for (const auto& a : m.assign().assignments()) assigned_.push_back(a);
        acked_ += m.ack().lease_ids_size();
      }
    });
  }
  ~PlayedExecutor() {
    ctx_.TryCancel();
    reader_.join();
  }

  // The first `n` assignments, waiting up to 10 s for them.
  std::vector<v1::Assignment> Assigned(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return assigned_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return assigned_;
  }
  int acked() {
    absl::MutexLock lock(&mu_);
    return acked_;
  }
  bool WaitAcked(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return acked_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  // Reports `a` failed for good.
  void Fail(const v1::Assignment& a) {
    v1::ExecutorMessage m;
    m.mutable_failure()->set_lease_id(a.lease_id());
    m.mutable_failure()->set_message("bad input");
    m.mutable_failure()->set_retryable(false);
    absl::MutexLock lock(&write_mu_);
    stream_->Write(m);
  }
  // Reports `a` done with {"items": its size} (or `result`).
  void Finish(const v1::Assignment& a, std::string result = "") {
    v1::ExecutorMessage m;
    m.mutable_result()->set_lease_id(a.lease_id());
    m.mutable_result()->set_job_id(a.job_id());
    m.mutable_result()->set_shard(a.shard());
    m.mutable_result()->set_result_json(
        result.empty() ? json{{"items", a.end() - a.start()}}.dump() : result);
    absl::MutexLock lock(&write_mu_);
    stream_->Write(m);
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ExecutorMessage, v1::SchedulerMessage>>
      stream_;
  std::thread reader_;
  absl::Mutex write_mu_;
  absl::Mutex mu_;
  std::vector<v1::Assignment> assigned_ ABSL_GUARDED_BY(mu_);
  int acked_ ABSL_GUARDED_BY(mu_) = 0;
};

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }
  // Starts (again, on the same data dir) a server with a faulty store and sink.
  void StartServer() {
    SchedulerConfig config;
    config.listen = "127.0.0.1:0";
    config.metrics_listen = "";
    config.data_dir = data_dir_;
    config.store_timeout = kStoreTimeout;
    config.wrap_store = [this](std::unique_ptr<Store> real) {
      Configure(static_cast<SqliteStore*>(real.get()));
      auto store = std::make_unique<FaultyStore>(std::move(real));
      store_ = store.get();
      return store;
    };
    config.wrap_sink = [this](std::unique_ptr<ResultSink> real) {
      auto sink = std::make_unique<FaultySink>(std::move(real));
      sink_ = sink.get();
      return sink;
    };
    auto server = SchedulerServer::Create(config, &clock_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel);
    executors_ = v1::ExecutorService::NewStub(channel);
    health_ = grpc::health::v1::Health::NewStub(channel);
  }
  void TearDown() override {
    executor_.reset();
    if (server_) server_->Shutdown();
  }
  void Restart() {
    executor_.reset();
    server_.reset();
    StartServer();
  }
  // Before the real store is wrapped (e.g. its limits).
  virtual void Configure(SqliteStore*) {}

  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  // A noop job over [0, end) in `shards` shards, named `name`.
  grpc::Status Submit(int end, int shards, v1::Job* job, const std::string& name = "t") {
    v1::SubmitJobRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_task("noop");
    req.mutable_spec()->mutable_range()->set_start(0);
    req.mutable_spec()->mutable_range()->set_end(end);
    req.mutable_spec()->mutable_range()->set_shard_count(shards);
    return jobs_->SubmitJob(Ctx().get(), req, job);
  }

  v1::Job Get(const std::string& id) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    jobs_->GetJob(Ctx().get(), req, &job);
    return job;
  }

  v1::Job WaitForEnd(const std::string& id) {
    v1::Job job;
    for (int i = 0; i < 400; ++i) {
      job = Get(id);
      if (job.state() >= v1::JOB_STATE_SUCCEEDED) break;
      absl::SleepFor(absl::Milliseconds(25));
    }
    return job;
  }

  HealthCheckResponse::ServingStatus Health() {
    grpc::health::v1::HealthCheckRequest req;
    HealthCheckResponse resp;
    if (!health_->Check(Ctx().get(), req, &resp).ok())
      return HealthCheckResponse::UNKNOWN;
    return resp.status();
  }
  // Polls health until it says `want` (5 s at most); true if it did.
  bool WaitForHealth(HealthCheckResponse::ServingStatus want) {
    for (int i = 0; i < 200; ++i) {
      if (Health() == want) return true;
      absl::SleepFor(absl::Milliseconds(25));
    }
    return false;
  }

  // The job's answer as persisted, after checking that it is the only file.
  json Answer(const std::string& id) {
    v1::GetResultRequest req;
    req.set_job_id(id);
    v1::GetResultResponse resp;
    grpc::Status s = jobs_->GetResult(Ctx().get(), req, &resp);
    EXPECT_THAT(s, IsOk());
    return s.ok() ? json::parse(resp.result_json()) : json();
  }
  int ResultFiles() {
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(data_dir_ + "/results")) {
      files += e.path().extension() == ".json" ? 1 : 0;
    }
    return files;
  }

  PlayedExecutor& Executor(int slots) {
    executor_ = std::make_unique<PlayedExecutor>(executors_.get(), "exec-a", slots);
    return *executor_;
  }

  RealClock clock_;
  // Kept across Restart; removed after the server (declared later) is gone.
  const testing::TempDir tmp_{"tessera-faults"};
  const std::string data_dir_ = tmp_.path();
  FaultyStore* store_ = nullptr;
  FaultySink* sink_ = nullptr;
  std::unique_ptr<SchedulerServer> server_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::ExecutorService::Stub> executors_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<PlayedExecutor> executor_;
};

TEST_F(FaultsTest, AFewFailedCommitsAreRetriedAndTheCallIsAnsweredOnceDurable) {
  store_->FailCommits(3, absl::UnavailableError("database is locked"));
  v1::Job job;
  const absl::Time start = absl::Now();
  grpc::Status s = Submit(40, 4, &job);
  ASSERT_THAT(s, IsOk());  // answered once committed, not before
  EXPECT_LT(absl::Now() - start, kStoreTimeout);
  EXPECT_EQ(store_->failed(), 3);
  EXPECT_TRUE(WaitForHealth(HealthCheckResponse::SERVING));
  PlayedExecutor& e = Executor(4);
  for (const v1::Assignment& a : e.Assigned(4)) e.Finish(a);
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Answer(job.id())["items"], 40);
  EXPECT_EQ(ResultFiles(), 1);
}

TEST_F(FaultsTest, WhileCommitsFailCallsGetUnavailableInTimeAndTheChangeLandsOnRecovery) {
  v1::Job running;
  ASSERT_THAT(Submit(40, 4, &running), IsOk());
  PlayedExecutor& e = Executor(2);
  const std::vector<v1::Assignment> first = e.Assigned(4);  // 2 slots + prefetch 2
  ASSERT_EQ(first.size(), 4u);
  store_->FailCommits(FaultyStore::kForever,
                      absl::UnavailableError("disk I/O error (EIO)"));
  // A call under way when the store starts failing: answered at the timeout,
  // saying its job may still be kept.
  v1::Job held;
  absl::Time start = absl::Now();
  grpc::Status s = Submit(10, 1, &held, "held");
  const absl::Duration waited = absl::Now() - start;
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  EXPECT_GE(waited, kStoreTimeout);
  EXPECT_LT(waited, kStoreTimeout + absl::Seconds(1));
  EXPECT_TRUE(absl::StrContains(s.error_message(), "may still take effect"))
      << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "disk I/O error"))
      << s.error_message();
  // Found by the id the message names.
  const std::string prefix = "SubmitJob of job ";
  ASSERT_TRUE(absl::StartsWith(s.error_message(), prefix)) << s.error_message();
  const std::string held_id = s.error_message().substr(
      prefix.size(), s.error_message().find(' ', prefix.size()) - prefix.size());
  // Now the store counts as failing: NOT_SERVING, and writes are refused at once.
  EXPECT_TRUE(WaitForHealth(HealthCheckResponse::NOT_SERVING));
  start = absl::Now();
  v1::Job refused;
  s = Submit(10, 1, &refused);
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(absl::StrContains(s.error_message(), "nothing was changed"))
      << s.error_message();
  v1::CancelJobRequest cancel;
  cancel.set_job_id(running.id());
  v1::Job cancelled;
  EXPECT_THAT(jobs_->CancelJob(Ctx().get(), cancel, &cancelled),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500)) << "a refusal waited";
  // Results are taken but not acknowledged: they are not durable.
  e.Finish(first[0]);
  e.Finish(first[1]);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(e.acked(), 0);
  // The store recovers: everything held commits, in one go, by itself.
  store_->Heal();
  EXPECT_TRUE(e.WaitAcked(2, absl::Seconds(5)));
  EXPECT_TRUE(WaitForHealth(HealthCheckResponse::SERVING));
  e.Finish(first[2]);
  e.Finish(first[3]);
  EXPECT_EQ(WaitForEnd(running.id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Answer(running.id())["items"], 40);
  // The submission that timed out took effect, as its answer said it might.
  EXPECT_EQ(Get(held_id).spec().name(), "held");
  v1::ListJobsResponse list;  // the refused one changed nothing
  ASSERT_THAT(jobs_->ListJobs(Ctx().get(), v1::ListJobsRequest(), &list), IsOk());
  EXPECT_EQ(list.jobs_size(), 2);
  const std::vector<v1::Assignment> more = e.Assigned(5);
  ASSERT_EQ(more.size(), 5u);
  e.Finish(more[4]);
  EXPECT_EQ(WaitForEnd(held_id).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(ResultFiles(), 2);
}

TEST_F(FaultsTest, ShutdownEndsWithinTheStoreTimeoutWhileTheStoreFails) {
  PlayedExecutor& e = Executor(1);
  v1::Job job;
  ASSERT_THAT(Submit(10, 1, &job), IsOk());
  ASSERT_EQ(e.Assigned(1).size(), 1u);
  store_->FailCommits(FaultyStore::kForever, absl::UnavailableError("disk I/O error"));
  // A call waiting for its commit when the shutdown comes.
  std::thread caller([this] {
    v1::Job j;
    grpc::Status s = Submit(10, 1, &j);
    EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  });
  absl::SleepFor(absl::Milliseconds(200));
  e.Finish(e.Assigned(1)[0]);
  const absl::Time start = absl::Now();
  server_->Shutdown();
  EXPECT_LT(absl::Now() - start, kStoreTimeout + absl::Seconds(3));
  caller.join();
  EXPECT_EQ(e.acked(), 0);  // nothing acknowledged that is not durable
}

TEST_F(FaultsTest, ARetryThatWaitedOutAHungCommitIsDroppedAndSaysSo) {
  PlayedExecutor& e = Executor(1);
  v1::Job failed;
  ASSERT_THAT(Submit(10, 1, &failed), IsOk());
  e.Fail(e.Assigned(1)[0]);
  ASSERT_EQ(WaitForEnd(failed.id()).state(), v1::JOB_STATE_FAILED);
  v1::Job running;
  ASSERT_THAT(Submit(10, 1, &running), IsOk());
  ASSERT_EQ(e.Assigned(2).size(), 2u);
  // The disk hangs under a commit: the retry waits behind it, then gives up.
  store_->Hold();
  e.Finish(e.Assigned(2)[1]);
  absl::SleepFor(absl::Milliseconds(100));
  v1::RetryFailedShardsRequest retry;
  retry.set_job_id(failed.id());
  v1::Job retried;
  const absl::Time start = absl::Now();
  grpc::Status s = jobs_->RetryFailedShards(Ctx().get(), retry, &retried);
  EXPECT_LT(absl::Now() - start, kStoreTimeout + absl::Seconds(1));
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(absl::StrContains(s.error_message(), "nothing was changed"))
      << s.error_message();
  EXPECT_EQ(Health(), HealthCheckResponse::NOT_SERVING);  // a commit runs too long
  // Once the commit goes through, the dropped retry stays dropped.
  store_->Release();
  EXPECT_EQ(WaitForEnd(running.id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(WaitForHealth(HealthCheckResponse::SERVING));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Get(failed.id()).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(e.Assigned(2).size(), 2u);  // its shard was not run again
}

// The real SqliteStore takes records of at most 16 KiB (SQLITE_TOOBIG above).
class RecordLimitTest : public FaultsTest {
 protected:
  void Configure(SqliteStore* store) override {
    store->SetMaxRecordBytesForTesting(16 << 10);
  }
};

TEST_F(RecordLimitTest, ARecordTooBigFailsItsJobOnlyAndTheStoreStaysInService) {
  v1::Job huge, fine;
  ASSERT_THAT(Submit(20, 2, &huge, "huge"), IsOk());
  ASSERT_THAT(Submit(20, 2, &fine, "fine"), IsOk());
  PlayedExecutor& e = Executor(4);
  const std::vector<v1::Assignment> got = e.Assigned(4);
  ASSERT_EQ(got.size(), 4u);
  for (const v1::Assignment& a : got) {
    e.Finish(a, a.job_id() == huge.id() ? json{{"items", a.end() - a.start()},
                                               {"blob", std::string(32 << 10, 'x')}}
                                              .dump()
                                        : "");
  }
  const v1::Job failed = WaitForEnd(huge.id());
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(failed.message(), "the store cannot keep this job"))
      << failed.message();
  EXPECT_EQ(WaitForEnd(fine.id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Answer(fine.id())["items"], 20);
  EXPECT_EQ(ResultFiles(), 1);
  EXPECT_TRUE(e.WaitAcked(4, absl::Seconds(5)));  // the refused results are not needed
  EXPECT_EQ(Health(), HealthCheckResponse::SERVING);
  v1::Job next;
  EXPECT_THAT(Submit(10, 1, &next), IsOk());
  // The failure is durable too.
  Restart();
  EXPECT_EQ(Get(huge.id()).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(Get(fine.id()).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(FaultsTest, ASubmissionWhoseRecordIsRefusedIsAnsweredWithTheReasonAtOnce) {
  store_->RefuseRecords([](const JobRecord& r) { return r.spec.name == "poison"; });
  v1::Job job;
  grpc::Status s = Submit(10, 1, &job, "poison");
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_TRUE(absl::StrContains(s.error_message(), "is too big")) << s.error_message();
  EXPECT_EQ(Health(), HealthCheckResponse::SERVING);
  EXPECT_THAT(Submit(10, 1, &job, "fine"), IsOk());
}

TEST_F(FaultsTest, AFullDiskUnderTheResultsIsRetriedWithTheSameBytesAndWrittenOnce) {
  sink_->FailStages(FaultySink::kForever,
                    absl::ResourceExhaustedError("write: No space left on device"));
  v1::Job job;
  ASSERT_THAT(Submit(40, 4, &job), IsOk());
  PlayedExecutor& e = Executor(4);
  for (const v1::Assignment& a : e.Assigned(4)) e.Finish(a);
  // The job is not failed for it; new work is refused as the disk is full.
  EXPECT_TRUE(WaitForHealth(HealthCheckResponse::NOT_SERVING));
  EXPECT_EQ(Get(job.id()).state(), v1::JOB_STATE_RUNNING);
  v1::Job refused;
  grpc::Status s = Submit(10, 1, &refused);
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_TRUE(absl::StrContains(s.error_message(), "No space left")) << s.error_message();
  EXPECT_EQ(ResultFiles(), 0);
  // Space returns: the same bytes are written, once.
  sink_->Heal();
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Answer(job.id())["items"], 40);
  EXPECT_EQ(ResultFiles(), 1);
  EXPECT_TRUE(WaitForHealth(HealthCheckResponse::SERVING));
  v1::Job other;
  EXPECT_THAT(Submit(10, 1, &other), IsOk());
}

TEST_F(FaultsTest, AFailedRenameIsRetriedAndTheResultWrittenOnce) {
  sink_->FailPublishes(2, absl::UnavailableError("rename: Input/output error"));
  v1::Job job;
  ASSERT_THAT(Submit(30, 3, &job), IsOk());
  PlayedExecutor& e = Executor(3);
  for (const v1::Assignment& a : e.Assigned(3)) e.Finish(a);
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Answer(job.id())["items"], 30);
  EXPECT_EQ(sink_->failed(), 2);
  EXPECT_EQ(sink_->writes(), 1);
  EXPECT_EQ(ResultFiles(), 1);
}

TEST(SchedulerConfigTest, RefusesAStoreTimeoutOutsideATenthOfASecondToTenMinutes) {
  SchedulerConfig config;
  config.store_timeout = absl::Milliseconds(10);
  EXPECT_NE(config.Validate().message().find("--store-timeout"), std::string::npos);
  config.store_timeout = absl::Hours(1);
  EXPECT_THAT(config.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  config.store_timeout = absl::Seconds(5);
  EXPECT_THAT(config.Validate(), IsOk());
}

}  // namespace
}  // namespace tessera::scheduler
