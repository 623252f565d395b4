// Writes jobs' results to the result sink, each exactly once, in this order:
//
//   1. stage   Begin hands a persist worker the core's PersistAction; the
//              worker stages the bytes (ResultSink::Stage, out of readers'
//              sight) while the store writer commits the job's "finalizing"
//              record, which holds the same bytes.
//   2. commit  The callback Begin returns, queued on the writer right behind
//              that record, says it is durable, or that it never will be
//              (refused, or abandoned at shutdown).
//   3. publish Only after a durable commit: ResultSink::Publish, again with
//              the same bytes and backoff while the sink's error may pass,
//              until written, failed for good, or Stop. When the sink
//              publishes quickly (a rename) and the result was staged before
//              the commit was settled, the commit's callback publishes it on
//              the writer's thread (no worker wakes up on the job's path);
//              its retries are a worker's.
//   4. done    The owner is told (`written`): the core records the job's end,
//              whose "done" record commits only after the sink's Sync
//              (SyncBeforeCommit, the writer's before-commit hook). When no
//              other result waits, the worker runs that Sync itself right
//              after telling the owner, while watchers read the end, so that
//              the writer (and the next job's submit behind it) seldom finds
//              it still to do.
//
// Never publish before the commit: a restart after a crash finds the same
// bytes from the durable "finalizing" record, never a second, different
// result. An abandoned ticket never publishes (the next start writes it). The
// last few results written are kept in memory (Recent), for the end event of
// WatchJob streams.
//
// Thread-safe. Owns its workers; borrows the clock, the sink, the writer, the
// fault state and the metrics, which must outlive it.
#ifndef TESSERA_SCHEDULER_SERVICE_RESULT_PUBLISHER_H_
#define TESSERA_SCHEDULER_SERVICE_RESULT_PUBLISHER_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/core/types.h"
#include "scheduler/service/durable_writer.h"
#include "scheduler/service/faults.h"
#include "shared/clock.h"
#include "shared/steady_wait.h"

namespace tessera::scheduler {

class ResultSink;
class SchedulerMetrics;
struct PersistedResult;
struct StagedResult;

class ResultPublisher {
 public:
  // Told once a result is published (or failed for good), on a persist
  // worker or on the thread that heard of its commit (a parked result); the
  // job's end is the owner's to record.
  using Written = std::function<void(const PersistAction& action,
                                     const absl::StatusOr<PersistedResult>& written)>;

  ResultPublisher(const Clock* clock, ResultSink* sink, DurableWriter* writer,
                  FaultState* faults, SchedulerMetrics* metrics, Written written);
  ~ResultPublisher();

  void Start();
  // Takes `action` (stage now, publish after the commit). Returns the
  // callback to queue on the writer right behind the "finalizing" record,
  // committed durably. Once the writer has stopped nothing is taken and the
  // callback does nothing.
  DurableWriter::Callback Begin(PersistAction action);
  // Before a commit whose job records name a result: the sink's Sync, so that
  // the results they name would survive a power cut.
  absl::Status SyncBeforeCommit(const StoreWrite& write);
  // The bytes of `job_id`'s result `version` when this publisher wrote it
  // lately; nullopt when not kept (too large, long ago, another version).
  std::optional<std::string> Recent(const std::string& job_id, int32_t version);

  // Retries end and the sink gives up waiting (ResultSink::Cancel).
  void Stop();
  // After the writer has stopped: the workers end.
  void Join();

  // Fault injection for tests: wait this long after each write before
  // telling the owner, so that a test can kill the scheduler in between.
  void SetPersistDelayForTesting(absl::Duration d) { persist_delay_ = d; }

 private:
  struct Ticket;
  void Loop();
  // True when the result was published; nullopt when it was staged before
  // its commit was settled and parked for the commit's callback to publish.
  std::optional<bool> Persist(Ticket& ticket);
  // The commit's callback publishes a parked result (a sink that publishes
  // quickly); a failure that may pass goes back to a worker.
  void PublishParked(const std::shared_ptr<Ticket>& ticket,
                     absl::StatusOr<StagedResult> staged, bool committed);
  // After a publication: the owner is told. True when published.
  bool Finish(Ticket& ticket, const absl::StatusOr<PersistedResult>& written);
  // The sink's Publish of what Stage returned (its error when it failed).
  absl::StatusOr<PersistedResult> Publish(const absl::StatusOr<StagedResult>& staged);
  // Until `written` (the first attempt to publish `p`'s bytes) succeeds, a
  // permanent error, or Stop: staged and published again with backoff.
  absl::StatusOr<PersistedResult> Write(const PersistAction& p,
                                        absl::StatusOr<PersistedResult> written);
  // No result waits for a worker.
  bool Idle();
  // Waits `d` unless Stop is called meanwhile; false when stopping.
  bool WaitUnlessStopping(absl::Duration d);

  const Clock* const clock_;
  ResultSink* const sink_;
  DurableWriter* const writer_;
  FaultState* const faults_;
  SchedulerMetrics* const metrics_;
  const Written written_;
  const bool quick_;  // the sink publishes quickly (ResultSink::PublishesQuickly)
  absl::Duration persist_delay_ = absl::ZeroDuration();

  absl::Mutex mu_;
  // Results to stage; a null one: a result was published after its commit,
  // the sink's Sync and Prepare are due.
  std::deque<std::shared_ptr<Ticket>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;  // Join: workers end when idle
  SteadyCondVar stop_cv_;                      // the backoff waits; signalled by Stop

  // The last few results written (Recent), oldest first.
  struct RecentEntry {
    std::string job_id;
    int32_t version;
    std::string bytes;
  };
  absl::Mutex recent_mu_;
  std::deque<RecentEntry> recent_ ABSL_GUARDED_BY(recent_mu_);

  std::vector<std::thread> workers_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_RESULT_PUBLISHER_H_
