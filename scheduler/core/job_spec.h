// Job specs on their own: validation, partitioning, comparison and the retry
// backoff. Stateless functions, separate from the core so that the service,
// the fuzzers and the tests can check a spec without a SchedulerCore.
#ifndef TESSERA_SCHEDULER_CORE_JOB_SPEC_H_
#define TESSERA_SCHEDULER_CORE_JOB_SPEC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scheduler/core/core_config.h"
#include "scheduler/core/partition.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

// Validates everything but the shape of the input (MakePartition does that).
absl::Status ValidateSpec(const JobSpec& spec);
// The configured bounds on a spec's params (depth, bytes).
absl::Status ValidateSpecLimits(const JobSpec& spec, const CoreConfig& config);
// The shards of a job: its range, or its items cut into batches.
absl::StatusOr<RangePartition> MakePartition(const JobSpec& spec,
                                             const CoreConfig& config);
// The limits for a spec read back from the store: accepted once, accepted
// again (the shard, item and depth limits may have been lowered since).
CoreConfig ReadBackLimits(CoreConfig config);
// Same job definition (idempotent submission compares them).
bool SameSpec(const JobSpec& a, const JobSpec& b);

// The wait before attempt `attempt + 1` after `attempt` failed attempts;
// jitter comes from `unit` in [0, 1).
absl::Duration RetryBackoff(const RetryPolicy& policy, int32_t attempt, double unit);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_JOB_SPEC_H_
