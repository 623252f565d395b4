// A cluster of real tessera-scheduler and tessera-executor processes on
// loopback, for end-to-end tests: start, kill and restart them, and drive the
// JobService API. Only processes the test started are ever signalled. The
// processes are LocalCluster's (tests/util/cluster.h), the harness the
// benchmarks use too.
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
#include "tests/util/temp_dir.h"

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

// The e2e fixture: a LocalCluster (tests/util/cluster.h) with the e2e
// tests' flags (fast heartbeats, a drain timeout), gtest assertions on its
// starts and the JobService calls the tests make.
class Cluster : public ::testing::Test {
 protected:
  // Built with the fixture, not in SetUp, so that a fixture that skips before
  // Cluster::SetUp still has a (processless) cluster to tear down.
  static LocalCluster::Options E2eOptions(const std::string& dir) {
    LocalCluster::Options o;
    o.scheduler_bin = TESSERA_SCHEDULER_BIN;
    o.executor_bin = TESSERA_EXECUTOR_BIN;
    o.dir = dir;
    o.scheduler_flags = {"--heartbeat-interval=500ms", "--heartbeat-timeout=5s"};
    o.executor_flags = {"--drain-timeout=20s"};
    o.ready_poll = absl::Milliseconds(20);
    return o;
  }

  // Starts (or restarts, on the same port and data dir) the scheduler and
  // waits until it answers.
  void StartScheduler(std::vector<std::string> extra = {}) {
    ASSERT_THAT(cluster_.StartScheduler(extra, absl::Seconds(60)), IsOk());
  }

  void KillScheduler() { ASSERT_THAT(cluster_.KillScheduler(), IsOk()); }

  Process* StartExecutor(const std::string& name, int slots,
                         std::vector<std::string> extra = {}) {
    return cluster_.StartExecutor(name, slots, extra);
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
    grpc::Status s = jobs()->SubmitJob(Ctx().get(), req, &job);
    EXPECT_THAT(s, IsOk());
    return job;
  }

  v1::Job Get(const std::string& id) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    jobs()->GetJob(Ctx().get(), req, &job);
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
    grpc::Status s = jobs()->GetResult(Ctx().get(), req, &resp);
    EXPECT_THAT(s, IsOk());
    return resp;
  }

  std::string Metrics() { return HttpGet(metrics_port(), "/metrics"); }

  int ResultFiles() {
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir() + "/data/results")) {
      files += e.path().extension() == ".json" ? 1 : 0;
    }
    return files;
  }

  std::string Logs() { return cluster_.Logs(); }

  LocalCluster& cluster() { return cluster_; }
  const std::string& dir() const { return cluster_.dir(); }
  const std::string& address() const { return cluster_.address(); }
  int metrics_port() const { return cluster_.metrics_port(); }
  Process* scheduler() { return cluster_.scheduler(); }
  std::vector<std::unique_ptr<Process>>& executors() { return cluster_.executors(); }
  v1::JobService::Stub* jobs() { return &cluster_.jobs(); }

 private:
  // The test's dir, removed after the cluster's processes (and, as a base's
  // member, after a derived fixture's) have ended.
  TempDir temp_dir_{"tessera-e2e"};
  LocalCluster cluster_{E2eOptions(temp_dir_.path())};
};

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_E2E_CLUSTER_H_
