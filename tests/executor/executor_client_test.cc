// The executor's stream client against a fake scheduler: a real gRPC server on
// 127.0.0.1:0 whose side of the stream the test drives message by message.
#include "executor/service/executor_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"
#include "shared/grpc_util.h"
#include "shared/version.h"
#include "tessera/v1/executor.grpc.pb.h"

namespace tessera::executor {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;
using Stream = grpc::ServerReaderWriter<v1::SchedulerMessage, v1::ExecutorMessage>;

// Accepts one stream at a time; queues what the executor sends (heartbeats
// excepted) and lets the test write to the current stream.
class FakeScheduler final : public v1::ExecutorService::Service {
 public:
  grpc::Status Connect(grpc::ServerContext*, Stream* stream) override {
    {
      absl::MutexLock lock(&mu_);
      stream_ = stream;
      ++connections_;
    }
    v1::ExecutorMessage msg;
    while (stream->Read(&msg)) {
      absl::MutexLock lock(&mu_);
      if (msg.has_heartbeat()) {
        ++heartbeats_;
      } else if (msg.has_result_batch()) {
        // Tests look at results one by one, however they were coalesced.
        ++result_batches_;
        for (const v1::ShardResult& r : msg.result_batch().results()) {
          v1::ExecutorMessage one;
          *one.mutable_result() = r;
          received_.push_back(one);
        }
      } else {
        received_.push_back(msg);
      }
    }
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
    ++closed_;
    return grpc::Status::OK;
  }

  // The next non-heartbeat message, or nullopt after `timeout`.
  std::optional<v1::ExecutorMessage> Next(absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !received_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return std::nullopt;
    v1::ExecutorMessage msg = received_.front();
    received_.pop_front();
    return msg;
  }

  // Skips progress messages.
  std::optional<v1::ExecutorMessage> NextNonProgress() {
    while (true) {
      std::optional<v1::ExecutorMessage> msg = Next();
      if (!msg || !msg->has_progress()) return msg;
    }
  }

  bool Send(const v1::SchedulerMessage& msg) {
    absl::MutexLock lock(&mu_);
    auto connected = [this]()
                         ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stream_ != nullptr; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&connected), absl::Seconds(10)))
      return false;
    return stream_->Write(msg);
  }

  int closed() {
    absl::MutexLock lock(&mu_);
    return closed_;
  }
  bool WaitClosed(int n) {
    absl::MutexLock lock(&mu_);
    auto closed = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return closed_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&closed), absl::Seconds(10));
  }

  int heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }

 private:
  absl::Mutex mu_;
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<v1::ExecutorMessage> received_ ABSL_GUARDED_BY(mu_);
  int result_batches_ ABSL_GUARDED_BY(mu_) = 0;
  int connections_ ABSL_GUARDED_BY(mu_) = 0;
  int closed_ ABSL_GUARDED_BY(mu_) = 0;
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::SchedulerMessage Welcome(int heartbeat_ms) {
  v1::SchedulerMessage msg;
  msg.mutable_welcome()->set_heartbeat_interval_ms(heartbeat_ms);
  return msg;
}

v1::Assignment Assignment(const std::string& lease, const std::string& task,
                          int64_t start, int64_t end, const std::string& params = "{}") {
  v1::Assignment a;
  a.set_lease_id(lease);
  a.set_job_id("job1");
  a.set_shard(0);
  a.set_task(task);
  a.set_params_json(params);
  a.set_start(start);
  a.set_end(end);
  a.set_attempt(1);
  return a;
}

class ExecutorClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterBuiltinHandlers(registry_).ok());
    grpc::ServerBuilder builder;
    ApplyServerDefaults(builder);
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&scheduler_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void StopServer() {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
  }

  void StartServerOn(int port) {
    grpc::ServerBuilder builder;
    ApplyServerDefaults(builder);
    int bound = 0;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureServerCredentials(), &bound);
    builder.RegisterService(&scheduler_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_EQ(bound, port);
  }

  void TearDown() override {
    if (run_thread_.joinable()) {
      client_->Drain();
      client_->Drain();  // no grace period
      run_thread_.join();
    }
    client_.reset();
    if (server_)
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }

  void StartClient(int slots, size_t max_unacked_results = 1000) {
    ExecutorClientOptions options;
    options.max_unacked_results = max_unacked_results;
    options.scheduler_address = "127.0.0.1:" + std::to_string(port_);
    options.executor_id = "exec-test";
    options.name = "test-executor";
    options.slots = slots;
    options.drain_timeout = absl::Seconds(10);
    options.close_grace = absl::Seconds(2);
    client_ = std::make_unique<ExecutorClient>(options, &registry_, &metrics_);
    run_thread_ = std::thread([this] { client_->Run(); });
  }

  // Reads Hello and answers Welcome.
  void Handshake(int slots) {
    std::optional<v1::ExecutorMessage> hello = scheduler_.Next();
    ASSERT_TRUE(hello.has_value());
    ASSERT_TRUE(hello->has_hello()) << hello->DebugString();
    EXPECT_EQ(hello->hello().executor_id(), "exec-test");
    EXPECT_EQ(hello->hello().name(), "test-executor");
    EXPECT_THAT(hello->hello().tasks(), ElementsAre("noop", "primes", "sleep", "square"));
    EXPECT_EQ(hello->hello().slots(), slots);
    EXPECT_EQ(hello->hello().version(), tessera::VersionTag());
    ASSERT_TRUE(scheduler_.Send(Welcome(/*heartbeat_ms=*/50)));
  }

  // The value of the metric `name` (unlabelled), or -1.
  double Metric(const std::string& name) {
    for (const prometheus::MetricFamily& f : metrics_registry_.Collect()) {
      if (f.name != name || f.metric.empty()) continue;
      const prometheus::ClientMetric& m = f.metric[0];
      return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
    return -1;
  }

  prometheus::Registry metrics_registry_;
  ExecutorMetrics metrics_{metrics_registry_};
  HandlerRegistry registry_;
  FakeScheduler scheduler_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ExecutorClient> client_;
  std::thread run_thread_;
};

TEST_F(ExecutorClientTest, SaysHelloRunsAssignedShardsAndSendsTheirResults) {
  StartClient(2);
  ASSERT_NO_FATAL_FAILURE(Handshake(2));
  v1::SchedulerMessage assign;
  *assign.mutable_assign()->add_assignments() = Assignment("lease-noop", "noop", 0, 10);
  *assign.mutable_assign()->add_assignments() =
      Assignment("lease-primes", "primes", 0, 100);
  *assign.mutable_assign()->add_assignments() = Assignment("lease-what", "what", 0, 1);
  ASSERT_TRUE(scheduler_.Send(assign));

  std::map<std::string, std::string> results;
  std::map<std::string, v1::ShardFailure> failures;
  while (results.size() + failures.size() < 3) {
    std::optional<v1::ExecutorMessage> msg = scheduler_.NextNonProgress();
    ASSERT_TRUE(msg.has_value()) << "timed out waiting for results";
    if (msg->has_result()) {
      results[msg->result().lease_id()] = msg->result().result_json();
    } else if (msg->has_failure()) {
      failures[msg->failure().lease_id()] = msg->failure();
    } else {
      FAIL() << "unexpected " << msg->DebugString();
    }
  }
  EXPECT_EQ(nlohmann::json::parse(results["lease-noop"]),
            (nlohmann::json{{"items", 10}}));
  EXPECT_EQ(nlohmann::json::parse(results["lease-primes"]),
            (nlohmann::json{{"primes", 25}}));
  ASSERT_EQ(failures.count("lease-what"), 1u);
  EXPECT_FALSE(failures["lease-what"].retryable());
  // Results carry the shard's identity, for a scheduler that lost the lease.
  // They are kept until acked; the drain below waits for that.
  v1::SchedulerMessage ack;
  ack.mutable_ack()->add_lease_ids("lease-noop");
  ack.mutable_ack()->add_lease_ids("lease-primes");
  ASSERT_TRUE(scheduler_.Send(ack));

  // Heartbeats flow at the Welcome's interval.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_GE(scheduler_.heartbeats(), 2);

  // An idle executor drains at once: Draining, then the stream is closed.
  client_->Drain();
  std::optional<v1::ExecutorMessage> draining = scheduler_.Next();
  ASSERT_TRUE(draining.has_value());
  EXPECT_TRUE(draining->has_draining()) << draining->DebugString();
  EXPECT_TRUE(scheduler_.WaitClosed(1));
  run_thread_.join();
}

TEST_F(ExecutorClientTest, StopsStartingShardsWhileTooManyResultsAwaitAnAck) {
  StartClient(/*slots=*/1, /*max_unacked_results=*/4);
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
  v1::SchedulerMessage assign;
  for (int i = 0; i < 5; ++i) {
    *assign.mutable_assign()->add_assignments() =
        Assignment("lease-" + std::to_string(i), "noop", i, i + 1);
  }
  ASSERT_TRUE(scheduler_.Send(assign));
  // Results (progress skipped) until none comes within `quiet`.
  auto results = [&](absl::Duration quiet) {
    std::vector<std::string> leases;
    while (std::optional<v1::ExecutorMessage> m = scheduler_.Next(quiet)) {
      if (m->has_result()) leases.push_back(m->result().lease_id());
    }
    return leases;
  };
  // Four results unacked: the fifth shard waits, however long.
  EXPECT_THAT(results(absl::Milliseconds(500)),
              ElementsAre("lease-0", "lease-1", "lease-2", "lease-3"));
  EXPECT_EQ(Metric("tessera_executor_unacked_results"), 4);
  EXPECT_EQ(Metric("tessera_executor_backpressure"), 1);
  EXPECT_EQ(Metric("tessera_executor_backpressure_episodes_total"), 1);

  // One ack is not enough (it resumes at half the cap); two are.
  v1::SchedulerMessage ack;
  ack.mutable_ack()->add_lease_ids("lease-0");
  ASSERT_TRUE(scheduler_.Send(ack));
  EXPECT_THAT(results(absl::Milliseconds(300)), ElementsAre());
  ack.mutable_ack()->set_lease_ids(0, "lease-1");
  ASSERT_TRUE(scheduler_.Send(ack));
  EXPECT_THAT(results(absl::Milliseconds(500)), ElementsAre("lease-4"));
  EXPECT_EQ(Metric("tessera_executor_backpressure"), 0);
  EXPECT_EQ(Metric("tessera_executor_backpressure_episodes_total"), 1);
  EXPECT_EQ(Metric("tessera_executor_unacked_results"), 3);  // 2, 3, 4: kept

  // Every result is still kept: a new connection re-sends the three unacked.
  StopServer();
  StartServerOn(port_);
  std::optional<v1::ExecutorMessage> hello = scheduler_.Next();
  ASSERT_TRUE(hello.has_value() && hello->has_hello()) << hello->DebugString();
  std::vector<std::string> resent = results(absl::Milliseconds(500));
  std::sort(resent.begin(), resent.end());
  EXPECT_THAT(resent, ElementsAre("lease-2", "lease-3", "lease-4"));
}

TEST_F(ExecutorClientTest, DrainReleasesQueuedWorkAndFinishesRunningShards) {
  StartClient(1);
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
  v1::SchedulerMessage assign;
  *assign.mutable_assign()->add_assignments() =
      Assignment("run", "sleep", 0, 10, R"({"ms": 30})");
  *assign.mutable_assign()->add_assignments() = Assignment("q1", "noop", 0, 1);
  *assign.mutable_assign()->add_assignments() = Assignment("q2", "noop", 0, 1);
  ASSERT_TRUE(scheduler_.Send(assign));
  absl::SleepFor(absl::Milliseconds(50));  // "run" is running, q1 and q2 wait
  client_->Drain();

  std::optional<v1::ExecutorMessage> msg = scheduler_.NextNonProgress();
  ASSERT_TRUE(msg.has_value());
  EXPECT_TRUE(msg->has_draining()) << msg->DebugString();
  msg = scheduler_.NextNonProgress();
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->has_release()) << msg->DebugString();
  EXPECT_THAT(msg->release().lease_ids(), UnorderedElementsAre("q1", "q2"));

  // Work offered after Draining goes straight back.
  v1::SchedulerMessage late;
  *late.mutable_assign()->add_assignments() = Assignment("late", "noop", 0, 1);
  ASSERT_TRUE(scheduler_.Send(late));
  msg = scheduler_.NextNonProgress();
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->has_release()) << msg->DebugString();
  EXPECT_THAT(msg->release().lease_ids(), ElementsAre("late"));

  msg = scheduler_.NextNonProgress();
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->has_result()) << msg->DebugString();
  EXPECT_EQ(msg->result().lease_id(), "run");
  EXPECT_EQ(nlohmann::json::parse(msg->result().result_json()),
            (nlohmann::json{{"items", 10}}));
  // The drain waits for the ack: the result must be durable before it goes.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(scheduler_.closed(), 0);
  v1::SchedulerMessage ack;
  ack.mutable_ack()->add_lease_ids("run");
  ASSERT_TRUE(scheduler_.Send(ack));
  EXPECT_TRUE(scheduler_.WaitClosed(1));
  run_thread_.join();
}

TEST_F(ExecutorClientTest, DrainTimeoutCancelsAndReleasesRunningShards) {
  StartClient(1);
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
  v1::SchedulerMessage assign;
  *assign.mutable_assign()->add_assignments() =
      Assignment("long", "sleep", 0, 1000, R"({"ms": 100})");
  ASSERT_TRUE(scheduler_.Send(assign));
  absl::SleepFor(absl::Milliseconds(50));
  client_->Drain();
  client_->Drain();  // a second signal cuts the grace period short

  std::optional<v1::ExecutorMessage> msg = scheduler_.NextNonProgress();
  ASSERT_TRUE(msg.has_value());
  EXPECT_TRUE(msg->has_draining()) << msg->DebugString();
  msg = scheduler_.NextNonProgress();
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->has_release()) << msg->DebugString();
  EXPECT_THAT(msg->release().lease_ids(), ElementsAre("long"));
  EXPECT_TRUE(scheduler_.WaitClosed(1));
  run_thread_.join();
  EXPECT_FALSE(scheduler_.Next(absl::Milliseconds(100)).has_value()) << "no result";
}

TEST_F(ExecutorClientTest, CancelFromTheSchedulerStopsTheShardWithoutAResult) {
  StartClient(1);
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
  v1::SchedulerMessage assign;
  *assign.mutable_assign()->add_assignments() =
      Assignment("doomed", "sleep", 0, 1000, R"({"ms": 100})");
  ASSERT_TRUE(scheduler_.Send(assign));
  absl::SleepFor(absl::Milliseconds(50));
  v1::SchedulerMessage cancel;
  cancel.mutable_cancel()->set_lease_id("doomed");
  ASSERT_TRUE(scheduler_.Send(cancel));
  absl::SleepFor(absl::Milliseconds(200));
  // The slot is free again: a new shard runs.
  v1::SchedulerMessage next;
  *next.mutable_assign()->add_assignments() = Assignment("next", "noop", 0, 3);
  ASSERT_TRUE(scheduler_.Send(next));
  std::optional<v1::ExecutorMessage> msg = scheduler_.NextNonProgress();
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->has_result()) << msg->DebugString();
  EXPECT_EQ(msg->result().lease_id(), "next");
}

TEST_F(ExecutorClientTest, ReconnectsWhenTheSchedulerComesBack) {
  // The executor starts against a port with no server yet.
  const int port = port_;
  StopServer();
  StartClient(1);
  absl::SleepFor(absl::Milliseconds(300));  // a few failed attempts
  ASSERT_NO_FATAL_FAILURE(StartServerOn(port));
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
}

TEST_F(ExecutorClientTest, SendsAnOutcomeFinishedWhileDisconnectedAfterReconnecting) {
  const int port = port_;
  StartClient(1);
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
  v1::SchedulerMessage assign;
  *assign.mutable_assign()->add_assignments() =
      Assignment("kept", "sleep", 0, 5, R"({"ms": 60})");
  ASSERT_TRUE(scheduler_.Send(assign));
  absl::SleepFor(absl::Milliseconds(100));
  StopServer();                             // the shard keeps running...
  absl::SleepFor(absl::Milliseconds(400));  // ...and ends while disconnected
  ASSERT_NO_FATAL_FAILURE(StartServerOn(port));
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
  std::optional<v1::ExecutorMessage> msg = scheduler_.NextNonProgress();
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->has_result()) << msg->DebugString();
  EXPECT_EQ(msg->result().lease_id(), "kept");
  EXPECT_EQ(nlohmann::json::parse(msg->result().result_json()),
            (nlohmann::json{{"items", 5}}));
}

}  // namespace
}  // namespace tessera::executor
