// Which shard goes to which executor, and why a job waits: priorities, round
// robin, queues and tasks, max_parallel, concurrency keys, rate limits, the
// fold window, re-attach holds and the prefetch. A pure policy over read-only
// views of the core's entries: it changes nothing and returns its decisions
// (a job's index, a new cursor, whether to refill), so it is tested table by
// table apart from the transitions, and the core applies what it decides.
// Thread-compatible; holds a copy of the configuration only.
#ifndef TESSERA_SCHEDULER_CORE_DISPATCH_POLICY_H_
#define TESSERA_SCHEDULER_CORE_DISPATCH_POLICY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "scheduler/core/core_config.h"
#include "scheduler/core/core_entries.h"

namespace tessera::scheduler {

class DispatchPolicy {
 public:
  explicit DispatchPolicy(const CoreConfig& config) : config_(config) {}

  // Whether `j` may have a shard handed out at `now`. `active`: the queued
  // and running jobs in submission order (concurrency keys look at them).
  bool HasWork(const CoreJob& j, const std::vector<CoreJob*>& active,
               absl::Time now) const;
  // For a queued job with a concurrency key: the job it waits for, if any.
  const CoreJob* BlockedBy(const CoreJob& j, const std::vector<CoreJob*>& active) const;
  // Rate limit: the shards `j` may start at `now` (infinite without a limit).
  double TokensAt(const CoreJob& j, absl::Time now) const;
  // Whether new shards of `j` wait for the in-order fold (fold_window).
  bool PausedForFold(const CoreJob& j) const {
    return j.shards.PausedForFold(config_.fold_window);
  }

  struct Pick {
    size_t index = 0;   // into `active`
    size_t cursor = 0;  // the round-robin position after it
  };
  // The job `e` should run next: within its queues and tasks the highest
  // priority, equal priorities in turn from `cursor`.
  std::optional<Pick> NextJobFor(const CoreExecutor& e,
                                 const std::vector<CoreJob*>& active, size_t cursor,
                                 absl::Time now) const;

  // Assignments beyond its slots an executor may hold when the next is of a
  // job whose shards run `run_seconds` (0: not known yet).
  int64_t Prefetch(double run_seconds, int32_t slots) const;
  // The shortest run time any active job has reported (0: none): executors
  // holding what it allows are passed over without looking for a job.
  static double ShortestRunSeconds(const std::vector<CoreJob*>& active);
  struct Want {
    bool more = false;
    bool refilling = false;  // e.refilling from now on
  };
  // Whether to hand `e` another shard now, given that prefetch.
  Want WantsMore(const CoreExecutor& e, int64_t prefetch) const;

 private:
  CoreConfig config_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_DISPATCH_POLICY_H_
