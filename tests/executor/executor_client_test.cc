// The executor's stream client against a fake connection and a fake clock:
// the test plays the scheduler message by message, decides when shards finish
// (GateHandler) and when time passes, so nothing here waits on a timer.
#include "executor/service/executor_client.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"
#include "shared/clock.h"
#include "shared/version.h"
#include "tests/executor/fake_scheduler_connection.h"
#include "tests/executor/gate_handler.h"
#include "tests/util/status_matchers.h"

namespace tessera::executor {
namespace {

using ::tessera::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

v1::SchedulerMessage Welcome(int heartbeat_ms) {
  v1::SchedulerMessage msg;
  msg.mutable_welcome()->set_heartbeat_interval_ms(heartbeat_ms);
  return msg;
}

v1::SchedulerMessage Assign(const std::vector<v1::Assignment>& assignments) {
  v1::SchedulerMessage msg;
  for (const v1::Assignment& a : assignments)
    *msg.mutable_assign()->add_assignments() = a;
  return msg;
}

v1::Assignment Assignment(const std::string& lease, const std::string& task,
                          int64_t start = 0, int64_t end = 1) {
  v1::Assignment a;
  a.set_lease_id(lease);
  a.set_job_id("job1");
  a.set_shard(start);
  a.set_task(task);
  a.set_params_json("{}");
  a.set_start(start);
  a.set_end(end);
  a.set_attempt(1);
  return a;
}

v1::SchedulerMessage Ack(const std::vector<std::string>& leases) {
  v1::SchedulerMessage msg;
  for (const std::string& lease : leases) msg.mutable_ack()->add_lease_ids(lease);
  return msg;
}

class ExecutorClientTest : public ::testing::Test {
 protected:
  ExecutorClientTest() {
    auto gate = std::make_unique<GateHandler>();
    gate_ = gate.get();
    EXPECT_THAT(registry_.Register("gate", std::move(gate)), IsOk());
    EXPECT_THAT(RegisterBuiltinHandlers(registry_), IsOk());
  }

  void TearDown() override {
    if (run_thread_.joinable()) {
      gate_->Open();
      client_->Drain();
      client_->Drain();  // no grace period
      run_thread_.join();
    }
    client_.reset();
  }

  void StartClient(int slots, size_t max_unacked_results = 1000,
                   std::string address = "scheduler:7070") {
    ExecutorClientOptions options;
    options.max_unacked_results = max_unacked_results;
    options.scheduler_address = std::move(address);
    options.executor_id = "exec-test";
    options.name = "test-executor";
    options.slots = slots;
    options.drain_timeout = absl::Seconds(10);
    options.close_grace = absl::Seconds(2);
    // Reconnect at once: the clock does not move by itself.
    options.initial_backoff = absl::ZeroDuration();
    options.max_backoff = absl::ZeroDuration();
    options.clock_poll = absl::Milliseconds(1);
    client_ = std::make_unique<ExecutorClient>(options, &registry_, &metrics_,
                                               &scheduler_, &clock_);
    run_thread_ = std::thread([this] { client_->Run(); });
  }

  // Reads Hello and answers Welcome (heartbeats every 50 ms).
  void Handshake(int slots) {
    std::optional<v1::ExecutorMessage> hello = scheduler_.Next();
    ASSERT_TRUE(hello.has_value());
    ASSERT_TRUE(hello->has_hello()) << hello->DebugString();
    EXPECT_EQ(hello->hello().executor_id(), "exec-test");
    EXPECT_EQ(hello->hello().name(), "test-executor");
    EXPECT_THAT(hello->hello().tasks(),
                ElementsAre("gate", "noop", "primes", "sleep", "square"));
    EXPECT_EQ(hello->hello().slots(), slots);
    EXPECT_EQ(hello->hello().version(), tessera::VersionTag());
    ASSERT_TRUE(scheduler_.Send(Welcome(/*heartbeat_ms=*/50)));
  }

  // A one-slot executor, welcomed, running the gated shard `lease`.
  void StartRunning(const std::string& lease) {
    StartClient(1);
    ASSERT_NO_FATAL_FAILURE(Handshake(1));
    ASSERT_TRUE(scheduler_.Send(Assign({Assignment(lease, "gate")})));
    ASSERT_TRUE(gate_->WaitStarted(1));
  }

  // The kind of the next message that is not progress ("draining", …).
  std::string NextKind() {
    std::optional<v1::ExecutorMessage> msg = scheduler_.NextNonProgress();
    if (!msg.has_value()) return "(nothing)";
    const auto* field = msg->GetDescriptor()->FindFieldByNumber(msg->msg_case());
    return field == nullptr ? "(unset)" : field->name();
  }

  // The next message that is not progress, which must be a release; its leases.
  std::vector<std::string> NextRelease() {
    std::optional<v1::ExecutorMessage> msg = scheduler_.NextNonProgress();
    if (!msg.has_value()) return {"(nothing)"};
    if (!msg->has_release()) return {msg->DebugString()};
    return {msg->release().lease_ids().begin(), msg->release().lease_ids().end()};
  }

  // The next message that is not progress, which must be a result; its lease.
  std::string NextResult() {
    std::optional<v1::ExecutorMessage> msg = scheduler_.NextNonProgress();
    if (!msg.has_value()) return "(nothing)";
    if (!msg->has_result()) return msg->DebugString();
    return msg->result().lease_id();
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
  GateHandler* gate_;
  FakeSchedulerConnection scheduler_;
  FakeClock clock_;
  std::unique_ptr<ExecutorClient> client_;
  std::thread run_thread_;
};

TEST_F(ExecutorClientTest, SaysHelloRunsAssignedShardsAndSendsTheirResults) {
  StartClient(2);
  ASSERT_NO_FATAL_FAILURE(Handshake(2));
  ASSERT_TRUE(scheduler_.Send(Assign({Assignment("lease-noop", "noop", 0, 10),
                                      Assignment("lease-primes", "primes", 0, 100),
                                      Assignment("lease-what", "what")})));

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
  // Results are kept until acked; the drain below would wait for that.
  ASSERT_TRUE(scheduler_.Send(Ack({"lease-noop", "lease-primes"})));
  ASSERT_TRUE(scheduler_.WaitHandled());
  EXPECT_EQ(Metric("tessera_executor_unacked_results"), 0);

  // Heartbeats follow the Welcome's interval on the client's clock.
  EXPECT_EQ(scheduler_.heartbeats(), 0);
  clock_.Advance(absl::Milliseconds(50));
  ASSERT_TRUE(scheduler_.WaitForHeartbeats(1));
  clock_.Advance(absl::Milliseconds(50));
  ASSERT_TRUE(scheduler_.WaitForHeartbeats(2));
  EXPECT_EQ(scheduler_.heartbeats(), 2);

  // An idle executor drains at once: Draining, then the stream is closed.
  client_->Drain();
  EXPECT_EQ(NextKind(), "draining");
  EXPECT_TRUE(scheduler_.WaitEnded(1));
  EXPECT_TRUE(scheduler_.closed_writes());
  run_thread_.join();
}

TEST_F(ExecutorClientTest, StopsStartingShardsWhileTooManyResultsAwaitAnAck) {
  StartClient(/*slots=*/1, /*max_unacked_results=*/4);
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
  std::vector<v1::Assignment> five;
  for (int i = 0; i < 5; ++i) {
    five.push_back(Assignment("lease-" + std::to_string(i), "noop", i, i + 1));
  }
  ASSERT_TRUE(scheduler_.Send(Assign(five)));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(NextResult(), "lease-" + std::to_string(i));
  // Four results unacked: the runner paused before the fourth went out, so
  // the fifth shard waits, however long.
  EXPECT_EQ(Metric("tessera_executor_unacked_results"), 4);
  EXPECT_EQ(Metric("tessera_executor_backpressure"), 1);
  EXPECT_EQ(Metric("tessera_executor_backpressure_episodes_total"), 1);

  // One ack is not enough (it resumes at half the cap); two are.
  ASSERT_TRUE(scheduler_.Send(Ack({"lease-0"})));
  ASSERT_TRUE(scheduler_.WaitHandled());
  EXPECT_EQ(Metric("tessera_executor_unacked_results"), 3);
  EXPECT_EQ(Metric("tessera_executor_backpressure"), 1);
  EXPECT_EQ(scheduler_.pending(), 0u);
  ASSERT_TRUE(scheduler_.Send(Ack({"lease-1"})));
  EXPECT_EQ(NextResult(), "lease-4");
  EXPECT_EQ(Metric("tessera_executor_backpressure"), 0);
  EXPECT_EQ(Metric("tessera_executor_backpressure_episodes_total"), 1);
  EXPECT_EQ(Metric("tessera_executor_unacked_results"), 3);  // 2, 3, 4: kept

  // Every result is still kept: a new session re-sends the three unacked.
  scheduler_.EndSession();
  std::optional<v1::ExecutorMessage> hello = scheduler_.Next();
  ASSERT_TRUE(hello.has_value());
  ASSERT_TRUE(hello->has_hello()) << hello->DebugString();
  EXPECT_EQ(NextResult(), "lease-2");
  EXPECT_EQ(NextResult(), "lease-3");
  EXPECT_EQ(NextResult(), "lease-4");
}

TEST_F(ExecutorClientTest, DrainReleasesQueuedWorkAndFinishesRunningShards) {
  StartClient(1);
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
  ASSERT_TRUE(scheduler_.Send(Assign(
      {Assignment("run", "gate"), Assignment("q1", "noop"), Assignment("q2", "noop")})));
  ASSERT_TRUE(gate_->WaitStarted(1));  // "run" is running, q1 and q2 wait
  client_->Drain();

  EXPECT_EQ(NextKind(), "draining");
  EXPECT_THAT(NextRelease(), UnorderedElementsAre("q1", "q2"));

  // Work offered after Draining goes straight back.
  ASSERT_TRUE(scheduler_.Send(Assign({Assignment("late", "noop")})));
  EXPECT_THAT(NextRelease(), ElementsAre("late"));

  gate_->Open();
  EXPECT_EQ(NextResult(), "run");
  // The drain waits for the ack (the result must be durable before it goes):
  // half the grace period later the control loop still only heartbeats.
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(scheduler_.WaitForHeartbeats(1));
  EXPECT_EQ(scheduler_.ended(), 0);
  ASSERT_TRUE(scheduler_.Send(Ack({"run"})));
  EXPECT_TRUE(scheduler_.WaitEnded(1));
  EXPECT_TRUE(scheduler_.closed_writes());
  run_thread_.join();
}

TEST_F(ExecutorClientTest, DrainTimeoutCancelsAndReleasesRunningShards) {
  ASSERT_NO_FATAL_FAILURE(StartRunning("long"));
  client_->Drain();
  EXPECT_EQ(NextKind(), "draining");

  clock_.Advance(absl::Seconds(10));  // the drain timeout
  EXPECT_THAT(NextRelease(), ElementsAre("long"));
  EXPECT_TRUE(scheduler_.WaitEnded(1));
  run_thread_.join();
  EXPECT_EQ(scheduler_.pending(), 0u) << "no result from a cancelled shard";
}

TEST_F(ExecutorClientTest, ASecondDrainCutsTheGracePeriodShort) {
  ASSERT_NO_FATAL_FAILURE(StartRunning("long"));
  client_->Drain();
  client_->Drain();

  EXPECT_EQ(NextKind(), "draining");
  EXPECT_THAT(NextRelease(), ElementsAre("long"));
  EXPECT_TRUE(scheduler_.WaitEnded(1));
  run_thread_.join();
  EXPECT_EQ(scheduler_.pending(), 0u) << "no result from a cancelled shard";
}

TEST_F(ExecutorClientTest, CancelFromTheSchedulerStopsTheShardWithoutAResult) {
  ASSERT_NO_FATAL_FAILURE(StartRunning("doomed"));
  v1::SchedulerMessage cancel;
  cancel.mutable_cancel()->set_lease_id("doomed");
  ASSERT_TRUE(scheduler_.Send(cancel));
  // The slot frees without an outcome: the next shard runs and reports first.
  ASSERT_TRUE(scheduler_.Send(Assign({Assignment("next", "noop", 0, 3)})));
  EXPECT_EQ(NextResult(), "next");
}

TEST_F(ExecutorClientTest, ReconnectsWhenTheSchedulerComesBack) {
  scheduler_.SetReachable(false);
  StartClient(1);
  ASSERT_TRUE(scheduler_.WaitForAttempts(3));
  scheduler_.SetReachable(true);
  ASSERT_NO_FATAL_FAILURE(Handshake(1));
}

TEST_F(ExecutorClientTest, TriesTheSchedulerReplicasInTurn) {
  scheduler_.SetReachable(false);
  StartClient(1, 1000, "a:7070,b:7070");
  ASSERT_TRUE(scheduler_.WaitForAttempts(3));
  const std::vector<std::string> tried = scheduler_.addresses();
  EXPECT_THAT(std::vector<std::string>(tried.begin(), tried.begin() + 3),
              ElementsAre("a:7070", "b:7070", "a:7070"));
}

TEST_F(ExecutorClientTest, SendsWhatTheBrokenStreamDidNotTakeAfterReconnecting) {
  ASSERT_NO_FATAL_FAILURE(StartRunning("kept"));
  scheduler_.BreakWrites();  // the stream dies; the reader has not noticed yet
  gate_->Open();
  ASSERT_TRUE(scheduler_.WaitForFailedWrites(1));  // the result
  ASSERT_TRUE(scheduler_.Send(Assign({Assignment("unknown-task", "what")})));
  ASSERT_TRUE(scheduler_.WaitForFailedWrites(2));  // its failure
  scheduler_.EndSession();

  std::optional<v1::ExecutorMessage> hello = scheduler_.Next();
  ASSERT_TRUE(hello.has_value());
  ASSERT_TRUE(hello->has_hello()) << hello->DebugString();
  std::optional<v1::ExecutorMessage> msg = scheduler_.Next();
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->has_result()) << msg->DebugString();
  EXPECT_EQ(msg->result().lease_id(), "kept");
  EXPECT_EQ(nlohmann::json::parse(msg->result().result_json()),
            (nlohmann::json{{"shard", 0}}));
  msg = scheduler_.Next();
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->has_failure()) << msg->DebugString();
  EXPECT_EQ(msg->failure().lease_id(), "unknown-task");
}

}  // namespace
}  // namespace tessera::executor
