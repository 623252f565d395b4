// End-to-end: the real tessera-scheduler and tessera-executor binaries as
// processes on loopback, killed at chosen moments; answers checked against a
// single-process reference.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/e2e/cluster.h"

namespace tessera::testing {
namespace {

using json = nlohmann::json;

json WithoutMetadata(json j) {
  j.erase("_metadata");
  return j;
}

constexpr char kPrimesJob[] =
    R"({"spec":{"name":"demo","task":"primes","range":{"start":"0","end":"10000000","shardCount":64}}})";

TEST_F(Cluster, PrimesJobCountsEveryPrimeBelowTenMillionAndWritesTheResultOnce) {
  StartScheduler();
  StartExecutor("exec-1", 2);
  StartExecutor("exec-2", 2);
  v1::Job job = Submit(kPrimesJob);
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  v1::GetResultResponse r = Result(job.id());
  json result = json::parse(r.result_json());
  EXPECT_EQ(result["primes"], 664579);
  EXPECT_EQ(result["primes"], ReferencePrimeCount(10'000'000));
  EXPECT_EQ(result["_metadata"]["shards"]["total"], 64);
  // The file holds exactly the bytes the API reports, written once.
  std::ifstream in(r.location());
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, r.result_json());
  EXPECT_EQ(r.location(), dir() + "/data/results/" + job.id() + ".json");
  EXPECT_EQ(ResultFiles(), 1);
  for (const auto& e : std::filesystem::directory_iterator(dir() + "/data/results")) {
    // Besides it, only the empty spare files the sink keeps ready.
    if (e.path() == r.location()) continue;
    EXPECT_EQ(e.path().filename().string().rfind(".spare-", 0), 0u) << e.path();
    EXPECT_EQ(std::filesystem::file_size(e.path()), 0u) << e.path();
  }
  const std::string metrics = Metrics();
  EXPECT_EQ(MetricValue(metrics, "tessera_result_writes_total"), 1) << metrics;
  EXPECT_EQ(MetricValue(metrics, "tessera_results_persisted_total"), 1);
  EXPECT_EQ(MetricValue(metrics, "tessera_executors_connected"), 2);
}

TEST_F(Cluster, ExecutorKilledMidJobDoesNotChangeTheAnswer) {
  StartScheduler();
  Process* victim = StartExecutor("victim", 1);
  // Many small shards on one slot, so the job is surely mid-way when killed.
  v1::Job job = Submit(
      R"({"spec":{"name":"kill","task":"primes","range":{"start":"0","end":"10000000","shardCount":640}}})");
  v1::Job mid = WaitFor(
      job.id(), [](const v1::Job& j) { return j.shards().succeeded() >= 20; },
      absl::Seconds(60));
  ASSERT_GE(mid.shards().succeeded(), 20) << Logs();
  victim->Signal(SIGKILL);
  ASSERT_EQ(victim->Wait(absl::Seconds(10)), 128 + SIGKILL);
  v1::Job after_kill = Get(job.id());
  ASSERT_NE(after_kill.state(), v1::JOB_STATE_SUCCEEDED) << "job ended before the kill";
  StartExecutor("survivor", 2);
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  json result = json::parse(Result(job.id()).result_json());
  EXPECT_EQ(WithoutMetadata(result), (json{{"primes", ReferencePrimeCount(10'000'000)}}));
  EXPECT_EQ(result["_metadata"]["shards"]["succeeded"], 640);
  EXPECT_GT(result["_metadata"]["attempts"].get<int64_t>(), 640);  // some ran twice
  const std::string metrics = Metrics();
  EXPECT_GE(MetricValue(metrics, "tessera_shards_requeued_total"), 1) << metrics;
  EXPECT_EQ(MetricValue(metrics, "tessera_result_writes_total"), 1);
}

TEST_F(Cluster, ExecutorStartedBeforeTheSchedulerConnectsOnceItIsUp) {
  // The executor retries with backoff until the scheduler is there.
  Process* early = StartExecutor("early", 2);
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_TRUE(early->running()) << early->Log();
  // Start the scheduler on the port the executor is dialling.
  ASSERT_NO_FATAL_FAILURE(StartScheduler()) << Logs();
  v1::Job job = Submit(
      R"({"spec":{"task":"noop","range":{"start":"0","end":"1000","shardSize":"10"}}})");
  ASSERT_FALSE(job.id().empty()) << Logs();
  v1::Job done = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_EQ(json::parse(Result(job.id()).result_json())["items"], 1000);
}

TEST_F(Cluster, AFirstStartWhosePortWasTakenMeanwhileServesOnAFreshOne) {
  // Another process binds the port picked for the scheduler before it does.
  const int taken = cluster().port();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(taken);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_NO_FATAL_FAILURE(StartScheduler()) << Logs();
  close(fd);
  EXPECT_NE(cluster().port(), taken);
  StartExecutor("late", 1);
  v1::Job job = Submit(
      R"({"spec":{"task":"noop","range":{"start":"0","end":"10","shardSize":"5"}}})");
  ASSERT_FALSE(job.id().empty()) << Logs();
  EXPECT_EQ(WaitForEnd(job.id(), absl::Seconds(60)).state(), v1::JOB_STATE_SUCCEEDED)
      << Logs();
}

TEST_F(Cluster, SigtermDrainsAnExecutorWhichFinishesItsShardAndExitsZero) {
  StartScheduler();
  Process* e = StartExecutor("drainer", 1);
  // One 20-item shard at 50 ms per item: ~1 s of work in flight.
  v1::Job job = Submit(
      R"({"spec":{"task":"sleep","params":{"ms":50},"range":{"start":"0","end":"40","shardSize":"20"}}})");
  v1::Job running = WaitFor(
      job.id(), [](const v1::Job& j) { return j.shards().running() > 0; },
      absl::Seconds(30));
  ASSERT_GT(running.shards().running(), 0) << Logs();
  absl::SleepFor(absl::Milliseconds(200));
  e->Signal(SIGTERM);
  EXPECT_EQ(e->Wait(absl::Seconds(30)), 0) << e->Log();
  v1::Job after = Get(job.id());
  EXPECT_EQ(after.shards().succeeded(), 1)
      << after.DebugString() << Logs();  // finished, not lost
  EXPECT_EQ(after.shards().running(), 0);
  StartExecutor("finisher", 1);
  EXPECT_EQ(WaitForEnd(job.id()).state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_EQ(json::parse(Result(job.id()).result_json())["items"], 40);
}

TEST_F(Cluster, CliSubmitWaitPrintsProgressAndTheResult) {
  StartScheduler();
  StartExecutor("exec-1", 2);
  CommandResult r =
      RunCommand({TESSERA_CLI_BIN, "--scheduler", address(), "submit", "--task", "primes",
                  "--range", "0:1000000", "--shards", "16", "--name", "cli", "--wait"},
                 {}, absl::Seconds(120));
  EXPECT_EQ(r.status, 0) << r.out << Logs();
  EXPECT_NE(r.out.find("\"primes\": 78498"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("result: " + dir() + "/data/results/"), std::string::npos)
      << r.out;
}

TEST_F(Cluster, BufCurlDrivesTheApiThroughReflectionOnly) {
  StartScheduler();
  StartExecutor("exec-1", 2);
  const std::string buf = BUF_BIN;
  ASSERT_TRUE(std::filesystem::exists(buf))
      << buf << " missing: run scripts/install-deps.sh --test";
  const std::string base = "http://" + address();
  auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {buf, "curl", "--protocol", "grpc",
                                     "--http2-prior-knowledge"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {"HOME=" + dir()}, absl::Seconds(60));
  };
  CommandResult list = curl({"--list-services", base});
  ASSERT_EQ(list.status, 0) << list.out;
  EXPECT_NE(list.out.find("tessera.v1.JobService"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("tessera.v1.ExecutorService"), std::string::npos);
  EXPECT_NE(list.out.find("grpc.health.v1.Health"), std::string::npos);

  CommandResult submitted =
      curl({"-d", kPrimesJob, base + "/tessera.v1.JobService/SubmitJob"});
  ASSERT_EQ(submitted.status, 0) << submitted.out;
  const std::string id = json::parse(submitted.out)["id"];
  std::string state;
  for (int i = 0; i < 600 && state != "JOB_STATE_SUCCEEDED"; ++i) {
    CommandResult got =
        curl({"-d", json{{"jobId", id}}.dump(), base + "/tessera.v1.JobService/GetJob"});
    ASSERT_EQ(got.status, 0) << got.out;
    state = json::parse(got.out)["state"];
    if (state != "JOB_STATE_SUCCEEDED") absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(state, "JOB_STATE_SUCCEEDED") << Logs();
  CommandResult result =
      curl({"-d", json{{"jobId", id}}.dump(), base + "/tessera.v1.JobService/GetResult"});
  ASSERT_EQ(result.status, 0) << result.out;
  json r = json::parse(result.out);
  EXPECT_EQ(r["result"]["primes"], 664579);
  EXPECT_EQ(r["sha256"].get<std::string>().size(), 64u);
  CommandResult health = curl({"-d", "{}", base + "/grpc.health.v1.Health/Check"});
  EXPECT_NE(health.out.find("SERVING"), std::string::npos) << health.out;
}

}  // namespace
}  // namespace tessera::testing
