// The executor's side of ExecutorService.Connect: one session at a time with
// the scheduler, reconnected with backoff, and the drain on shutdown.
#ifndef TESSERA_EXECUTOR_SERVICE_EXECUTOR_CLIENT_H_
#define TESSERA_EXECUTOR_SERVICE_EXECUTOR_CLIENT_H_

#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "executor/core/drain_state.h"
#include "executor/core/result_ledger.h"
#include "executor/handlers/handler.h"
#include "executor/service/executor_metrics.h"
#include "executor/service/scheduler_connection.h"
#include "executor/service/shard_runner.h"
#include "shared/clock.h"
#include "shared/steady_wait.h"
#include "tessera/v1/executor.pb.h"

namespace tessera::executor {

struct ExecutorClientOptions {
  std::string scheduler_address;  // host:port, or several comma-separated
  std::string executor_id;        // stable for the life of the process
  std::string name;
  int slots = 1;
  std::vector<std::string> queues;  // empty: "default"
  absl::Duration drain_timeout = absl::Seconds(30);
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Until Welcome says otherwise.
  absl::Duration default_heartbeat = absl::Seconds(5);
  // After closing writes, how long the scheduler gets to end the call.
  absl::Duration close_grace = absl::Seconds(5);
  size_t max_unsent_results = 1000;
  // Backpressure: with this many results awaiting the scheduler's ack the
  // executor starts no new shard (assignments wait) until acks bring them
  // down to half of it. Every result is kept until acked, whatever the count
  // (shards running when it starts still add theirs).
  size_t max_unacked_results = 1000;
  // The longest the client sleeps before it reads the clock again. A real
  // clock needs none (waits end at their deadline); a test's FakeClock moves
  // without waking anyone, so tests that use one set this short.
  absl::Duration clock_poll = absl::InfiniteDuration();
};

// Threads: Run() is the session reader (the caller's thread); per session it
// owns a control thread (heartbeats, drain steps), joined before the next
// session; it owns the sender thread, which writes results in batches while
// work is on hand, so that no slot waits on the stream (the last result of a
// busy spell is written by its worker); the ShardRunner owns the slot
// workers. Writes to the session are serialised by write_mu_. Drain() may be
// called from any thread. Lock order: write_mu_, then mu_, then the runner's.
//
// What is owed to the scheduler lives in a ResultLedger, the drain in a
// DrainState (both pure, under mu_); this class carries out what they decide.
// Results are kept until acked and re-sent right after Hello on every new
// session, also to a restarted scheduler. Hello lists the shards still
// running, so a restarted scheduler adopts them instead of running them again.
//
// `registry`, `connection` and `clock` must outlive the client; `metrics` may
// be null. Every time the client reads comes from `clock`.
class ExecutorClient : private ShardRunner::Listener {
 public:
  ExecutorClient(ExecutorClientOptions options, const HandlerRegistry* registry,
                 ExecutorMetrics* metrics, SchedulerConnection* connection,
                 const Clock* clock);
  ~ExecutorClient() override;

  // Connects, reconnects and serves until a drain has finished. Call once.
  void Run();

  // Starts the drain: send Draining, release queued work, let running shards
  // finish within drain_timeout (then cancel and release them), close the
  // stream and make Run() return. A second call cuts the grace period short.
  void Drain();

  int slots() const { return runner_.slots(); }

 private:
  // One session: Hello, read until the stream ends. Returns how it ended.
  absl::Status Session(const std::string& address, bool* welcomed);
  void ControlLoop(SchedulerSession* session);
  void HandleMessage(const v1::SchedulerMessage& msg);
  // Cancels and releases running shards at the drain deadline, then lets the
  // outcomes already on their way out be written.
  void CancelRunningForDrain();
  void CloseSession(SchedulerSession* session);
  // While disconnected and draining: is there still a reason to reconnect?
  bool DrainOverWhileDisconnected();
  void FlushUnsent();
  // The sender thread: writes what the outbox holds as ResultBatch messages.
  void SenderLoop();
  // Writes one ResultBatch and counts this writer out; false when the stream
  // did not take it (the results stay in the ledger).
  bool WriteResults(const std::vector<ShardOutcome>& batch);
  bool Send(const v1::ExecutorMessage& msg);
  bool SendLocked(const v1::ExecutorMessage& msg)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Sleeps on cv_ until `deadline` on clock_, a signal, or `recheck` passes.
  void WaitLocked(absl::Time deadline, absl::Duration recheck = absl::InfiniteDuration())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetConnected(bool connected);
  // Carries out a ledger change: pauses or resumes the runner, metrics, logs.
  void ApplyLocked(const ResultLedger::Backpressure& b)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ShardRunner::Listener
  void OnProgress(const Assignment& a, int64_t done, int64_t total) override;
  void OnFinished(const ShardOutcome& outcome) override;

  const ExecutorClientOptions options_;
  const HandlerRegistry* const registry_;
  ExecutorMetrics* const metrics_;
  SchedulerConnection* const connection_;
  const Clock* const clock_;

  absl::Mutex write_mu_;
  SchedulerSession* session_ ABSL_GUARDED_BY(write_mu_) = nullptr;
  bool writes_closed_ ABSL_GUARDED_BY(write_mu_) = false;

  absl::Mutex mu_;
  SteadyCondVar cv_;  // session, heartbeat and drain changes
  // Signalled when the outbox is empty and no result is being written.
  SteadyCondVar written_cv_;
  SteadyCondVar outbox_cv_;  // the sender's: results queued, or stop
  bool session_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration heartbeat_ ABSL_GUARDED_BY(mu_);
  absl::Time next_heartbeat_ ABSL_GUARDED_BY(mu_);
  DrainState drain_ ABSL_GUARDED_BY(mu_);
  ResultLedger ledger_ ABSL_GUARDED_BY(mu_);
  int result_writers_ ABSL_GUARDED_BY(mu_) = 0;  // threads writing results now
  bool sender_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sender_;

  // Declared last: its workers call back into this object and are joined first.
  ShardRunner runner_;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_EXECUTOR_CLIENT_H_
