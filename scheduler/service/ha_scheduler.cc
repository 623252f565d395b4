#include "scheduler/service/ha_scheduler.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "scheduler/store/postgres_conninfo.h"
#include "scheduler/store/store.h"
#include "shared/grpc_util.h"
#include "shared/logging.h"
#include "shared/tls.h"

namespace tessera::scheduler {

absl::Status HaOptions::Validate() const {
  if (renew < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--leader-renew must be at least 100ms (got ", absl::FormatDuration(renew), ")"));
  }
  if (ttl < 2 * renew) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--leader-lease-ttl must be at least twice --leader-renew (got ",
        absl::FormatDuration(ttl), " and ", absl::FormatDuration(renew), ")"));
  }
  return absl::OkStatus();
}

// Every call a follower gets that is not health or reflection: UNAVAILABLE,
// naming the leader, so a client tries the next address.
class HaScheduler::FollowerService : public grpc::CallbackGenericService {
 public:
  explicit FollowerService(HaScheduler* owner) : owner_(owner) {}
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext*) override {
    class Refuse : public grpc::ServerGenericBidiReactor {
     public:
      explicit Refuse(const std::string& message) {
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, message));
      }
      void OnDone() override { delete this; }
    };
    return new Refuse(owner_->FollowerMessage());
  }

 private:
  HaScheduler* owner_;
};

// Notices the first commit the fence refuses, and refuses every later one
// at once (the leader is stepping down; nothing more is tried).
class HaScheduler::FenceWatchStore : public Store {
 public:
  FenceWatchStore(std::unique_ptr<Store> inner, std::function<void()> on_fenced)
      : inner_(std::move(inner)), on_fenced_(std::move(on_fenced)) {}
  absl::Status Commit(const StoreWrite& write, bool durable) override {
    return Watch(fenced_ ? fenced_status_ : inner_->Commit(write, durable));
  }
  absl::Status Flush() override {
    return Watch(fenced_ ? fenced_status_ : inner_->Flush());
  }
  absl::StatusOr<StoredState> Load() override { return inner_->Load(); }
  absl::StatusOr<StoredState> LoadUnfinished() override {
    return inner_->LoadUnfinished();
  }
  absl::StatusOr<std::optional<JobRecord>> LoadJob(const std::string& id) override {
    return inner_->LoadJob(id);
  }
  absl::StatusOr<std::vector<JobRecord>> ListFinishedJobs(const JobFilter& filter,
                                                          int64_t before,
                                                          int limit) override {
    return inner_->ListFinishedJobs(filter, before, limit);
  }
  absl::StatusOr<std::vector<StoredResult>> LoadResults(
      const std::string& job_id) override {
    return inner_->LoadResults(job_id);
  }
  absl::StatusOr<std::string> InitMeta(const std::string& key,
                                       const std::string& value_if_new) override {
    return inner_->InitMeta(key, value_if_new);
  }
  absl::Status Compact() override { return inner_->Compact(); }
  absl::StatusOr<RowCounts> CountRows() override { return inner_->CountRows(); }
  std::string name() const override { return inner_->name(); }

 private:
  absl::Status Watch(absl::Status s) {
    if (s.code() == absl::StatusCode::kAborted &&
        absl::StrContains(s.message(), "fenced")) {
      if (!fenced_) {
        fenced_ = true;
        fenced_status_ = s;
        on_fenced_();
      }
    }
    return s;
  }
  std::unique_ptr<Store> inner_;
  std::function<void()> on_fenced_;
  // Commit and Flush come from one thread at a time (the store writer);
  // the reads, forwarded as they are, from reader threads meanwhile.
  bool fenced_ = false;
  absl::Status fenced_status_;
};

HaScheduler::HaScheduler(const SchedulerConfig& config, const HaOptions& ha,
                         const Clock* clock)
    : config_(config), ha_(ha), clock_(clock) {}

absl::StatusOr<std::unique_ptr<HaScheduler>> HaScheduler::Create(
    const SchedulerConfig& config, const HaOptions& ha, const Clock* clock) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  if (absl::Status s = ha.Validate(); !s.ok()) return s;
  if (config.store != "postgres") {
    return absl::InvalidArgumentError("leader election needs --store=postgres");
  }
  std::unique_ptr<HaScheduler> h(new HaScheduler(config, ha, clock));
  PostgresOptions options;
  options.url = config.postgres_url;
  options.sync = config.store_sync;
  // A leader paused mid-commit holds the leader row FOR SHARE: the server
  // ends its session within a TTL so that a follower can take the lease.
  options.idle_in_transaction_timeout = ha.ttl;
  if (!config.postgres_password_file.empty()) {
    auto password = ReadPasswordFile(config.postgres_password_file);
    if (!password.ok()) return password.status();
    options.password = *std::move(password);
  }
  {
    // The schema (and its tessera_leader table) is there before anyone competes.
    auto store = PostgresStore::Open(options);
    if (!store.ok()) return store.status();
  }
  if (!config.metrics_listen.empty()) {
    auto metrics = MetricsServer::Create(config.metrics_listen);
    if (!metrics.ok()) return metrics.status();
    h->metrics_ = *std::move(metrics);
    HaScheduler* self = h.get();
    h->metrics_->AddCollector([self] { return self->CollectMetrics(); });
  }
  h->listen_ = config.listen;
  {
    absl::MutexLock lock(&h->mu_);
    if (absl::Status s = h->StartFollowerLocked(); !s.ok()) return s;
  }
  // From now on every server binds the port the first one chose.
  h->listen_ =
      absl::StrCat(config.listen.substr(0, config.listen.rfind(':')), ":", h->port_);
  std::string advertise = ha.advertise;
  if (advertise.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    advertise = absl::StrCat(host, ":", h->port_);
  }
  h->lease_ = std::make_unique<PostgresLeaderLease>(options, NewLeaderIdentity(),
                                                    advertise, ha.ttl);
  spdlog::info(
      "leader election on {} as {} (renew every {}, lease ttl {}); following until the "
      "lease is free",
      RedactConninfo(config.postgres_url), h->lease_->identity(),
      absl::FormatDuration(ha.renew), absl::FormatDuration(ha.ttl));
  h->loop_ = std::thread([self = h.get()] { self->Loop(); });
  return h;
}

HaScheduler::~HaScheduler() {
  Shutdown();
  if (loop_.joinable()) loop_.join();
}

absl::Status HaScheduler::StartFollowerLocked() {
  auto credentials = MakeServerCredentials(config_.tls);
  if (!credentials.ok()) return credentials.status();
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ApplyServerDefaults(builder);
  int port = 0;
  builder.AddListeningPort(listen_, *credentials, &port);
  // gRPC takes a generic service for one server only: a new one per server
  // (the last server using the old one is gone by now).
  follower_service_ = std::make_unique<FollowerService>(this);
  builder.RegisterCallbackGenericService(follower_service_.get());
  follower_ = builder.BuildAndStart();
  if (follower_ == nullptr || port == 0) {
    follower_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen_, " (address in use or invalid)"));
  }
  port_ = port;
  follower_->GetHealthCheckService()->SetServingStatus(false);
  return absl::OkStatus();
}

std::string HaScheduler::FollowerMessage() {
  absl::MutexLock lock(&mu_);
  if (seen_.holder.empty() || !seen_.live) {
    return "this scheduler is a follower and no leader holds the lease now; a replica "
           "takes over within the lease TTL: try again or another scheduler address";
  }
  return absl::StrCat("this scheduler is a follower; the leader is ", seen_.holder,
                      " at ", seen_.address, " (epoch ", seen_.epoch,
                      "): send calls there");
}

bool HaScheduler::LeadLocked(int64_t epoch) {
  // The port goes from the follower server to the leader's. Not under mu_:
  // the follower's Shutdown waits for its calls, and a call answering with
  // the leader's address (FollowerMessage) waits for mu_.
  std::unique_ptr<grpc::Server> follower = std::move(follower_);
  mu_.Unlock();
  if (follower != nullptr) {
    follower->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    follower.reset();
  }
  mu_.Lock();
  if (shutting_down_) {
    (void)lease_->Resign(epoch);
    return false;
  }
  SchedulerConfig config = config_;
  config.listen = listen_;
  config.metrics_listen = "";  // served by this object, across roles
  const std::string fence = lease_->FenceSql(epoch);
  auto wrap = config_.wrap_store;
  config.wrap_store = [this, fence, epoch, wrap](std::unique_ptr<Store> store) {
    static_cast<PostgresStore*>(store.get())->SetFenceSql(fence, epoch);
    std::unique_ptr<Store> watched =
        std::make_unique<FenceWatchStore>(std::move(store), [this] {
          absl::MutexLock lock(&mu_);
          fenced_ = true;
          wake_.SignalAll();
        });
    return wrap ? wrap(std::move(watched)) : std::move(watched);
  };
  auto server = SchedulerServer::Create(config, clock_);
  if (!server.ok()) {
    spdlog::error("took the lease at epoch {} but cannot start leading: {}", epoch,
                  server.status().ToString());
    (void)lease_->Resign(epoch);
    if (absl::Status s = StartFollowerLocked(); !s.ok()) {
      spdlog::error("cannot serve as a follower either: {}", s.ToString());
    }
    return false;
  }
  leader_ = std::shared_ptr<SchedulerServer>(*std::move(server));
  epoch_ = epoch;
  fenced_ = false;
  return true;
}

void HaScheduler::StepDownLocked(const std::string& why) {
  spdlog::error("stepping down from epoch {}: {}; closing executor streams, following",
                epoch_, why);
  std::shared_ptr<SchedulerServer> leader = std::move(leader_);
  epoch_ = 0;
  fenced_ = false;
  // Shutdown commits nothing more: the fence refuses the deposed epoch.
  mu_.Unlock();
  leader->Shutdown();
  leader.reset();
  mu_.Lock();
  if (shutting_down_) return;
  if (absl::Status s = StartFollowerLocked(); !s.ok()) {
    spdlog::error("cannot serve as a follower: {}", s.ToString());
  }
}

void HaScheduler::Loop() {
  // On the monotonic clock: a wall-clock step must not keep a leader leading.
  using Steady = std::chrono::steady_clock;
  Steady::time_point last_renewed = Steady::now();
  const auto ttl = absl::ToChronoMilliseconds(ha_.ttl);
  bool first = true;  // the first poll is at once
  while (true) {
    mu_.Lock();
    if (!first) {
      // Monotonic (shared/steady_wait.h): Abseil's timed waits follow the wall clock.
      AwaitFor(
          &mu_, wake_,
          [this]()
              ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutting_down_ || fenced_; },
          ha_.renew);
    }
    first = false;
    if (shutting_down_) {
      mu_.Unlock();
      return;
    }
    if (epoch_ != 0) {
      if (fenced_) {
        StepDownLocked("fenced: a commit was refused by the epoch check");
        mu_.Unlock();
        continue;
      }
      const int64_t epoch = epoch_;
      mu_.Unlock();
      absl::StatusOr<bool> renewed = lease_->Renew(epoch);
      mu_.Lock();
      if (renewed.ok() && *renewed) {
        last_renewed = Steady::now();
      } else if (renewed.ok()) {
        StepDownLocked(
            "fenced: the lease was lost (expired or taken by another replica)");
      } else if (Steady::now() - last_renewed >= ttl) {
        StepDownLocked(absl::StrCat("no renewal for a whole lease TTL (",
                                    renewed.status().ToString(), ")"));
      } else {
        spdlog::warn("leader lease renewal failed (retrying): {}",
                     renewed.status().ToString());
      }
      mu_.Unlock();
      continue;
    }
    mu_.Unlock();
    absl::StatusOr<LeaderInfo> info = lease_->Current();
    absl::StatusOr<int64_t> epoch = lease_->TryAcquire();
    mu_.Lock();
    if (info.ok()) seen_ = *info;
    if (!epoch.ok()) {
      spdlog::warn("leader election: {}", epoch.status().ToString());
    } else if (*epoch > 0 && !shutting_down_) {
      last_renewed = Steady::now();
      const bool takeover = info.ok() && !info->holder.empty();
      spdlog::info("leading at epoch {}{}; recovering from the store", *epoch,
                   takeover ? absl::StrCat(" (took over from ", info->holder, ")") : "");
      if (LeadLocked(*epoch)) {
        if (takeover) ++failovers_;
        seen_ = LeaderInfo{lease_->identity(), lease_->address(), *epoch, true};
      }
    }
    mu_.Unlock();
  }
}

std::vector<prometheus::MetricFamily> HaScheduler::CollectMetrics() {
  std::shared_ptr<SchedulerServer> leader;
  int64_t epoch, failovers, seen_epoch;
  {
    absl::MutexLock lock(&mu_);
    leader = leader_;
    epoch = epoch_;
    failovers = failovers_;
    seen_epoch = seen_.epoch;
  }
  std::vector<prometheus::MetricFamily> out;
  if (leader) out = leader->CollectMetrics();
  auto is_leader =
      GaugeFamily("tessera_leader", "1 on the leader replica, 0 on a follower");
  AddGaugeSample(is_leader, epoch != 0 ? 1 : 0);
  out.push_back(std::move(is_leader));
  auto e =
      GaugeFamily("tessera_leader_epoch",
                  "The lease epoch this replica leads at, or the last it saw leading");
  AddGaugeSample(e, static_cast<double>(epoch != 0 ? epoch : seen_epoch));
  out.push_back(std::move(e));
  auto f = CounterFamily("tessera_leader_failovers_total",
                         "Times this replica took the lease over from another holder");
  AddCounterSample(f, static_cast<double>(failovers));
  out.push_back(std::move(f));
  return out;
}

void HaScheduler::Shutdown() {
  std::shared_ptr<SchedulerServer> leader;
  std::unique_ptr<grpc::Server> follower;
  int64_t epoch = 0;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
    wake_.SignalAll();
    leader = std::move(leader_);
    epoch = epoch_;
    epoch_ = 0;
    follower = std::move(follower_);
  }
  // Outside mu_, which its calls may be waiting for (see LeadLocked).
  if (follower != nullptr) {
    follower->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    follower.reset();
  }
  if (leader) {
    leader->Shutdown();
    leader.reset();
    // Given back at once: a follower takes over at its next poll, not after the TTL.
    if (absl::Status s = lease_->Resign(epoch); !s.ok()) {
      spdlog::warn("could not give the leader lease back: {}", s.ToString());
    } else {
      spdlog::info("gave the leader lease (epoch {}) back", epoch);
    }
  }
  stopped_.Notify();
}

}  // namespace tessera::scheduler
