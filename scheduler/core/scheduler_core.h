// The scheduler's state machine: jobs, shards, executors, leases, retries and
// folding. Pure: no threads, no I/O, no clock. Every method takes `now` and
// returns the actions (assign, cancel, close, and durable ops: records to
// commit, acks and persists that follow the commit) for the caller to carry
// out. Not thread-safe: the service layer holds one mutex around it.
//
// SchedulerCore holds the transitions and the indexes; the rest is in pieces
// of their own: job_spec.h (spec validation), job_shards.h (one job's shard
// bookkeeping), dispatch_policy.h (who runs what next, a pure policy),
// lease_table.h (leases and their ids), job_report.h (result document, views
// and wait messages). Its definitions span scheduler_core.cc (jobs),
// scheduler_core_executors.cc (executors, leases, dispatch, time) and
// scheduler_core_store.cc (restore, commit, retention).
#ifndef TESSERA_SCHEDULER_CORE_SCHEDULER_CORE_H_
#define TESSERA_SCHEDULER_CORE_SCHEDULER_CORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scheduler/core/core_config.h"
#include "scheduler/core/core_entries.h"
#include "scheduler/core/dispatch_policy.h"
#include "scheduler/core/job_spec.h"
#include "scheduler/core/lease_table.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

class SchedulerCore {
 public:
  explicit SchedulerCore(CoreConfig config);
  ~SchedulerCore();

  // A short token that makes this process's lease ids differ from those of
  // an earlier run of the scheduler (e.g. random hex); empty in tests.
  // Borrowed; must outlive the core. Unset: the default ids.
  void SetLeaseIds(LeaseIds* ids) { leases_.SetLeaseIds(ids); }
  void SetIncarnation(const std::string& token) { leases_.SetIncarnation(token); }

  // Every `now` the core is given is monotonic (leases, heartbeats, backoff,
  // rates, grace periods are measured on it; a wall-clock step moves none of
  // them). What people read and the store keeps (created/started/ended, the
  // result's timestamps, idempotency retention across restarts) is wall time:
  // `now + offset`. The caller sets the offset (wall minus monotonic) before
  // each call that takes a `now`.
  void SetWallOffset(absl::Duration offset) { wall_offset_ = offset; }

  // Rebuilds state from the store after a restart: `records` in submission
  // order, `results(job_id)` the stored shard results of an unfinished job,
  // `failed(job_id)` its failed shards (a finished record lists its own).
  void Restore(const std::vector<JobRecord>& records,
               const std::map<std::string, std::vector<StoredResult>>& results,
               absl::Time now, Actions& out,
               const std::map<std::string, std::vector<FailedShard>>& failed = {});

  // After Restore: the finished jobs, whose records stay in the store only.
  // The core keeps a few bytes of each (to count it, retire it on time and
  // honour its idempotency key); `max_seq` is the highest submission number
  // the store has seen, so that numbers are never reused.
  void RestoreFinished(const std::vector<FinishedJob>& finished, int64_t max_seq,
                       absl::Time now);

  // The store has committed `op`. A finished job whose last record that is
  // leaves memory: from then on GetJob, ListJobs and RetryFailedShards of it
  // go through the store (InStoreOnly says so). Returns whether it left.
  bool Committed(const SaveJobOp& op);
  // The submission number of a job held here (-1: none).
  int64_t SeqOf(const std::string& job_id) const;
  // Whether `job_id` is a finished job whose record only the store holds.
  bool InStoreOnly(const std::string& job_id) const;
  // Jobs held here whose stored record may be a finished one older than what
  // the core knows (finished and not yet committed, or retried since): a
  // listing that merges the store's finished records prefers the core's.
  std::vector<std::string> HeldOnceFinished() const;
  // The view of a finished job from its stored record, as GetJob gives it.
  static JobView FinishedView(const JobRecord& r);
  // The job whose record Submit needs from the store: the one `spec`'s
  // idempotency key names, when that is a finished job held there only.
  std::optional<std::string> IdempotentJobInStore(const JobSpec& spec,
                                                  absl::Time now) const;

  // Jobs. Submit refuses an invalid spec whole (INVALID_ARGUMENT naming the
  // field) and creates nothing. `stored`: the record IdempotentJobInStore
  // asked for (UNAVAILABLE, retry, when it is needed and not given).
  absl::StatusOr<JobView> Submit(const JobSpec& spec, const std::string& job_id,
                                 absl::Time now, Actions& out,
                                 const JobRecord* stored = nullptr);
  absl::StatusOr<JobView> Cancel(const std::string& job_id, absl::Time now, Actions& out);
  // Re-runs the shards of a PARTIAL or FAILED job that have no result;
  // `results` are the job's stored shard results; `stored` its record when
  // the job is InStoreOnly (it is loaded back into memory).
  absl::StatusOr<JobView> RetryFailedShards(const std::string& job_id,
                                            const std::vector<StoredResult>& results,
                                            absl::Time now, Actions& out,
                                            const JobRecord* stored = nullptr);
  // Changes max_parallel and/or rate_limit of a queued or running job.
  absl::StatusOr<JobView> UpdateJob(const std::string& job_id, const JobUpdate& update,
                                    absl::Time now, Actions& out);
  // The store refused one of the job's records for good (e.g. too big): the
  // job fails with `error`, and a result it was persisting is dropped (its
  // "finalizing" record never committed). A finished job stays as it is.
  void StoreRefused(const std::string& job_id, const std::string& error, absl::Time now,
                    Actions& out);
  absl::StatusOr<JobView> GetJob(const std::string& job_id, absl::Time now) const;
  // Newest first; `state` filters when set. Scans down from submission
  // number `before` (inclusive; -1 = from the newest) and returns up to
  // `limit` jobs; `*next` is where the next page starts, or -1 when there is
  // none. Submission numbers never change, so a page token stays valid while
  // jobs retire and across restarts.
  std::vector<JobView> ListJobs(const JobFilter& filter, int64_t before, int limit,
                                absl::Time now, int64_t* next) const;

  // Executors.
  // PERMISSION_DENIED when hello.executor_id is bound to another identity (an
  // executor id is bound to the first identity that used it while auth is on).
  absl::Status CheckIdentity(const ExecutorHello& hello) const;
  // Call after CheckIdentity passed.
  ExecutorConn Connect(const ExecutorHello& hello, absl::Time now, Actions& out);
  void Disconnect(const ExecutorConn& conn, absl::Time now, Actions& out);
  void Heartbeat(const ExecutorConn& conn, absl::Time now);
  void Progress(const ExecutorConn& conn, const std::string& lease_id, int64_t done,
                absl::Time now);
  // A result for `lease_id`, or, when the lease is unknown (the scheduler
  // restarted or the stream broke), for shard `shard` of `job_id` if that
  // shard is still open. Acked once durable. `run_time` is how long the task
  // ran by the executor's clock (zero: not reported).
  void Result(const ExecutorConn& conn, const std::string& lease_id,
              const std::string& job_id, int64_t shard, std::string result_json,
              absl::Time now, Actions& out,
              absl::Duration run_time = absl::ZeroDuration());
  void Failure(const ExecutorConn& conn, const std::string& lease_id,
               const std::string& message, bool retryable, absl::Time now, Actions& out);
  void Release(const ExecutorConn& conn, const std::vector<std::string>& lease_ids,
               absl::Time now, Actions& out);
  void Draining(const ExecutorConn& conn, absl::Time now, Actions& out);

  // The result sink reports back on a PersistAction.
  void Persisted(const std::string& job_id, const std::string& location,
                 const std::string& sha256, absl::Time now, Actions& out);
  void PersistFailed(const std::string& job_id, const std::string& error, absl::Time now,
                     Actions& out);

  // Time passing: heartbeat expiry, lease deadlines, retry backoffs.
  void Tick(absl::Time now, Actions& out);

  std::vector<ExecutorView> ListExecutors() const;
  QueueStats Stats() const;
  const CoreCounters& counters() const { return counters_; }
  // Jobs by queue and state, for metrics ("default" is always there); kept
  // up to date as jobs change state, not recounted.
  std::map<std::string, std::map<JobState, int64_t>> JobCountsByQueue() const {
    return counts_;
  }
  // Jobs held in memory: unfinished ones, and finished ones until their last
  // record is committed (or loaded back to be retried).
  size_t JobsHeld() const { return jobs_.size(); }
  // Finished jobs not yet retired (held or in the store only).
  size_t JobsFinished() const { return finished_info_.size(); }

 private:
  using Job = CoreJob;
  using Executor = CoreExecutor;

  Job* FindJob(const std::string& id) const;
  // Loads a finished job back from its stored record (InStoreOnly).
  Job* Adopt(const JobRecord& r, absl::Time now);
  // A job entry for a stored record (not yet indexed); the record's failed
  // shards move into its shard bookkeeping.
  std::unique_ptr<Job> FromRecord(const JobRecord& r, RangePartition partition,
                                  absl::Time now) const;
  Executor* FindExecutor(const ExecutorConn& conn);
  void Dispatch(absl::Time now, Actions& out);
  // Whether to hand `e` another shard now (DispatchPolicy::WantsMore);
  // updates e.refilling.
  bool WantsMore(Executor& e, int64_t prefetch);
  // The policy's pick for `e`; moves the round-robin cursor past it.
  Job* NextJobFor(const Executor& e, absl::Time now);
  void AssignOne(Job& j, Executor& e, absl::Time now, Actions& out);
  void AddLease(Job& j, Executor& e, int64_t shard, int32_t attempt,
                const std::string& id, absl::Time now, Actions& out);
  // Ends a lease; returns the shard to the queue when `requeue`.
  void EndLease(const std::string& lease_id, bool requeue);
  void Accept(Job& j, int64_t shard, nlohmann::json result, absl::Time now, Actions& out);
  void FoldPrefix(Job& j, absl::Time now, Actions& out);
  // A failed attempt: retried after its backoff, or the shard is out of attempts.
  void AttemptFailed(Job& j, int64_t shard, int32_t attempt, const std::string& executor,
                     const std::string& message, bool retryable, absl::Time now,
                     Actions& out);
  void ShardOutOfAttempts(Job& j, int64_t shard, int32_t attempts,
                          const std::string& message, absl::Time now, Actions& out);
  void FailJob(Job& j, const std::string& message, absl::Time now, Actions& out);
  void CancelLeases(Job& j, Actions& out);
  void Finish(Job& j, absl::Time now, Actions& out);
  // Counts a loss for each shard whose executor did not re-attach in time.
  void LoseDetached(Job& j, absl::Time now, Actions& out);
  void Save(Job& j, Actions& out);
  // Keeps the counts by state and the retirement order in step with j's state.
  void Index(Job& j);
  // When a finished record's retention is over: the one place retention
  // compares times (the record's persisted end).
  absl::Time RetireAt(const JobRecord& r) const;
  // Deletes the finished jobs whose retention is over (memory and store).
  void Retire(absl::Time now, Actions& out);
  // Forgets idempotency keys older than their retention.
  void ExpireIdempotencyKeys(absl::Time now);
  // NOT_FOUND for `job_id`, saying so when it was retired.
  absl::Status NotFound(const std::string& job_id) const;
  void Touch(Job& j);
  void Deactivate(Job& j);
  void DropExecutor(Executor& e, absl::Time now, Actions& out);
  JobView View(const Job& j, absl::Time now) const;
  void CheckInvariants() const;

  CoreConfig config_;
  DispatchPolicy policy_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  std::map<int64_t, Job*> by_seq_;  // submission order
  // Finished jobs by when they retire.
  std::set<std::pair<absl::Time, std::string>> finished_;
  // Every finished job not yet retired, held or not: a few bytes each.
  struct FinishedEntry {
    absl::Time retire_at;
    const std::string* queue;  // a key of counts_
    JobState state;
  };
  absl::flat_hash_map<std::string, FinishedEntry> finished_info_;
  std::map<std::string, std::map<JobState, int64_t>> counts_;
  // The latest retired ids (bounded by retired_ids_kept), oldest first.
  std::deque<std::string> retired_order_;
  std::set<std::string> retired_;
  std::vector<Job*> active_;  // queued or running, submission order
  size_t rr_cursor_ = 0;      // round-robin position in active_
  std::map<std::string, std::unique_ptr<Executor>> executors_;
  LeaseTable leases_;
  std::set<std::string> known_tasks_;  // every task ever advertised
  // Executor id -> the identity that used it (auth on only); bounded.
  std::map<std::string, std::string> executor_identity_;
  struct IdempotencyEntry {
    std::string job_id;
    absl::Time created;
  };
  std::map<std::string, IdempotencyEntry> idempotency_;
  // Keys by creation time, to forget them when their retention is over.
  std::multimap<absl::Time, std::string> idempotency_by_time_;
  uint64_t next_generation_ = 1;
  uint64_t version_ = 0;
  int64_t next_seq_ = 1;
  absl::Duration wall_offset_ = absl::ZeroDuration();
  absl::Time Wall(absl::Time now) const { return now + wall_offset_; }
  CoreCounters counters_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_SCHEDULER_CORE_H_
