// tessera-executor: runs shards for a Tessera scheduler.
//
// Flags -> ExecutorConfig (validated) -> registry, metrics, client -> Run until
// SIGTERM/SIGINT has drained the executor. Exit status: 0 after a drain, 1 when
// startup fails, 2 for bad flags or a bad --tasks-file.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "executor/handlers/exec_handler.h"
#include "executor/handlers/exec_task_config.h"
#include "executor/handlers/handler.h"
#include "executor/service/executor_client.h"
#include "executor/service/executor_config.h"
#include "executor/service/executor_metrics.h"
#include "executor/service/grpc_scheduler_connection.h"
#include "shared/clock.h"
#include "shared/flag_names.h"
#include "shared/ids.h"
#include "shared/logging.h"
#include "shared/metrics.h"
#include "spdlog/spdlog.h"

namespace {

int DefaultSlots() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace

// Abseil flag names cannot contain '-'; main() accepts --foo-bar for --foo_bar.
ABSL_FLAG(std::string, scheduler, "127.0.0.1:50051",
          "host:port of the scheduler's ExecutorService, or a comma-separated list of "
          "replicas (the one that leads is used).");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9091",
          "host:port for the Prometheus /metrics endpoint (--metrics-listen); empty "
          "disables it.");
ABSL_FLAG(
    std::vector<std::string>, queues, std::vector<std::string>({"default"}),
    "Comma-separated queues this executor takes jobs from (--queues=default,batch).");
ABSL_FLAG(int, slots, DefaultSlots(),
          "Shards run at once (default: the number of CPU cores).");
ABSL_FLAG(std::string, name, "",
          "Name shown by the scheduler for this executor (default: hostname-pid).");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "On SIGTERM/SIGINT, how long running shards may take to finish before they "
          "are cancelled and released (--drain-timeout), e.g. 30s.");
ABSL_FLAG(std::string, tasks_file, "",
          "JSON file of operator-defined exec tasks (--tasks-file), e.g. "
          "{\"tasks\": {\"promo\": {\"command\": [\"python3\", \"promo.py\"]}}}; "
          "see docs/tasks.md.");
ABSL_FLAG(absl::Duration, keepalive, absl::Seconds(5),
          "HTTP/2 keepalive to the scheduler (--keepalive): a ping after this long, "
          "and a scheduler that does not answer within as long again is left and "
          "reconnected to; at least 1s.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle to verify the scheduler's TLS certificate (--tls-ca); empty: "
          "plaintext.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate for mTLS (--tls-cert); its SAN or CN is this "
          "executor's identity at the scheduler.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert (--tls-key).");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding a bearer token with role executor (--auth-token-file); read "
          "again on every reconnect.");
ABSL_FLAG(std::string, log_format, "text", "Log format: text or json (--log-format).");
ABSL_FLAG(std::string, log_level, "info",
          "Log level: trace, debug, info, warn, error or off (--log-level).");

int main(int argc, char** argv) {
  using tessera::executor::ExecutorConfig;
  tessera::PrepareMain(
      argc, argv,
      "Runs shards for a Tessera scheduler.\n"
      "Usage: tessera-executor [--scheduler=host:port] [--slots=N] [flags]\n"
      "Flag names may be written with '-' or '_' (--drain-timeout, --drain_timeout).",
      "executor/main.cc");
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::cerr << "tessera-executor: unexpected argument \"" << positional[1]
              << "\" (see --help)\n";
    return 2;
  }

  ExecutorConfig config;
  config.scheduler_address = absl::GetFlag(FLAGS_scheduler);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.slots = absl::GetFlag(FLAGS_slots);
  config.queues = absl::GetFlag(FLAGS_queues);
  config.name = absl::GetFlag(FLAGS_name);
  if (config.name.empty()) config.name = tessera::executor::DefaultExecutorName();
  config.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  config.keepalive = absl::GetFlag(FLAGS_keepalive);
  config.log.format = absl::GetFlag(FLAGS_log_format);
  config.log.level = absl::GetFlag(FLAGS_log_level);
  if (absl::Status s = config.Validate(); !s.ok()) {
    std::cerr << "tessera-executor: " << s.message() << "\n";
    return 2;
  }
  if (absl::Status s = tessera::InitLogging(config.log, "executor"); !s.ok()) {
    std::cerr << "tessera-executor: " << s.message() << "\n";
    return 2;
  }

  // Block the stop signals before any thread starts (gRPC, metrics, slots), so
  // that only the watcher below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::unique_ptr<tessera::MetricsServer> metrics_server;
  std::shared_ptr<prometheus::Registry> private_registry;
  prometheus::Registry* registry = nullptr;
  if (!config.metrics_listen.empty()) {
    auto server = tessera::MetricsServer::Create(config.metrics_listen);
    if (!server.ok()) {
      // Typically a second executor on one host with the default port.
      spdlog::error(
          "{}; {}", std::string(server.status().message()),
          tessera::MetricsListenAdvice("--metrics-listen", config.metrics_listen));
      return 1;
    }
    metrics_server = std::move(server).value();
    registry = &metrics_server->registry();
    spdlog::info("metrics on {} (port {})", config.metrics_listen,
                 metrics_server->port());
  } else {
    private_registry = std::make_shared<prometheus::Registry>();
    registry = private_registry.get();
  }
  tessera::executor::ExecutorMetrics metrics(*registry);

  tessera::executor::HandlerRegistry handlers;
  if (absl::Status s = tessera::executor::RegisterBuiltinHandlers(handlers); !s.ok()) {
    spdlog::error("registering handlers: {}", s.ToString());
    return 1;
  }
  if (const std::string tasks_file = absl::GetFlag(FLAGS_tasks_file);
      !tasks_file.empty()) {
    auto tasks = tessera::executor::LoadExecTasksFile(tasks_file);
    absl::Status s = tasks.ok() ? tessera::executor::RegisterExecTasks(handlers, *tasks)
                                : tasks.status();
    if (!s.ok()) {
      std::cerr << "tessera-executor: " << s.message() << "\n";
      return 2;
    }
    for (const auto& t : *tasks) {
      spdlog::info("exec task {}: {} (workdir {}, timeout {})", t.name,
                   absl::StrJoin(t.command, " "), t.workdir,
                   absl::FormatDuration(t.timeout));
    }
  }

  tessera::executor::ExecutorClientOptions options;
  options.scheduler_address = config.scheduler_address;
  options.executor_id = tessera::RandomHexId(8);
  options.name = config.name;
  options.slots = config.slots;
  options.queues = config.queues;
  options.drain_timeout = config.drain_timeout;
  tessera::executor::GrpcConnectionOptions grpc_options;
  grpc_options.connect_timeout = options.max_backoff;
  grpc_options.keepalive = config.keepalive;
  grpc_options.tls.ca_file = absl::GetFlag(FLAGS_tls_ca);
  grpc_options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  grpc_options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  grpc_options.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  // Bad files are refused now, not at every reconnect.
  if (auto creds = tessera::MakeChannelCredentials(grpc_options.tls); !creds.ok()) {
    std::cerr << "tessera-executor: " << creds.status().message() << "\n";
    return 2;
  }
  if (auto token =
          tessera::ReadTokenFile(grpc_options.auth_token_file, "--auth-token-file");
      !token.ok()) {
    std::cerr << "tessera-executor: " << token.status().message() << "\n";
    return 2;
  }
  tessera::executor::GrpcSchedulerConnection connection(grpc_options);
  const tessera::RealClock clock;
  tessera::executor::ExecutorClient client(options, &handlers, &metrics, &connection,
                                           &clock);

  std::atomic<bool> done{false};
  std::thread signal_watcher([&] {
    while (!done.load()) {
      const timespec poll = {0, 100'000'000};
      const int sig = sigtimedwait(&stop_signals, nullptr, &poll);
      if (sig > 0) {
        spdlog::info("executor={} received {}", options.executor_id, strsignal(sig));
        client.Drain();
      }
    }
  });
  client.Run();
  done.store(true);
  signal_watcher.join();
  return 0;
}
