// Plain data the scheduler core takes in and hands out. No gRPC or protobuf
// type crosses into the core; service/convert.cc maps these to the API.
#ifndef TESSERA_SCHEDULER_CORE_TYPES_H_
#define TESSERA_SCHEDULER_CORE_TYPES_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "scheduler/core/fold.h"
#include "scheduler/core/partition.h"

namespace tessera::scheduler {

// Numbers are stored: append only.
enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled, kPartial };

absl::string_view JobStateName(JobState state);
inline bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed ||
         s == JobState::kCancelled || s == JobState::kPartial;
}

struct RetryPolicy {
  int32_t max_attempts = 3;
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(60);
  double multiplier = 2.0;
  double jitter = 0.2;
};

// A job's input items: immutable once submitted and shared by every copy of
// the spec (job views, store records), so copying a spec never copies them.
class ItemList {
 public:
  ItemList() = default;
  explicit ItemList(std::vector<nlohmann::json> items)
      : items_(std::make_shared<const std::vector<nlohmann::json>>(std::move(items))) {}
  size_t size() const { return items_ ? items_->size() : 0; }
  bool empty() const { return size() == 0; }
  const nlohmann::json& operator[](size_t i) const { return (*items_)[i]; }
  const std::vector<nlohmann::json>& values() const {
    static const std::vector<nlohmann::json> kNone;
    return items_ ? *items_ : kNone;
  }
  bool operator==(const ItemList& o) const {
    return items_ == o.items_ || values() == o.values();
  }

 private:
  std::shared_ptr<const std::vector<nlohmann::json>> items_;
};

struct JobSpec {
  std::string name;
  std::string task;
  nlohmann::json params = nlohmann::json::object();
  RangeSpec range;
  AggregateSpec aggregate;
  int32_t max_parallel = 0;  // 0 = no cap
  RetryPolicy retry;
  absl::Duration shard_timeout = absl::ZeroDuration();  // zero = no limit
  int64_t max_failed_shards = 0;                        // 0 = fail fast
  // Items input (instead of the range): cut into shards of batch_size; a
  // shard's "range" is then the item indexes [start, end).
  bool has_items = false;
  ItemList items;
  int32_t batch_size = 0;
  // Job control.
  std::string idempotency_key;
  std::string concurrency_key;
  int32_t concurrency_limit = 1;  // RUNNING jobs per concurrency_key
  std::string queue = "default";
  int32_t priority = 0;   // higher dispatches first within a queue
  double rate_limit = 0;  // shards started per second, cluster-wide; 0 = none
  std::map<std::string, std::string> labels;
};

// The spec fields a running job may change (UpdateJob).
struct JobUpdate {
  std::optional<int32_t> max_parallel;
  std::optional<double> rate_limit;
};

// ListJobs filters; empty fields match everything.
struct JobFilter {
  std::optional<JobState> state;
  std::string queue;
  std::map<std::string, std::string> labels;  // all must match
};

// A shard out of attempts.
struct FailedShard {
  int64_t shard = 0;
  ShardBounds bounds;
  int32_t attempts = 0;
  std::string last_error;
};

struct ShardError {
  int64_t shard = 0;
  ShardBounds bounds;
  std::string executor;
  std::string message;
};

struct ShardCounts {
  int64_t total = 0, pending = 0, running = 0, succeeded = 0, failed = 0;
};

// A snapshot of a job, safe to use after the core's lock is released.
struct JobView {
  std::string id;
  JobSpec spec;
  JobState state = JobState::kQueued;
  ShardCounts shards;
  int64_t items_done = 0;
  int64_t items_total = 0;
  absl::Time create_time = absl::InfinitePast();
  absl::Time start_time = absl::InfinitePast();  // InfinitePast: not yet
  absl::Time end_time = absl::InfinitePast();
  std::string message;
  std::vector<ShardError> errors;
  std::string result_location;
  std::string result_sha256;
  int32_t result_version = 0;
  std::vector<FailedShard> failed_shards;
  uint64_t version = 0;  // grows with every change; watchers compare it
};

// What the store keeps of a job; a restarted scheduler rebuilds from it and
// the shard results stored with it.
struct JobRecord {
  std::string id;
  int64_t seq = 0;  // submission order
  JobSpec spec;
  JobState state = JobState::kQueued;
  absl::Time created = absl::InfinitePast();
  absl::Time started = absl::InfinitePast();
  absl::Time ended = absl::InfinitePast();
  std::string message;
  std::vector<ShardError> errors;
  std::vector<FailedShard> failed;
  std::string location;
  std::string sha256;
  int32_t result_version = 0;
  int64_t shards_succeeded = 0;
  // Items done when the record was saved (-1: a record written before this
  // was kept; a finished job's view then derives it from its state).
  int64_t items_done = -1;
  // Set between "all shards are in" and "the sink has the result": the
  // exact bytes to write, so a restart writes them (or finds them) unchanged.
  bool finalizing = false;
  std::string final_bytes;
};

// What the scheduler keeps in memory of a finished job whose record lives in
// the store only: enough to count it, retire it on time and honour its
// idempotency key (the store reads it back on demand).
struct FinishedJob {
  std::string id;
  int64_t seq = 0;
  JobState state = JobState::kSucceeded;
  std::string queue = "default";
  absl::Time created = absl::InfinitePast();
  absl::Time ended = absl::InfinitePast();
  std::string idempotency_key;
};

struct StoredResult {
  int64_t shard = 0;
  std::string result_json;
};

// A shard an executor still runs when it (re)connects.
struct HeldShard {
  std::string lease_id;
  std::string job_id;
  int64_t shard = 0;
  int32_t attempt = 0;
};

struct ExecutorHello {
  std::string executor_id;
  std::string name;
  std::vector<std::string> tasks;
  int32_t slots = 0;
  std::string version;
  std::vector<HeldShard> held;
  std::vector<std::string> queues;  // empty: "default"
  // Who the executor's credentials say it is (a token's name or a client
  // certificate's SAN/CN); empty when the scheduler runs without auth. An
  // executor id, once used by an identity, stays bound to it.
  std::string identity;
};

struct ExecutorView {
  std::string id;
  std::string name;
  std::vector<std::string> tasks;
  int32_t slots = 0;
  int32_t assigned = 0;
  std::string version;
  bool draining = false;
  absl::Time connect_time;
  absl::Time last_seen;
  int64_t shards_completed = 0;
  std::vector<std::string> queues;
};

struct QueueStats {
  int64_t jobs_queued = 0;
  int64_t jobs_running = 0;
  int64_t shards_pending = 0;
  int64_t shards_running = 0;
  int32_t executors = 0;
  int32_t slots_total = 0;
  int32_t slots_busy = 0;
  std::map<std::string, int64_t> pending_by_queue;  // shards waiting, by queue
};

// Monotonic counters, for metrics.
struct CoreCounters {
  int64_t jobs_submitted = 0;
  int64_t shards_dispatched = 0;
  int64_t shards_succeeded = 0;
  int64_t shards_failed = 0;    // shard attempts that reported failure
  int64_t shards_requeued = 0;  // leases lost (stream closed, released)
  int64_t results_dropped = 0;  // duplicate or late results
  int64_t results_persisted = 0;
  int64_t executors_expired = 0;  // closed for missed heartbeats
  int64_t shards_retried = 0;     // failed attempts put back with a backoff
  int64_t leases_expired = 0;     // shard timeouts seen by the scheduler
  int64_t results_adopted = 0;    // results accepted without a live lease
  // Results refused because another executor holds the shard's lease.
  int64_t results_rejected_leased_to_another = 0;
  // Results and claimed shards (hello) whose lease id this scheduler never
  // issued for that shard.
  int64_t results_rejected_unknown_lease = 0;
};

// Identifies one connection of an executor: reconnects get a new generation,
// so messages and close events of an old stream never touch the new one.
struct ExecutorConn {
  std::string executor_id;
  uint64_t generation = 0;
};

struct Assignment {
  std::string lease_id;
  std::string job_id;
  int64_t shard = 0;
  std::string task;
  std::string params_json;
  ShardBounds bounds;
  int32_t attempt = 0;
  absl::Duration timeout = absl::ZeroDuration();
  std::string items_json;  // items jobs: the batch, a JSON array
};

// Actions the service carries out after releasing the core's lock.
struct AssignAction {
  ExecutorConn conn;
  Assignment assignment;
};
struct CancelAction {
  ExecutorConn conn;
  std::string lease_id;
};
struct PersistAction {
  std::string job_id;
  int32_t version = 1;
  std::string bytes;
};
// Shared, not copied: a record is large and its op is moved around with many
// small ones (a result's save and ack) on the hot path.
struct SaveJobOp {
  explicit SaveJobOp(JobRecord r)
      : ptr(std::make_shared<const JobRecord>(std::move(r))) {}
  const JobRecord& record() const { return *ptr; }
  std::shared_ptr<const JobRecord> ptr;
};
struct SaveResultOp {
  std::string job_id;
  int64_t shard = 0;
  std::string result_json;
};
// A shard out of attempts under the continue policy: one small row, so that
// a failure costs O(1) store work instead of a re-encode of the job's record.
// A job's finished record carries the whole list and the rows go with it.
struct SaveFailedShardOp {
  std::string job_id;
  FailedShard shard;
};
// A finished job past its retention: all its rows go (record, shard results,
// failed shards). `result_location` is its result, which stays unless the
// runtime is told to delete results with their jobs.
struct RetireJobOp {
  std::string job_id;
  std::string result_location;
};
// Tells an executor its result is durable (or no longer needed).
struct AckOp {
  ExecutorConn conn;
  std::string lease_id;
};
// Durable work, carried out in order by the store writer: records are
// committed first, then the acks and persists that follow them happen.
using DurableOp = std::variant<SaveJobOp, SaveResultOp, AckOp, PersistAction,
                               SaveFailedShardOp, RetireJobOp>;
struct CloseAction {
  ExecutorConn conn;
  std::string reason;
};

// What happened, for metrics: the runtime turns these into histograms.
struct ShardDoneEvent {
  std::string task;
  std::string outcome;  // "succeeded", "failed" or "timed_out"
  absl::Duration run_time;
};
struct JobStartEvent {
  std::string task;
  std::string queue;
  absl::Duration queue_wait;  // submitted -> first shard dispatched
};

// A result or a claimed shard the core refused (for the log; counted too).
struct RejectedClaim {
  ExecutorConn conn;
  std::string executor_name;
  std::string lease_id;
  std::string reason;  // "leased_to_another" or "unknown_lease"
};

struct Actions {
  std::vector<AssignAction> assigns;
  std::vector<CancelAction> cancels;
  std::vector<CloseAction> closes;
  std::vector<DurableOp> durable;
  std::vector<ShardDoneEvent> shard_events;
  std::vector<JobStartEvent> job_starts;
  std::vector<RejectedClaim> rejected;
  bool empty() const {
    return assigns.empty() && cancels.empty() && closes.empty() && durable.empty() &&
           shard_events.empty() && job_starts.empty() && rejected.empty();
  }
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_TYPES_H_
