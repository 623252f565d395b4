// End-to-end: the real tessera-scheduler and tessera-executor binaries as
// processes on loopback, killed at chosen moments; answers checked against a
// single-process reference.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/util/process.h"

namespace tessera {
namespace {

using json = nlohmann::json;
using testing::Process;

// The reference answer, computed here in one process: primes below n.
int64_t ReferencePrimeCount(int64_t n) {
  std::vector<bool> composite(n, false);
  int64_t count = 0;
  for (int64_t i = 2; i < n; ++i) {
    if (composite[i]) continue;
    ++count;
    for (int64_t j = i * i; j < n; j += i) composite[j] = true;
  }
  return count;
}

json WithoutMetadata(json j) {
  j.erase("_metadata");
  return j;
}

double MetricValue(const std::string& metrics, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, name + " ")) {
      return std::stod(std::string(line.substr(name.size() + 1)));
    }
  }
  return -1;
}

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("tessera-e2e"); }

  void StartScheduler() {
    metrics_port_ = testing::FreePort();
    const std::string port_file = dir_ + "/port";
    std::filesystem::remove(port_file);
    scheduler_ = std::make_unique<Process>(
        std::vector<std::string>{
            TESSERA_SCHEDULER_BIN, "--listen=127.0.0.1:0", "--port-file=" + port_file,
            absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port_),
            "--data-dir=" + dir_ + "/data", "--heartbeat-interval=500ms",
            "--heartbeat-timeout=5s"},
        dir_ + "/scheduler.log");
    for (int i = 0; i < 500 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      std::string line;
      if (std::getline(in, line) && !line.empty())
        port_ = std::stoi(line);
      else
        absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_GT(port_, 0) << scheduler_->Log();
    address_ = absl::StrCat("127.0.0.1:", port_);
    jobs_ = v1::JobService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  Process* StartExecutor(const std::string& name, int slots) {
    executors_.push_back(std::make_unique<Process>(
        std::vector<std::string>{TESSERA_EXECUTOR_BIN, "--scheduler=" + address_,
                                 absl::StrCat("--slots=", slots), "--name=" + name,
                                 "--metrics-listen=", "--drain-timeout=20s"},
        dir_ + "/" + name + ".log"));
    return executors_.back().get();
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  v1::Job Submit(const std::string& request_json) {
    v1::SubmitJobRequest req;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(request_json, &req).ok());
    v1::Job job;
    grpc::Status s = jobs_->SubmitJob(Ctx().get(), req, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }

  v1::Job Get(const std::string& id) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    jobs_->GetJob(Ctx().get(), req, &job);
    return job;
  }

  // Polls until `done(job)` or the timeout.
  template <typename Pred>
  v1::Job WaitFor(const std::string& id, Pred done, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    v1::Job job = Get(id);
    while (!done(job) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      job = Get(id);
    }
    return job;
  }

  v1::Job WaitForEnd(const std::string& id, absl::Duration timeout = absl::Seconds(120)) {
    return WaitFor(
        id, [](const v1::Job& j) { return j.state() >= v1::JOB_STATE_SUCCEEDED; },
        timeout);
  }

  v1::GetResultResponse Result(const std::string& id) {
    v1::GetResultRequest req;
    req.set_job_id(id);
    v1::GetResultResponse resp;
    grpc::Status s = jobs_->GetResult(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  std::string Metrics() { return testing::HttpGet(metrics_port_, "/metrics"); }

  std::string Logs() {
    std::string out = "--- scheduler\n" + scheduler_->Log();
    for (auto& e : executors_) out += "--- executor\n" + e->Log();
    return out;
  }

  std::string dir_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::string address_;
  std::unique_ptr<Process> scheduler_;
  std::vector<std::unique_ptr<Process>> executors_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

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
  EXPECT_EQ(r.location(), dir_ + "/data/results/" + job.id() + ".json");
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/data/results")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
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
  address_ = absl::StrCat("127.0.0.1:", testing::FreePort());
  Process* early = StartExecutor("early", 2);
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_TRUE(early->running()) << early->Log();
  // Start the scheduler on the port the executor is dialling.
  metrics_port_ = testing::FreePort();
  scheduler_ = std::make_unique<Process>(
      std::vector<std::string>{TESSERA_SCHEDULER_BIN, "--listen=" + address_,
                               "--metrics-listen=", "--data-dir=" + dir_ + "/data"},
      dir_ + "/scheduler.log");
  jobs_ = v1::JobService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  v1::Job job;
  for (int i = 0; i < 200 && job.id().empty(); ++i) {
    // A fresh channel per try: the first ones saw no server and back off.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    jobs_ = v1::JobService::NewStub(
        grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args));
    v1::SubmitJobRequest req;
    google::protobuf::util::JsonStringToMessage(
        R"({"spec":{"task":"noop","range":{"start":"0","end":"1000","shardSize":"10"}}})",
        &req);
    if (!jobs_->SubmitJob(Ctx().get(), req, &job).ok())
      absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_FALSE(job.id().empty()) << Logs();
  v1::Job done = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_EQ(json::parse(Result(job.id()).result_json())["items"], 1000);
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
  testing::CommandResult r = testing::RunCommand(
      {TESSERA_CLI_BIN, "--scheduler", address_, "submit", "--task", "primes", "--range",
       "0:1000000", "--shards", "16", "--name", "cli", "--wait"},
      {}, absl::Seconds(120));
  EXPECT_EQ(r.status, 0) << r.out << Logs();
  EXPECT_NE(r.out.find("\"primes\": 78498"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("result: " + dir_ + "/data/results/"), std::string::npos) << r.out;
}

TEST_F(Cluster, BufCurlDrivesTheApiThroughReflectionOnly) {
  StartScheduler();
  StartExecutor("exec-1", 2);
  const std::string buf = BUF_BIN;
  ASSERT_TRUE(std::filesystem::exists(buf))
      << buf << " missing: run scripts/install-deps.sh --test";
  const std::string base = "http://" + address_;
  auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {buf, "curl", "--protocol", "grpc",
                                     "--http2-prior-knowledge"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv, {"HOME=" + dir_}, absl::Seconds(60));
  };
  testing::CommandResult list = curl({"--list-services", base});
  ASSERT_EQ(list.status, 0) << list.out;
  EXPECT_NE(list.out.find("tessera.v1.JobService"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("tessera.v1.ExecutorService"), std::string::npos);
  EXPECT_NE(list.out.find("grpc.health.v1.Health"), std::string::npos);

  testing::CommandResult submitted =
      curl({"-d", kPrimesJob, base + "/tessera.v1.JobService/SubmitJob"});
  ASSERT_EQ(submitted.status, 0) << submitted.out;
  const std::string id = json::parse(submitted.out)["id"];
  std::string state;
  for (int i = 0; i < 600 && state != "JOB_STATE_SUCCEEDED"; ++i) {
    testing::CommandResult got =
        curl({"-d", json{{"jobId", id}}.dump(), base + "/tessera.v1.JobService/GetJob"});
    ASSERT_EQ(got.status, 0) << got.out;
    state = json::parse(got.out)["state"];
    if (state != "JOB_STATE_SUCCEEDED") absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(state, "JOB_STATE_SUCCEEDED") << Logs();
  testing::CommandResult result =
      curl({"-d", json{{"jobId", id}}.dump(), base + "/tessera.v1.JobService/GetResult"});
  ASSERT_EQ(result.status, 0) << result.out;
  json r = json::parse(result.out);
  EXPECT_EQ(r["result"]["primes"], 664579);
  EXPECT_EQ(r["sha256"].get<std::string>().size(), 64u);
  testing::CommandResult health =
      curl({"-d", "{}", base + "/grpc.health.v1.Health/Check"});
  EXPECT_NE(health.out.find("SERVING"), std::string::npos) << health.out;
}

}  // namespace
}  // namespace tessera
