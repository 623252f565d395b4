// The scheduler core's settings: limits, timeouts and dispatch tuning. A
// header of its own because spec validation (job_spec.h), the dispatch policy
// and the core all read it, and the service copies flags into it.
#ifndef TESSERA_SCHEDULER_CORE_CORE_CONFIG_H_
#define TESSERA_SCHEDULER_CORE_CORE_CONFIG_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
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

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_CORE_CONFIG_H_
