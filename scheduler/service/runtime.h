// The imperative shell around SchedulerCore: holds the lock, the core and the
// clock, and carries out the core's actions: messages to executor streams
// (StreamRegistry), records for the store writer (DurableWriter), results for
// the result publisher (ResultPublisher), answers to the calls that wait for
// a commit. It runs the ticker and the reader threads. No transport type
// crosses it: the gRPC adapters (executor_service.cc, job_service.cc) convert.
//
// Faults (faults.h): a failed commit is retried with backoff, keeping the
// batch; while commits fail, writes are refused at once and a call already
// waiting is answered UNAVAILABLE at the store timeout. A record the store
// refuses for good fails its job only. A result write that may pass is
// retried with the same bytes. Stop gives up on a failing store after the
// store timeout (what it drops was never acknowledged).
//
// Thread-safe. Owns its threads, the writer and the publisher; borrows the
// clock, the store and the sink, which must outlive it.
#ifndef TESSERA_SCHEDULER_SERVICE_RUNTIME_H_
#define TESSERA_SCHEDULER_SERVICE_RUNTIME_H_

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/service/durable_writer.h"
#include "scheduler/service/executor_result.h"
#include "scheduler/service/faults.h"
#include "scheduler/service/result_publisher.h"
#include "scheduler/service/stream_registry.h"
#include "scheduler/store/store.h"
#include "shared/clock.h"
#include "shared/steady_wait.h"

namespace tessera::scheduler {

class ResultSink;
class SchedulerMetrics;
struct CoreSnapshot;

// Something polled by the ticker (~10 times a second), e.g. a WatchJob stream,
// and told at once when a job has finished (its end is committed).
class Poller {
 public:
  virtual ~Poller() = default;
  virtual void Poll() = 0;
  virtual void JobFinished(const std::string& job_id) = 0;
};

struct ResultBytes {
  JobView job;
  std::string bytes;  // empty when omitted
  int64_t size = 0;
  bool omitted = false;  // larger than the caller can take: not read
};

class Runtime {
 public:
  using JobCallback = std::function<void(absl::StatusOr<JobView>)>;

  Runtime(CoreConfig config, const Clock* clock, Store* store, ResultSink* sink);
  ~Runtime();

  // Rebuilds the core from the store; call once, before Start.
  absl::Status Recover();
  void Start();
  // From now on submissions are refused with UNAVAILABLE.
  void BeginShutdown();
  // Stops the threads after the store writer has committed everything queued,
  // or has failed to for the store timeout (counted from BeginShutdown).
  void Stop();

  // Job operations (JobService). `done` runs once the change is durable (or
  // at once with an error), or with UNAVAILABLE once it has waited the store
  // timeout (the message says whether it may still take effect); it may run
  // on the store writer's or the ticker's thread. While the store fails they
  // are refused at once (UNAVAILABLE, RESOURCE_EXHAUSTED when its disk is
  // full), and so are Submit and RetryFailedShards while results cannot be
  // written.
  // `caller` names who asked, for the audit line (never a credential).
  void Submit(const JobSpec& spec, JobCallback done,
              const std::string& caller = "anonymous");
  void Cancel(const std::string& job_id, JobCallback done);
  void RetryFailedShards(const std::string& job_id, JobCallback done);
  // A job in memory, or a finished one read from the store (on the calling
  // thread: a primary-key read).
  absl::StatusOr<JobView> GetJob(const std::string& job_id);
  // GetJob for the API: a job in memory is answered at once, a finished one
  // held in the store only on a reader thread (`done` runs there).
  void ReadJob(const std::string& job_id, JobCallback done);
  // Newest first, `limit` at most, from submission number `before`
  // (inclusive; -1: the newest); `*next` is the next page's `before` (-1:
  // none). The core's jobs merged with the store's finished records, on the
  // calling thread; costs O(limit) store rows (labels: see Store).
  absl::StatusOr<std::vector<JobView>> ListJobs(const JobFilter& filter, int64_t before,
                                                int limit, int64_t* next);
  // ListJobs on a reader thread; `done` gets the page and `next`.
  void ReadJobs(const JobFilter& filter, int64_t before, int limit,
                std::function<void(absl::StatusOr<std::vector<JobView>>, int64_t)> done);
  void UpdateJob(const std::string& job_id, const JobUpdate& update, JobCallback done);
  // The result, read back from the sink and checked against its sha256; one
  // larger than `max_bytes` is not read (only its size is given).
  absl::StatusOr<ResultBytes> GetResult(const std::string& job_id, int64_t max_bytes);
  // GetResult on a reader thread: the sink may be a remote store, and a gRPC
  // callback must not wait for it. `done` runs on that thread (or at once
  // with UNAVAILABLE when the runtime is not running).
  void ReadResult(const std::string& job_id, int64_t max_bytes,
                  std::function<void(absl::StatusOr<ResultBytes>)> done);
  // The result of a job persisted lately by this runtime, from memory (the
  // bytes it wrote, whose sha256 the job records): what the end event of a
  // WatchJob stream carries, without a read back on a reader thread. nullopt
  // when not kept (too large, long ago, before a restart): ask ReadResult.
  std::optional<ResultBytes> RecentResult(const std::string& job_id, int64_t max_bytes);
  std::vector<ExecutorView> ListExecutors();
  QueueStats Stats();
  // Jobs the core holds in memory: unfinished ones, and finished ones until
  // their last record is committed (for tests and logs).
  size_t JobsInMemory();

  // Executor streams (ExecutorService). `stream` stays registered until
  // Disconnect and must stay alive until then. PERMISSION_DENIED (and nothing
  // registered) when the executor id belongs to another identity.
  absl::StatusOr<ExecutorConn> Connect(const ExecutorHello& hello,
                                       ExecutorStream* stream);
  // The identity check of Connect alone, so that a refused stream gets no Welcome.
  absl::Status CheckIdentity(const ExecutorHello& hello);
  // What an executor reports on its stream.
  void Heartbeat(const ExecutorConn& conn);
  void Progress(const ExecutorConn& conn, const std::string& lease_id, int64_t done);
  void Results(const ExecutorConn& conn, std::vector<ExecutorResult> results);
  void Failure(const ExecutorConn& conn, const std::string& lease_id,
               const std::string& message, bool retryable);
  void Release(const ExecutorConn& conn, const std::vector<std::string>& lease_ids);
  void Draining(const ExecutorConn& conn);
  void Disconnect(const ExecutorConn& conn);
  absl::Duration heartbeat_interval() const { return config_.heartbeat_interval; }
  // The injected clock, for the adapters' own timers.
  const Clock& clock() const { return *clock_; }

  void AddPoller(Poller* poller);
  // After this returns the poller is never called again.
  void RemovePoller(Poller* poller);

  // For the metrics endpoint (scheduler_server.cc): what the core counts now,
  // and the histograms and counters fed as actions are carried out.
  CoreSnapshot Snapshot();
  SchedulerMetrics& metrics() { return *metrics_; }
  ResultSink& sink() { return *sink_; }

  // A batch of only results and their acks (and "done" records of jobs whose
  // result the sink has) waits up to `linger` for more to join its commit: no
  // call waits on them, an executor keeps each result until it is acked, and
  // a restart finishes a job from its durable "finalizing" record. A trickle of results
  // then costs one commit (and one ack message per executor) per linger, not one per
  // result. Anything a caller or a job's end waits for is committed at once, with what is
  // queued before it. Zero: commit whatever is queued at once. Call before Start.
  // A job whose shards all went out as it was submitted, while such jobs end
  // within 1 ms (the last one, in the last 100 ms), is expected to end soon:
  // its submit waits for its end, up to 2 ms (and the linger), and both
  // commit together (one commit a job; the SubmitJob reply waits that much
  // longer when it does not come).
  void SetCommitLinger(absl::Duration linger) {
    quick_wait_ = std::min(linger, kQuickWait);
    writer_.SetLinger(linger);
  }

  // How long a call that changes a job waits for its commit before it is
  // answered UNAVAILABLE; a commit running longer counts as failing; Stop
  // retries a failing store this long. Call before Start.
  void SetStoreTimeout(absl::Duration timeout);
  // Told whenever the runtime starts or stops refusing new work because the
  // store or the sink fails (OK: serving again), e.g. for health checks.
  // Called on the runtime's threads; must not call back into it. Call
  // before Start.
  void SetHealthListener(FaultState::Listener listener) {
    faults_.SetListener(std::move(listener));
  }

  // When a retired job's result file is deleted with it (the default keeps
  // it: it is the user's data). Call before Start.
  void SetDeleteResultsWithJobs(bool on) { delete_results_with_jobs_ = on; }
  // How often the store writer asks the store to hand back the space of
  // deleted rows (Store::Compact). Call before Start.
  void SetCompactInterval(absl::Duration d) { writer_.SetCompactInterval(d); }

  // For tests: the longest a submit waits for its job's end, and how recent
  // the last such job's end must be (SetCommitLinger; after it).
  void SetQuickWaitForTesting(absl::Duration wait, absl::Duration recent) {
    quick_wait_ = wait;
    quick_recent_ = recent;
  }

  // Fault injection for tests: wait this long after each sink write before
  // marking the job done, so that a test can kill the scheduler in between.
  void SetPersistDelayForTesting(absl::Duration d) {
    publisher_.SetPersistDelayForTesting(d);
  }

 private:
  // Carries out `actions`; `reply` (the call that waits, and its answer) is
  // queued with their records, so that it comes with their batch.
  struct CallReply {
    std::shared_ptr<PendingCall> call;
    JobView view;
  };
  // `may_wait`: the reply may wait this long for the next urgent record
  // (DurableWriter::Add).
  void Execute(Actions actions, std::optional<CallReply> reply = std::nullopt,
               absl::Duration may_wait = absl::ZeroDuration())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How long the submit of `job`, whose `actions` are about to be carried
  // out, may wait for the job's end to commit with it (SetCommitLinger).
  absl::Duration QuickSubmitted(const JobView& job, const Actions& actions,
                                absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `job_id`'s end (its result, or its terminal record) is queued.
  void QuickEnded(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The answer to `call` once the core's change is committed: `job`; none
  // when the core refused the call.
  static std::optional<CallReply> AnswerAfterCommit(
      const absl::StatusOr<JobView>& job, const std::shared_ptr<PendingCall>& call);
  // The clock's monotonic now for a core call; sets the core's wall offset.
  absl::Time CoreNow() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A core transition fed `now` whose actions are carried out.
  template <typename Fn>
  void Transition(Fn fn) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    Actions actions;
    fn(CoreNow(), actions);
    Execute(std::move(actions));
  }
  // A call that waits for a commit, answered at the latest at the store timeout.
  std::shared_ptr<PendingCall> TrackCall(JobCallback done, const std::string& method,
                                         const std::string& job_id, bool accepted);
  // Answers the calls past their deadline (the ticker).
  void ExpireCalls(absl::Time now);
  // On the store writer's threads (DurableWriter), after a commit barrier.
  void RetryFailedShardsNow(const std::string& job_id,
                            const std::shared_ptr<PendingCall>& call);
  // Runs `fn` after everything queued so far is committed.
  void AfterCommit(std::function<void()> fn);
  // The store writer's hooks (on its thread).
  DurableWriter::Hooks WriterHooks();
  void BatchTaken(DurableWriter::Batch& batch);
  void BatchCommitted(DurableWriter::Batch& batch,
                      const DurableWriter::Refusals& refused);
  // The publisher's report: the job's end.
  void ResultWritten(const PersistAction& p,
                     const absl::StatusOr<PersistedResult>& written);
  // Tells the pollers (WatchJob streams) that `job_id` has ended.
  void NotifyFinished(const std::string& job_id) ABSL_LOCKS_EXCLUDED(pollers_mu_, mu_);
  void TickLoop();
  // After a commit that retired jobs: their result files go too when told so
  // (on a reader thread: a sink may be remote).
  void DeleteRetiredResults(const std::vector<std::string>& locations);
  // A reader thread: runs ReadResult's reads until Stop.
  void ReadLoop();
  // Whether `job_id` is a finished job whose record only the store holds.
  bool InStoreOnly(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues `fn` for a reader thread; false (nothing queued) when not running.
  bool OnReader(std::function<void()> fn);

  const CoreConfig config_;
  const Clock* clock_;
  std::unique_ptr<LeaseIds> lease_ids_;  // set by Recover; the core borrows it
  Store* store_;
  ResultSink* sink_;
  // Histograms and counters fed by Execute, the writer and the publisher.
  std::unique_ptr<SchedulerMetrics> metrics_;

  absl::Mutex mu_;
  SchedulerCore core_ ABSL_GUARDED_BY(mu_);
  // The longest a submit waits for its job's end (SetCommitLinger), and the
  // wait itself.
  static constexpr absl::Duration kQuickWait = absl::Milliseconds(2);
  absl::Duration quick_wait_ = absl::ZeroDuration();
  // After this long without such a job the next one is not expected to end
  // soon (its executor may be idle: waking it takes longer).
  absl::Duration quick_recent_ = absl::Milliseconds(100);
  // The last job whose shards all went out as it was submitted, until its
  // end is queued; `expected`: the one before it ended within half the wait,
  // at `ended` (QuickSubmitted).
  struct QuickJob {
    std::string id;
    absl::Time submitted;
    bool expected = false;
    absl::Time ended = absl::InfinitePast();
  };
  QuickJob quick_ ABSL_GUARDED_BY(mu_);

  // Locked after mu_ when both are held.
  StreamRegistry streams_;

  absl::Mutex pollers_mu_;
  std::set<Poller*> pollers_ ABSL_GUARDED_BY(pollers_mu_);

  // The ticker waits on stop_cv_ (shared/steady_wait.h), signalled when
  // stopping_ is set.
  absl::Mutex stop_mu_;
  SteadyCondVar stop_cv_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  bool shutting_down_ ABSL_GUARDED_BY(stop_mu_) = false;

  // ReadResult's queue; readers drain it before they end.
  absl::Mutex reads_mu_;
  std::deque<std::function<void()>> reads_ ABSL_GUARDED_BY(reads_mu_);
  bool reading_ ABSL_GUARDED_BY(reads_mu_) = false;  // between Start and Stop

  absl::Duration store_timeout_ = absl::Seconds(5);
  FaultState faults_{store_timeout_};
  absl::Mutex calls_mu_;
  std::vector<std::shared_ptr<PendingCall>> calls_ ABSL_GUARDED_BY(calls_mu_);

  bool delete_results_with_jobs_ = false;
  // Declared last: their threads use what is above, and end first.
  DurableWriter writer_;
  ResultPublisher publisher_;
  std::thread ticker_;
  std::vector<std::thread> readers_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_RUNTIME_H_
