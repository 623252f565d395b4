#include "scheduler/service/scheduler_metrics.h"

#include "gtest/gtest.h"

namespace tessera::scheduler {
namespace {

// The value of the sample of `family` whose labels include all of `labels`.
double Sample(const std::vector<prometheus::MetricFamily>& families,
              const std::string& family,
              const std::vector<prometheus::ClientMetric::Label>& labels = {}) {
  for (const prometheus::MetricFamily& f : families) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      bool all = true;
      for (const auto& want : labels) {
        bool found = false;
        for (const auto& l : m.label)
          found |= l.name == want.name && l.value == want.value;
        all &= found;
      }
      if (!all) continue;
      switch (f.type) {
        case prometheus::MetricType::Counter:
          return m.counter.value;
        case prometheus::MetricType::Gauge:
          return m.gauge.value;
        case prometheus::MetricType::Histogram:
          return static_cast<double>(m.histogram.sample_count);
        default:
          return -2;
      }
    }
  }
  return -1;
}

JobRecord Record(const std::string& id, JobState state) {
  JobRecord r;
  r.id = id;
  r.state = state;
  return r;
}

TEST(SchedulerMetricsTest, CountsAJobsEndOnceEvenWhenItIsSavedAgain) {
  SchedulerMetrics m;
  Actions a;
  a.durable.push_back(SaveJobOp{Record("j1", JobState::kQueued)});
  a.durable.push_back(SaveJobOp{Record("j1", JobState::kRunning)});
  m.Record(a);
  Actions end;
  end.durable.push_back(SaveJobOp{Record("j1", JobState::kSucceeded)});
  m.Record(end);
  m.Record(end);  // a re-save of the finished job
  auto f = m.Collect({});
  EXPECT_EQ(Sample(f, "tessera_jobs_finished_total",
                   {{"queue", "default"}, {"outcome", "succeeded"}}),
            1);
  EXPECT_EQ(Sample(f, "tessera_jobs_finished_total",
                   {{"queue", "default"}, {"outcome", "failed"}}),
            0);
}

TEST(SchedulerMetricsTest, CountsTheEndOfAJobRecoveredFromTheStore) {
  SchedulerMetrics m;
  m.JobsRecovered({Record("old", JobState::kRunning), Record("done", JobState::kFailed)});
  Actions a;
  a.durable.push_back(SaveJobOp{Record("old", JobState::kPartial)});
  a.durable.push_back(SaveJobOp{Record("done", JobState::kFailed)});
  m.Record(a);
  auto f = m.Collect({});
  EXPECT_EQ(Sample(f, "tessera_jobs_finished_total", {{"outcome", "partial"}}), 1);
  EXPECT_EQ(Sample(f, "tessera_jobs_finished_total", {{"outcome", "failed"}}), 0);
}

TEST(SchedulerMetricsTest, TurnsShardEventsAndJobStartsIntoHistograms) {
  SchedulerMetrics m;
  Actions a;
  a.shard_events.push_back({"primes", "succeeded", absl::Milliseconds(40)});
  a.shard_events.push_back({"primes", "succeeded", absl::Seconds(2)});
  a.shard_events.push_back({"primes", "timed_out", absl::Hours(1)});
  a.job_starts.push_back({"primes", "default", absl::Milliseconds(5)});
  m.Record(a);
  m.StoreCommitted(absl::Microseconds(300), 4, true);
  m.StoreCommitted(absl::Milliseconds(3), 2, false);
  m.ResultPersisted(absl::Milliseconds(7), true);
  auto f = m.Collect({});
  EXPECT_EQ(Sample(f, "tessera_shard_duration_seconds",
                   {{"task", "primes"}, {"outcome", "succeeded"}}),
            2);
  EXPECT_EQ(Sample(f, "tessera_shard_duration_seconds", {{"outcome", "timed_out"}}), 1);
  EXPECT_EQ(Sample(f, "tessera_queue_wait_seconds", {{"queue", "default"}}), 1);
  EXPECT_EQ(Sample(f, "tessera_store_commit_duration_seconds"), 2);
  EXPECT_EQ(Sample(f, "tessera_store_commits_total"), 1);
  EXPECT_EQ(Sample(f, "tessera_store_committed_records_total"), 4);
  EXPECT_EQ(Sample(f, "tessera_store_commit_failures_total"), 1);
  EXPECT_EQ(Sample(f, "tessera_result_persist_duration_seconds"), 1);
  EXPECT_EQ(Sample(f, "tessera_result_persists_total", {{"outcome", "succeeded"}}), 1);
  EXPECT_EQ(Sample(f, "tessera_result_persists_total", {{"outcome", "failed"}}), 0);
}

TEST(SchedulerMetricsTest, SnapshotsTheCoreWithAQueueLabel) {
  SchedulerMetrics m;
  CoreSnapshot s;
  s.jobs["default"][JobState::kRunning] = 2;
  s.jobs["gpu"][JobState::kQueued] = 1;
  s.stats.shards_pending = 20;
  s.stats.pending_by_queue = {{"default", 17}, {"gpu", 3}};
  s.stats.slots_total = 8;
  s.stats.slots_busy = 3;
  s.counters.shards_succeeded = 5;
  s.sink_writes = 1;
  auto f = m.Collect(s);
  EXPECT_EQ(Sample(f, "tessera_jobs", {{"queue", "default"}, {"state", "running"}}), 2);
  EXPECT_EQ(Sample(f, "tessera_jobs", {{"state", "queued"}}), 0);
  EXPECT_EQ(Sample(f, "tessera_queue_depth_shards", {{"queue", "default"}}), 17);
  EXPECT_EQ(Sample(f, "tessera_queue_depth_shards", {{"queue", "gpu"}}), 3);
  EXPECT_EQ(Sample(f, "tessera_jobs", {{"queue", "gpu"}, {"state", "queued"}}), 1);
  EXPECT_EQ(Sample(f, "tessera_slots", {{"state", "free"}}), 5);
  EXPECT_EQ(Sample(f, "tessera_shards_completed_total", {{"outcome", "succeeded"}}), 5);
  EXPECT_EQ(Sample(f, "tessera_result_writes_total"), 1);
}

}  // namespace
}  // namespace tessera::scheduler
