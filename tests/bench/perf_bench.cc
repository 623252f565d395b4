// Issue 8's benchmark: Tessera against the physical floor, with the real
// binaries on loopback. All figures come from one run on one machine, so the
// ratios hold even when the machine is noisy.
//   make bench      (release build; writes build/release/bench.json)
//   build/release/tests/bench/perf_bench [--flag=value ...]   (--help lists them)
// Workloads:
//   floor    raw gRPC bidirectional stream (ExecutorService messages, a
//            bench-local server process built like the scheduler's): one way,
//            echo (one message each way, pipelined) and serial round trips
//   noop     one job of N one-item noop shards on 2 executors x 2 slots,
//            submit -> persisted, --store=sqlite and --store=memory
//   jobfloor what one small job costs at the least (job_floor.h): its gRPC
//            calls against a server that does nothing else, a bare durable
//            SQLite commit, the file sink's write; run before jobs and latency
//   jobs     many single-shard jobs submitted at once from client threads,
//            with every process's CPU per job and the rate the cores allow
//            with the scheduler at its floor
//   latency  single-shard jobs one after another, each waited for on a
//            WatchJob stream: p50/p99 submit -> the SUCCEEDED event read, and
//            the scheduler's CPU per job beside its floor (the disk's parts
//            measured again just before each store's run)
//   idle     single-shard jobs after idle gaps of 0.2 s to 2 s (a gap is
//            measured from the end of the previous call): the worst SubmitJob,
//            GetJob and submit -> end event at each gap
//   primes   primes over [1, end) in 64 shards on 2 executors x 1 slot vs the
//            primes handler run single-threaded in this process; each timing
//            is the best of --primes_runs, the job's on a warm cluster (its
//            first run is shown beside it), with the CPU time per shard of
//            the scheduler and the executors
//   scale    a 1,000,000-shard noop job: SubmitJob latency and scheduler RSS
//            growth (VmHWM); 1,000 fake executors (raw Connect streams from
//            this process) and a job that must complete correctly across them
// --smoke runs every workload at tiny sizes and exits 1 unless each completes
// with correct results and sane numbers (ctest bench.smoke).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "executor/handlers/handler.h"
#include "nlohmann/json.hpp"
#include "scheduler/sink/file_sink.h"
#include "tessera/v1/executor.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/bench/job_floor.h"
#include "tests/util/cluster.h"
#include "tests/util/postgres_server.h"
#include "tests/util/process.h"

namespace {

using tessera::testing::Process;
namespace v1 = tessera::v1;
using json = nlohmann::json;

// ---------------------------------------------------------------------------
// Options

struct Options {
  int64_t echo_messages = 200'000;
  int64_t echo_round_trips = 20'000;
  int64_t sink_writes = 300;
  int64_t noop_shards = 200'000;
  int64_t jobs = 5'000;
  int64_t job_threads = 16;
  int64_t latency_jobs = 2'000;
  int64_t idle_calls = 4;             // idle: jobs (and GetJob calls) after each gap
  std::string idle_store = "sqlite";  // idle: the scheduler's --store
  int64_t primes_end = 20'000'000;
  int64_t primes_shards = 64;
  // Each timing is the best of this many runs (the VM's noise is +-50% on a
  // job this short); the job's first run on a new cluster is reported apart.
  int64_t primes_runs = 5;
  // At 2*10^7 the sieve is ~10 ms of CPU, so the job's fixed costs dominate;
  // this larger range (0 = skipped) shows the efficiency of long shards.
  int64_t primes_big_end = 1'000'000'000;
  int64_t scale_shards = 1'000'000;
  bool scale_run = true;  // also run the big job to the end (peak RSS while it runs)
  int64_t fleet = 1'000;
  int64_t fleet_shards = 20'000;
  std::string only;  // comma-separated workloads; empty = all
  std::string json_path;
  std::string scheduler_wrapper;  // e.g. "valgrind --tool=callgrind" (space-separated)
  std::string executor_wrapper;
  // Passed to the scheduler and executors; empty: their default (info), as
  // users run them.
  std::string log_level;
  bool keep = false;  // keep temp dirs (logs, data)
  bool smoke = false;
  std::string echo_server;  // internal: serve the floor's echo on this address
};

void ApplySmoke(Options& o) {
  o.echo_messages = 2'000;
  o.echo_round_trips = 500;
  o.sink_writes = 10;
  o.noop_shards = 2'000;
  o.jobs = 100;
  o.job_threads = 4;
  o.latency_jobs = 50;
  o.idle_calls = 1;
  o.primes_end = 1'000'000;
  o.primes_shards = 8;
  o.primes_runs = 2;
  o.primes_big_end = 0;
  o.scale_shards = 100'000;
  o.scale_run = false;
  o.fleet = 20;
  o.fleet_shards = 500;
}

}  // namespace

// Sizes and switches. A size left unset takes Options' default, or ApplySmoke's under
// --smoke (--help lists both).
ABSL_FLAG(std::optional<int64_t>, echo_messages, std::nullopt,
          "floor: messages one way and echoed");
ABSL_FLAG(std::optional<int64_t>, echo_round_trips, std::nullopt,
          "floor: serial round trips");
ABSL_FLAG(std::optional<int64_t>, sink_writes, std::nullopt,
          "floor: durable result writes (the disk's part of latency)");
ABSL_FLAG(std::optional<int64_t>, noop_shards, std::nullopt,
          "noop throughput: one-item shards");
ABSL_FLAG(std::optional<int64_t>, jobs, std::nullopt,
          "many small jobs: single-shard jobs");
ABSL_FLAG(std::optional<int64_t>, job_threads, std::nullopt,
          "many small jobs: client threads");
ABSL_FLAG(std::optional<int64_t>, latency_jobs, std::nullopt,
          "latency: jobs one after another");
ABSL_FLAG(std::optional<int64_t>, idle_calls, std::nullopt,
          "idle: jobs and GetJob calls after each idle gap");
ABSL_FLAG(std::string, idle_store, Options().idle_store,
          "idle: --store of the scheduler (sqlite or memory)");
ABSL_FLAG(std::optional<int64_t>, primes_end, std::nullopt, "primes: range [1, end)");
ABSL_FLAG(std::optional<int64_t>, primes_shards, std::nullopt, "primes: shards");
ABSL_FLAG(std::optional<int64_t>, primes_runs, std::nullopt,
          "primes: runs of each timing (the best counts)");
ABSL_FLAG(std::optional<int64_t>, primes_big_end, std::nullopt,
          "primes: also over [1, this) (0 = skip)");
ABSL_FLAG(std::optional<int64_t>, scale_shards, std::nullopt,
          "scale: shards of the big noop job");
ABSL_FLAG(std::optional<bool>, scale_run, std::nullopt,
          "scale: also run the big job to the end");
ABSL_FLAG(std::optional<int64_t>, fleet, std::nullopt,
          "scale: fake executors connected at once");
ABSL_FLAG(std::optional<int64_t>, fleet_shards, std::nullopt,
          "scale: shards of the job run across the fleet");
ABSL_FLAG(std::string, only, "",
          "comma-separated: floor,noop,jobs,latency,idle,primes,scale,fleet");
ABSL_FLAG(std::string, json, "", "write the figures to this file");
ABSL_FLAG(std::string, scheduler_wrapper, "",
          "command prefix for the scheduler (profilers)");
ABSL_FLAG(std::string, executor_wrapper, "", "command prefix for the executors");
ABSL_FLAG(std::string, log_level, "",
          "--log-level of the scheduler and executors (default: theirs, info)");
ABSL_FLAG(bool, keep, false, "keep temp dirs (data, logs)");
ABSL_FLAG(bool, smoke, false,
          "tiny sizes (explicit sizes still win); exit 1 unless results are correct "
          "and sane");
ABSL_FLAG(std::string, echo_server, "", "internal: run the floor's echo server");

namespace {

// A count flag and the option it sets (at least `min`).
struct CountFlag {
  absl::Flag<std::optional<int64_t>>* flag;
  int64_t* value;
  int64_t min = 1;
};

std::vector<CountFlag> CountFlags(Options& o) {
  // Sizes are counts: at least 1, but --primes_big_end=0 skips that run.
  return {
      {&FLAGS_echo_messages, &o.echo_messages},
      {&FLAGS_echo_round_trips, &o.echo_round_trips},
      {&FLAGS_sink_writes, &o.sink_writes},
      {&FLAGS_noop_shards, &o.noop_shards},
      {&FLAGS_jobs, &o.jobs},
      {&FLAGS_job_threads, &o.job_threads},
      {&FLAGS_latency_jobs, &o.latency_jobs},
      {&FLAGS_idle_calls, &o.idle_calls},
      {&FLAGS_primes_end, &o.primes_end},
      {&FLAGS_primes_shards, &o.primes_shards},
      {&FLAGS_primes_runs, &o.primes_runs},
      {&FLAGS_primes_big_end, &o.primes_big_end, 0},
      {&FLAGS_scale_shards, &o.scale_shards},
      {&FLAGS_fleet, &o.fleet},
      {&FLAGS_fleet_shards, &o.fleet_shards},
  };
}

// The usage line and every size's default, and under --smoke.
std::string Usage() {
  Options defaults, smoke;
  ApplySmoke(smoke);
  std::string out = "perf_bench [--flag=value ...]\nsizes (default / under --smoke):";
  const std::vector<CountFlag> d = CountFlags(defaults), s = CountFlags(smoke);
  for (size_t i = 0; i < d.size(); ++i) {
    absl::StrAppend(&out, "\n  --", absl::GetFlagReflectionHandle(*d[i].flag).Name(), " ",
                    *d[i].value, " / ", *s[i].value);
  }
  absl::StrAppend(&out, "\n  --scale_run ", defaults.scale_run ? "true" : "false", " / ",
                  smoke.scale_run ? "true" : "false");
  return out;
}

bool ParseFlags(int argc, char** argv, Options& o) {
  absl::SetProgramUsageMessage(Usage());
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "unexpected argument %s\n", rest[1]);
    return false;
  }
  // --smoke first, so that explicit sizes still override it.
  o.smoke = absl::GetFlag(FLAGS_smoke);
  if (o.smoke) ApplySmoke(o);
  for (const CountFlag& c : CountFlags(o)) {
    const std::optional<int64_t> n = absl::GetFlag(*c.flag);
    if (!n.has_value()) continue;
    if (*n < c.min) {
      std::fprintf(stderr, "--%s must be an integer >= %lld (got \"%lld\")\n",
                   std::string(absl::GetFlagReflectionHandle(*c.flag).Name()).c_str(),
                   static_cast<long long>(c.min), static_cast<long long>(*n));
      return false;
    }
    *c.value = *n;
  }
  if (const std::optional<bool> run = absl::GetFlag(FLAGS_scale_run)) o.scale_run = *run;
  o.idle_store = absl::GetFlag(FLAGS_idle_store);
  o.only = absl::GetFlag(FLAGS_only);
  o.json_path = absl::GetFlag(FLAGS_json);
  o.scheduler_wrapper = absl::GetFlag(FLAGS_scheduler_wrapper);
  o.executor_wrapper = absl::GetFlag(FLAGS_executor_wrapper);
  o.log_level = absl::GetFlag(FLAGS_log_level);
  o.keep = absl::GetFlag(FLAGS_keep);
  o.echo_server = absl::GetFlag(FLAGS_echo_server);
  return true;
}

// ---------------------------------------------------------------------------
// Helpers

std::string SelfExe() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// The p-th quantile (0 <= p < 1) of `v`, which it sorts; NaN if empty.
double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// CPU time the hypervisor gave to others while this guest wanted it ("steal",
// the 8th figure of /proc/stat's cpu line), all CPUs together, in seconds;
// NaN where it cannot be read.
double StealSeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user, nice, system, idle, iowait, irq, softirq, steal;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >>
        steal) ||
      cpu != "cpu") {
    return std::nan("");
  }
  return steal / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU time the process's live threads have run, in seconds (from schedstat:
// exact, unlike the tick-based utime; a thread that exits takes its share
// along), or NaN where the kernel has no schedstat.
double CpuSeconds(pid_t pid) {
  std::error_code ec;
  double ns = 0;
  bool any = false;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    std::ifstream in(task.path() / "schedstat");
    double run = 0;
    if (in >> run) {
      ns += run;
      any = true;
    }
  }
  return any ? ns / 1e9 : std::nan("");
}

// --store=postgres: one real PostgreSQL server on loopback for the whole run
// (tests/util/postgres_server.h: started as the tests start it, stopped by
// PID at exit), a fresh database per cluster, the password in a file.
std::vector<std::string> PostgresFlags(const std::string& dir) {
  static std::unique_ptr<::tessera::testing::PostgresServer> server;
  static int databases = 0;
  if (server == nullptr) {
    server = std::make_unique<::tessera::testing::PostgresServer>();
    if (absl::Status s = server->Start(); !s.ok()) {
      std::fprintf(stderr, "perf_bench: no PostgreSQL server: %s\n",
                   s.ToString().c_str());
      server.reset();
      return {};
    }
  }
  const std::string db = absl::StrCat("bench_", ++databases);
  if (!server->CreateDatabase(db).ok()) return {};
  const std::string password_file = dir + "/pgpass";
  std::ofstream(password_file) << server->password() << "\n";
  return {"--postgres-url=" + server->Url(db),
          "--postgres-password-file=" + password_file};
}

// A --*_wrapper flag (space-separated) as the argv prefix LocalCluster takes.
std::vector<std::string> WrapperArgv(const std::string& wrapper) {
  return absl::StrSplit(wrapper, ' ', absl::SkipEmpty());
}

// Temp dirs to remove at exit, not as each workload ends: on a file system
// without a journal ext4 skips inodes freed in the last minutes when it
// allocates new ones, so a workload that deleted thousands of result files
// would tax every file the next workload creates (a job's result is one).
std::vector<std::string> g_dirs_to_remove;
void RemoveLater(const std::string& dir) { g_dirs_to_remove.push_back(dir); }
void RemoveDirs(const Options& o) {
  for (const std::string& dir : g_dirs_to_remove) {
    if (o.keep) {
      std::printf("  (kept %s)\n", dir.c_str());
    } else {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }
}

// Failed checks (wrong results, jobs that did not finish, insane numbers).
std::vector<std::string> g_failures;
void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "CHECK FAILED: %s\n", what.c_str());
    g_failures.push_back(what);
  }
}

// ---------------------------------------------------------------------------
// A scheduler and its executors on loopback.

// The processes are LocalCluster's (tests/util/cluster.h); this adds the
// stores, the checks and the client calls the workloads measure with.
tessera::testing::LocalCluster::Options ClusterOptions(const Options& o) {
  tessera::testing::LocalCluster::Options c;
  c.scheduler_bin = TESSERA_SCHEDULER_BIN;
  c.executor_bin = TESSERA_EXECUTOR_BIN;
  c.dir = tessera::testing::MakeTempDir("tessera-perf");
  c.scheduler_wrapper = WrapperArgv(o.scheduler_wrapper);
  c.executor_wrapper = WrapperArgv(o.executor_wrapper);
  c.log_level = o.log_level;
  c.metrics_port = false;
  return c;
}

struct Cluster {
  const Options& opts;
  tessera::testing::LocalCluster local;
  const std::string address = local.address();

  explicit Cluster(const Options& o) : opts(o), local(ClusterOptions(o)) {}
  ~Cluster() {
    local.StopAll();  // SIGKILL
    RemoveLater(local.dir());
  }

  bool StartScheduler(const std::string& store,
                      const std::vector<std::string>& extra = {}) {
    std::vector<std::string> flags = {"--store=" + store};
    if (store == "postgres") {
      const std::vector<std::string> pg = PostgresFlags(local.dir());
      if (pg.empty()) return false;
      flags.insert(flags.end(), pg.begin(), pg.end());
    }
    flags.insert(flags.end(), extra.begin(), extra.end());
    const absl::StatusOr<absl::Duration> started =
        local.StartScheduler(flags, absl::Seconds(60));
    if (!started.ok()) {
      Check(false, "scheduler did not start: " + started.status().ToString());
      return false;
    }
    return true;
  }
  bool StartExecutors(int n, int slots) {
    for (int i = 0; i < n; ++i) local.StartExecutor(absl::StrCat("bench-", i), slots);
    return WaitExecutors(n);
  }
  bool WaitExecutors(int n, absl::Duration timeout = absl::Seconds(60)) {
    const absl::Status s = local.WaitExecutors(n, timeout);
    Check(s.ok(), std::string(s.message()));
    return s.ok();
  }
  // The scheduler's and the executors' CPU seconds so far. Under a wrapper (a
  // profiler) the pids are the wrapper's: NaN.
  std::pair<double, double> Cpu() const {
    if (!opts.scheduler_wrapper.empty() || !opts.executor_wrapper.empty()) {
      return {std::nan(""), std::nan("")};
    }
    double sum = 0;
    for (const auto& e : local.executors()) sum += CpuSeconds(e->pid());
    return {CpuSeconds(local.scheduler()->pid()), sum};
  }
  v1::GetQueueStatsResponse Stats() { return local.Stats(); }
  v1::JobService::Stub* jobs() { return &local.jobs(); }
  // The job's id, or "" (and a failed check).
  std::string Submit(const std::string& task, int64_t start, int64_t end,
                     int64_t shard_size, int64_t shard_count = 0) {
    v1::SubmitJobRequest req;
    req.mutable_spec()->set_task(task);
    req.mutable_spec()->mutable_range()->set_start(start);
    req.mutable_spec()->mutable_range()->set_end(end);
    if (shard_size > 0) req.mutable_spec()->mutable_range()->set_shard_size(shard_size);
    if (shard_count > 0) {
      req.mutable_spec()->mutable_range()->set_shard_count(shard_count);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::Job job;
    const grpc::Status s = jobs()->SubmitJob(&ctx, req, &job);
    Check(s.ok(), "SubmitJob: " + s.error_message());
    return s.ok() ? job.id() : "";
  }
  v1::Job Get(const std::string& id) { return local.Get(id); }
  static bool Terminal(v1::JobState s) {
    return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
           s == v1::JOB_STATE_CANCELLED || s == v1::JOB_STATE_PARTIAL;
  }
  // Waits on a WatchJob stream for the job's end, as a client would; true if
  // it SUCCEEDED.
  // `ended`, if given, is when the end was read (before the stream's teardown).
  bool WatchDone(const std::string& id, absl::Duration timeout,
                 absl::Time* ended = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    v1::WatchJobRequest req;
    req.set_job_id(id);
    auto stream = jobs()->WatchJob(&ctx, req);
    v1::JobEvent event;
    while (stream->Read(&event)) {
      if (!Terminal(event.job().state())) continue;
      if (ended != nullptr) *ended = absl::Now();
      ctx.TryCancel();
      stream->Finish();
      Check(event.job().state() == v1::JOB_STATE_SUCCEEDED,
            absl::StrCat("job ", id, " ended ", v1::JobState_Name(event.job().state())));
      return event.job().state() == v1::JOB_STATE_SUCCEEDED;
    }
    const grpc::Status s = stream->Finish();
    Check(false, absl::StrCat("watching job ", id,
                              " ended without its end: ", s.error_message()));
    return false;
  }
  // Polls GetJob (every `poll`; zero = tightly) until the job ends; true if it
  // SUCCEEDED.
  bool WaitDone(const std::string& id, absl::Duration timeout,
                absl::Duration poll = absl::Milliseconds(2)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      const v1::Job job = Get(id);
      if (Terminal(job.state())) {
        Check(job.state() == v1::JOB_STATE_SUCCEEDED,
              absl::StrCat("job ", id, " ended ", v1::JobState_Name(job.state()), ": ",
                           job.message()));
        return job.state() == v1::JOB_STATE_SUCCEEDED;
      }
      if (poll > absl::ZeroDuration()) absl::SleepFor(poll);
    }
    Check(false, absl::StrCat("job ", id, " did not finish within ",
                              absl::FormatDuration(timeout)));
    return false;
  }
  // The folded result's field `key` (-1 when unavailable).
  int64_t ResultField(const std::string& id, const std::string& key) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::GetResultRequest req;
    req.set_job_id(id);
    v1::GetResultResponse r;
    if (!jobs()->GetResult(&ctx, req, &r).ok()) return -1;
    const json j = json::parse(r.result_json(), nullptr, false);
    if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer()) return -1;
    return j[key].get<int64_t>();
  }
  double RssMiB() {
    return tessera::testing::ProcStatusMiB(local.scheduler()->pid(), "VmRSS");
  }
  double HwmMiB() {
    return tessera::testing::ProcStatusMiB(local.scheduler()->pid(), "VmHWM");
  }
};

// ---------------------------------------------------------------------------
// 1. Floor: an echo server speaking ExecutorService with the scheduler's
// reactor pattern (one write in flight, a queue behind it), and a client using
// the synchronous stream API like the executor does.

// A result message of realistic size (16-hex ids, a small JSON object).
v1::ExecutorMessage EchoPayload(int64_t shard) {
  v1::ExecutorMessage m;
  v1::ShardResult* r = m.mutable_result();
  r->set_lease_id("3f9c1e0a7b2d4c51-00000001");
  r->set_job_id("3f9c1e0a7b2d4c51");
  r->set_result_json("{\"items\":1}");
  r->set_shard(shard);
  return m;
}

class EchoReactor
    : public grpc::ServerBidiReactor<v1::ExecutorMessage, v1::SchedulerMessage> {
 public:
  EchoReactor() { StartRead(&in_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      absl::MutexLock lock(&mu_);
      finishing_ = true;
      if (!writing_) Finish(grpc::Status::OK);
      return;
    }
    if (in_.has_result() && in_.result().shard() == -2) {
      // The job floor (job_floor.h): the scheduler's two messages of a job on
      // an executor stream, an assignment and the result's ack.
      v1::SchedulerMessage assign;
      v1::Assignment* a = assign.mutable_assign()->add_assignments();
      a->set_lease_id(in_.result().lease_id());
      a->set_job_id(in_.result().job_id());
      a->set_task("noop");
      a->set_shard(0);
      a->set_end(1);
      a->set_params_json("{}");
      Send(std::move(assign));
      v1::SchedulerMessage m;
      m.mutable_ack()->add_lease_ids(in_.result().lease_id());
      Send(std::move(m));
    } else if (in_.has_result() && in_.result().shard() >= 0) {
      // Echo: one Ack per result, as the scheduler acknowledges results.
      v1::SchedulerMessage m;
      m.mutable_ack()->add_lease_ids(in_.result().lease_id());
      Send(std::move(m));
    } else if (in_.has_result()) {
      ++one_way_;  // one way: counted, not answered
    } else if (in_.has_draining()) {
      v1::SchedulerMessage m;
      m.mutable_ack()->add_lease_ids(absl::StrCat(one_way_));
      one_way_ = 0;
      Send(std::move(m));
    }
    StartRead(&in_);
  }
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    out_.pop_front();
    if (ok && !out_.empty()) {
      StartWrite(&out_.front());
      return;
    }
    if (!ok) out_.clear();
    writing_ = false;
    if (finishing_) Finish(grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  void Send(v1::SchedulerMessage m) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    out_.push_back(std::move(m));
    if (!writing_) {
      writing_ = true;
      StartWrite(&out_.front());
    }
  }

  v1::ExecutorMessage in_;
  int64_t one_way_ = 0;
  absl::Mutex mu_;
  std::deque<v1::SchedulerMessage> out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
};

class EchoService : public v1::ExecutorService::CallbackService {
  grpc::ServerBidiReactor<v1::ExecutorMessage, v1::SchedulerMessage>* Connect(
      grpc::CallbackServerContext*) override {
    return new EchoReactor();
  }
};

int RunEchoServer(const std::string& address) {
  EchoService service;
  std::unique_ptr<grpc::Service> jobs = tessera::bench::MakeFloorJobService();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  builder.RegisterService(jobs.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return 1;
  server->Wait();  // until the bench kills us
  return 0;
}

struct FloorFigures {
  double one_way = 0;     // messages/s, client -> server, no answers
  double echo = 0;        // messages/s each way, pipelined (one message each way)
  double round_trip = 0;  // serial round trips/s
  double round_trip_us = 0;
  double sink_write_p50_ms = 0;  // the file sink's durable write of a small result
  // Its CPU time (this thread's, kernel included) per write with its spare
  // file made: the part of a job's scheduler CPU the file system takes
  // (creating a file's inode on a busy ext4 can cost far more than its fsyncs).
  double sink_write_cpu_us = 0;
};

using tessera::bench::ThreadCpuSeconds;

// Starts perf_bench's echo server (the ExecutorService echo and the job
// floor's JobService) in `dir`; `*channel` is connected to it.
std::unique_ptr<Process> StartEchoServer(const std::string& dir,
                                         std::shared_ptr<grpc::Channel>* channel,
                                         std::string* address) {
  *address = absl::StrCat("127.0.0.1:", tessera::testing::FreePort());
  auto server = std::make_unique<Process>(
      std::vector<std::string>{SelfExe(), "--echo_server=" + *address},
      dir + "/echo.log");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    *channel =
        grpc::CreateCustomChannel(*address, grpc::InsecureChannelCredentials(), args);
    if ((*channel)->WaitForConnected(std::chrono::system_clock::now() +
                                     std::chrono::milliseconds(200))) {
      return server;
    }
    if (absl::Now() > deadline) {
      Check(false, "echo server did not start");
      return nullptr;
    }
  }
}

// The disk: every job's end pays the file sink's durable write (spare file
// filled, fsync, rename, directory fsync) — the same code, on the same disk.
struct SinkWriteFigures {
  double p50_ms = 0;            // the whole write
  double published_p50_ms = 0;  // until readers see it (a job's end waits this long)
  double cpu_us = 0;            // this thread's CPU per write, its spare file made
};

SinkWriteFigures SinkWriteFloor(const std::string& dir, int64_t writes) {
  SinkWriteFigures f;
  auto sink = tessera::scheduler::FileSink::Create(dir + "/results");
  Check(sink.ok(), "file sink: " + sink.status().ToString());
  if (!sink.ok()) return f;
  std::vector<double> ms, published_ms;
  const double cpu0 = ThreadCpuSeconds();
  for (int64_t i = 0; i < writes; ++i) {
    const absl::Time w0 = absl::Now();
    // Write's three steps, timed apart (result_sink.h).
    auto staged = (*sink)->Stage("0123456789abcdef", static_cast<int32_t>(i + 1),
                                 "{\"items\": 1}\n");
    auto published =
        staged.ok()
            ? (*sink)->Publish(*staged)
            : absl::StatusOr<tessera::scheduler::PersistedResult>(staged.status());
    published_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - w0));
    const absl::Status synced = published.ok() ? (*sink)->Sync() : published.status();
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - w0));
    Check(synced.ok(), "file sink write: " + synced.ToString());
    (*sink)->Prepare();  // between writes, as the scheduler's persist workers do
  }
  if (ms.empty()) return f;
  f.cpu_us = 1e6 * (ThreadCpuSeconds() - cpu0) / static_cast<double>(ms.size());
  f.p50_ms = Percentile(ms, 0.5);
  f.published_p50_ms = Percentile(published_ms, 0.5);
  return f;
}

std::optional<FloorFigures> Floor(const Options& o) {
  const std::string dir = tessera::testing::MakeTempDir("tessera-perf-echo");
  std::shared_ptr<grpc::Channel> channel;
  std::string address;
  std::unique_ptr<Process> server = StartEchoServer(dir, &channel, &address);
  if (server == nullptr) return std::nullopt;
  auto stub = v1::ExecutorService::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->Connect(&ctx);
  FloorFigures f;
  v1::SchedulerMessage reply;
  bool ok = true;

  // Echo, pipelined: a writer and a reader, one message each way per item.
  auto echo = [&](int64_t n) {
    std::atomic<int64_t> got{0};
    std::thread reader([&] {
      v1::SchedulerMessage r;
      while (got < n && stream->Read(&r)) ++got;
    });
    for (int64_t i = 0; i < n && ok; ++i) ok = stream->Write(EchoPayload(i));
    reader.join();
    ok = ok && got == n;
  };
  echo(std::min<int64_t>(o.echo_messages, 2'000));  // warm-up
  absl::Time t0 = absl::Now();
  echo(o.echo_messages);
  f.echo = o.echo_messages / Seconds(absl::Now() - t0);

  // One way: N results, then Draining; the server answers with its count.
  t0 = absl::Now();
  for (int64_t i = 0; i < o.echo_messages && ok; ++i) ok = stream->Write(EchoPayload(-1));
  v1::ExecutorMessage end;
  end.mutable_draining();
  ok = ok && stream->Write(end) && stream->Read(&reply);
  f.one_way = o.echo_messages / Seconds(absl::Now() - t0);
  ok = ok && reply.ack().lease_ids_size() == 1 &&
       reply.ack().lease_ids(0) == absl::StrCat(o.echo_messages);

  // Round trips, one at a time.
  t0 = absl::Now();
  for (int64_t i = 0; i < o.echo_round_trips && ok; ++i) {
    ok = stream->Write(EchoPayload(i)) && stream->Read(&reply);
  }
  const double rt = Seconds(absl::Now() - t0);
  f.round_trip = o.echo_round_trips / rt;
  f.round_trip_us = 1e6 * rt / o.echo_round_trips;

  stream->WritesDone();
  const grpc::Status s = stream->Finish();
  Check(ok && s.ok(), "echo stream: " + s.error_message());

  const SinkWriteFigures sink = SinkWriteFloor(dir, o.sink_writes);
  f.sink_write_p50_ms = sink.p50_ms;
  f.sink_write_cpu_us = sink.cpu_us;

  RemoveLater(dir);
  if (!ok) return std::nullopt;
  return f;
}

// ---------------------------------------------------------------------------
// The floor under one small job (job_floor.h), measured in the same run as the
// latency and many-jobs figures it bounds.

struct JobFloorFigures {
  tessera::bench::GrpcJobFloor grpc;
  tessera::bench::StoreCommitFloor commit;
  SinkWriteFigures sink;
  // The scheduler's unavoidable CPU for a job that takes `commits` store
  // commits (0: the memory store).
  double CpuUs(double commits) const {
    return grpc.server_cpu_us + commits * commit.cpu_us + sink.cpu_us;
  }
  // Submit to end event, serially: the job's calls and messages; the end
  // event waits for the result's commit and its publication, which overlap
  // (the sink stages the bytes while the store commits), timed together; a
  // job's other commits (`commits` a job in all, as the scheduler counted
  // them: its submit's, unless it shares the result's) come before.
  double EarlierCommitsMs(double commits) const {
    return std::max(0.0, commits - 1) * commit.p50_ms;
  }
  double LatencyMs(bool durable_store, double commits) const {
    // Together as measured (the disk may flush one at a time), else the
    // slower of the two.
    const double together = commit.with_alongside_p50_ms > 0
                                ? commit.with_alongside_p50_ms
                                : std::max(commit.p50_ms, sink.published_p50_ms);
    if (!durable_store) return sink.published_p50_ms + grpc.p50_us / 1e3;
    return EarlierCommitsMs(commits) + together + grpc.p50_us / 1e3;
  }
};

// The disk's parts (they change with what else the disk does: measured again
// before each workload they bound).
bool MeasureDiskFloor(const Options& o, JobFloorFigures& f) {
  const std::string dir = tessera::testing::MakeTempDir("tessera-perf-diskfloor");
  // With each commit, a result written as a job's end writes it: staged and
  // published while the "finalizing" record commits; synced and a spare file
  // made after, off the path.
  auto sink = tessera::scheduler::FileSink::Create(dir + "/together");
  Check(sink.ok(), "file sink: " + sink.status().ToString());
  int32_t version = 0;
  absl::Status written;  // the first failed write, if any
  std::function<void()> write, after;
  if (sink.ok()) {
    write = [&] {
      auto staged = (*sink)->Stage("0123456789abcdef", ++version, "{\"items\": 1}\n");
      auto published =
          staged.ok()
              ? (*sink)->Publish(*staged)
              : absl::StatusOr<tessera::scheduler::PersistedResult>(staged.status());
      if (written.ok()) written = published.status();
    };
    after = [&] {
      (void)(*sink)->Sync();
      (*sink)->Prepare();
    };
  }
  absl::StatusOr<tessera::bench::StoreCommitFloor> commit =
      tessera::bench::MeasureStoreCommitFloor(dir, o.sink_writes, write, after);
  Check(commit.ok(), "job floor, store: " + commit.status().ToString());
  Check(written.ok(), "job floor, sink write beside a commit: " + written.ToString());
  if (commit.ok()) f.commit = *commit;
  f.sink = SinkWriteFloor(dir, o.sink_writes);
  RemoveLater(dir);
  return commit.ok();
}

std::optional<JobFloorFigures> JobFloor(const Options& o) {
  const std::string dir = tessera::testing::MakeTempDir("tessera-perf-jobfloor");
  std::shared_ptr<grpc::Channel> channel;
  std::string address;
  std::unique_ptr<Process> server = StartEchoServer(dir, &channel, &address);
  if (server == nullptr) return std::nullopt;
  JobFloorFigures f;
  const pid_t pid = server->pid();
  absl::StatusOr<tessera::bench::GrpcJobFloor> grpc = tessera::bench::MeasureGrpcJobFloor(
      address, [pid] { return CpuSeconds(pid); },
      std::min<int64_t>(o.latency_jobs, 2'000));
  Check(grpc.ok(), "job floor, gRPC: " + grpc.status().ToString());
  RemoveLater(dir);
  if (!grpc.ok() || !MeasureDiskFloor(o, f)) return std::nullopt;
  f.grpc = *grpc;
  return f;
}

// ---------------------------------------------------------------------------
// 2. Noop throughput.

std::optional<double> NoopThroughput(const Options& o, const std::string& store) {
  Cluster c(o);
  if (!c.StartScheduler(store) || !c.StartExecutors(2, 2)) return std::nullopt;
  const absl::Time t0 = absl::Now();
  const std::string id = c.Submit("noop", 0, o.noop_shards, 1);
  if (id.empty() || !c.WaitDone(id, absl::Seconds(600))) return std::nullopt;
  const double rate = o.noop_shards / Seconds(absl::Now() - t0);
  const int64_t items = c.ResultField(id, "items");
  Check(items == o.noop_shards,
        absl::StrCat("noop ", store, ": items ", items, " != ", o.noop_shards));
  return rate;
}

// ---------------------------------------------------------------------------
// 3. Many small jobs, submitted concurrently.

struct JobsFigures {
  double jobs_per_s = 0;
  double submits_per_s = 0;
  // CPU per job (NaN where unknown): all of them share the machine's cores.
  double scheduler_cpu_us = 0, executors_cpu_us = 0, client_cpu_us = 0;
};

std::optional<JobsFigures> ManyJobs(const Options& o) {
  Cluster c(o);
  if (!c.StartScheduler("sqlite") || !c.StartExecutors(2, 2)) return std::nullopt;
  const int threads = static_cast<int>(std::max<int64_t>(1, o.job_threads));
  std::vector<std::vector<std::string>> ids(threads);
  std::atomic<int64_t> next{0};
  const std::pair<double, double> cpu0 = c.Cpu();
  const double client0 = CpuSeconds(getpid());
  const absl::Time t0 = absl::Now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      while (next.fetch_add(1) < o.jobs) ids[t].push_back(c.Submit("noop", 0, 1, 1));
    });
  }
  for (std::thread& t : pool) t.join();
  const absl::Time submitted = absl::Now();
  // Cheap gate first, then every job checked.
  const absl::Time deadline = absl::Now() + absl::Seconds(600);
  while (absl::Now() < deadline) {
    const v1::GetQueueStatsResponse s = c.Stats();
    if (s.jobs_queued() == 0 && s.jobs_running() == 0) break;
    absl::SleepFor(absl::Milliseconds(2));
  }
  std::vector<std::string> open;
  for (const auto& v : ids) open.insert(open.end(), v.begin(), v.end());
  Check(static_cast<int64_t>(open.size()) == o.jobs, "not every job was submitted");
  while (!open.empty() && absl::Now() < deadline) {
    std::vector<std::string> still;
    for (const std::string& id : open) {
      const v1::Job j = c.Get(id);
      if (!Cluster::Terminal(j.state()))
        still.push_back(id);
      else
        Check(j.state() == v1::JOB_STATE_SUCCEEDED, "job " + id + " did not succeed");
    }
    open.swap(still);
  }
  Check(open.empty(), absl::StrCat(open.size(), " small jobs did not finish"));
  JobsFigures f;
  f.jobs_per_s = o.jobs / Seconds(absl::Now() - t0);
  f.submits_per_s = o.jobs / Seconds(submitted - t0);
  const std::pair<double, double> cpu1 = c.Cpu();
  const double jobs = static_cast<double>(o.jobs);
  f.scheduler_cpu_us = 1e6 * (cpu1.first - cpu0.first) / jobs;
  f.executors_cpu_us = 1e6 * (cpu1.second - cpu0.second) / jobs;
  f.client_cpu_us = 1e6 * (CpuSeconds(getpid()) - client0) / jobs;
  return f;
}

// ---------------------------------------------------------------------------
// 4. Latency, one job at a time.

struct LatencyFigures {
  double p50_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
  // Parts of it: the SubmitJob call alone (its reply waits for the job's
  // first commit), and a GetJob call after the run (no commit), p50.
  double submit_p50_ms = 0, get_p50_ms = 0;
  // CPU per job (NaN where unknown): on a small machine, what one process
  // burns is time the others wait for a core.
  double scheduler_cpu_us = 0, executors_cpu_us = 0, client_cpu_us = 0;
  // The scheduler's own measure of its sink writes in this run (fsyncs).
  double persist_mean_ms = 0;
  // Store commits per job (its metrics; warm-up jobs and GetJob calls included).
  double commits_per_job = 0;
};

// The value of sample `name` in a Prometheus text scrape, or -1.
double MetricValue(const std::string& metrics, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, name + " ")) {
      return std::stod(std::string(line.substr(name.size() + 1)));
    }
  }
  return -1;
}

std::optional<LatencyFigures> Latency(const Options& o, const std::string& store,
                                      const std::string& sync) {
  Cluster c(o);
  const int metrics_port = tessera::testing::FreePort();
  std::vector<std::string> flags = {
      absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port)};
  if (!sync.empty()) flags.push_back("--store-sync=" + sync);
  if (!c.StartScheduler(store, flags) || !c.StartExecutors(2, 2)) {
    return std::nullopt;
  }
  std::vector<double> ms, submit_ms;
  std::string last_id;
  const int64_t warmup = std::min<int64_t>(20, o.latency_jobs);
  std::pair<double, double> cpu0;
  double client0 = 0;
  for (int64_t i = 0; i < warmup + o.latency_jobs; ++i) {
    if (i == warmup) {
      cpu0 = c.Cpu();
      client0 = CpuSeconds(getpid());
    }
    // Submit to the moment the client reads the job's end.
    const absl::Time t0 = absl::Now();
    absl::Time ended;
    const std::string id = c.Submit("noop", 0, 1, 1);
    const absl::Time submitted = absl::Now();
    if (id.empty() || !c.WatchDone(id, absl::Seconds(30), &ended)) {
      return std::nullopt;
    }
    last_id = id;
    if (i >= warmup) {
      ms.push_back(absl::ToDoubleMilliseconds(ended - t0));
      submit_ms.push_back(absl::ToDoubleMilliseconds(submitted - t0));
    }
  }
  const auto cpu1 = c.Cpu();
  const double client1 = CpuSeconds(getpid());
  // A plain unary call to the same scheduler, for scale: a GetJob of the last
  // job, answered from memory without the writer.
  std::vector<double> get_ms;
  for (int64_t i = 0; i < std::min<int64_t>(o.latency_jobs, 500); ++i) {
    const absl::Time t0 = absl::Now();
    const v1::Job job = c.Get(last_id);
    get_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    Check(job.id() == last_id, "GetJob " + last_id + " answered with job " + job.id());
    if (job.id() != last_id) return std::nullopt;
  }
  LatencyFigures f;
  f.p50_ms = Percentile(ms, 0.50);
  f.p99_ms = Percentile(ms, 0.99);
  f.max_ms = ms.back();  // sorted by Percentile
  for (double x : ms) f.mean_ms += x / ms.size();
  f.submit_p50_ms = Percentile(submit_ms, 0.5);
  f.get_p50_ms = Percentile(get_ms, 0.5);
  const double jobs = static_cast<double>(o.latency_jobs);
  f.scheduler_cpu_us = 1e6 * (cpu1.first - cpu0.first) / jobs;
  f.executors_cpu_us = 1e6 * (cpu1.second - cpu0.second) / jobs;
  f.client_cpu_us = 1e6 * (client1 - client0) / jobs;
  const std::string metrics = tessera::testing::HttpGet(metrics_port, "/metrics");
  const double sum = MetricValue(metrics, "tessera_result_persist_duration_seconds_sum");
  const double count =
      MetricValue(metrics, "tessera_result_persist_duration_seconds_count");
  Check(count >= static_cast<double>(o.latency_jobs),
        "persist metrics: " + metrics.substr(0, 200));
  if (count > 0) f.persist_mean_ms = 1e3 * sum / count;
  f.commits_per_job = MetricValue(metrics, "tessera_store_commits_total") /
                      static_cast<double>(warmup + o.latency_jobs);
  return f;
}

// ---------------------------------------------------------------------------
// Idle gaps: a client that sends a call now and then, as a person or a cron
// job does, must not find the scheduler asleep. Each gap is waited after the
// previous call's answer (or the job's end event), then the call is timed.

// Around 1 s closely: gRPC's idle callback threads slept from 1 s to 1.1 s after
// the last event (callback_queue_waker.h), and a gap counted from the client's
// side starts a little before the server's last event.
constexpr double kIdleGapsS[] = {0.2, 0.5, 0.8, 1.0, 1.03, 1.06, 1.2, 1.5, 2.0};

struct IdleGap {
  double gap_s = 0;
  double submit_max_ms = 0, get_max_ms = 0, job_max_ms = 0;
};
struct IdleFigures {
  std::vector<IdleGap> gaps;
  double worst_call_ms = 0, worst_gap_s = 0;
  // Apart: SubmitJob waits for a commit (an fsync with --store-sync=full), so
  // a slow disk shows there; GetJob is answered from memory.
  double worst_submit_ms = 0, worst_get_ms = 0;
};

std::optional<IdleFigures> IdleGaps(const Options& o, const std::string& store) {
  Cluster c(o);
  if (!c.StartScheduler(store) || !c.StartExecutors(1, 2)) return std::nullopt;
  // Warm: the first job pays for connections and lazy set-up.
  const std::string warm = c.Submit("noop", 0, 1, 1);
  if (warm.empty() || !c.WatchDone(warm, absl::Seconds(30))) return std::nullopt;
  IdleFigures f;
  for (const double gap : kIdleGapsS) {
    IdleGap g;
    g.gap_s = gap;
    for (int64_t i = 0; i < o.idle_calls; ++i) {
      absl::SleepFor(absl::Seconds(gap));
      const absl::Time t0 = absl::Now();
      const std::string id = c.Submit("noop", 0, 1, 1);
      const absl::Time submitted = absl::Now();
      absl::Time ended;
      if (id.empty() || !c.WatchDone(id, absl::Seconds(30), &ended)) return std::nullopt;
      absl::SleepFor(absl::Seconds(gap));
      const absl::Time t1 = absl::Now();
      const v1::Job job = c.Get(id);
      const absl::Time got = absl::Now();
      Check(job.id() == id, "GetJob " + id + " answered with job " + job.id());
      g.submit_max_ms =
          std::max(g.submit_max_ms, absl::ToDoubleMilliseconds(submitted - t0));
      g.job_max_ms = std::max(g.job_max_ms, absl::ToDoubleMilliseconds(ended - t0));
      g.get_max_ms = std::max(g.get_max_ms, absl::ToDoubleMilliseconds(got - t1));
    }
    f.worst_submit_ms = std::max(f.worst_submit_ms, g.submit_max_ms);
    f.worst_get_ms = std::max(f.worst_get_ms, g.get_max_ms);
    const double worst = std::max(g.submit_max_ms, g.get_max_ms);
    if (worst > f.worst_call_ms) {
      f.worst_call_ms = worst;
      f.worst_gap_s = gap;
    }
    f.gaps.push_back(g);
  }
  return f;
}

// ---------------------------------------------------------------------------
// 5. CPU-bound efficiency.

struct PrimesFigures {
  // Each the best of --primes_runs runs.
  double single_s = 0, job_s = 0, efficiency = 0;
  double cold_job_s = 0, cold_efficiency = 0;  // the first job on a new cluster
  // The machine's own limit: the same shards on two threads of this process
  // (two vCPUs may share a core or a clock budget).
  double two_threads_s = 0, machine_efficiency = 0;
  // Mean CPU time per shard over the warm jobs: the scheduler's, and the two
  // executors' together (their primes work included), beside the work itself
  // (the single-thread time per shard). All of it shares the machine's cores.
  double scheduler_cpu_us = 0, executors_cpu_us = 0, work_us = 0;
  int64_t primes = 0;
};

// Shard i of [start, end) cut into `count` shards whose sizes differ by at most one.
std::pair<int64_t, int64_t> ShardRange(int64_t start, int64_t end, int64_t count,
                                       int64_t i) {
  const int64_t total = end - start, base = total / count, rem = total % count;
  const int64_t lo = start + i * base + std::min(i, rem);
  return {lo, lo + base + (i < rem ? 1 : 0)};
}

std::optional<PrimesFigures> Primes(const Options& o, int64_t end) {
  PrimesFigures f;
  const int64_t runs = std::max<int64_t>(1, o.primes_runs);
  {
    tessera::executor::HandlerRegistry registry;
    Check(tessera::executor::RegisterBuiltinHandlers(registry).ok(), "handlers");
    tessera::executor::Handler* primes = registry.Find("primes");
    tessera::executor::CancelToken cancel;
    auto run_shard = [&](int64_t i) {
      tessera::executor::NullProgressReporter progress;
      tessera::executor::ShardTask task;
      task.shard = i;
      std::tie(task.start, task.end) = ShardRange(1, end, o.primes_shards, i);
      auto r = primes->Run(task, progress, cancel);
      Check(r.ok(), "primes handler in-process");
      return r.ok() ? (*r)["primes"].get<int64_t>() : int64_t{0};
    };
    f.single_s = f.two_threads_s = 1e9;
    for (int64_t run = 0; run < runs; ++run) {
      int64_t count = 0;
      const absl::Time t0 = absl::Now();
      for (int64_t i = 0; i < o.primes_shards; ++i) count += run_shard(i);
      f.single_s = std::min(f.single_s, Seconds(absl::Now() - t0));
      f.primes = count;

      std::atomic<int64_t> next{0};
      auto worker = [&] {
        for (int64_t i; (i = next.fetch_add(1)) < o.primes_shards;) run_shard(i);
      };
      const absl::Time t1 = absl::Now();
      std::thread a(worker), b(worker);
      a.join();
      b.join();
      f.two_threads_s = std::min(f.two_threads_s, Seconds(absl::Now() - t1));
    }
    f.machine_efficiency = (f.single_s / 2) / f.two_threads_s;
  }
  Cluster c(o);
  if (!c.StartScheduler("sqlite") || !c.StartExecutors(2, 1)) return std::nullopt;
  // Runs the job; its time to the end event, or nullopt. Its result is
  // checked afterwards (see below), outside the CPU measurement.
  std::vector<std::string> ids;
  auto run_job = [&]() -> std::optional<double> {
    const absl::Time t0 = absl::Now();
    absl::Time ended;
    const std::string id = c.Submit("primes", 1, end, 0, o.primes_shards);
    if (id.empty() || !c.WatchDone(id, absl::Seconds(600), &ended)) return std::nullopt;
    ids.push_back(id);
    return Seconds(ended - t0);
  };
  // First on the cluster as it started (cold: new connections, an empty
  // store, code and data not yet in cache), then on the cluster as it runs
  // (warm) — the efficiency target is the warm one.
  const std::optional<double> cold = run_job();
  if (!cold) return std::nullopt;
  f.cold_job_s = *cold;
  const auto [sched0, exec0] = c.Cpu();
  f.job_s = 1e9;
  for (int64_t run = 0; run < runs; ++run) {
    const std::optional<double> warm = run_job();
    if (!warm) return std::nullopt;
    f.job_s = std::min(f.job_s, *warm);
  }
  const auto [sched1, exec1] = c.Cpu();
  const double shards = static_cast<double>(runs * o.primes_shards);
  f.scheduler_cpu_us = 1e6 * (sched1 - sched0) / shards;
  f.executors_cpu_us = 1e6 * (exec1 - exec0) / shards;
  for (const std::string& id : ids) {
    const int64_t job_primes = c.ResultField(id, "primes");
    Check(job_primes == f.primes, absl::StrCat("primes: job ", id, " counted ",
                                               job_primes, ", in-process ", f.primes));
  }
  f.work_us = 1e6 * f.single_s / static_cast<double>(o.primes_shards);
  f.efficiency = (f.single_s / 2) / f.job_s;
  f.cold_efficiency = (f.single_s / 2) / f.cold_job_s;
  return f;
}

// ---------------------------------------------------------------------------
// 6a. A job of a million shards.

struct ScaleFigures {
  double accept_ms = 0;
  double rss_before_mib = 0, rss_accepted_mib = 0, hwm_after_mib = 0;
  double growth_mib = 0;  // peak (VmHWM) after the job minus RSS before it
  double run_s = 0;       // 0 when not run
};

std::optional<ScaleFigures> Scale(const Options& o) {
  Cluster c(o);
  if (!c.StartScheduler("sqlite") || !c.StartExecutors(2, 2)) return std::nullopt;
  absl::SleepFor(absl::Milliseconds(200));  // let the fresh scheduler settle
  ScaleFigures f;
  f.rss_before_mib = c.RssMiB();
  const absl::Time t0 = absl::Now();
  const std::string id = c.Submit("noop", 0, o.scale_shards, 1);
  if (id.empty()) return std::nullopt;
  f.accept_ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  f.rss_accepted_mib = c.RssMiB();
  if (o.scale_run) {
    if (!c.WaitDone(id, absl::Seconds(600), absl::Milliseconds(20))) return std::nullopt;
    f.run_s = Seconds(absl::Now() - t0);
    const int64_t items = c.ResultField(id, "items");
    Check(items == o.scale_shards,
          absl::StrCat("scale: items ", items, " != ", o.scale_shards));
  } else {
    absl::SleepFor(absl::Milliseconds(500));  // some of it dispatched and folded
  }
  f.hwm_after_mib = c.HwmMiB();
  f.growth_mib = f.hwm_after_mib - f.rss_before_mib;
  return f;
}

// ---------------------------------------------------------------------------
// 6b. A thousand executors: raw Connect streams from this process, each on its
// own channel (its own TCP connection, as real executors have), answering
// every assignment at once with a noop result.

class Fleet;

class FakeExecutor
    : public grpc::ClientBidiReactor<v1::ExecutorMessage, v1::SchedulerMessage> {
 public:
  FakeExecutor(const std::string& address, int index, Fleet* fleet);
  void Heartbeat() {
    v1::ExecutorMessage m;
    m.mutable_heartbeat();
    Send(std::move(m));
  }
  void Stop() { ctx_.TryCancel(); }
  bool WaitDone(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
  }
  int64_t shards() const { return shards_; }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    out_.pop_front();
    if (ok && !out_.empty()) {
      StartWrite(&out_.front());
      return;
    }
    if (!ok) out_.clear();
    writing_ = false;
  }
  void OnDone(const grpc::Status&) override {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }

 private:
  void Send(v1::ExecutorMessage m) {
    absl::MutexLock lock(&mu_);
    if (done_) return;
    out_.push_back(std::move(m));
    if (!writing_) {
      writing_ = true;
      StartWrite(&out_.front());
    }
  }

  Fleet* const fleet_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ExecutorService::Stub> stub_;
  grpc::ClientContext ctx_;
  v1::SchedulerMessage in_;
  std::atomic<int64_t> shards_{0};
  absl::Mutex mu_;
  std::deque<v1::ExecutorMessage> out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

class Fleet {
 public:
  // Counts each (job, shard) result; a second one is a duplicate.
  void Record(const std::string& job, int64_t shard) {
    absl::MutexLock lock(&mu_);
    if (!seen_.insert({job, shard}).second) ++duplicates_;
  }
  int64_t duplicates() {
    absl::MutexLock lock(&mu_);
    return duplicates_;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<std::pair<std::string, int64_t>> seen_ ABSL_GUARDED_BY(mu_);
  int64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
};

FakeExecutor::FakeExecutor(const std::string& address, int index, Fleet* fleet)
    : fleet_(fleet) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  stub_ = v1::ExecutorService::NewStub(channel_);
  stub_->async()->Connect(&ctx_, this);
  v1::ExecutorMessage hello;
  hello.mutable_hello()->set_executor_id(absl::StrCat("fake-", getpid(), "-", index));
  hello.mutable_hello()->set_name(absl::StrCat("fake-", index));
  hello.mutable_hello()->add_tasks("noop");
  hello.mutable_hello()->set_slots(1);
  hello.mutable_hello()->set_version("bench");
  Send(std::move(hello));
  StartRead(&in_);
  StartCall();
}

void FakeExecutor::OnReadDone(bool ok) {
  if (!ok) return;  // the stream ended; OnDone follows
  if (in_.has_assign()) {
    for (const v1::Assignment& a : in_.assign().assignments()) {
      v1::ExecutorMessage m;
      v1::ShardResult* r = m.mutable_result();
      r->set_lease_id(a.lease_id());
      r->set_job_id(a.job_id());
      r->set_shard(a.shard());
      r->set_result_json(absl::StrCat("{\"items\":", a.end() - a.start(), "}"));
      fleet_->Record(a.job_id(), a.shard());
      ++shards_;
      Send(std::move(m));
    }
  }
  StartRead(&in_);
}

struct FleetFigures {
  double connect_s = 0;
  double rss_idle_mib = 0, rss_connected_mib = 0, hwm_mib = 0;
  double job_s = 0;
  int64_t executors_used = 0, duplicates = 0;
};

std::optional<FleetFigures> FleetWorkload(const Options& o) {
  // Each stream is a socket here and one in the scheduler.
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  Cluster c(o);
  if (!c.StartScheduler("sqlite")) return std::nullopt;
  absl::SleepFor(absl::Milliseconds(200));
  FleetFigures f;
  f.rss_idle_mib = c.RssMiB();
  Fleet fleet;
  std::vector<std::unique_ptr<FakeExecutor>> execs;
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < o.fleet; ++i) {
    execs.push_back(std::make_unique<FakeExecutor>(c.address, i, &fleet));
  }
  std::atomic<bool> stop{false};
  std::thread heartbeats([&] {  // Welcome says every 2s; the timeout is 10s
    while (!stop) {
      for (auto& e : execs) e->Heartbeat();
      for (int i = 0; i < 10 && !stop; ++i) absl::SleepFor(absl::Milliseconds(100));
    }
  });
  bool ok = c.WaitExecutors(static_cast<int>(o.fleet), absl::Seconds(120));
  f.connect_s = Seconds(absl::Now() - t0);
  f.rss_connected_mib = c.RssMiB();
  if (ok) {
    const absl::Time t1 = absl::Now();
    const std::string id = c.Submit("noop", 0, o.fleet_shards, 1);
    ok = !id.empty() && c.WaitDone(id, absl::Seconds(600));
    f.job_s = Seconds(absl::Now() - t1);
    if (ok) {
      const int64_t items = c.ResultField(id, "items");
      Check(items == o.fleet_shards,
            absl::StrCat("fleet: items ", items, " != ", o.fleet_shards));
    }
    f.hwm_mib = c.HwmMiB();
  }
  stop = true;
  heartbeats.join();
  for (auto& e : execs) {
    if (e->shards() > 0) ++f.executors_used;
  }
  f.duplicates = fleet.duplicates();
  Check(f.duplicates == 0, absl::StrCat("fleet: ", f.duplicates, " shards ran twice"));
  for (auto& e : execs) e->Stop();
  for (auto& e : execs) {
    Check(e->WaitDone(absl::Seconds(10)), "fake executor stream did not end");
  }
  if (!ok) return std::nullopt;
  return f;
}

// ---------------------------------------------------------------------------
// The table.

struct Row {
  std::string name, measured, target, verdict;
};

std::string Num(double v, int precision = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  // thousands separators for integers
  std::string s = buf;
  const size_t dot = s.find('.');
  size_t end = dot == std::string::npos ? s.size() : dot;
  for (int i = static_cast<int>(end) - 3; i > (s[0] == '-' ? 1 : 0); i -= 3) {
    s.insert(i, ",");
  }
  return s;
}

bool Sane(double v) { return std::isfinite(v) && v > 0; }
// A CPU figure: NaN where it cannot be known (see Cluster::Cpu), else sane.
bool SaneOrUnknown(double v) { return std::isnan(v) || Sane(v); }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseFlags(argc, argv, o)) return 2;
  if (!o.echo_server.empty()) return RunEchoServer(o.echo_server);
  signal(SIGPIPE, SIG_IGN);

  auto want = [&](const std::string& w) {
    if (o.only.empty()) return true;
    for (absl::string_view x : absl::StrSplit(o.only, ',')) {
      if (x == w) return true;
    }
    return false;
  };
  json out = json::object();
  out["config"] = {{"echo_messages", o.echo_messages},
                   {"echo_round_trips", o.echo_round_trips},
                   {"noop_shards", o.noop_shards},
                   {"jobs", o.jobs},
                   {"job_threads", o.job_threads},
                   {"latency_jobs", o.latency_jobs},
                   {"idle_calls", o.idle_calls},
                   {"primes_end", o.primes_end},
                   {"primes_shards", o.primes_shards},
                   {"scale_shards", o.scale_shards},
                   {"scale_run", o.scale_run},
                   {"fleet", o.fleet},
                   {"fleet_shards", o.fleet_shards},
                   {"smoke", o.smoke},
                   {"cpus", std::thread::hardware_concurrency()}};
  std::vector<Row> rows;
  json& targets = out["targets"] = json::object();
  auto target = [&](const std::string& key, bool met) {
    targets[key] = met;
    return std::string(met ? "met" : "MISSED");
  };
  const absl::Time start = absl::Now();
  // Host steal per workload (the word before the progress line's colon): a
  // noisy neighbour shows here, not only as slower figures.
  struct Span {
    double wall_s = 0, steal_s = 0;
  };
  std::vector<std::pair<std::string, Span>> steal;
  std::string span_name;
  absl::Time span_start;
  double span_steal = 0;
  auto end_span = [&] {
    if (span_name.empty()) return;
    auto it = std::find_if(steal.begin(), steal.end(),
                           [&](const auto& s) { return s.first == span_name; });
    if (it == steal.end()) it = steal.insert(steal.end(), {span_name, Span{}});
    it->second.wall_s += Seconds(absl::Now() - span_start);
    it->second.steal_s += StealSeconds() - span_steal;
    span_name.clear();
  };
  auto progress = [&](const char* what) {
    std::fprintf(stderr, "[%6.1fs] %s\n", Seconds(absl::Now() - start), what);
    end_span();
    span_name = std::string(absl::string_view(what).substr(0, std::strcspn(what, ":")));
    span_start = absl::Now();
    span_steal = StealSeconds();
  };

  std::optional<FloorFigures> floor;
  if (want("floor")) {
    progress("floor: gRPC echo on loopback");
    floor = Floor(o);
    if (floor) {
      out["floor"] = {{"one_way_msgs_per_s", floor->one_way},
                      {"echo_msgs_per_s", floor->echo},
                      {"round_trips_per_s", floor->round_trip},
                      {"round_trip_us", floor->round_trip_us},
                      {"sink_write_p50_ms", floor->sink_write_p50_ms},
                      {"sink_write_cpu_us", floor->sink_write_cpu_us}};
      rows.push_back({"floor: one way", Num(floor->one_way) + " msgs/s", "", ""});
      rows.push_back({"floor: echo (1 msg each way)", Num(floor->echo) + " msgs/s",
                      "(the floor)", ""});
      rows.push_back(
          {"floor: serial round trip",
           Num(floor->round_trip) + " rt/s (" + Num(floor->round_trip_us, 1) + " us)", "",
           ""});
      rows.push_back({"floor: durable result write p50",
                      Num(floor->sink_write_p50_ms, 2) + " ms (2 fsyncs), CPU " +
                          Num(floor->sink_write_cpu_us, 0) + " us per write",
                      "", ""});
      Check(Sane(floor->one_way) && Sane(floor->echo) && Sane(floor->round_trip) &&
                Sane(floor->sink_write_p50_ms),
            "floor figures");
    }
  }

  if (want("noop")) {
    // postgres: on this machine, the server on loopback (issue 21: >= 0.5x sqlite).
    std::optional<double> rate[3];
    const char* stores[3] = {"sqlite", "memory", "postgres"};
    for (int i = 0; i < 3; ++i) {
      progress(
          absl::StrCat("noop: ", o.noop_shards, " shards, --store=", stores[i]).c_str());
      rate[i] = NoopThroughput(o, stores[i]);
      if (!rate[i]) continue;
      Check(Sane(*rate[i]), "noop rate");
      out["noop"][stores[i]]["shards_per_s"] = *rate[i];
      std::string measured = Num(*rate[i]) + " shards/s";
      std::string tgt, verdict;
      if (floor) {
        const double x = *rate[i] / floor->echo;
        out["noop"][stores[i]]["x_floor"] = x;
        measured += " (" + Num(x, 2) + "x floor)";
        if (i == 0) {
          // Issue 8 asked for the floor; issue 22 for it to stay 1.2x above.
          tgt = ">= 1.2x floor";
          verdict = target("noop_sqlite_ge_1_2x_floor", x >= 1.2);
        }
      }
      if (i == 1 && rate[0]) {
        const double ratio = *rate[0] / *rate[1];
        out["noop"]["sqlite_over_memory"] = ratio;
        measured += "; sqlite/memory " + Num(ratio, 2);
        tgt = "sqlite >= 0.8x memory";
        verdict = target("noop_sqlite_within_20pct_of_memory", ratio >= 0.8);
      }
      if (i == 2 && rate[0]) {
        const double ratio = *rate[2] / *rate[0];
        out["noop"]["postgres_over_sqlite"] = ratio;
        measured += "; postgres/sqlite " + Num(ratio, 2);
        tgt = "postgres >= 0.5x sqlite";
        verdict = target("noop_postgres_ge_half_sqlite", ratio >= 0.5);
      }
      rows.push_back({absl::StrCat("noop ", o.noop_shards, " shards, ", stores[i]),
                      measured, tgt, verdict});
    }
  }

  // What a small job costs the scheduler at the least (job_floor.h): the
  // many-jobs and latency targets are held against it, in this same run.
  std::optional<JobFloorFigures> jf;
  const double cores = std::thread::hardware_concurrency();
  // A target missed while its floor alone passes it: the machine bounds it.
  // (A floor above the figure itself is no bound but noise: a disk that was
  // busier while the floor was measured.)
  auto bounded = [&](const std::string& key, bool met, bool floor_passes) {
    targets[key] = met;
    if (!met && floor_passes) out["bounded_by_floor"][key] = true;
    return std::string(met ? "met" : floor_passes ? "floor-bound" : "MISSED");
  };
  if (want("jobs") || want("latency")) {
    progress("jobfloor: gRPC, store commit and sink write of one small job, bare");
    jf = JobFloor(o);
    if (jf) {
      out["job_floor"] = {
          {"grpc_server_cpu_us", jf->grpc.server_cpu_us},
          {"grpc_p50_us", jf->grpc.p50_us},
          {"store_commit_cpu_us", jf->commit.cpu_us},
          {"store_commit_p50_ms", jf->commit.p50_ms},
          {"store_commit_with_published_p50_ms", jf->commit.with_alongside_p50_ms},
          {"sink_write_cpu_us", jf->sink.cpu_us},
          {"sink_write_p50_ms", jf->sink.p50_ms},
          {"sink_published_p50_ms", jf->sink.published_p50_ms}};
      rows.push_back({"job floor: gRPC of one job",
                      absl::StrCat("server CPU ", Num(jf->grpc.server_cpu_us, 0),
                                   " us, calls p50 ", Num(jf->grpc.p50_us, 0), " us"),
                      "", ""});
      rows.push_back({"job floor: store commit (sqlite FULL)",
                      absl::StrCat("CPU ", Num(jf->commit.cpu_us, 0), " us, p50 ",
                                   Num(jf->commit.p50_ms, 2),
                                   " ms; with a result published at once ",
                                   Num(jf->commit.with_alongside_p50_ms, 2),
                                   " ms, one after the other ",
                                   Num(jf->commit.then_alongside_p50_ms, 2), " ms"),
                      "", ""});
      rows.push_back({"job floor: sink write",
                      absl::StrCat("CPU ", Num(jf->sink.cpu_us, 0), " us, p50 ",
                                   Num(jf->sink.p50_ms, 2), " ms (published ",
                                   Num(jf->sink.published_p50_ms, 2), " ms)"),
                      "", ""});
      Check(Sane(jf->grpc.server_cpu_us) && Sane(jf->grpc.p50_us) &&
                Sane(jf->commit.cpu_us) && Sane(jf->commit.p50_ms) &&
                Sane(jf->commit.with_alongside_p50_ms) && Sane(jf->sink.cpu_us),
            "job floor figures");
    }
  }

  if (want("jobs")) {
    progress(absl::StrCat("jobs: ", o.jobs, " single-shard jobs from ", o.job_threads,
                          " threads")
                 .c_str());
    if (auto f = ManyJobs(o)) {
      out["jobs"] = {{"jobs_per_s", f->jobs_per_s}, {"submits_per_s", f->submits_per_s}};
      std::string measured =
          Num(f->jobs_per_s) + " jobs/s (submit " + Num(f->submits_per_s) + "/s)";
      bool floor_passes = false;
      if (!std::isnan(f->scheduler_cpu_us)) {
        out["jobs"]["scheduler_cpu_us_per_job"] = f->scheduler_cpu_us;
        out["jobs"]["executors_cpu_us_per_job"] = f->executors_cpu_us;
        out["jobs"]["client_cpu_us_per_job"] = f->client_cpu_us;
        absl::StrAppend(&measured, "; CPU per job: scheduler ",
                        Num(f->scheduler_cpu_us, 0), " us, executors ",
                        Num(f->executors_cpu_us, 0), " us, client ",
                        Num(f->client_cpu_us, 0), " us");
        if (jf) {
          // With a scheduler at its floor (its commits shared by many jobs:
          // none counted), the cores still run the client and the executors.
          const double bound =
              cores * 1e6 / (f->client_cpu_us + f->executors_cpu_us + jf->CpuUs(0));
          out["jobs"]["bound_jobs_per_s"] = bound;
          floor_passes = bound < 3000;
          absl::StrAppend(&measured, "; at most ", Num(bound), " jobs/s on ", Num(cores),
                          " cores with the scheduler at its floor");
        }
      }
      rows.push_back(
          {absl::StrCat(o.jobs, " small jobs, ", o.job_threads, " threads"), measured,
           ">= 3,000 jobs/s",
           bounded("jobs_ge_3000_per_s", f->jobs_per_s >= 3000, floor_passes)});
      Check(Sane(f->jobs_per_s) && Sane(f->submits_per_s), "jobs figures");
    }
  }

  if (want("latency")) {
    // sqlite as shipped (--store-sync=full: every answered call and acked
    // result survives power loss), sqlite with the faster --store-sync=normal
    // (its cost shows beside it), and memory.
    struct Variant {
      const char* label;
      const char* store;
      const char* sync;
    };
    for (const Variant& v :
         {Variant{"sqlite", "sqlite", "full"},
          Variant{"sqlite sync=normal", "sqlite", "normal"},
          Variant{"memory", "memory", ""}, Variant{"postgres", "postgres", "full"}}) {
      const std::string store = v.label;
      progress(absl::StrCat("latency: ", o.latency_jobs, " jobs, --store=", v.store,
                            *v.sync ? absl::StrCat(" --store-sync=", v.sync) : "")
                   .c_str());
      // The disk's floor just before, and the run against it.
      if (jf) MeasureDiskFloor(o, *jf);
      auto f = Latency(o, v.store, v.sync);
      if (!f) continue;
      out["latency"][store] = {{"p50_ms", f->p50_ms},
                               {"p99_ms", f->p99_ms},
                               {"max_ms", f->max_ms},
                               {"mean_ms", f->mean_ms}};
      const bool durable = store == "sqlite";
      // How much of it the disk took: the sink's durable write, as the
      // scheduler measured it in this very run.
      out["latency"][store]["persist_mean_ms"] = f->persist_mean_ms;
      out["latency"][store]["submit_p50_ms"] = f->submit_p50_ms;
      out["latency"][store]["getjob_p50_ms"] = f->get_p50_ms;
      out["latency"][store]["store_commits_per_job"] = f->commits_per_job;
      // Targets for the store as shipped and for memory; the floor: the job's
      // commits and its calls (job_floor.h).
      const bool memory = store == "memory";
      const bool targeted = durable || memory;
      const double p50_target = memory ? 1.0 : 1.2, p99_target = memory ? 2.5 : 3.0;
      const double floor_ms = jf ? jf->LatencyMs(!memory, f->commits_per_job) : 0;
      if (jf) {
        out["latency"][store]["floor_ms"] = floor_ms;
        out["latency"][store]["floor_store_commit_p50_ms"] = jf->commit.p50_ms;
        out["latency"][store]["floor_sink_published_p50_ms"] = jf->sink.published_p50_ms;
        out["latency"][store]["floor_commit_with_published_p50_ms"] =
            jf->commit.with_alongside_p50_ms;
      }
      std::string p50 = Num(f->p50_ms, 2) + " ms (of which sink write " +
                        Num(f->persist_mean_ms, 2) + ")";
      if (jf) {
        absl::StrAppend(
            &p50, "; floor ", Num(floor_ms, 2), " ms (",
            memory ? absl::StrCat("published ", Num(jf->sink.published_p50_ms, 2))
            : jf->EarlierCommitsMs(f->commits_per_job) > 0.005
                ? absl::StrCat(Num(f->commits_per_job - 1, 2), " x commit ",
                               Num(jf->commit.p50_ms, 2),
                               ", then commit with result published ",
                               Num(jf->commit.with_alongside_p50_ms, 2))
                : absl::StrCat("commit with result published ",
                               Num(jf->commit.with_alongside_p50_ms, 2)),
            ", calls ", Num(jf->grpc.p50_us / 1e3, 2), ")");
      }
      const std::string key = memory ? "memory" : "sqlite";
      rows.push_back(
          {absl::StrCat("latency p50, ", store), p50,
           targeted ? absl::StrCat("<= ", Num(p50_target, 1), " ms") : "",
           targeted ? bounded(absl::StrCat("latency_p50_", key), f->p50_ms <= p50_target,
                              floor_ms > p50_target && floor_ms <= f->p50_ms)
                    : ""});
      rows.push_back(
          {absl::StrCat("latency p99, ", store),
           Num(f->p99_ms, 2) + " ms (max " + Num(f->max_ms, 1) + ")",
           targeted ? absl::StrCat("<= ", Num(p99_target, 1), " ms") : "",
           targeted ? bounded(absl::StrCat("latency_p99_", key), f->p99_ms <= p99_target,
                              floor_ms > p99_target && floor_ms <= f->p99_ms)
                    : ""});
      rows.push_back({absl::StrCat("latency calls p50, ", store),
                      absl::StrCat("SubmitJob ", Num(f->submit_p50_ms, 2), " ms, GetJob ",
                                   Num(f->get_p50_ms, 2), " ms"),
                      "", ""});
      if (!std::isnan(f->scheduler_cpu_us)) {  // both known, or neither
        out["latency"][store]["scheduler_cpu_us_per_job"] = f->scheduler_cpu_us;
        out["latency"][store]["executors_cpu_us_per_job"] = f->executors_cpu_us;
        out["latency"][store]["client_cpu_us_per_job"] = f->client_cpu_us;
        std::string cpu = absl::StrCat(
            "scheduler ", Num(f->scheduler_cpu_us, 0), " us, executors ",
            Num(f->executors_cpu_us, 0), " us, client ", Num(f->client_cpu_us, 0),
            " us; store commits per job ", Num(f->commits_per_job, 2));
        double floor_us = 0;
        if (jf) {
          // The scheduler's own part: what is left over the floor of a job
          // with as many commits (the memory store's cost nothing).
          floor_us = jf->CpuUs(memory ? 0 : f->commits_per_job);
          // (The disk's parts as measured just before this store's run.)
          out["latency"][store]["floor_cpu_us_per_job"] = floor_us;
          out["latency"][store]["own_cpu_us_per_job"] = f->scheduler_cpu_us - floor_us;
          const double commits = memory ? 0 : f->commits_per_job;
          out["latency"][store]["floor_store_commit_cpu_us"] = jf->commit.cpu_us;
          out["latency"][store]["floor_sink_write_cpu_us"] = jf->sink.cpu_us;
          absl::StrAppend(&cpu, "; floor ", Num(floor_us, 0), " us (gRPC ",
                          Num(jf->grpc.server_cpu_us, 0), " + ", Num(commits, 2),
                          " x commit ", Num(jf->commit.cpu_us, 0), " + sink ",
                          Num(jf->sink.cpu_us, 0), "), own ",
                          Num(f->scheduler_cpu_us - floor_us, 0), " us");
        }
        rows.push_back(
            {absl::StrCat("latency CPU per job, ", store), cpu,
             durable ? "scheduler <= 700 us" : "",
             durable
                 ? bounded("scheduler_cpu_le_700us_per_job", f->scheduler_cpu_us <= 700,
                           floor_us > 700 && floor_us <= f->scheduler_cpu_us)
                 : ""});
      }
      Check(Sane(f->p50_ms) && f->p50_ms <= f->p99_ms && Sane(f->submit_p50_ms) &&
                f->submit_p50_ms <= f->max_ms && Sane(f->get_p50_ms) &&
                SaneOrUnknown(f->scheduler_cpu_us) && SaneOrUnknown(f->executors_cpu_us),
            "latency figures");
    }
  }

  if (want("idle")) {
    progress(
        absl::StrCat("idle: ", o.idle_calls,
                     " jobs and GetJob calls after each idle gap of 0.2-2 s, --store=",
                     o.idle_store)
            .c_str());
    if (auto f = IdleGaps(o, o.idle_store)) {
      std::vector<std::string> parts;
      for (const IdleGap& g : f->gaps) {
        const std::string key = Num(g.gap_s, 2) + "s";
        out["idle"]["gaps"][key] = {{"submit_max_ms", g.submit_max_ms},
                                    {"getjob_max_ms", g.get_max_ms},
                                    {"job_max_ms", g.job_max_ms}};
        parts.push_back(
            absl::StrCat(key, " ", Num(std::max(g.submit_max_ms, g.get_max_ms), 1)));
        Check(Sane(g.submit_max_ms) && Sane(g.get_max_ms) && Sane(g.job_max_ms),
              "idle figures");
      }
      out["idle"]["worst_call_ms"] = f->worst_call_ms;
      out["idle"]["worst_gap_s"] = f->worst_gap_s;
      out["idle"]["worst_submit_ms"] = f->worst_submit_ms;
      out["idle"]["worst_getjob_ms"] = f->worst_get_ms;
      out["idle"]["store"] = o.idle_store;
      rows.push_back(
          {"idle gaps 0.2-2 s: worst call, " + o.idle_store,
           Num(f->worst_call_ms, 2) + " ms (at " + Num(f->worst_gap_s, 2) +
               " s; SubmitJob " + Num(f->worst_submit_ms, 1) + ", GetJob " +
               Num(f->worst_get_ms, 1) + "; per gap: " + absl::StrJoin(parts, ", ") + ")",
           "< 10 ms", target("idle_worst_call_lt_10ms", f->worst_call_ms < 10)});
    }
  }

  if (want("primes")) {
    for (const int64_t end : {o.primes_end, o.primes_big_end}) {
      if (end <= 1) continue;
      const bool issue = end == o.primes_end;
      progress(absl::StrCat("primes: [1, ", end, ") in ", o.primes_shards,
                            " shards, 2 executors x 1 slot")
                   .c_str());
      auto f = Primes(o, end);
      if (!f) continue;
      out[issue ? "primes" : "primes_big"] = {
          {"end", end},
          {"single_thread_s", f->single_s},
          {"job_s", f->job_s},
          {"efficiency", f->efficiency},
          {"cold_job_s", f->cold_job_s},
          {"cold_efficiency", f->cold_efficiency},
          {"two_threads_s", f->two_threads_s},
          {"machine_efficiency", f->machine_efficiency},
          {"runs", o.primes_runs},
          {"scheduler_cpu_us_per_shard", f->scheduler_cpu_us},
          {"executors_cpu_us_per_shard", f->executors_cpu_us},
          {"work_us_per_shard", f->work_us},
          {"primes", f->primes}};
      rows.push_back(
          {absl::StrCat("primes [1,", Num(end), ") efficiency"),
           Num(f->efficiency, 3) + " (" + Num(f->single_s, 3) + "s/2 vs " +
               Num(f->job_s, 3) + "s; first job " + Num(f->cold_efficiency, 3) +
               "; 2 threads in-process: " + Num(f->machine_efficiency, 3) + ")",
           issue ? ">= 0.95" : "",
           issue ? target("primes_efficiency_ge_0.95", f->efficiency >= 0.95) : ""});
      if (!std::isnan(f->scheduler_cpu_us)) {  // both known, or neither
        rows.push_back({absl::StrCat("primes [1,", Num(end), ") CPU per shard"),
                        absl::StrCat("scheduler ", Num(f->scheduler_cpu_us, 0),
                                     " us, executors ", Num(f->executors_cpu_us, 0),
                                     " us, of which work ", Num(f->work_us, 0), " us"),
                        "", ""});
      }
      Check(Sane(f->efficiency) && f->efficiency < 3 && Sane(f->cold_efficiency) &&
                Sane(f->machine_efficiency) && SaneOrUnknown(f->scheduler_cpu_us) &&
                SaneOrUnknown(f->executors_cpu_us),
            "primes figures");
    }
  }

  if (want("scale")) {
    progress(absl::StrCat("scale: a ", o.scale_shards, "-shard noop job").c_str());
    if (auto f = Scale(o)) {
      out["scale"] = {{"shards", o.scale_shards},
                      {"accept_ms", f->accept_ms},
                      {"rss_before_mib", f->rss_before_mib},
                      {"rss_accepted_mib", f->rss_accepted_mib},
                      {"hwm_after_mib", f->hwm_after_mib},
                      {"rss_growth_mib", f->growth_mib},
                      {"run_s", f->run_s}};
      rows.push_back({absl::StrCat(o.scale_shards, "-shard job: SubmitJob"),
                      Num(f->accept_ms, 1) + " ms", "< 50 ms",
                      target("scale_accept_lt_50ms", f->accept_ms < 50)});
      rows.push_back(
          {absl::StrCat(o.scale_shards, "-shard job: RSS growth"),
           Num(f->growth_mib, 1) + " MiB (" + Num(f->rss_before_mib, 1) + " -> peak " +
               Num(f->hwm_after_mib, 1) +
               (f->run_s > 0 ? ", ran in " + Num(f->run_s, 1) + "s)" : ", not run)"),
           "< 64 MB", target("scale_rss_growth_lt_64mb", f->growth_mib < 64)});
      Check(Sane(f->accept_ms) && Sane(f->hwm_after_mib), "scale figures");
    }
  }

  if (want("fleet")) {
    progress(absl::StrCat("fleet: ", o.fleet, " executors, a job of ", o.fleet_shards,
                          " shards across them")
                 .c_str());
    if (auto f = FleetWorkload(o)) {
      out["fleet"] = {{"executors", o.fleet},
                      {"connect_s", f->connect_s},
                      {"rss_idle_mib", f->rss_idle_mib},
                      {"rss_connected_mib", f->rss_connected_mib},
                      {"hwm_mib", f->hwm_mib},
                      {"job_s", f->job_s},
                      {"executors_used", f->executors_used},
                      {"duplicates", f->duplicates}};
      rows.push_back({absl::StrCat(o.fleet, " executors: scheduler RSS"),
                      Num(f->rss_connected_mib, 1) + " MiB connected, peak " +
                          Num(f->hwm_mib, 1) + " (idle " + Num(f->rss_idle_mib, 1) + ")",
                      "< 256 MB", target("fleet_rss_lt_256mb", f->hwm_mib < 256)});
      rows.push_back({absl::StrCat(o.fleet, " executors: job of ", o.fleet_shards),
                      absl::StrCat("correct, ", f->executors_used, " executors used, ",
                                   f->duplicates, " duplicates, ", Num(f->job_s, 2), "s"),
                      "completes correctly",
                      target("fleet_job_correct", f->duplicates == 0)});
      Check(Sane(f->rss_connected_mib) && f->executors_used > 0, "fleet figures");
    }
  }

  end_span();
  if (!steal.empty() && !std::isnan(StealSeconds())) {
    const double cpus = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::string> parts;
    for (const auto& [name, span] : steal) {
      const double percent = 100 * span.steal_s / (span.wall_s * cpus);
      out["host_steal_percent"][name] = percent;
      parts.push_back(absl::StrCat(name, " ", Num(percent, 1), "%"));
      // (Counted in ticks: over a span of a few ms one tick can pass 100%.)
      Check(std::isfinite(percent) && percent >= 0, "host steal of " + name);
    }
    rows.push_back(
        {"host steal (CPU the hypervisor took)", absl::StrJoin(parts, ", "), "", ""});
  }
  RemoveDirs(o);
  const double total_s = Seconds(absl::Now() - start);
  out["total_s"] = total_s;
  out["failures"] = g_failures;

  size_t w0 = 8, w1 = 8, w2 = 6;
  for (const Row& r : rows) {
    w0 = std::max(w0, r.name.size());
    w1 = std::max(w1, r.measured.size());
    w2 = std::max(w2, r.target.size());
  }
  std::printf("\nperf_bench (%u cpus, %s)\n", std::thread::hardware_concurrency(),
              o.smoke ? "smoke sizes" : "issue 8 sizes");
  std::printf("%-*s  %-*s  %-*s  %s\n", static_cast<int>(w0), "workload",
              static_cast<int>(w1), "measured", static_cast<int>(w2), "target", "");
  std::printf("%s\n", std::string(w0 + w1 + w2 + 12, '-').c_str());
  for (const Row& r : rows) {
    std::printf("%-*s  %-*s  %-*s  %s\n", static_cast<int>(w0), r.name.c_str(),
                static_cast<int>(w1), r.measured.c_str(), static_cast<int>(w2),
                r.target.c_str(), r.verdict.c_str());
  }
  std::printf("total %.1fs; %zu failed checks\n", total_s, g_failures.size());
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path);
    f << out.dump(2) << "\n";
    std::printf("wrote %s\n", o.json_path.c_str());
  }
  return g_failures.empty() ? 0 : 1;
}
