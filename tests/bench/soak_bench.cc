// The soak benchmark (`make soak`, issue 19): does a scheduler that runs for a
// long time level off? Two parts:
//
// soak: the real scheduler (sqlite, a short --job-retention) and two
//   executors; small noop jobs submitted at a steady rate; every interval it
//   prints the scheduler's RSS, the database size (db + WAL), the jobs not yet
//   retired (the sum of tessera_jobs), the latency of ListJobs (a first page,
//   and a page filtered to a state no job is in: an index lookup in the store,
//   not a scan) and of a /metrics scrape. At the end: growth of RSS
//   and database size over the last half of the run.
// restart: a data dir holding N finished jobs within their retention (written
//   straight into the store), then the scheduler started on it: time until it
//   answers GetQueueStats and its RSS, against an empty data dir.
//
//   soak_bench [--duration=120] [--rate=500] [--retention=20s] [--interval=10]
//              [--restart_jobs=100000] [--only=soak,restart]
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "scheduler/store/sqlite_store.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/util/cluster.h"

namespace {

namespace v1 = tessera::v1;

struct Options {
  int duration_s = 120;
  int rate = 500;  // jobs submitted per second
  std::string retention = "20s";
  int interval_s = 10;
  int restart_jobs = 100'000;
  std::string only;
};

double FileMiB(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<double>(n) / (1 << 20);
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

struct Scheduler {
  tessera::testing::LocalCluster cluster;
  const std::string& dir = cluster.dir();
  const std::string& address = cluster.address();
  const int metrics_port = cluster.metrics_port();

  explicit Scheduler(const std::string& prefix)
      : cluster({.scheduler_bin = TESSERA_SCHEDULER_BIN,
                 .executor_bin = TESSERA_EXECUTOR_BIN,
                 .dir = tessera::testing::MakeTempDir(prefix),
                 .log_level = "warn",
                 .ready_poll = absl::Milliseconds(2)}) {}

  // The time until it answers, or a negative duration.
  absl::Duration Start(const std::vector<std::string>& extra) {
    absl::StatusOr<absl::Duration> up = cluster.StartScheduler(extra);
    if (!up.ok()) {
      std::fprintf(stderr, "scheduler did not start: %s\n",
                   up.status().ToString().c_str());
      return -absl::Seconds(1);
    }
    return *up;
  }
  double RssMiB() {
    return tessera::testing::ProcStatusMiB(cluster.scheduler()->pid(), "VmRSS");
  }
  double DbMiB() const {
    return FileMiB(dir + "/data/tessera.db") + FileMiB(dir + "/data/tessera.db-wal");
  }
  // One ListJobs call's latency (ms) and the jobs it returned.
  std::pair<double, int> List(std::optional<v1::JobState> state) {
    v1::ListJobsRequest req;
    req.set_page_size(100);
    if (state) req.set_state(*state);
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const absl::Time t0 = absl::Now();
    cluster.jobs().ListJobs(&ctx, req, &resp);
    return {Ms(absl::Now() - t0), resp.jobs_size()};
  }
  double ScrapeMs() {
    const absl::Time t0 = absl::Now();
    tessera::testing::HttpGet(metrics_port, "/metrics");
    return Ms(absl::Now() - t0);
  }
};

int RunSoak(const Options& o) {
  Scheduler s("tessera-soak");
  // Result files go with their jobs here, so that the disk holds only what
  // the retention keeps (the default keeps them: they are the user's data).
  if (s.Start({"--job-retention=" + o.retention, "--delete-results-with-jobs",
               "--store-compact-interval=5s"}) < absl::ZeroDuration()) {
    return 1;
  }
  for (int i = 0; i < 2; ++i) s.cluster.StartExecutor(absl::StrCat("soak-", i), 2);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> submitted{0}, refused{0};
  // Two submitters, each at half the rate (a synchronous call takes ~1 ms).
  std::vector<std::thread> submitters;
  for (int t = 0; t < 2; ++t) {
    submitters.emplace_back([&, t] {
      auto stub = v1::JobService::NewStub(
          grpc::CreateChannel(s.address, grpc::InsecureChannelCredentials()));
      const absl::Duration every = absl::Seconds(2.0 / o.rate);
      absl::Time next = absl::Now();
      while (!stop) {
        v1::SubmitJobRequest req;
        req.mutable_spec()->set_task("noop");
        req.mutable_spec()->set_name(absl::StrCat("soak-", t));
        req.mutable_spec()->mutable_range()->set_start(0);
        req.mutable_spec()->mutable_range()->set_end(10);
        req.mutable_spec()->mutable_range()->set_shard_count(1);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        v1::Job job;
        (stub->SubmitJob(&ctx, req, &job).ok() ? submitted : refused)++;
        next += every;
        const absl::Time now = absl::Now();
        if (next > now) {
          absl::SleepFor(next - now);
        } else if (now - next > absl::Seconds(1)) {
          next = now;  // behind: do not burst to catch up
        }
      }
    });
  }
  std::printf(
      "soak: %d jobs/s of 1 noop shard for %d s, --job-retention=%s, sqlite "
      "(--store-sync=full)\n",
      o.rate, o.duration_s, o.retention.c_str());
  std::printf("%6s %10s %9s %9s %8s %10s %12s %10s\n", "t_s", "submitted", "kept",
              "rss_MiB", "db_MiB", "list_ms", "list_scan_ms", "scrape_ms");
  std::vector<std::pair<double, double>> samples;  // rss, db
  const absl::Time t0 = absl::Now();
  for (int t = o.interval_s; t <= o.duration_s; t += o.interval_s) {
    absl::SleepFor(t0 + absl::Seconds(t) - absl::Now());
    auto [list_ms, held_page] = s.List(std::nullopt);
    // No job is ever CANCELLED here: the (state, seq) index finds none at once.
    auto [scan_ms, none] = s.List(v1::JOB_STATE_CANCELLED);
    const double scrape_ms = s.ScrapeMs();
    const std::string metrics = tessera::testing::HttpGet(s.metrics_port, "/metrics");
    // Jobs not yet retired (in memory or in the store only): tessera_jobs{...}.
    double held = 0;
    for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
      if (absl::StartsWith(line, "tessera_jobs{")) {
        double v = 0;
        if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) held += v;
      }
    }
    samples.push_back({s.RssMiB(), s.DbMiB()});
    std::printf("%6d %10lld %9.0f %9.1f %8.1f %10.2f %12.2f %10.2f\n", t,
                static_cast<long long>(submitted.load()), held, samples.back().first,
                samples.back().second, list_ms, scan_ms, scrape_ms);
    std::fflush(stdout);
    (void)held_page;
    (void)none;
  }
  stop = true;
  for (std::thread& t : submitters) t.join();
  if (samples.size() >= 2) {
    const auto& mid = samples[samples.size() / 2 - (samples.size() % 2 == 0 ? 1 : 0)];
    const auto& last = samples.back();
    std::printf(
        "growth over the last half: rss %+.1f%% (%.1f -> %.1f MiB), db %+.1f%% (%.1f "
        "-> %.1f MiB); %lld submitted, %lld refused\n",
        100 * (last.first / mid.first - 1), mid.first, last.first,
        100 * (last.second / std::max(mid.second, 1e-9) - 1), mid.second, last.second,
        static_cast<long long>(submitted.load()), static_cast<long long>(refused.load()));
  }
  s.cluster.StopAll();
  std::filesystem::remove_all(s.dir);
  return 0;
}

int RunRestart(const Options& o) {
  using namespace tessera::scheduler;
  auto measure = [](const std::string& label, int jobs) -> int {
    Scheduler s("tessera-restart");
    if (jobs > 0) {
      auto store = SqliteStore::Open(s.dir + "/data");
      if (!store.ok()) {
        std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
        return 1;
      }
      const absl::Time now = absl::Now();
      std::vector<JobRecord> records(jobs);
      std::vector<const JobRecord*> ptrs;
      for (int i = 0; i < jobs; ++i) {
        JobRecord& r = records[i];
        r.id = absl::StrCat("0000", i);
        r.seq = i + 1;
        r.spec.name = "restart";
        r.spec.task = "noop";
        r.spec.range = {0, 10, 0, 1};
        r.state = JobState::kSucceeded;
        r.created = r.started = now - absl::Hours(2);
        r.ended = now - absl::Hours(1);
        r.location = s.dir + "/data/results/" + r.id + ".v1.json";
        r.sha256 = std::string(64, 'a');
        r.result_version = 1;
        r.shards_succeeded = 1;
        ptrs.push_back(&r);
      }
      if (absl::Status st = (*store)->Commit(ptrs, {}, /*durable=*/true); !st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        return 1;
      }
    }
    const double db = s.DbMiB();
    // Info: the start's "recovered … in …" line, printed below.
    const absl::Duration up = s.Start({"--log-level=info"});
    if (up < absl::ZeroDuration()) return 1;
    absl::SleepFor(absl::Milliseconds(500));  // settle
    auto [list_ms, n] = s.List(std::nullopt);
    std::printf("%-28s %8d %10.1f %12.0f %9.1f %10.2f\n", label.c_str(), jobs, db, Ms(up),
                s.RssMiB(), list_ms);
    for (absl::string_view line : absl::StrSplit(s.cluster.scheduler()->Log(), '\n')) {
      if (absl::StrContains(line, "recovered")) {
        std::printf("  %s\n", std::string(line.substr(line.find("store "))).c_str());
      }
    }
    s.cluster.StopAll();
    std::filesystem::remove_all(s.dir);
    return 0;
  };
  std::printf("restart: finished jobs within --job-retention, sqlite\n");
  std::printf("%-28s %8s %10s %12s %9s %10s\n", "data dir", "jobs", "db_MiB",
              "serving_ms", "rss_MiB", "list_ms");
  if (int rc = measure("empty", 0); rc != 0) return rc;
  return measure("retained finished jobs", o.restart_jobs);
}

bool ParseFlags(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      const std::string prefix = absl::StrCat("--", name, "=");
      if (absl::StartsWith(a, prefix)) return a.substr(prefix.size());
      return std::nullopt;
    };
    auto count = [&](const char* name, int& out) {
      auto v = value(name);
      if (!v) return false;
      if (!absl::SimpleAtoi(*v, &out) || out < 1) {
        std::fprintf(stderr, "--%s must be an integer >= 1 (got \"%s\")\n", name,
                     v->c_str());
        std::exit(2);
      }
      return true;
    };
    if (count("duration", o.duration_s) || count("rate", o.rate) ||
        count("interval", o.interval_s) || count("restart_jobs", o.restart_jobs)) {
      continue;
    }
    if (auto v = value("retention")) {
      o.retention = *v;
    } else if (auto v = value("only")) {
      o.only = *v;
    } else {
      std::fprintf(stderr, "unknown flag %s (see the comment atop soak_bench.cc)\n",
                   a.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseFlags(argc, argv, o)) return 2;
  signal(SIGPIPE, SIG_IGN);
  auto want = [&](absl::string_view w) {
    if (o.only.empty()) return true;
    for (absl::string_view x : absl::StrSplit(o.only, ',')) {
      if (x == w) return true;
    }
    return false;
  };
  if (want("restart")) {
    if (int rc = RunRestart(o); rc != 0) return rc;
  }
  if (want("soak")) return RunSoak(o);
  return 0;
}
