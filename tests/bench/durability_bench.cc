// Benchmark of the durable store's cost and of recovery, with the real
// binaries on loopback (use a release build):
//   build/release/tests/bench/durability_bench [shards]
// 1. One noop job of N one-item shards on 2 executors x 2 slots, with
//    --store=sqlite and --store=memory: shards/s from submit to persisted.
// 2. A scheduler SIGKILLed half-way through such a job (sqlite): time until the
//    restarted scheduler answers, and until the job is done.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/util/cluster.h"

namespace {

namespace v1 = tessera::v1;

// The cluster of this benchmark: quiet binaries, no metrics, a short re-attach grace.
struct Cluster {
  std::string store;
  tessera::testing::LocalCluster local{{.scheduler_bin = TESSERA_SCHEDULER_BIN,
                                        .executor_bin = TESSERA_EXECUTOR_BIN,
                                        .log_level = "warn",
                                        .metrics_port = false}};

  void StartScheduler() {
    auto up = local.StartScheduler({"--store=" + store, "--reattach-grace=2s"});
    if (!up.ok()) {
      std::fprintf(stderr, "%s\n", up.status().ToString().c_str());
      std::exit(1);
    }
  }
  void StartExecutors() {
    for (int i = 0; i < 2; ++i) local.StartExecutor(absl::StrCat("executor", i), 2);
  }
  std::string Submit(int64_t shards) {
    v1::SubmitJobRequest req;
    req.mutable_spec()->set_task("noop");
    req.mutable_spec()->mutable_range()->set_end(shards);
    req.mutable_spec()->mutable_range()->set_shard_size(1);
    grpc::ClientContext ctx;
    v1::Job job;
    if (!local.jobs().SubmitJob(&ctx, req, &job).ok()) return "";
    return job.id();
  }
  v1::Job Get(const std::string& id) { return local.Get(id); }
  void WaitDone(const std::string& id) {
    while (Get(id).state() != v1::JOB_STATE_SUCCEEDED)
      absl::SleepFor(absl::Milliseconds(5));
  }
};

double Throughput(const std::string& store, int64_t shards) {
  Cluster c;
  c.store = store;
  c.StartScheduler();
  c.StartExecutors();
  absl::SleepFor(absl::Milliseconds(500));  // executors connected
  const absl::Time t0 = absl::Now();
  const std::string id = c.Submit(shards);
  c.WaitDone(id);
  return static_cast<double>(shards) / absl::ToDoubleSeconds(absl::Now() - t0);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t shards = argc > 1 ? std::atoll(argv[1]) : 100'000;
  std::printf(
      "durability_bench: noop job of %lld one-item shards, 2 executors x 2 slots\n",
      static_cast<long long>(shards));
  const double sqlite = Throughput("sqlite", shards);
  const double memory = Throughput("memory", shards);
  std::printf("  --store=sqlite  %10.0f shards/s\n", sqlite);
  std::printf("  --store=memory  %10.0f shards/s\n", memory);
  std::printf("  durable store cost: %.1f%%\n", 100.0 * (1.0 - sqlite / memory));

  Cluster c;
  c.store = "sqlite";
  c.StartScheduler();
  c.StartExecutors();
  const std::string id = c.Submit(shards);
  while (c.Get(id).shards().succeeded() < shards / 2)
    absl::SleepFor(absl::Milliseconds(5));
  (void)c.local.KillScheduler();
  const absl::Time killed = absl::Now();
  c.StartScheduler();
  const absl::Duration ready = absl::Now() - killed;
  const int64_t kept = c.Get(id).shards().succeeded();
  c.WaitDone(id);
  const absl::Duration done = absl::Now() - killed;
  std::printf(
      "  recovery after SIGKILL at 50%%: serving again in %s (%lld shard results "
      "kept), job done %s after the kill (includes the 2s re-attach grace)\n",
      absl::FormatDuration(ready).c_str(), static_cast<long long>(kept),
      absl::FormatDuration(done).c_str());
  return 0;
}
