// What the scheduler core says about a job: the result document a finished
// job persists, the JobView GetJob and ListJobs answer with, and the message
// that says why a job waits. Pure functions of the core's entries, separate
// from the transitions so that the documents' shape is read and tested in
// one place.
#ifndef TESSERA_SCHEDULER_CORE_JOB_REPORT_H_
#define TESSERA_SCHEDULER_CORE_JOB_REPORT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "scheduler/core/core_config.h"
#include "scheduler/core/core_entries.h"
#include "scheduler/core/dispatch_policy.h"
#include "scheduler/core/lease_table.h"
#include "scheduler/core/partition.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

// The persisted result of a job whose shards are all folded or failed: the
// folded value plus "_metadata" (ids, range or items, shard counts, failed
// shards, executors, times), indented, newline-terminated. `wall_now` is its
// finished_at.
std::string ResultDocument(const CoreJob& j, absl::Time wall_now);

// What the wait message reads besides the job.
struct WaitFacts {
  const CoreConfig& config;
  const DispatchPolicy& policy;
  const std::vector<CoreJob*>& active;
  const std::map<std::string, std::unique_ptr<CoreExecutor>>& executors;
  const std::set<std::string>& known_tasks;  // every task ever advertised
};
// Why a queued job waits (or a running one is paused for the fold); for any
// other job its record's message.
std::string WaitReason(const CoreJob& j, const WaitFacts& facts, absl::Time now);

// The view of a held job; `message` is its WaitReason.
JobView ViewOf(const CoreJob& j, const LeaseTable& leases, std::string message);
// The view of a finished job from its stored record.
JobView FinishedView(const JobRecord& r);
// Items done of a finished record; one written before records kept the
// count derives it from the state.
int64_t FinishedItemsDone(const JobRecord& r, const RangePartition& p);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_JOB_REPORT_H_
