// Hostile peers against the real binaries: a raw ExecutorService.Connect
// client answering with a result nested 100,000 deep, and an exec task
// printing one; the scheduler and the executor live on and say why.
#include <sys/stat.h>

#include "gmock/gmock.h"
#include "tessera/v1/executor.grpc.pb.h"
#include "tests/e2e/cluster.h"

namespace tessera::testing {
namespace {

using ::testing::HasSubstr;
using Stream = grpc::ClientReaderWriter<v1::ExecutorMessage, v1::SchedulerMessage>;

const std::string kDeepItems =
    "{\"items\":" + std::string(100'000, '[') + std::string(100'000, ']') + "}";

class Hostile : public Cluster {
 protected:
  // A hand-driven executor stream, as a hostile or broken peer would open it.
  struct RawPeer {
    std::unique_ptr<v1::ExecutorService::Stub> stub;
    std::unique_ptr<grpc::ClientContext> ctx = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<Stream> stream;
  };
  // Until a shard of the job runs.
  void WaitUntilRunning(const std::string& id) {
    WaitFor(
        id, [](const v1::Job& j) { return j.shards().running() > 0; }, absl::Seconds(30));
  }
  // Connected and said hello as "raw-peer", advertising `tasks`.
  RawPeer ConnectRawPeer(const std::vector<std::string>& tasks) {
    RawPeer p;
    p.stub = v1::ExecutorService::NewStub(
        grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
    p.stream = p.stub->Connect(p.ctx.get());
    v1::ExecutorMessage hello;
    hello.mutable_hello()->set_executor_id("raw-peer");
    hello.mutable_hello()->set_name("raw-peer");
    for (const std::string& t : tasks) hello.mutable_hello()->add_tasks(t);
    hello.mutable_hello()->set_slots(1);
    EXPECT_TRUE(p.stream->Write(hello));
    return p;
  }
};

TEST_F(Hostile, ARawPeersDeeplyNestedResultFailsTheAttemptAndTheSchedulerLivesOn) {
  StartScheduler();
  RawPeer peer = ConnectRawPeer({"noop"});
  Stream* stream = peer.stream.get();
  v1::Job job =
      Submit(R"({"spec":{"task":"noop","range":{"start":"0","end":"10","shardCount":1},)"
             R"("retry":{"maxAttempts":3}}})");
  v1::SchedulerMessage m;
  std::string lease;
  while (lease.empty() && stream->Read(&m)) {
    if (m.has_assign()) lease = m.assign().assignments(0).lease_id();
  }
  ASSERT_FALSE(lease.empty());
  v1::ExecutorMessage result;
  result.mutable_result()->set_lease_id(lease);
  result.mutable_result()->set_result_json(kDeepItems);
  ASSERT_TRUE(stream->Write(result));

  v1::Job ended = WaitForEnd(job.id(), absl::Seconds(30));
  EXPECT_EQ(ended.state(), v1::JOB_STATE_FAILED) << ended.DebugString() << Logs();
  ASSERT_GE(ended.errors_size(), 1) << ended.DebugString();
  EXPECT_THAT(ended.errors(0).message(), HasSubstr("result nests deeper than 64 levels"));
  EXPECT_TRUE(scheduler()->running()) << Logs();
  peer.ctx->TryCancel();

  // A restart on the same data dir comes up clean and serves the same answer.
  scheduler()->Signal(SIGTERM);
  ASSERT_EQ(scheduler()->Wait(absl::Seconds(30)), 0) << Logs();
  StartScheduler();
  EXPECT_EQ(Get(job.id()).state(), v1::JOB_STATE_FAILED);
}

TEST_F(Hostile, AnExecTaskPrintingADeeplyNestedResultLeavesTheExecutorRunning) {
  const std::string script = dir() + "/deep.sh";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\n"
           "python3 -c \"import sys; n=100000; "
           "sys.stdout.write('{\\\"result\\\":{\\\"x\\\":' + '['*n + ']'*n + "
           "'}}\\\\n')\"\n";
  }
  chmod(script.c_str(), 0755);
  const std::string tasks = dir() + "/tasks.json";
  std::ofstream(tasks) << R"({"tasks": {"deep": {"command": [")" << script
                       << R"("], "timeout": "30s", "max_output_bytes": "1MiB"}}})";
  StartScheduler();
  Process* executor = StartExecutor("exec-1", 1, {"--tasks-file=" + tasks});
  v1::Job job = Submit(
      R"({"spec":{"task":"deep","range":{"start":"0","end":"1","shardCount":1}}})");
  v1::Job ended = WaitForEnd(job.id(), absl::Seconds(60));
  EXPECT_EQ(ended.state(), v1::JOB_STATE_FAILED) << ended.DebugString() << Logs();
  ASSERT_GE(ended.errors_size(), 1) << ended.DebugString();
  EXPECT_THAT(ended.errors(0).message(), HasSubstr("nests deeper than 64 levels"));
  EXPECT_TRUE(executor->running()) << Logs();
  // And it runs the next job.
  v1::Job next = Submit(
      R"({"spec":{"task":"noop","range":{"start":"0","end":"10","shardCount":2}}})");
  EXPECT_EQ(WaitForEnd(next.id(), absl::Seconds(60)).state(), v1::JOB_STATE_SUCCEEDED)
      << Logs();
}

TEST_F(Hostile, APeerClaimingAShardWithAMadeUpLeaseIsRefusedAndTheRealValueIsPersisted) {
  StartScheduler();
  StartExecutor("exec-1", 2);
  v1::Job job =
      Submit(R"({"spec":{"task":"sleep","range":{"start":"0","end":"40","shardCount":4},)"
             R"("params":{"ms":25}}})");
  WaitUntilRunning(job.id());
  RawPeer peer = ConnectRawPeer({});  // advertises no task: gets no work
  Stream* stream = peer.stream.get();
  for (int shard = 0; shard < 4; ++shard) {
    v1::ExecutorMessage forged;
    forged.mutable_result()->set_lease_id(absl::StrCat(job.id(), ".", shard, ".1.00.00"));
    forged.mutable_result()->set_job_id(job.id());
    forged.mutable_result()->set_shard(shard);
    forged.mutable_result()->set_result_json(R"({"items":1000000})");
    ASSERT_TRUE(stream->Write(forged));
  }
  v1::Job ended = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(ended.state(), v1::JOB_STATE_SUCCEEDED) << ended.DebugString() << Logs();
  EXPECT_EQ(nlohmann::json::parse(Result(job.id()).result_json())["items"], 40);
  const std::string metrics = Metrics();
  const double refused =
      MetricValue(metrics, R"(tessera_results_rejected_total{reason="unknown_lease"})") +
      MetricValue(metrics,
                  R"(tessera_results_rejected_total{reason="leased_to_another"})");
  EXPECT_EQ(refused, 4) << metrics;
  EXPECT_NE(scheduler()->Log().find("name=raw-peer"), std::string::npos) << Logs();
  peer.ctx->TryCancel();
}

TEST_F(Hostile, AStoppedSchedulerIsNoticedByItsExecutorsWhichReattachAfterItResumes) {
  StartScheduler({"--heartbeat-timeout=3s"});
  Process* executor = StartExecutor("exec-1", 2, {"--keepalive=1s"});
  v1::Job job =
      Submit(R"({"spec":{"task":"sleep","range":{"start":"0","end":"40","shardCount":8},)"
             R"("params":{"ms":50}}})");
  WaitUntilRunning(job.id());
  scheduler()->Signal(SIGSTOP);
  const absl::Time stopped = absl::Now();
  // Keepalive pings go unanswered: the executor gives the stream up within
  // about two keepalives and starts reconnecting.
  while (executor->Log().find("lost the stream") == std::string::npos &&
         absl::Now() - stopped < absl::Seconds(15)) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  const absl::Duration noticed = absl::Now() - stopped;
  scheduler()->Signal(SIGCONT);
  EXPECT_LT(noticed, absl::Seconds(6)) << Logs();
  v1::Job ended = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(ended.state(), v1::JOB_STATE_SUCCEEDED) << ended.DebugString() << Logs();
  // Exactly: every item counted once.
  EXPECT_EQ(nlohmann::json::parse(Result(job.id()).result_json())["items"], 40);
}

// Occurrences of `needle` in `text`.
int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

TEST_F(Hostile, AnExecutorThatReconnectsThreeTimesDuringOneLongShardCostsItNoLoss) {
  // One loss would fail the shard: every reconnect must re-attach it.
  StartScheduler(
      {"--heartbeat-timeout=2s", "--max-executor-losses=1", "--reattach-grace=10s"});
  Process* executor = StartExecutor("exec-1", 1, {"--keepalive=1s"});
  v1::Job job =
      Submit(R"({"spec":{"task":"sleep","range":{"start":"0","end":"1","shardCount":1},)"
             R"("params":{"ms":12000}}})");
  WaitUntilRunning(job.id());
  for (int i = 1; i <= 3; ++i) {
    // Pausing the scheduler breaks the executor's stream (keepalive) and
    // makes the scheduler drop it (heartbeats): a reconnect, both ways.
    scheduler()->Signal(SIGSTOP);
    for (int t = 0; t < 100 && Count(executor->Log(), "lost the stream") < i; ++t) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    scheduler()->Signal(SIGCONT);
    ASSERT_EQ(Count(executor->Log(), "lost the stream"), i) << Logs();
    for (int t = 0; t < 100 && Count(scheduler()->Log(), "connected name=exec-1") < i + 1;
         ++t) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_GE(Count(scheduler()->Log(), "connected name=exec-1"), i + 1) << Logs();
  }
  v1::Job ended = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(ended.state(), v1::JOB_STATE_SUCCEEDED) << ended.DebugString() << Logs();
  EXPECT_EQ(nlohmann::json::parse(Result(job.id()).result_json())["items"], 1);
}

}  // namespace
}  // namespace tessera::testing
