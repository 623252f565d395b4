// GrpcSchedulerConnection against a real gRPC server on 127.0.0.1:0 that
// answers Hello with Welcome and ends the call when the executor half-closes.
#include "executor/service/grpc_scheduler_connection.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared/grpc_util.h"
#include "tessera/v1/executor.grpc.pb.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::executor {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::HasSubstr;

class WelcomingScheduler final : public v1::ExecutorService::Service {
 public:
  grpc::Status Connect(grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<v1::SchedulerMessage,
                                                v1::ExecutorMessage>* stream) override {
    {
      absl::MutexLock lock(&mu_);
      const auto it = ctx->client_metadata().find("authorization");
      if (it != ctx->client_metadata().end()) {
        authorization_ = std::string(it->second.data(), it->second.size());
      }
    }
    v1::ExecutorMessage msg;
    if (!stream->Read(&msg) || !msg.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Hello first");
    }
    v1::SchedulerMessage welcome;
    welcome.mutable_welcome()->set_executor_id(msg.hello().executor_id());
    stream->Write(welcome);
    while (stream->Read(&msg)) {
    }
    return grpc::Status::OK;
  }

  std::string authorization() {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }

 private:
  absl::Mutex mu_;
  std::string authorization_ ABSL_GUARDED_BY(mu_);
};

class GrpcSchedulerConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    ApplyServerDefaults(builder);
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&scheduler_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    address_ = "127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  static v1::ExecutorMessage Hello() {
    v1::ExecutorMessage msg;
    msg.mutable_hello()->set_executor_id("exec-1");
    return msg;
  }

  WelcomingScheduler scheduler_;
  int port_ = 0;
  std::string address_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(GrpcSchedulerConnectionTest, CarriesMessagesBothWaysWithTheBearerToken) {
  const ::tessera::testing::TempDir tmp("tessera-executor-token");
  const std::string token_file = tmp.path() + "/executor-token";
  std::ofstream(token_file) << "s3cret\n";
  GrpcConnectionOptions options;
  options.auth_token_file = token_file;
  GrpcSchedulerConnection connection(options);
  absl::StatusOr<std::unique_ptr<SchedulerSession>> session = connection.Open(address_);
  ASSERT_THAT(session, IsOk());
  ASSERT_TRUE((*session)->Write(Hello()));
  v1::SchedulerMessage msg;
  ASSERT_TRUE((*session)->Read(&msg));
  EXPECT_EQ(msg.welcome().executor_id(), "exec-1");
  EXPECT_EQ(scheduler_.authorization(), "Bearer s3cret");
  // Half-closing lets the scheduler end the call cleanly.
  (*session)->CloseWrites();
  EXPECT_FALSE((*session)->Read(&msg));
  EXPECT_THAT((*session)->Finish(), IsOk());
}

TEST_F(GrpcSchedulerConnectionTest, CancelEndsABlockedRead) {
  GrpcSchedulerConnection connection({});
  absl::StatusOr<std::unique_ptr<SchedulerSession>> session = connection.Open(address_);
  ASSERT_THAT(session, IsOk());
  ASSERT_TRUE((*session)->Write(Hello()));
  v1::SchedulerMessage msg;
  ASSERT_TRUE((*session)->Read(&msg));  // Welcome; the next Read blocks
  std::thread canceller([&] { (*session)->Cancel(); });
  EXPECT_FALSE((*session)->Read(&msg));
  canceller.join();
  EXPECT_THAT((*session)->Finish(), StatusIs(absl::StatusCode::kCancelled));
}

TEST_F(GrpcSchedulerConnectionTest, IsUnavailableWhenNothingListens) {
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
  GrpcConnectionOptions options;
  options.connect_timeout = absl::Seconds(2);
  GrpcSchedulerConnection connection(options);
  absl::StatusOr<std::unique_ptr<SchedulerSession>> session = connection.Open(address_);
  EXPECT_THAT(session, StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("cannot connect to " + address_)));
}

}  // namespace
}  // namespace tessera::executor
