// A cluster of real tessera-scheduler and tessera-executor processes on
// loopback, for end-to-end tests: start, kill and restart them, and drive the
// JobService API. Only processes the test started are ever signalled. Starting
// and waiting for a scheduler is the harness the benchmarks use too
// (tests/util/cluster.h).
#ifndef TESSERA_TESTS_E2E_CLUSTER_H_
#define TESSERA_TESTS_E2E_CLUSTER_H_

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/util/cluster.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {

using ::tessera::testing::IsOk;

// Primes below n, counted here in one process: the reference answer.
inline int64_t ReferencePrimeCount(int64_t n) {
  std::vector<bool> composite(n, false);
  int64_t count = 0;
  for (int64_t i = 2; i < n; ++i) {
    if (composite[i]) continue;
    ++count;
    for (int64_t j = i * i; j < n; j += i) composite[j] = true;
  }
  return count;
}

// examples/promo/promo.py (in `promo_dir`) run once over [1, 1001), as one
// process: the reference answer of a promo job with `params`.
inline nlohmann::json PromoReference(const std::string& promo_dir,
                                     const std::string& params) {
  CommandResult r = RunCommand(
      {"python3", promo_dir + "/promo.py"},
      {"TESSERA_RANGE_START=1", "TESSERA_RANGE_END=1001", "TESSERA_PARAMS=" + params});
  EXPECT_EQ(r.status, 0) << r.out;
  nlohmann::json result;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("result")) result = j["result"];
  }
  return result;
}

// The SubmitJobRequest of the promo example over [1, 1001) in 8 shards, its
// amount maps merged ("merge" refuses an amount produced twice).
inline std::string PromoJob(const std::string& params) {
  return absl::StrCat(R"({"spec":{"name":"promo","task":"promo","params":)", params,
                      R"(,"range":{"start":"1","end":"1001","shardCount":8},)",
                      R"("aggregate":{"defaultReducer":"merge"}}})");
}

// The value of sample `name` (with labels, e.g. `x_total{outcome="a"}`) in a
// Prometheus text scrape, or -1.
inline double MetricValue(const std::string& metrics, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, name + " ")) {
      return std::stod(std::string(line.substr(name.size() + 1)));
    }
  }
  return -1;
}

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("tessera-e2e");
    port_ = FreePort();
    metrics_port_ = FreePort();
    address_ = absl::StrCat("127.0.0.1:", port_);
    jobs_ = v1::JobService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  // Starts (or restarts, on the same port and data dir) the scheduler and
  // waits until it answers.
  void StartScheduler(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        TESSERA_SCHEDULER_BIN,
        "--listen=" + address_,
        absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port_),
        "--data-dir=" + dir_ + "/data",
        "--heartbeat-interval=500ms",
        "--heartbeat-timeout=5s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    scheduler_ = std::make_unique<Process>(argv, dir_ + "/scheduler.log");
    auto stub = WaitForScheduler(address_, *scheduler_, absl::Seconds(60),
                                 absl::Milliseconds(20));
    ASSERT_THAT(stub, IsOk());
    jobs_ = *std::move(stub);
  }

  void KillScheduler() {
    scheduler_->Signal(SIGKILL);
    ASSERT_EQ(scheduler_->Wait(absl::Seconds(10)), 128 + SIGKILL);
  }

  Process* StartExecutor(const std::string& name, int slots,
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        TESSERA_EXECUTOR_BIN, "--scheduler=" + address_, absl::StrCat("--slots=", slots),
        "--name=" + name,     "--metrics-listen=",       "--drain-timeout=20s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    executors_.push_back(std::make_unique<Process>(argv, dir_ + "/" + name + ".log"));
    return executors_.back().get();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  v1::Job Submit(const std::string& request_json) {
    v1::SubmitJobRequest req;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(request_json, &req).ok())
        << request_json;
    v1::Job job;
    grpc::Status s = jobs_->SubmitJob(Ctx().get(), req, &job);
    EXPECT_THAT(s, IsOk());
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
    EXPECT_THAT(s, IsOk());
    return resp;
  }

  std::string Metrics() { return HttpGet(metrics_port_, "/metrics"); }

  int ResultFiles() {
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/data/results")) {
      files += e.path().extension() == ".json" ? 1 : 0;
    }
    return files;
  }

  std::string Logs() {
    std::string out = "--- scheduler\n" + (scheduler_ ? scheduler_->Log() : "");
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

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_E2E_CLUSTER_H_
