// GrpcJobApi against a real in-process gRPC server: requests arrive intact,
// streams deliver every event in order and status codes carry over.
#include "cli/grpc_job_api.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "shared/grpc_util.h"
#include "tests/util/status_matchers.h"

namespace tessera::cli {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

namespace v1 = tessera::v1;

class FakeJobService final : public v1::JobService::Service {
 public:
  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* request,
                         v1::Job* job) override {
    job->set_id("j1");
    *job->mutable_spec() = request->spec();
    return grpc::Status::OK;
  }
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* request,
                      v1::Job* job) override {
    Remember(*ctx);
    if (request->job_id() != "j1") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "job " + request->job_id());
    }
    job->set_id("j1");
    return grpc::Status::OK;
  }
  grpc::Status RetryFailedShards(grpc::ServerContext*,
                                 const v1::RetryFailedShardsRequest* request,
                                 v1::Job* job) override {
    if (request->job_id() != "j1") {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "job " + request->job_id() + " is SUCCEEDED");
    }
    job->set_id(request->job_id());
    job->set_state(v1::JOB_STATE_RUNNING);
    return grpc::Status::OK;
  }
  grpc::Status UpdateJob(grpc::ServerContext*, const v1::UpdateJobRequest* request,
                         v1::Job* job) override {
    if (request->update_mask().paths_size() == 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "update_mask is empty");
    }
    job->set_id(request->job_id());
    for (const std::string& path : request->update_mask().paths()) {
      if (path == "max_parallel") {
        job->mutable_spec()->set_max_parallel(request->update().max_parallel());
      }
      if (path == "rate_limit") {
        job->mutable_spec()->set_rate_limit(request->update().rate_limit());
      }
    }
    return grpc::Status::OK;
  }
  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override {
    Remember(*ctx);
    for (int done : {10, 50, 100}) {
      v1::JobEvent event;
      event.mutable_job()->set_id(request->job_id());
      event.mutable_job()->set_items_done(done);
      writer->Write(event);
    }
    return grpc::Status::OK;
  }
  grpc::Status GetQueueStats(grpc::ServerContext*, const v1::GetQueueStatsRequest*,
                             v1::GetQueueStatsResponse*) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    return grpc::Status::OK;
  }

  // The authorization metadata of each GetJob and WatchJob call ("" if none).
  std::vector<std::string> authorizations() {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }

 private:
  void Remember(const grpc::ServerContext& ctx) {
    auto it = ctx.client_metadata().find("authorization");
    absl::MutexLock lock(&mu_);
    authorizations_.push_back(it == ctx.client_metadata().end()
                                  ? ""
                                  : std::string(it->second.data(), it->second.size()));
  }
  absl::Mutex mu_;
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
};

class GrpcJobApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    ApplyServerDefaults(builder);
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::unique_ptr<GrpcJobApi> Connect(absl::Duration deadline = absl::Seconds(10),
                                      std::string token = "") {
    ConnectOptions options;
    options.address = "127.0.0.1:" + std::to_string(port_);
    options.token = std::move(token);
    return *GrpcJobApi::Connect(options, deadline);
  }

  FakeJobService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(GrpcJobApiTest, SendsTheSpecAndReturnsTheJob) {
  v1::JobSpec spec;
  spec.set_task("primes");
  spec.mutable_range()->set_end(100);
  absl::StatusOr<v1::Job> job = Connect()->SubmitJob(spec);
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->id(), "j1");
  EXPECT_EQ(job->spec().task(), "primes");
  EXPECT_EQ(job->spec().range().end(), 100);
}

TEST_F(GrpcJobApiTest, CarriesStatusCodesOver) {
  absl::StatusOr<v1::Job> job = Connect()->GetJob("nope");
  EXPECT_THAT(job, StatusIs(absl::StatusCode::kNotFound, "job nope"));
}

TEST_F(GrpcJobApiTest, RetriesFailedShardsAndCarriesTheRefusalOver) {
  std::unique_ptr<GrpcJobApi> api = Connect();
  absl::StatusOr<v1::Job> job = api->RetryFailedShards("j1");
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->id(), "j1");
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
  job = api->RetryFailedShards("j2");
  EXPECT_THAT(job,
              StatusIs(absl::StatusCode::kFailedPrecondition, "job j2 is SUCCEEDED"));
}

TEST_F(GrpcJobApiTest, SendsTheUpdateWithItsMask) {
  std::unique_ptr<GrpcJobApi> api = Connect();
  v1::UpdateJobRequest request;
  request.set_job_id("j1");
  request.mutable_update()->set_max_parallel(3);
  request.mutable_update()->set_rate_limit(9);  // not in the mask: not applied
  request.mutable_update_mask()->add_paths("max_parallel");
  absl::StatusOr<v1::Job> job = api->UpdateJob(request);
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->id(), "j1");
  EXPECT_EQ(job->spec().max_parallel(), 3);
  EXPECT_EQ(job->spec().rate_limit(), 0);
  request.clear_update_mask();
  job = api->UpdateJob(request);
  EXPECT_THAT(job, StatusIs(absl::StatusCode::kInvalidArgument, "update_mask is empty"));
}

TEST_F(GrpcJobApiTest, DeliversEveryWatchEventInOrder) {
  std::vector<int64_t> done;
  absl::Status status = Connect()->WatchJob(
      "j1", [&](const v1::JobEvent& event) { done.push_back(event.job().items_done()); });
  EXPECT_THAT(status, IsOk());
  EXPECT_EQ(done, (std::vector<int64_t>{10, 50, 100}));
}

TEST_F(GrpcJobApiTest, GivesUpOnAUnaryCallAfterItsDeadline) {
  absl::StatusOr<v1::GetQueueStatsResponse> stats =
      Connect(absl::Milliseconds(100))->GetQueueStats();
  EXPECT_THAT(stats, StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(GrpcJobApi, ReportsUnavailableForADeadAddress) {
  // Port 1 on loopback refuses connections; without wait-for-ready the call fails fast.
  ConnectOptions options;
  options.address = "127.0.0.1:1";
  absl::StatusOr<v1::Job> job =
      (*GrpcJobApi::Connect(options, absl::Seconds(10)))->GetJob("j1");
  EXPECT_THAT(job, StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(GrpcJobApiTest, SendsTheTokenAsBearerMetadataOnUnaryAndStreamingCalls) {
  std::unique_ptr<GrpcJobApi> api = Connect(absl::Seconds(10), "s3cret");
  ASSERT_THAT(api->GetJob("j1"), IsOk());
  ASSERT_THAT(api->WatchJob("j1", [](const v1::JobEvent&) {}), IsOk());
  ASSERT_THAT(Connect()->GetJob("j1"), IsOk());
  EXPECT_EQ(service_.authorizations(),
            (std::vector<std::string>{"Bearer s3cret", "Bearer s3cret", ""}));
}

TEST(GrpcJobApi, AnUnreadableCaFileIsAnErrorNamingTheFlag) {
  ConnectOptions options;
  options.address = "127.0.0.1:1";
  options.tls_ca = "/nonexistent/ca.pem";
  auto api = GrpcJobApi::Connect(options, absl::Seconds(10));
  ASSERT_THAT(api, StatusIs(absl::StatusCode::kFailedPrecondition,
                            "--tls-ca /nonexistent/ca.pem cannot be read"));
}

}  // namespace
}  // namespace tessera::cli
