// What the scheduler core holds for a job and for a connected executor. Plain
// structs in a header of their own so that the pieces the core is made of
// (the dispatch policy, the lease table, the job report) read the same
// entries the core keeps, and tests can build them directly. Owned by
// SchedulerCore; thread-compatible.
#ifndef TESSERA_SCHEDULER_CORE_CORE_ENTRIES_H_
#define TESSERA_SCHEDULER_CORE_CORE_ENTRIES_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "scheduler/core/job_shards.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

// A job held in memory: unfinished, or finished until its last record is
// committed.
struct CoreJob {
  JobRecord record;  // what is stored (state, times, errors...)
  JobShards shards;
  std::string params_json;
  int64_t assignments = 0;
  std::set<std::string> executors_used;
  bool persisting = false;
  absl::Time hold_until = absl::InfinitePast();  // re-attach grace after restore
  // When the job was submitted, on the monotonic clock (record.created is wall
  // time); restored jobs count from their restore less their wall-clock age.
  absl::Time created_mono = absl::InfinitePast();
  double tokens = 1;  // rate limit: shards that may start now
  absl::Time tokens_at = absl::InfinitePast();
  uint64_t version = 0;
  // Moving average of the run times executors report (0: none yet); sizes
  // the prefetch for this job's shards.
  double run_seconds = 0;
  // What the core's index last counted: the state, and the retirement time
  // if any.
  std::optional<JobState> counted;
  std::optional<absl::Time> retire_at;
  // The record of the last save (identity only): when the store has
  // committed it and the job is finished, the job leaves memory.
  const void* last_saved = nullptr;
  // Finished at some point while held: the store may hold a finished record.
  bool once_finished = false;
};

// A connected executor (one stream).
struct CoreExecutor {
  ExecutorConn conn;
  ExecutorHello hello;
  std::set<std::string> tasks;
  std::set<std::string> queues;
  std::set<std::string> leases;
  bool draining = false;
  // Being topped up to its slots plus the prefetch (DispatchPolicy::WantsMore).
  bool refilling = false;
  absl::Time connected;
  absl::Time last_seen;
  int64_t completed = 0;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_CORE_ENTRIES_H_
