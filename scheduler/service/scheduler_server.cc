#include "scheduler/service/scheduler_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "scheduler/service/auth.h"
#include "scheduler/service/callback_queue_waker.h"
#include "scheduler/service/executor_service.h"
#include "scheduler/service/job_service.h"
#include "scheduler/service/runtime.h"
#include "scheduler/service/scheduler_metrics.h"
#include "scheduler/sink/result_sink.h"
#include "scheduler/sink/sink_factory.h"
#include "scheduler/store/data_dir_lock.h"
#include "scheduler/store/memory_store.h"
#include "scheduler/store/postgres_store.h"
#include "scheduler/store/sqlite_store.h"
#include "shared/grpc_util.h"
#include "shared/logging.h"

namespace tessera::scheduler {
namespace {

// The runtime's families (from a snapshot of the core) and the sink's.
std::vector<prometheus::MetricFamily> CollectRuntimeMetrics(Runtime& runtime) {
  std::vector<prometheus::MetricFamily> families =
      runtime.metrics().Collect(runtime.Snapshot());
  for (prometheus::MetricFamily& f : runtime.sink().CollectMetrics()) {
    families.push_back(std::move(f));
  }
  return families;
}

}  // namespace

absl::Status SchedulerConfig::Validate() const {
  if (listen.empty()) return absl::InvalidArgumentError("--listen is required");
  if (data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  if (store != "sqlite" && store != "memory" && store != "postgres") {
    return absl::InvalidArgumentError(
        absl::StrCat("--store must be sqlite, postgres or memory (got \"", store, "\")"));
  }
  if (store == "postgres" && postgres_url.empty()) {
    return absl::InvalidArgumentError(
        "--store=postgres needs --postgres-url (libpq conninfo or postgresql:// URI)");
  }
  if (store != "postgres" && (!postgres_url.empty() || !postgres_password_file.empty())) {
    return absl::InvalidArgumentError(
        "--postgres-url and --postgres-password-file need --store=postgres");
  }
  if (store_timeout < absl::Milliseconds(100) || store_timeout > absl::Minutes(10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store-timeout must be between 100ms and 10m (got ",
                     absl::FormatDuration(store_timeout), ")"));
  }
  if (store_linger < absl::ZeroDuration() || store_linger > absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store-linger must be between 0 and 1s (got ",
                     absl::FormatDuration(store_linger), ")"));
  }
  if (max_watchers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-watchers must be >= 1 (got ", max_watchers, ")"));
  }
  if (max_message_bytes < (1 << 20)) {
    return absl::InvalidArgumentError("--max-message-bytes must be at least 1048576");
  }
  if (absl::Status s = ValidateResultSink(result_sink, s3); !s.ok()) return s;
  return core.Validate();
}

absl::StatusOr<std::unique_ptr<SchedulerServer>> SchedulerServer::Create(
    const SchedulerConfig& config, const Clock* clock) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  const bool tls = !config.tls.cert_file.empty();
  if (!tls && config.auth_tokens_file.empty() &&
      !IsLoopbackListenAddress(config.listen)) {
    if (!config.insecure) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--listen=", config.listen,
          " is reachable from other hosts, but neither TLS (--tls-cert, --tls-key) nor "
          "tokens (--auth-tokens-file) are set: anyone who reaches the port could run "
          "and read jobs. Set them (docs/security.md), listen on 127.0.0.1, or pass "
          "--insecure to serve without credentials"));
    }
    spdlog::warn(
        "--insecure: serving {} without TLS or tokens; anyone who reaches "
        "the port can submit, cancel and read jobs and run executors",
        config.listen);
  }
  if (tls && config.auth_tokens_file.empty() && !IsLoopbackListenAddress(config.listen)) {
    spdlog::warn(
        "TLS without --auth-tokens-file: the wire is encrypted, but anyone who reaches "
        "{} may submit, cancel and read jobs{} (docs/security.md)",
        config.listen,
        config.tls.client_ca_file.empty() ? " and run as an executor" : "");
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(config.tls);
  if (!credentials.ok()) return credentials.status();
  AuthOptions auth_options;
  auth_options.tokens_file = config.auth_tokens_file;
  auth_options.client_ca = !config.tls.client_ca_file.empty();
  auto auth = Authenticator::Create(auth_options, clock);
  if (!auth.ok()) return auth.status();
  std::unique_ptr<SchedulerServer> server(new SchedulerServer());
  server->auth_ = *std::move(auth);
  auto lock = DataDirLock::Acquire(config.data_dir);
  if (!lock.ok()) return lock.status();
  server->lock_ = *std::move(lock);
  auto sink = MakeResultSink(config.result_sink, config.s3, config.data_dir);
  if (!sink.ok()) return sink.status();
  server->sink_ = *std::move(sink);
  if (config.wrap_sink) server->sink_ = config.wrap_sink(std::move(server->sink_));
  std::string store_name = config.store;
  if (config.store == "memory") {
    server->store_ = std::make_unique<MemoryStore>();
  } else if (config.store == "postgres") {
    PostgresOptions options;
    options.url = config.postgres_url;
    options.sync = config.store_sync;
    // Read once at start; libpq reads PGPASSWORD itself.
    if (!config.postgres_password_file.empty()) {
      auto password = ReadPasswordFile(config.postgres_password_file);
      if (!password.ok()) return password.status();
      options.password = *std::move(password);
    }
    auto store = PostgresStore::Open(options);
    if (!store.ok()) return store.status();
    store_name = absl::StrCat("postgres (", (*store)->redacted_url(), ", schema version ",
                              PostgresStore::SchemaVersion(), ", ",
                              (*store)->migrations_applied(), " migrations applied)");
    server->store_ = *std::move(store);
  } else {
    auto store = SqliteStore::Open(config.data_dir, config.store_sync);
    if (!store.ok()) return store.status();
    server->store_ = *std::move(store);
  }
  if (config.wrap_store) server->store_ = config.wrap_store(std::move(server->store_));
  server->runtime_ = std::make_unique<Runtime>(config.core, clock, server->store_.get(),
                                               server->sink_.get());
  server->runtime_->SetPersistDelayForTesting(config.fault_persist_delay);
  server->runtime_->SetCommitLinger(config.store_linger);
  server->runtime_->SetStoreTimeout(config.store_timeout);
  server->runtime_->SetDeleteResultsWithJobs(config.delete_results_with_jobs);
  server->runtime_->SetCompactInterval(config.store_compact_interval);
  if (absl::Status s = server->runtime_->Recover(); !s.ok()) return s;
  server->job_service_ =
      std::make_unique<JobServiceImpl>(server->runtime_.get(), server->auth_.get(),
                                       config.max_watchers, config.max_message_bytes);
  server->executor_service_ =
      std::make_unique<ExecutorServiceImpl>(server->runtime_.get(), server->auth_.get());

  if (!config.metrics_listen.empty()) {
    auto metrics = MetricsServer::Create(config.metrics_listen);
    if (!metrics.ok()) return metrics.status();
    server->metrics_ = *std::move(metrics);
    Runtime* rt = server->runtime_.get();
    server->metrics_->AddCollector([rt] { return CollectRuntimeMetrics(*rt); });
  }

  // Links health.proto's descriptor so reflection can describe grpc.health.v1.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ApplyServerDefaults(builder);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  builder.AddListeningPort(config.listen, *credentials, &server->port_);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(MakeReflectionGuard(server->auth_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(server->job_service_.get());
  builder.RegisterService(server->executor_service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen, " (address in use or invalid)"));
  }
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  if (config.callback_wake_period > absl::ZeroDuration()) {
    server->waker_ = std::make_unique<CallbackQueueWaker>(server->server_.get(),
                                                          config.callback_wake_period);
  }
  SchedulerServer* s = server.get();
  server->runtime_->SetHealthListener([s](const absl::Status& refusal) {
    absl::MutexLock lock(&s->mu_);
    if (s->shut_down_) return;  // NOT_SERVING for good
    s->server_->GetHealthCheckService()->SetServingStatus(refusal.ok());
    if (refusal.ok()) {
      spdlog::info("health: SERVING again");
    } else {
      spdlog::warn("health: NOT_SERVING: {}", refusal.ToString());
    }
  });
  server->runtime_->Start();
  spdlog::info(
      "scheduler listening on port {} (metrics port {}), data dir {}, store {}, tls {}, "
      "client certificates {}, tokens {}",
      server->port_, server->metrics_port(), config.data_dir, store_name,
      tls ? "on" : "off", config.tls.client_ca_file.empty() ? "off" : "verified",
      config.auth_tokens_file.empty() ? "off" : "required");
  return server;
}

SchedulerServer::~SchedulerServer() { Shutdown(); }

std::vector<prometheus::MetricFamily> SchedulerServer::CollectMetrics() {
  return runtime_ ? CollectRuntimeMetrics(*runtime_)
                  : std::vector<prometheus::MetricFamily>{};
}

void SchedulerServer::Wait() {
  if (server_) server_->Wait();
}

void SchedulerServer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    if (server_) server_->GetHealthCheckService()->SetServingStatus(false);
  }
  if (runtime_) runtime_->BeginShutdown();
  if (waker_) waker_->Stop();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (runtime_) runtime_->Stop();
}

}  // namespace tessera::scheduler
