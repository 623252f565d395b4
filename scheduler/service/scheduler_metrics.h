// The scheduler's Prometheus metrics: histograms and counters fed by the
// runtime as it carries out the core's actions (shard run times, queue waits,
// finished jobs, store commits, result persists), and the snapshot families
// read from the core at scrape time. Names and labels are documented in
// docs/metrics.md; keep them stable.
//
// Thread-safe. Owns a private registry whose families are returned by
// Collect, next to the snapshot families.
#ifndef TESSERA_SCHEDULER_SERVICE_SCHEDULER_METRICS_H_
#define TESSERA_SCHEDULER_SERVICE_SCHEDULER_METRICS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

// The queue of series that predate any job (e.g. zeroes at start). Other
// series carry each job's own queue.
// take it from the job here (and from the events, once they carry it) — this
// is the one place that names it.
inline constexpr char kDefaultQueue[] = "default";

// What the runtime reads from the core under its lock at scrape time.
struct CoreSnapshot {
  std::map<std::string, std::map<JobState, int64_t>> jobs;  // by queue
  QueueStats stats;
  CoreCounters counters;
  int64_t sink_writes = 0;
};

class SchedulerMetrics {
 public:
  SchedulerMetrics();

  // Jobs restored from the store that are not finished yet, so that their
  // end is counted once.
  void JobsRecovered(const std::vector<JobRecord>& jobs);
  // Shard run times, queue waits and job ends found in `actions`.
  void Record(const Actions& actions);
  void StoreCommitted(absl::Duration took, int64_t records, bool ok);
  void ResultPersisted(absl::Duration took, bool ok);
  // A result write failed in a way that may pass and is tried again.
  void ResultWriteRetried();

  std::vector<prometheus::MetricFamily> Collect(const CoreSnapshot& core);

 private:
  prometheus::Registry registry_;
  prometheus::Family<prometheus::Histogram>& shard_duration_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
  prometheus::Family<prometheus::Counter>& jobs_finished_;
  prometheus::Histogram& commit_duration_;
  prometheus::Counter& commits_;
  prometheus::Counter& committed_records_;
  prometheus::Counter& commit_failures_;
  prometheus::Histogram& persist_duration_;
  prometheus::Family<prometheus::Counter>& persists_;

  absl::Mutex mu_;
  // Jobs seen unfinished: a job's end is counted when it leaves this set, so
  // re-saves of a finished job are not counted twice.
  absl::flat_hash_set<std::string> open_jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, prometheus::Histogram*> shard_histograms_
      ABSL_GUARDED_BY(mu_);
  // Label values seen so far, by label; past kMaxLabelValues a new value is
  // reported as "_other", so that names from users and peers cannot grow the
  // number of series without bound.
  std::map<std::string, std::set<std::string>> label_values_ ABSL_GUARDED_BY(mu_);
  const std::string& Bounded(const std::string& label, const std::string& value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_SCHEDULER_METRICS_H_
