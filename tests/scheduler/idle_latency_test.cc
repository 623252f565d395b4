// Calls after an idle gap are answered as fast as calls in a busy stream:
// a real scheduler server on 127.0.0.1:0, its gRPC callback threads left
// idle for about a second between calls (callback_queue_waker.h).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "scheduler/service/callback_queue_waker.h"
#include "scheduler/service/scheduler_server.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;

class IdleLatencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SchedulerConfig config;
    config.listen = "127.0.0.1:0";
    config.metrics_listen = "";
    config.data_dir = data_dir_;
    // The stall is in gRPC, not the store: the memory store keeps a slow disk
    // out of the figures.
    config.store = "memory";
    auto server = SchedulerServer::Create(config, &clock_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    jobs_ = v1::JobService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // The call's latency in ms (and a failed expectation if it failed).
  double TimeSubmit(std::string* id) {
    v1::SubmitJobRequest req;
    req.mutable_spec()->set_task("noop");
    req.mutable_spec()->mutable_range()->set_start(0);
    req.mutable_spec()->mutable_range()->set_end(1);
    req.mutable_spec()->mutable_range()->set_shard_size(1);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::Job job;
    const absl::Time t0 = absl::Now();
    const grpc::Status s = jobs_->SubmitJob(&ctx, req, &job);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    EXPECT_THAT(s, IsOk());
    *id = job.id();
    return ms;
  }
  double TimeGet(const std::string& id) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::Job job;
    const absl::Time t0 = absl::Now();
    const grpc::Status s = jobs_->GetJob(&ctx, req, &job);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    EXPECT_THAT(s, IsOk());
    EXPECT_EQ(job.id(), id);
    return ms;
  }

  // Several calls at once, as when a job ends (its end event, the watcher's
  // stream closing, the result fetched): gRPC's callback threads all see
  // events at about the same moment, and so all go idle together.
  void Burst(const std::string& id) {
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back([&] { TimeGet(id); });
    for (std::thread& t : threads) t.join();
  }

  RealClock clock_;
  // Before the server, so that it has stopped when the dir is removed.
  const testing::TempDir tmp_{"tessera-idle"};
  const std::string data_dir_ = tmp_.path();
  std::unique_ptr<SchedulerServer> server_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

TEST_F(IdleLatencyTest, CallsAfterAboutASecondIdleAreNotHeldUp) {
  std::string id;
  TimeSubmit(&id);  // warm: the connection and lazy set-up
  // gRPC's idle callback threads slept from 1 s to 1.1 s after the last event
  // (counted from a little after the client's answer): a call sent in that
  // window waited up to 100 ms. Generous bound: a loaded 2-core machine
  // answers these in a few ms.
  constexpr double kBoundMs = 50;
  double worst = 0;
  std::string worst_at;
  for (const double gap_s : {1.0, 1.03, 1.06}) {
    for (int i = 0; i < 2; ++i) {
      Burst(id);
      absl::SleepFor(absl::Seconds(gap_s));
      const double submit = TimeSubmit(&id);
      Burst(id);
      absl::SleepFor(absl::Seconds(gap_s));
      const double get = TimeGet(id);
      if (std::max(submit, get) > worst) {
        worst = std::max(submit, get);
        worst_at = absl::StrCat(submit > get ? "SubmitJob" : "GetJob", " after ", gap_s,
                                " s idle");
      }
    }
  }
  EXPECT_LT(worst, kBoundMs) << "worst call: " << worst << " ms, " << worst_at;
}

TEST(CallbackQueueWakerTest, WakesAtItsPeriodAndStops) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  CallbackQueueWaker waker(server.get(), absl::Milliseconds(20));
  absl::SleepFor(absl::Milliseconds(500));
  waker.Stop();
  const int64_t wakes = waker.wakes();
  EXPECT_GE(wakes, 5);
  EXPECT_LE(wakes, 26);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(waker.wakes(), wakes) << "no check after Stop";
  server->Shutdown();
}

}  // namespace
}  // namespace tessera::scheduler
