// The store writer: makes "acknowledged means durable" true. It commits the
// records queued with it in batches (group commit: one transaction for all
// that queued while the last one ran) on its own thread, and only then runs
// the callbacks queued behind them, so that whoever waits for a record hears
// of it once it is durable.
//
// - Linger: a batch of entries that may wait (see Add) waits up to the
//   linger for more to join it; anything urgent is committed at once, except
//   an entry whose caller expects the next urgent one soon (a submitted job
//   expected to end within a moment: its end then joins its submit's commit),
//   which waits for it up to its `may_wait`, within the linger.
// - Faults (faults.h): a failed commit is retried with backoff, keeping the
//   batch; FaultState hears of every attempt.
// - A record the store refuses for good (RecordError, store.h) is left out
//   with the other records of its job; the job is reported to the owner (the
//   `refused` hook), and the callbacks about that job are told.
// - Stop commits what is queued and waits for the holds (work that will still
//   queue records); while the store fails it gives up once the store timeout
//   has passed since shutdown began: the callbacks hear the batch was abandoned.
// - Callbacks run in the order of their batches: on the writer's thread, or,
//   when the next batch is already due (e.g. a result's record arrived while
//   a submit committed), on a second thread, so that the next commit starts
//   at once instead of after the replies.
//
// It knows records and the store, nothing of results, calls or streams: what
// to do after a commit is what its owner gives it. Thread-safe. Owns its
// thread; borrows the clock, the store, the fault state and the metrics,
// which must outlive it.
#ifndef TESSERA_SCHEDULER_SERVICE_DURABLE_WRITER_H_
#define TESSERA_SCHEDULER_SERVICE_DURABLE_WRITER_H_

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/core/types.h"
#include "scheduler/service/faults.h"
#include "scheduler/store/store.h"
#include "shared/clock.h"
#include "shared/steady_wait.h"

namespace tessera::scheduler {

class SchedulerMetrics;

class DurableWriter {
 public:
  // What became of the batch a callback was queued in.
  struct Outcome {
    // OK: committed. Else the store's refusal of a record of the callback's
    // job (`whole`: all the job's records were left out, else only its shard
    // results, or its records after the first in the batch, e.g. a submit's
    // record kept when its job's end, in the same batch, is refused), or,
    // when `abandoned`, the store's error when Stop gave up: nothing of the
    // batch was committed.
    absl::Status status;
    bool whole = false;
    bool abandoned = false;
  };
  using Callback = std::function<void(const Outcome&)>;
  // Runs once what was queued before it is committed; `job_id` (may be
  // empty) names the job whose refusal it is told of.
  struct AfterCommit {
    std::string job_id;
    Callback fn;
  };
  using Entry = std::variant<DurableOp, AfterCommit>;
  using Batch = std::deque<Entry>;
  // The jobs some of whose records the store refused in a batch.
  using Refusals = std::map<std::string, Outcome>;

  // What the owner does around each batch. Any may be empty. `taken` and
  // `before_commit` run on the writer's thread; `refused` and `committed`
  // run with the batch's callbacks (see above), one batch at a time.
  struct Hooks {
    // A batch is taken from the queue (again after a failed commit).
    std::function<void(Batch&)> taken;
    // Before each attempt to commit `write`: an error fails the attempt as a
    // store error would (e.g. the result sink's sync).
    std::function<absl::Status(const StoreWrite& write)> before_commit;
    // A job whose record the store refused for good (before the callbacks).
    std::function<void(const std::string& job_id, const absl::Status& error)> refused;
    // After the callbacks of a committed batch.
    std::function<void(Batch&, const Refusals&)> committed;
  };

  DurableWriter(const Clock* clock, Store* store, FaultState* faults,
                SchedulerMetrics* metrics, Hooks hooks);
  ~DurableWriter();

  // Call before Start. See Runtime::SetCommitLinger and SetStoreTimeout.
  void SetLinger(absl::Duration linger) { linger_ = linger; }
  void SetStoreTimeout(absl::Duration timeout) { store_timeout_ = timeout; }
  // How often the store hands back the space of deleted rows (Store::Compact).
  void SetCompactInterval(absl::Duration d) { compact_interval_ = d; }

  void Start();
  // Queues `entries` in order. `urgent`: commit at once (else they may wait
  // for the linger). `durable`: their batch is committed durably even when it
  // holds no record. `may_wait` (urgent entries, a linger above zero): commit
  // within this long (at most the linger), at once when another urgent entry
  // comes. After the writer has stopped, callbacks are told at once that
  // their batch was abandoned.
  void Add(std::vector<Entry> entries, bool urgent, bool durable = false,
           absl::Duration may_wait = absl::ZeroDuration());
  void Add(Entry entry, bool urgent, bool durable = false);
  // Work that will queue more entries: Stop waits for its Release. False
  // (nothing held) once the writer has stopped.
  bool Hold();
  void Release();

  // Shutdown begins: Stop gives up on a failing store once the store timeout
  // has passed since the first of BeginShutdown and Stop.
  void BeginShutdown();
  // Commits what is queued (and what the holds still queue), then ends the
  // thread; Join waits for it.
  void Stop();
  void Join();

 private:
  void Loop();
  // Commits the records of `batch` in one transaction, leaving out those of a
  // job the store refuses a record of for good (they go to `refused`): first
  // its shard results, then its records after the first in the batch, then
  // all of them.
  absl::Status Commit(const Batch& batch, bool durable, Refusals& refused);
  // How many of `job_id`'s records `batch` holds (read when one is refused).
  static int SavesOf(const Batch& batch, const std::string& job_id);
  void Abandon(Batch& batch, const absl::Status& error);
  // Runs `fn` (a committed or abandoned batch's callbacks) here, or, when the
  // next batch is due or earlier callbacks still wait, on the callback thread.
  void AfterBatch(absl::AnyInvocable<void() &&> fn);
  void CallbackLoop();
  // Whether the writer would commit what is queued at once.
  bool DueLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits, with a batch queued that is not yet due, until it is: the linger
  // (or the earliest `may_wait`) has passed, or something came that makes
  // it go now.
  void LingerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ShutdownTimedOut();
  // The wait before retrying a failed commit: `backoff`, ended by Stop; once
  // stopping, at most until the store timeout has passed.
  void Pause(absl::Duration backoff);

  const Clock* const clock_;
  Store* const store_;
  FaultState* const faults_;
  SchedulerMetrics* const metrics_;
  const Hooks hooks_;
  absl::Duration linger_ = absl::ZeroDuration();
  absl::Duration store_timeout_ = absl::Seconds(5);
  absl::Duration compact_interval_ = absl::Minutes(1);

  absl::Mutex mu_;
  Batch queue_ ABSL_GUARDED_BY(mu_);
  bool urgent_ ABSL_GUARDED_BY(mu_) = false;
  // Urgent entries that may wait (Add's `may_wait`) are committed by then
  // (MonoNow), or with the next urgent entry.
  absl::Time soon_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool durable_ ABSL_GUARDED_BY(mu_) = false;
  int holds_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time shutdown_began_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Batches' callbacks for the callback thread, in order; `calling_` while it
  // runs one.
  std::deque<absl::AnyInvocable<void() &&>> callbacks_ ABSL_GUARDED_BY(mu_);
  bool calling_ ABSL_GUARDED_BY(mu_) = false;
  // Monotonic timed waits (shared/steady_wait.h): the linger on linger_cv_
  // (signalled when the batch must go now), the backoff on stop_cv_.
  SteadyCondVar linger_cv_;
  SteadyCondVar stop_cv_;
  std::thread thread_;
  std::thread callback_thread_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_DURABLE_WRITER_H_
