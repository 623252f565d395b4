// tessera-scheduler: splits jobs into shards, leases them to executors over
// bidirectional gRPC, folds the results and persists each job's result once.
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/service/ha_scheduler.h"
#include "scheduler/service/scheduler_server.h"
#include "shared/flag_names.h"
#include "shared/json_limits.h"
#include "shared/logging.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC address to serve JobService, "
          "ExecutorService, health and reflection on (host:port; port 0 picks one)");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9090",
          "Address of the Prometheus /metrics endpoint (host:port); empty disables it");
ABSL_FLAG(std::string, data_dir, "tessera-data",
          "Directory for the scheduler's data; results go to <data-dir>/results unless "
          "--result-sink says otherwise");
ABSL_FLAG(
    std::string, store, "sqlite",
    "Where jobs and shard results are kept: sqlite (<data-dir>/tessera.db, survives "
    "restarts), postgres (a PostgreSQL database, --postgres-url) or memory (tests and "
    "benchmarks)");
ABSL_FLAG(
    std::string, postgres_url, "",
    "--store=postgres: the database, as a libpq conninfo (\"host=db dbname=tessera "
    "user=tessera\") or URI (postgresql://tessera@db:5432/tessera?sslmode=require). "
    "The password comes from the URL, PGPASSWORD, --postgres-password-file or "
    "~/.pgpass, and is never logged. The schema is created or migrated at start");
ABSL_FLAG(bool, leader_election, true,
          "--store=postgres: replicas elect one leader through a lease row in the "
          "database (followers answer UNAVAILABLE naming it; docs/deploy.md); false: "
          "this scheduler leads with no lease and no fence (one replica only)");
ABSL_FLAG(absl::Duration, leader_renew, absl::Seconds(2),
          "How often the leader renews its lease and a follower polls it");
ABSL_FLAG(absl::Duration, leader_lease_ttl, absl::Seconds(10),
          "A lease not renewed for this long (on the database's clock) is taken over");
ABSL_FLAG(std::string, advertise_address, "",
          "host:port where clients reach this replica, named by followers to callers "
          "(default: <hostname>:<gRPC port>)");
ABSL_FLAG(std::string, postgres_password_file, "",
          "--store=postgres: a file whose first line is the database password (e.g. a "
          "mounted Secret), read once at start; used when the URL has none");
ABSL_FLAG(
    std::string, store_sync, "full",
    "sqlite and postgres durability: full (every commit that answers a call or acks a "
    "result "
    "reaches the disk before it is answered, so nothing acknowledged is lost on "
    "power loss; group commit shares the fsyncs) or normal (faster: a commit "
    "survives a crash of the scheduler, and results are flushed before they are "
    "written to the sink, but the last answered calls and acked results can be lost "
    "on power loss)");
ABSL_FLAG(absl::Duration, store_linger, absl::Milliseconds(2),
          "Shard results (and the acks that tell executors they are durable) wait up "
          "to this long to share one store commit; cancels and job ends never wait; a "
          "submission whose job is expected to end within moments waits for that end "
          "(at most 2ms and this long) to share its commit. 0 commits each at once");
ABSL_FLAG(absl::Duration, store_timeout, absl::Seconds(5),
          "A call that changes a job (submit, cancel, update, retry) waits at most this "
          "long for its store commit, then gets UNAVAILABLE; on SIGTERM a failing store "
          "is retried this long before the scheduler exits");
ABSL_FLAG(absl::Duration, idempotency_retention, absl::Hours(24),
          "How long an idempotency key keeps returning its job");
ABSL_FLAG(absl::Duration, job_retention, absl::Hours(24 * 7),
          "A finished job (SUCCEEDED, FAILED, CANCELLED, PARTIAL) is retired this long "
          "after it ended: its record, shard results and idempotency key are deleted "
          "from memory and the store (GetJob then says it was retired). Its result "
          "file stays unless --delete-results-with-jobs. 0 keeps finished jobs forever");
ABSL_FLAG(bool, delete_results_with_jobs, false,
          "Delete a retired job's result file (or object) with its record");
ABSL_FLAG(absl::Duration, store_compact_interval, absl::Minutes(1),
          "How often the sqlite store hands the space of deleted rows back (incremental "
          "vacuum) and truncates its WAL; 0 never");
ABSL_FLAG(int64_t, max_items_per_job, 1'000'000,
          "Largest number of items an items job may have");
ABSL_FLAG(int64_t, max_item_bytes, 64 << 10,
          "Largest item of an items job, as JSON bytes");
ABSL_FLAG(int32_t, max_json_depth, tessera::kDefaultMaxJsonDepth,
          "Deepest nesting of arrays and objects accepted in params, items and shard "
          "results; deeper input is refused before it is copied or folded");
ABSL_FLAG(int64_t, max_params_bytes, 64 << 10,
          "Largest job params, as JSON bytes (they travel in every assignment)");
ABSL_FLAG(int64_t, max_result_bytes, 16 << 20,
          "Largest result of one shard, as JSON bytes; a bigger one fails the attempt "
          "(not retried)");
ABSL_FLAG(int64_t, max_folded_result_bytes, 64 << 20,
          "Largest folded result of a job (the persisted document); a bigger one fails "
          "the job");
ABSL_FLAG(absl::Duration, reattach_grace, absl::Seconds(10),
          "After a restart, unfinished shards wait this long for their executors to "
          "re-attach before they are dispatched again; so do the shards of an executor "
          "whose stream closed (a reconnect within it costs them no loss)");
ABSL_FLAG(absl::Duration, lease_grace, absl::Seconds(5),
          "A shard with a timeout is taken back this long after its timeout");
ABSL_FLAG(int32_t, max_executor_losses, 3,
          "A shard that lost this many executors while running is failed (crash loop)");
ABSL_FLAG(int64_t, max_shards_per_job, 10'000'000,
          "Largest number of shards a job may have");
ABSL_FLAG(int32_t, prefetch, 2,
          "Assignments an executor may hold beyond its slots (hides round trips); "
          "the minimum, see --max-prefetch");
ABSL_FLAG(int32_t, max_prefetch, 256,
          "For jobs of short shards, an executor may hold up to this many assignments "
          "beyond its slots: enough to keep its slots busy for --prefetch-window");
ABSL_FLAG(absl::Duration, prefetch_window, absl::Milliseconds(2),
          "How much work (by the run times executors report) an executor may hold "
          "queued beyond its slots");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2),
          "How often executors send heartbeats");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::Seconds(10),
          "An executor silent this long is dropped and its shards requeued");
ABSL_FLAG(absl::Duration, unknown_task_grace, absl::Seconds(30),
          "After this, a queued job whose task no executor advertised says so in GetJob");
ABSL_FLAG(int32_t, max_message_bytes, 64 << 20, "Largest gRPC message accepted or sent");
ABSL_FLAG(int32_t, max_watchers, 1024,
          "WatchJob streams open at once; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, fold_window, 10'000,
          "Results fold in shard order: a job's shards are dispatched only while "
          "within this many of its first unfolded shard (bounds the results held "
          "behind one slow shard)");
ABSL_FLAG(absl::Duration, fault_persist_delay, absl::ZeroDuration(),
          "Fault injection for tests: pause this long between writing a result to the "
          "sink and marking its job done");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate (chain) for TLS on the gRPC port; with --tls-key. Re-read "
          "when the file changes (see --tls-refresh)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: executors may authenticate with a client certificate signed "
          "by it (mTLS); its SAN (or CN) is the executor's identity");
ABSL_FLAG(absl::Duration, tls_refresh, absl::Seconds(60),
          "How often the TLS files are checked for a new certificate, key or CA");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "JSON file of token SHA-256 hashes and roles (reader, submitter, executor, "
          "admin); every call but health then needs 'authorization: Bearer <token>'. "
          "Re-read when it changes. See docs/security.md");
ABSL_FLAG(bool, insecure, false,
          "Serve a non-loopback --listen address with neither TLS nor tokens (anyone "
          "who reaches the port may drive the scheduler)");
ABSL_FLAG(std::string, result_sink, "",
          "Where job results go: empty for <data-dir>/results, s3://BUCKET[/PREFIX] for "
          "S3-compatible object storage (objects PREFIX/<job-id>.json), or a directory");
ABSL_FLAG(std::string, s3_endpoint, "",
          "S3-compatible endpoint (http(s)://HOST[:PORT], e.g. MinIO), addressed "
          "path-style; empty: AWS S3 in --s3-region");
ABSL_FLAG(std::string, s3_region, "us-east-1", "S3 region the requests are signed for");
ABSL_FLAG(std::string, s3_credentials_file, "",
          "AWS shared-credentials file (re-read when it changes); empty: the "
          "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN variables");
ABSL_FLAG(std::string, s3_profile, "default", "Section of --s3-credentials-file to use");
ABSL_FLAG(int64_t, s3_multipart_threshold, int64_t{64} << 20,
          "Results larger than this many bytes are uploaded in parts (multipart)");
ABSL_FLAG(int64_t, s3_part_size, int64_t{16} << 20,
          "Size of a multipart upload's parts in bytes (S3 wants at least 5 MiB)");
ABSL_FLAG(absl::Duration, s3_timeout, absl::Seconds(30),
          "An S3 request making no progress this long fails and is retried");
ABSL_FLAG(std::string, log_format, "text", "Log format: text or json");
ABSL_FLAG(std::string, log_level, "info", "Log level: trace, debug, info, warn, error");
ABSL_FLAG(
    std::string, port_file, "",
    "If set, the bound gRPC port is written to this file once serving (for scripts)");

namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void WritePortFile(int port) {
  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    FILE* f = std::fopen(pf.c_str(), "w");
    if (f != nullptr) {
      std::fprintf(f, "%d\n", port);
      std::fclose(f);
    }
  }
}

// Waits for SIGTERM/SIGINT (`signals`, blocked), then calls `shutdown`. A
// store stuck in a system call (a dead disk) must not keep the process from
// ending: a watchdog exits after `exit_bound`. Nothing it cuts short was
// acknowledged (the store is crash-safe), and it dies with the process
// otherwise, so it is not joined.
std::thread ShutDownOnSignal(const sigset_t& signals, absl::Duration exit_bound,
                             std::function<void()> shutdown) {
  return std::thread([&signals, exit_bound, shutdown = std::move(shutdown)] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("received signal {}; shutting down", sig);
    std::thread([exit_bound] {
      absl::SleepFor(exit_bound);
      spdlog::error("shutdown not done after {}; exiting now",
                    absl::FormatDuration(exit_bound));
      std::_Exit(1);
    }).detach();
    shutdown();
  });
}

// One replica under leader election (--store=postgres): follows, leads when
// the lease is free, steps down when fenced, until a termination signal.
int RunReplica(const tessera::scheduler::SchedulerConfig& config,
               const tessera::Clock* clock, const sigset_t& signals) {
  tessera::scheduler::HaOptions ha;
  ha.renew = absl::GetFlag(FLAGS_leader_renew);
  ha.ttl = absl::GetFlag(FLAGS_leader_lease_ttl);
  ha.advertise = absl::GetFlag(FLAGS_advertise_address);
  auto replica = tessera::scheduler::HaScheduler::Create(config, ha, clock);
  if (!replica.ok()) {
    spdlog::error("cannot start: {}", replica.status().ToString());
    return 1;
  }
  std::thread signal_waiter =
      ShutDownOnSignal(signals, config.store_timeout + absl::Seconds(7),
                       [r = replica->get()] { r->Shutdown(); });
  WritePortFile((*replica)->port());
  (*replica)->Wait();
  signal_waiter.join();
  replica->reset();
  spdlog::info("scheduler stopped");
  return 0;
}

int main(int argc, char** argv) {
  tessera::PrepareMain(
      argc, argv,
      "Runs jobs split into shards across tessera-executor processes.\n"
      "Usage: tessera-scheduler [--listen=0.0.0.0:50051] [--data-dir=DIR] [flags]\n"
      "Flag names take dashes or underscores: --data-dir and --data_dir are the same.",
      "scheduler/main.cc");
  absl::ParseCommandLine(argc, argv);

  tessera::LogConfig log{absl::GetFlag(FLAGS_log_format), absl::GetFlag(FLAGS_log_level)};
  if (absl::Status s = tessera::InitLogging(log, "scheduler"); !s.ok()) {
    std::cerr << "tessera-scheduler: " << s.message() << "\n";
    return 2;
  }
  tessera::scheduler::SchedulerConfig config;
  config.listen = absl::GetFlag(FLAGS_listen);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.data_dir = absl::GetFlag(FLAGS_data_dir);
  config.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  config.max_watchers = absl::GetFlag(FLAGS_max_watchers);
  config.core.fold_window = absl::GetFlag(FLAGS_fold_window);
  config.core.max_shards_per_job = absl::GetFlag(FLAGS_max_shards_per_job);
  config.core.prefetch = absl::GetFlag(FLAGS_prefetch);
  config.core.max_prefetch = absl::GetFlag(FLAGS_max_prefetch);
  config.core.prefetch_window = absl::GetFlag(FLAGS_prefetch_window);
  config.store = absl::GetFlag(FLAGS_store);
  config.store_sync = absl::GetFlag(FLAGS_store_sync);
  config.postgres_url = absl::GetFlag(FLAGS_postgres_url);
  config.postgres_password_file = absl::GetFlag(FLAGS_postgres_password_file);
  config.store_linger = absl::GetFlag(FLAGS_store_linger);
  config.store_timeout = absl::GetFlag(FLAGS_store_timeout);
  config.fault_persist_delay = absl::GetFlag(FLAGS_fault_persist_delay);
  config.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  config.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  config.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  config.tls.refresh = absl::GetFlag(FLAGS_tls_refresh);
  config.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  config.insecure = absl::GetFlag(FLAGS_insecure);
  config.result_sink = absl::GetFlag(FLAGS_result_sink);
  config.s3.endpoint = absl::GetFlag(FLAGS_s3_endpoint);
  config.s3.region = absl::GetFlag(FLAGS_s3_region);
  config.s3.credentials_file = absl::GetFlag(FLAGS_s3_credentials_file);
  config.s3.profile = absl::GetFlag(FLAGS_s3_profile);
  config.s3.multipart_threshold = absl::GetFlag(FLAGS_s3_multipart_threshold);
  config.s3.part_size = absl::GetFlag(FLAGS_s3_part_size);
  config.s3.timeout = absl::GetFlag(FLAGS_s3_timeout);
  config.core.reattach_grace = absl::GetFlag(FLAGS_reattach_grace);
  config.core.idempotency_retention = absl::GetFlag(FLAGS_idempotency_retention);
  config.core.job_retention = absl::GetFlag(FLAGS_job_retention);
  config.delete_results_with_jobs = absl::GetFlag(FLAGS_delete_results_with_jobs);
  config.store_compact_interval = absl::GetFlag(FLAGS_store_compact_interval);
  config.core.max_items_per_job = absl::GetFlag(FLAGS_max_items_per_job);
  config.core.max_item_bytes = absl::GetFlag(FLAGS_max_item_bytes);
  config.core.max_json_depth = absl::GetFlag(FLAGS_max_json_depth);
  config.core.max_params_bytes = absl::GetFlag(FLAGS_max_params_bytes);
  config.core.max_result_bytes = absl::GetFlag(FLAGS_max_result_bytes);
  config.core.max_folded_result_bytes = absl::GetFlag(FLAGS_max_folded_result_bytes);
  config.core.lease_grace = absl::GetFlag(FLAGS_lease_grace);
  config.core.max_executor_losses = absl::GetFlag(FLAGS_max_executor_losses);
  config.core.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  config.core.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  config.core.unknown_task_grace = absl::GetFlag(FLAGS_unknown_task_grace);
  if (absl::Status s = config.Validate(); !s.ok()) {
    std::cerr << "tessera-scheduler: " << s.message() << "\n";
    return 2;
  }

  tessera::RealClock clock;
  // Blocked before any gRPC thread starts, so that only the waiter sees them.
  const sigset_t signals = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (config.store == "postgres" && absl::GetFlag(FLAGS_leader_election)) {
    return RunReplica(config, &clock, signals);
  }
  auto server = tessera::scheduler::SchedulerServer::Create(config, &clock);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  std::thread signal_waiter =
      ShutDownOnSignal(signals, config.store_timeout + absl::Seconds(7),
                       [s = server->get()] { s->Shutdown(); });
  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    FILE* f = std::fopen(pf.c_str(), "w");
    if (f != nullptr) {
      std::fprintf(f, "%d\n", (*server)->port());
      std::fclose(f);
    }
  }
  (*server)->Wait();
  (*server)->Shutdown();
  signal_waiter.join();
  spdlog::info("scheduler stopped");
  return 0;
}
