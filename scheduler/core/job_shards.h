// Where each shard of one job stands: never dispatched, waiting to run again
// (after a backoff), running under a lease, detached from a lost executor,
// done and buffered for the in-order fold, folded, or failed out of attempts;
// plus the per-shard failure and loss counts and the running fold. The
// bookkeeping is separate from SchedulerCore so that its rules (what is open,
// what is next, what a rebuild from stored results restores) are stated and
// tested once, apart from the transitions that drive them.
// Thread-compatible; owned by the job it belongs to (CoreJob).
#ifndef TESSERA_SCHEDULER_CORE_JOB_SHARDS_H_
#define TESSERA_SCHEDULER_CORE_JOB_SHARDS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "scheduler/core/fold.h"
#include "scheduler/core/partition.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

class JobShards {
 public:
  struct Pending {
    int32_t attempts = 0;  // assignments so far
    absl::Time not_before = absl::InfinitePast();
  };
  // A shard to run and the attempt it will be.
  struct Next {
    int64_t shard = 0;
    int32_t attempt = 1;
  };
  // A detached shard whose executor did not re-attach in time.
  struct Lost {
    int64_t shard = 0;
    int32_t attempt = 1;
  };

  JobShards() = default;
  JobShards(RangePartition partition, AggregateSpec aggregate);

  const RangePartition& partition() const { return partition_; }
  int64_t num_shards() const { return partition_.num_shards(); }
  // [next_shard(), num_shards()) were never dispatched.
  int64_t next_shard() const { return next_shard_; }
  // [0, folded()) are folded or failed.
  int64_t folded() const { return folded_; }
  int64_t succeeded() const { return succeeded_; }
  int64_t items_completed() const { return items_completed_; }
  // Shard -> lease id.
  const std::map<int64_t, std::string>& running() const { return running_; }
  // Out of attempts (continue policy), by shard.
  const std::map<int64_t, FailedShard>& failed() const { return failed_; }
  // Shards to dispatch again, lowest first.
  const std::map<int64_t, Pending>& retry() const { return retry_; }
  // Results waiting for the fold prefix to reach them.
  size_t buffered() const { return buffered_.size(); }
  const nlohmann::json& folded_value() const { return folder_.value(); }

  // Has a result, or failed for good.
  bool IsDone(int64_t shard) const;
  // Shards still to hand out: never dispatched or queued again.
  int64_t pending() const;
  // Whether new shards wait for the in-order fold to catch up: they are
  // dispatched only within `window` shards of the first unfolded one.
  bool PausedForFold(int64_t window) const;
  // Whether a shard may be handed out at `now` (parallelism and rate aside).
  bool HasDue(absl::Time now, int64_t fold_window) const;
  // Takes the lowest due retry, else the next never-dispatched shard.
  Next TakeNext(absl::Time now);
  // Takes `shard` out of the pending set (retry queue or not yet dispatched)
  // so that it can be run or accepted elsewhere.
  void Claim(int64_t shard);
  void Run(int64_t shard, const std::string& lease_id);
  // Its lease ended; with `requeue`, the shard runs again (unless done).
  void Stop(int64_t shard, int32_t attempt, bool requeue);

  // A result: buffered, then folded in shard order by FoldPrefix.
  void Accept(int64_t shard, nlohmann::json result);
  // Folds the contiguous prefix of results (skipping failed shards): the
  // folded bytes never depend on the order results arrive in. The error is
  // the aggregate's.
  absl::Status FoldPrefix();
  bool AllFolded() const { return folded_ == num_shards(); }

  // Counts a failed attempt; returns the shard's failures so far.
  int32_t CountFailure(int64_t shard) { return ++failures_[shard]; }
  // Counts a lost executor; returns the shard's losses so far.
  int32_t CountLoss(int64_t shard) { return ++losses_[shard]; }
  void RetryAt(int64_t shard, int32_t attempts, absl::Time not_before);
  // Out of attempts: failed for good.
  const FailedShard& Fail(int64_t shard, int32_t attempts, const std::string& message);
  // Its executor went away while running it: the (requeued) shard waits
  // until `until` for that executor to re-attach before it runs elsewhere.
  void Detach(int64_t shard, int32_t attempt, absl::Time until,
              const std::string& executor_id);
  // The executor re-attached without claiming its detached shards: they are
  // lost at `now`. Returns whether it had any.
  bool AbandonDetached(const std::string& executor_id, absl::Time now);
  // Whether a detached shard's grace is over.
  bool HasLost(absl::Time now) const;
  // Removes the detached shards whose grace is over.
  std::vector<Lost> TakeLost(absl::Time now);
  bool QueuedAgain(int64_t shard) const { return retry_.count(shard) > 0; }
  void Unqueue(int64_t shard) { retry_.erase(shard); }

  // The job stopped: nothing waits, nothing folds.
  void Clear();
  // The folded value is no longer needed (its bytes are kept elsewhere).
  void DropFolder() { folder_ = Folder(); }

  // From a stored record. KeepFailed ignores shards the job does not have.
  void KeepFailed(const FailedShard& f);
  void SetFinished(int64_t succeeded, int64_t items_done);
  // Resets the state from the job's stored results. DATA_LOSS naming the
  // shard when one cannot be read back (not an object, or deeper than
  // `max_json_depth`).
  absl::Status Rebuild(const std::vector<StoredResult>& results, int32_t max_json_depth,
                       const AggregateSpec& aggregate);
  // Rebuild, forgetting the failed shards; their attempt numbers go on.
  absl::Status RetryFailed(const std::vector<StoredResult>& results,
                           int32_t max_json_depth, const AggregateSpec& aggregate);

 private:
  // Shards whose executor went away (stream closed, heartbeats missed) while
  // running them: held for it to re-attach until the time given, and only
  // then counted as a loss and dispatched again.
  struct Detached {
    absl::Time until;
    std::string executor_id;
  };

  RangePartition partition_;
  int64_t next_shard_ = 0;
  std::map<int64_t, Pending> retry_;
  std::map<int64_t, int32_t> failures_;  // shard -> failed attempts (open shards)
  std::map<int64_t, int32_t> losses_;    // shard -> executors lost while running it
  std::map<int64_t, Detached> detached_;
  std::map<int64_t, std::string> running_;
  std::map<int64_t, nlohmann::json> buffered_;
  std::map<int64_t, FailedShard> failed_;
  int64_t folded_ = 0;
  Folder folder_;
  int64_t succeeded_ = 0;
  int64_t items_completed_ = 0;
};

// Item counts of ranges wider than INT64_MAX saturate instead of wrapping.
int64_t SaturatingAdd(int64_t a, int64_t b);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_JOB_SHARDS_H_
