// The scheduler's state machine: jobs, shards, executors, leases, retries and
// folding. Pure: no threads, no I/O, no clock. Every method takes `now` and
// returns the actions (assign, cancel, close, and durable ops: records to
// commit, acks and persists that follow the commit) for the caller to carry
// out. Not thread-safe: the service layer holds one mutex around it.
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
#include "scheduler/core/types.h"
#include "shared/json_limits.h"

namespace tessera::scheduler {

struct CoreConfig {
  int64_t max_shards_per_job = 10'000'000;
  // Assignments an executor may hold beyond its slots, to hide round trips:
  // at least `prefetch`; for a job whose shards are short, as many as keep
  // its slots busy for `prefetch_window` (by the run times executors
  // report), up to `max_prefetch`. A prefetched shard waits at most about
  // `prefetch_window` on an executor while another may sit idle.
  int32_t prefetch = 2;
  int32_t max_prefetch = 256;
  absl::Duration prefetch_window = absl::Milliseconds(2);
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // An executor silent for this long is closed and its leases requeued.
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  // After this, a queued job whose task no executor has ever advertised says so.
  absl::Duration unknown_task_grace = absl::Seconds(30);
  // A shard whose executor was lost this many times is failed (crash loop).
  int32_t max_executor_losses = 3;
  // A lease with a shard timeout expires this long after the timeout.
  absl::Duration lease_grace = absl::Seconds(5);
  // After a restart, shards wait this long for their executors to re-attach
  // before they are dispatched again.
  absl::Duration reattach_grace = absl::Seconds(10);
  // Shard errors kept per job.
  int32_t max_errors_kept = 5;
  // Items jobs: limits on the input.
  int64_t max_items_per_job = 1'000'000;
  int64_t max_item_bytes = 64 << 10;
  // JSON from users and peers (params, items, shard results): the deepest
  // nesting allowed, checked before anything copies, folds or dumps it.
  int32_t max_json_depth = kDefaultMaxJsonDepth;
  // Params travel in every assignment and an exec task's environment.
  int64_t max_params_bytes = 64 << 10;
  // One shard's result, and a job's folded result (its persisted document).
  int64_t max_result_bytes = 16 << 20;
  int64_t max_folded_result_bytes = 64 << 20;
  // Results fold in shard order; a shard is dispatched only while it is
  // within this many shards of the first unfolded one, so the results that
  // wait behind one slow shard stay bounded (the job's message says so).
  int64_t fold_window = 10'000;
  // How long an idempotency key keeps returning its job (no longer than the
  // job itself is kept: a retired job's key is forgotten with it).
  absl::Duration idempotency_retention = absl::Hours(24);
  // A finished job (SUCCEEDED, FAILED, CANCELLED, PARTIAL) is retired this
  // long after it ended: deleted from memory and from the store (record,
  // shard results, failed shards, idempotency key). Zero: never.
  absl::Duration job_retention = absl::Hours(24 * 7);
  // Jobs retired per tick at most (the rest on the next ticks), so that a
  // long-off retention switched on does not stall the scheduler.
  int32_t max_retired_per_tick = 1000;
  // Ids of retired jobs remembered, so that GetJob can say "retired" rather
  // than "not found".
  int32_t retired_ids_kept = 10'000;
  absl::Status Validate() const;
};

// Validates everything but the shape of the input (MakePartition does that).
absl::Status ValidateSpec(const JobSpec& spec);
// The configured bounds on a spec's params (depth, bytes).
absl::Status ValidateSpecLimits(const JobSpec& spec, const CoreConfig& config);
// The shards of a job: its range, or its items cut into batches.
absl::StatusOr<RangePartition> MakePartition(const JobSpec& spec,
                                             const CoreConfig& config);
// Same job definition (idempotent submission compares them).
bool SameSpec(const JobSpec& a, const JobSpec& b);

// The wait before attempt `attempt + 1` after `attempt` failed attempts;
// jitter comes from `unit` in [0, 1).
absl::Duration RetryBackoff(const RetryPolicy& policy, int32_t attempt, double unit);

// Makes lease ids and recognises them later. Ids must be unguessable to
// peers and never reused, also across restarts (the runtime's implementation
// signs them with a key kept in the store); the core's default, for tests,
// is "<job>.<shard>.<attempt>" plus the incarnation.
class LeaseIds {
 public:
  virtual ~LeaseIds() = default;
  // `holder`: the identity of the executor the lease goes to ("" without auth).
  virtual std::string Mint(const std::string& job_id, int64_t shard, int32_t attempt,
                           const std::string& holder) = 0;
  // Whether `lease_id` was made by Mint (in this run or an earlier one on the
  // same store) for shard `shard` of `job_id` and for `holder`: a result or
  // claim counts only from the identity its lease was issued to.
  virtual bool Issued(const std::string& lease_id, const std::string& job_id,
                      int64_t shard, const std::string& holder) const = 0;
};

class SchedulerCore {
 public:
  explicit SchedulerCore(CoreConfig config);
  ~SchedulerCore();

  // A short token that makes this process's lease ids differ from those of
  // an earlier run of the scheduler (e.g. random hex); empty in tests.
  // Borrowed; must outlive the core. Unset: the default ids.
  void SetLeaseIds(LeaseIds* ids) { lease_ids_ = ids; }
  void SetIncarnation(const std::string& token) {
    incarnation_ = token.empty() ? "" : "." + token;
  }

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
  struct Job;
  struct Executor;
  struct Lease;

  Job* FindJob(const std::string& id) const;
  // Loads a finished job back from its stored record (InStoreOnly).
  Job* Adopt(const JobRecord& r, absl::Time now);
  Executor* FindExecutor(const ExecutorConn& conn);
  // The lease if it belongs to this connection, else nullptr.
  Lease* FindLease(const ExecutorConn& conn, const std::string& lease_id);
  void Dispatch(absl::Time now, Actions& out);
  // Assignments beyond its slots an executor may hold when the next is of a
  // job whose shards run `run_seconds` (0: not known yet).
  int64_t Prefetch(double run_seconds, int32_t slots) const;
  // Whether to hand `e` another shard now, given that prefetch.
  // Updates e.refilling.
  bool WantsMore(Executor& e, int64_t prefetch);
  Job* NextJobFor(const Executor& e, absl::Time now);
  bool HasWork(const Job& j, absl::Time now) const;
  // For a queued job with a concurrency key: the job it waits for, if any.
  const Job* BlockedBy(const Job& j) const;
  double TokensAt(const Job& j, absl::Time now) const;
  void AssignOne(Job& j, Executor& e, absl::Time now, Actions& out);
  void AddLease(Job& j, Executor& e, int64_t shard, int32_t attempt,
                const std::string& id, absl::Time now, Actions& out);
  // Ends a lease; returns the shard to the queue when `requeue`.
  void EndLease(const std::string& lease_id, bool requeue);
  // Takes shard `shard` out of the pending set (retry queue or not yet
  // dispatched) so that it can be run or accepted elsewhere.
  void ClaimPending(Job& j, int64_t shard);
  bool IsDone(const Job& j, int64_t shard) const;
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
  // Resets a job's shard state from its stored results.
  // Counts a loss for each shard whose executor did not re-attach in time.
  void LoseDetached(Job& j, absl::Time now, Actions& out);
  // Whether new shards wait for the in-order fold to catch up (fold_window).
  bool PausedForFold(const Job& j) const;
  // DATA_LOSS naming the shard when a stored result cannot be read back.
  absl::Status Rebuild(Job& j, const std::vector<StoredResult>& results);
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
  std::string WaitReason(const Job& j, absl::Time now) const;
  void CheckInvariants() const;

  CoreConfig config_;
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
  absl::flat_hash_map<std::string, std::unique_ptr<Lease>> leases_;
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
  std::string incarnation_;
  absl::Duration wall_offset_ = absl::ZeroDuration();
  absl::Time Wall(absl::Time now) const { return now + wall_offset_; }
  LeaseIds* lease_ids_ = nullptr;
  // Whether `lease_id` is one this scheduler issued for the job's shard.
  bool Issued(const std::string& lease_id, const std::string& job_id, int64_t shard,
              const std::string& holder) const;
  CoreCounters counters_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_SCHEDULER_CORE_H_
