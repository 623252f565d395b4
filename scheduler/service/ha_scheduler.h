// A scheduler replica under leader election on PostgreSQL (--store=postgres;
// docs/deploy.md "High availability").
//
// A follower serves the gRPC port with health NOT_SERVING and answers every
// other call (JobService, ExecutorService.Connect) UNAVAILABLE with a message
// naming the leader; it polls the lease every renew interval. When it takes
// the lease (a new epoch), it builds a whole SchedulerServer on the same port
// whose store is fenced at that epoch: Recover rebuilds from the store and
// executors re-attach within --reattach-grace, exactly as after a restart.
//
// The leader renews every renew interval. It steps down (in-process: the
// SchedulerServer is shut down, which ends executor streams, and the follower
// server takes the port again) when a renewal finds the lease lost, when no
// renewal has passed for a whole TTL (the lease has expired on the server, so
// its fence refuses anyway), or at the first commit the fence refuses.
//
// Thread-safe. Wait() blocks until Shutdown().
#ifndef TESSERA_SCHEDULER_SERVICE_HA_SCHEDULER_H_
#define TESSERA_SCHEDULER_SERVICE_HA_SCHEDULER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "scheduler/service/scheduler_server.h"
#include "scheduler/store/postgres_leader.h"
#include "shared/steady_wait.h"

namespace tessera::scheduler {

struct HaOptions {
  absl::Duration renew = absl::Seconds(2);
  absl::Duration ttl = absl::Seconds(10);
  // Where clients reach this replica (named to them by followers); empty:
  // <hostname>:<port>.
  std::string advertise;
  absl::Status Validate() const;
};

class HaScheduler {
 public:
  static absl::StatusOr<std::unique_ptr<HaScheduler>> Create(
      const SchedulerConfig& config, const HaOptions& ha, const Clock* clock);
  ~HaScheduler();

  int port() const { return port_; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  void Wait() { stopped_.WaitForNotification(); }
  void Shutdown();

 private:
  class FollowerService;
  class FenceWatchStore;
  HaScheduler(const SchedulerConfig& config, const HaOptions& ha, const Clock* clock);

  absl::Status StartFollowerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();
  // Builds the leader's server at `epoch`; false (and the lease given back)
  // if it cannot start.
  bool LeadLocked(int64_t epoch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StepDownLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string FollowerMessage();
  std::vector<prometheus::MetricFamily> CollectMetrics();

  const SchedulerConfig config_;
  const HaOptions ha_;
  const Clock* const clock_;
  std::string listen_;  // with the port the first bind chose
  int port_ = 0;
  std::unique_ptr<PostgresLeaderLease> lease_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<FollowerService> follower_service_;
  absl::Notification stopped_;

  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool fenced_ ABSL_GUARDED_BY(mu_) = false;
  SteadyCondVar wake_;  // signalled when shutting_down_ or fenced_ is set
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;  // 0: a follower
  int64_t failovers_ ABSL_GUARDED_BY(mu_) = 0;
  LeaderInfo seen_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Server> follower_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<SchedulerServer> leader_ ABSL_GUARDED_BY(mu_);
  std::thread loop_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_HA_SCHEDULER_H_
