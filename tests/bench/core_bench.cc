// Benchmark of the scheduler core alone (no gRPC): how fast it accepts a job of
// a million shards, how many shards per second it dispatches and folds, and
// how much memory that costs. Prints figures; not a test.
//   build/release/tests/bench/core_bench [shards]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "scheduler/core/scheduler_core.h"

namespace {

using tessera::scheduler::Actions;
using tessera::scheduler::AssignAction;
using tessera::scheduler::CoreConfig;
using tessera::scheduler::ExecutorConn;
using tessera::scheduler::JobSpec;
using tessera::scheduler::PersistAction;
using tessera::scheduler::SchedulerCore;

// Resident set size now and at its peak, in MiB (Linux).
std::pair<double, double> MemoryMiB() {
  std::ifstream in("/proc/self/status");
  std::string key;
  double rss = 0, hwm = 0;
  while (in >> key) {
    if (key == "VmRSS:") in >> rss;
    if (key == "VmHWM:") in >> hwm;
  }
  return {rss / 1024, hwm / 1024};
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t shards = argc > 1 ? std::atoll(argv[1]) : 1'000'000;
  constexpr int kExecutors = 8;
  constexpr int kSlots = 4;
  const auto [rss0, hwm0] = MemoryMiB();

  SchedulerCore core{CoreConfig{}};
  absl::Time now = absl::Now();
  JobSpec spec;
  spec.task = "noop";
  spec.range = {0, shards * 1000, 1000, 0};
  Actions out;
  const absl::Time t0 = absl::Now();
  auto job = core.Submit(spec, "bench", now, out);
  const absl::Duration submit = absl::Now() - t0;
  if (!job.ok()) {
    std::fprintf(stderr, "submit: %s\n", job.status().ToString().c_str());
    return 1;
  }
  const auto [rss1, hwm1] = MemoryMiB();

  std::vector<ExecutorConn> conns;
  for (int i = 0; i < kExecutors; ++i) {
    conns.push_back(core.Connect(
        {absl::StrCat("e", i), absl::StrCat("e", i), {"noop"}, kSlots, "bench"}, now,
        out));
  }
  const std::string result = R"({"items":1000})";
  const absl::Time t1 = absl::Now();
  int64_t done = 0;
  int64_t durable_ops = 0;
  std::vector<std::string> persisted;
  while (!out.assigns.empty()) {
    std::vector<AssignAction> batch;
    batch.swap(out.assigns);
    for (const AssignAction& a : batch) {
      core.Result(a.conn, a.assignment.lease_id, a.assignment.job_id, a.assignment.shard,
                  result, now, out);
      ++done;
    }
    // What the store writer would commit; counted and dropped here.
    for (const auto& op : out.durable) {
      if (const auto* p = std::get_if<PersistAction>(&op)) persisted.push_back(p->bytes);
    }
    durable_ops += static_cast<int64_t>(out.durable.size());
    out.durable.clear();
  }
  const absl::Duration run = absl::Now() - t1;
  const auto [rss2, hwm2] = MemoryMiB();
  if (persisted.size() != 1) {
    std::fprintf(stderr, "expected one persist, got %zu\n", persisted.size());
    return 1;
  }
  std::printf("core_bench: %lld shards, %d executors x %d slots\n",
              static_cast<long long>(shards), kExecutors, kSlots);
  std::printf("  submit (accept the job):       %.3f ms\n",
              absl::ToDoubleMilliseconds(submit));
  std::printf("  memory after submit:           +%.2f MiB RSS\n", rss1 - rss0);
  std::printf("  dispatch + result + fold:      %.0f shards/s (%lld in %.2f s)\n",
              static_cast<double>(done) / absl::ToDoubleSeconds(run),
              static_cast<long long>(done), absl::ToDoubleSeconds(run));
  std::printf("  peak RSS over the whole run:   %.2f MiB (start %.2f MiB)\n", hwm2, hwm0);
  std::printf("  durable ops (records, acks): %lld\n",
              static_cast<long long>(durable_ops));
  std::printf("  result: %s", persisted[0].substr(0, 40).c_str());
  std::printf("...\n");
  return 0;
}
