// Runs assigned shards on a fixed set of worker threads, one per slot.
#ifndef TESSERA_EXECUTOR_SERVICE_SHARD_RUNNER_H_
#define TESSERA_EXECUTOR_SERVICE_SHARD_RUNNER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "executor/core/assignment.h"
#include "executor/core/cancel_token.h"
#include "executor/core/slot_pool.h"
#include "executor/handlers/handler.h"
#include "executor/service/executor_metrics.h"
#include "shared/clock.h"
#include "shared/steady_wait.h"

namespace tessera::executor {

// The imperative shell around SlotPool: owns `slots` worker threads (started by
// Start, joined by Stop), a cancel token per running shard, and calls handlers.
// No gRPC here: outcomes go to a Listener, which the stream client implements.
//
// Thread-safe. Listener calls come from worker threads (and from Offer's caller
// for unknown tasks) with no runner lock held. An outcome is delivered to the
// listener *before* its slot is freed, so Idle() implies every outcome of a
// finished shard has been handed over.
class ShardRunner {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // Throttled (see ProgressThrottle).
    virtual void OnProgress(const Assignment& a, int64_t done, int64_t total) = 0;
    // Not called for shards that were cancelled: their outcome is unwanted.
    virtual void OnFinished(const ShardOutcome& outcome) = 0;
  };

  // `registry`, `listener`, `clock` must outlive the runner; `metrics` may be
  // null. `executor_id` only tags log lines.
  ShardRunner(const HandlerRegistry* registry, int slots, Listener* listener,
              const Clock* clock, ExecutorMetrics* metrics, std::string executor_id = "");
  ~ShardRunner();  // Stop()

  void Start();
  // Queues assignments, starting what fits. An unknown task fails at once
  // (permanent). Returns leases to give back (offered while draining).
  std::vector<std::string> Offer(std::vector<Assignment> assignments);
  // The scheduler no longer wants this shard: dequeue it or set its token.
  // False when the lease is unknown or its outcome is already being delivered.
  bool Cancel(const std::string& lease_id);
  // The stream the queued assignments came on is gone: forget them.
  std::vector<std::string> DropQueued();
  // Drain: take no more work; returns the queued leases, now released.
  std::vector<std::string> StopAccepting();
  // Paused, no worker starts a shard: the assignments wait (queued, or started
  // and waiting for a worker) until Resume. Running shards go on. For
  // backpressure; Stop still winds everything down.
  void Pause();
  void Resume();
  // Cancels every running shard whose outcome is not yet being delivered;
  // returns those leases (to be released).
  std::vector<std::string> CancelRunning();
  bool Idle() const;
  // Waits up to `timeout` for Idle(); returns Idle().
  bool WaitIdle(absl::Duration timeout) const;
  // Cancels everything, waits for handlers to return and joins the workers.
  // Idempotent.
  void Stop();

  int slots() const { return slots_; }
  int running() const;
  // Shards running or queued (a finishing shard counts until its handler's
  // outcome has been delivered).
  int pending() const;
  // Shards running now (not cancelled), for Hello after a reconnect.
  std::vector<Assignment> RunningAssignments() const;

 private:
  struct Running {
    Assignment assignment;
    std::shared_ptr<CancelToken> token;
    bool delivering = false;  // outcome handed to the listener; too late to cancel
  };

  void WorkerLoop();
  void Execute(const Assignment& a, const CancelToken& token);
  // Carries out SlotPool actions under mu_: queue starts for the workers.
  void StartLocked(SlotActions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateBusyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SignalIfIdleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasWorkLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool IdleLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const HandlerRegistry* const registry_;
  const int slots_;
  Listener* const listener_;
  const Clock* const clock_;
  ExecutorMetrics* const metrics_;
  const std::string executor_id_;

  mutable absl::Mutex mu_;
  mutable SteadyCondVar idle_cv_;  // signalled when the pool turns idle
  SlotPool pool_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);  // started, not yet picked up
  absl::flat_hash_map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;  // touched by Start/Stop only
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_SHARD_RUNNER_H_
