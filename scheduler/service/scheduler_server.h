// Builds and runs a whole scheduler: runtime, result sink, gRPC server
// (JobService, ExecutorService, health, reflection) and /metrics.
#ifndef TESSERA_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_
#define TESSERA_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/sink/s3_sink.h"
#include "shared/clock.h"
#include "shared/metrics.h"
#include "shared/tls.h"

namespace tessera::scheduler {

class ResultSink;
class Store;

struct SchedulerConfig {
  std::string listen = "0.0.0.0:50051";
  std::string metrics_listen = "0.0.0.0:9090";  // empty: no metrics endpoint
  std::string data_dir = "tessera-data";
  std::string store = "sqlite";  // "postgres", or "memory" (nothing survives a restart)
  // "full" (power-loss safe) or "normal" (sqlite and postgres).
  std::string store_sync = "full";
  // --store=postgres: libpq conninfo or URI; its password, if any, is never
  // logged. The password file (first line) is read once at start.
  std::string postgres_url;
  std::string postgres_password_file;
  // Where results go (scheduler/sink/sink_factory.h): "" is <data_dir>/results.
  std::string result_sink;
  S3SinkOptions s3;  // for result_sink = s3://…
  // Results and acks wait up to this long to share a commit (Runtime::SetCommitLinger).
  absl::Duration store_linger = absl::Milliseconds(2);
  // A call that changes a job waits at most this long for its commit, then
  // gets UNAVAILABLE; a commit running longer counts as failing; on SIGTERM a
  // failing store is retried this long (Runtime::SetStoreTimeout).
  absl::Duration store_timeout = absl::Seconds(5);
  // A retired job's result goes too (core.job_retention retires jobs).
  bool delete_results_with_jobs = false;
  // How often the store hands back the space of deleted rows.
  absl::Duration store_compact_interval = absl::Minutes(1);
  int max_message_bytes = 64 << 20;
  int max_watchers = 1024;  // WatchJob streams open at once
  absl::Duration fault_persist_delay = absl::ZeroDuration();  // tests only
  // How often an idle scheduler keeps gRPC's callback threads from sleeping
  // (callback_queue_waker.h); zero turns it off (tests only: calls after about
  // a second idle then stall up to 100 ms).
  absl::Duration callback_wake_period = absl::Milliseconds(250);
  // Tests only: wrap the store and the result sink (fault injection).
  std::function<std::unique_ptr<Store>(std::unique_ptr<Store>)> wrap_store;
  std::function<std::unique_ptr<ResultSink>(std::unique_ptr<ResultSink>)> wrap_sink;
  // TLS on the gRPC port (docs/security.md); empty cert and key: plaintext.
  ServerTlsOptions tls;
  // JSON file of token hashes and roles; empty: JobService needs no token.
  std::string auth_tokens_file;
  // Serve a non-loopback address with neither TLS nor tokens.
  bool insecure = false;
  CoreConfig core;
  absl::Status Validate() const;
};

class Authenticator;
class DataDirLock;
class Runtime;
class JobServiceImpl;
class ExecutorServiceImpl;
class CallbackQueueWaker;

// Health (grpc.health.v1) is SERVING while the runtime takes work, NOT_SERVING
// while the store or the sink fails (Runtime::SetHealthListener) and from
// Shutdown on.
//
// Thread-safe. Wait() blocks until Shutdown() (e.g. from a signal thread).
class SchedulerServer {
 public:
  static absl::StatusOr<std::unique_ptr<SchedulerServer>> Create(
      const SchedulerConfig& config, const Clock* clock);
  ~SchedulerServer();

  int port() const { return port_; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  // The runtime's metrics (for an owner that serves /metrics itself).
  std::vector<prometheus::MetricFamily> CollectMetrics();
  void Wait();
  // Refuses new submissions, ends open calls and streams (executors keep
  // their work and re-attach later), commits what is queued to the store.
  void Shutdown();

 private:
  SchedulerServer() = default;
  // Released last, once everything writing to the data dir is gone.
  std::unique_ptr<DataDirLock> lock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ResultSink> sink_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<ExecutorServiceImpl> executor_service_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<CallbackQueueWaker> waker_;  // stopped before server_ shuts down
  int port_ = 0;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_
