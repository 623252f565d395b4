#include "scheduler/service/scheduler_metrics.h"

#include <cctype>
#include <variant>

#include "shared/metrics.h"

namespace tessera::scheduler {
namespace {

using prometheus::ClientMetric;

std::string Lower(absl::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

SchedulerMetrics::SchedulerMetrics()
    : shard_duration_(prometheus::BuildHistogram()
                          .Name("tessera_shard_duration_seconds")
                          .Help("Shard attempts from dispatch to result, failure or "
                                "timeout, by task and outcome.")
                          .Register(registry_)),
      queue_wait_(prometheus::BuildHistogram()
                      .Name("tessera_queue_wait_seconds")
                      .Help("Jobs from submission to their first shard dispatched, by "
                            "queue.")
                      .Register(registry_)),
      jobs_finished_(prometheus::BuildCounter()
                         .Name("tessera_jobs_finished_total")
                         .Help("Jobs that reached an end state, by queue and outcome "
                               "(succeeded, failed, cancelled, partial).")
                         .Register(registry_)),
      commit_duration_(prometheus::BuildHistogram()
                           .Name("tessera_store_commit_duration_seconds")
                           .Help("Store transactions (group commits), successful or not.")
                           .Register(registry_)
                           .Add({}, LatencyBuckets())),
      commits_(prometheus::BuildCounter()
                   .Name("tessera_store_commits_total")
                   .Help("Store transactions committed.")
                   .Register(registry_)
                   .Add({})),
      committed_records_(
          prometheus::BuildCounter()
              .Name("tessera_store_committed_records_total")
              .Help("Job records and shard results committed to the store.")
              .Register(registry_)
              .Add({})),
      commit_failures_(prometheus::BuildCounter()
                           .Name("tessera_store_commit_failures_total")
                           .Help("Store transactions that failed (and were retried).")
                           .Register(registry_)
                           .Add({})),
      persist_duration_(prometheus::BuildHistogram()
                            .Name("tessera_result_persist_duration_seconds")
                            .Help("Writing a job's result: store flush and sink write.")
                            .Register(registry_)
                            .Add({}, LatencyBuckets())),
      persists_(prometheus::BuildCounter()
                    .Name("tessera_result_persists_total")
                    .Help("Attempts to persist a job's result, by outcome (succeeded, "
                          "failed; retried: failed in a way that may pass, and tried "
                          "again).")
                    .Register(registry_)) {
  // Every outcome from the start, so that rates and alerts see a zero rather
  // than no series.
  persists_.Add({{"outcome", "succeeded"}});
  persists_.Add({{"outcome", "failed"}});
  persists_.Add({{"outcome", "retried"}});
  for (const char* outcome : {"succeeded", "failed", "cancelled", "partial"}) {
    jobs_finished_.Add({{"queue", kDefaultQueue}, {"outcome", outcome}});
  }
}

const std::string& SchedulerMetrics::Bounded(const std::string& label,
                                             const std::string& value) {
  static const std::string kOther = "_other";
  constexpr size_t kMaxLabelValues = 200;
  std::set<std::string>& seen = label_values_[label];
  if (auto it = seen.find(value); it != seen.end()) return *it;
  if (seen.size() >= kMaxLabelValues) return kOther;
  return *seen.insert(value).first;
}

void SchedulerMetrics::JobsRecovered(const std::vector<JobRecord>& jobs) {
  absl::MutexLock lock(&mu_);
  for (const JobRecord& r : jobs) {
    if (!IsTerminal(r.state)) open_jobs_.insert(r.id);
  }
}

void SchedulerMetrics::Record(const Actions& actions) {
  if (!actions.shard_events.empty()) {
    // One histogram lookup per (task, outcome), not a label map per shard.
    absl::MutexLock lock(&mu_);
    for (const ShardDoneEvent& e : actions.shard_events) {
      prometheus::Histogram* h = nullptr;
      if (auto it = shard_histograms_.find({e.task, e.outcome});
          it != shard_histograms_.end()) {
        h = it->second;
      } else {
        // New task: bounded once here; a task past the cap shares "_other".
        const std::string& task = Bounded("task", e.task);
        prometheus::Histogram*& slot = shard_histograms_[{task, e.outcome}];
        if (slot == nullptr) {
          slot = &shard_duration_.Add({{"task", task}, {"outcome", e.outcome}},
                                      WorkBuckets());
        }
        h = slot;
      }
      h->Observe(absl::ToDoubleSeconds(e.run_time));
    }
  }
  absl::MutexLock lock(&mu_);
  for (const JobStartEvent& e : actions.job_starts) {
    queue_wait_.Add({{"queue", Bounded("queue", e.queue)}}, WorkBuckets())
        .Observe(absl::ToDoubleSeconds(e.queue_wait));
  }
  for (const DurableOp& op : actions.durable) {
    const auto* save = std::get_if<SaveJobOp>(&op);
    if (save == nullptr) continue;
    const JobRecord& r = save->record();
    if (!IsTerminal(r.state)) {
      open_jobs_.insert(r.id);
    } else if (open_jobs_.erase(r.id) > 0) {
      jobs_finished_
          .Add({{"queue", Bounded("queue", r.spec.queue)},
                {"outcome", Lower(JobStateName(r.state))}})
          .Increment();
    }
  }
}

void SchedulerMetrics::StoreCommitted(absl::Duration took, int64_t records, bool ok) {
  commit_duration_.Observe(absl::ToDoubleSeconds(took));
  if (!ok) {
    commit_failures_.Increment();
    return;
  }
  commits_.Increment();
  committed_records_.Increment(static_cast<double>(records));
}

void SchedulerMetrics::ResultPersisted(absl::Duration took, bool ok) {
  persist_duration_.Observe(absl::ToDoubleSeconds(took));
  persists_.Add({{"outcome", ok ? "succeeded" : "failed"}}).Increment();
}

void SchedulerMetrics::ResultWriteRetried() {
  persists_.Add({{"outcome", "retried"}}).Increment();
}

std::vector<prometheus::MetricFamily> SchedulerMetrics::Collect(
    const CoreSnapshot& core) {
  const QueueStats& stats = core.stats;
  const CoreCounters& c = core.counters;
  std::vector<prometheus::MetricFamily> out;
  auto jobs_f =
      GaugeFamily("tessera_jobs", "Jobs known to the scheduler, by queue and state.");
  for (const auto& [queue, counts] : core.jobs) {
    for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                       JobState::kFailed, JobState::kCancelled, JobState::kPartial}) {
      auto it = counts.find(s);
      AddGaugeSample(jobs_f, it == counts.end() ? 0.0 : static_cast<double>(it->second),
                     {{"queue", queue}, {"state", Lower(JobStateName(s))}});
    }
  }
  out.push_back(std::move(jobs_f));
  auto gauge = [&out](const char* name, const char* help, double v,
                      std::vector<ClientMetric::Label> labels = {}) {
    auto f = GaugeFamily(name, help);
    AddGaugeSample(f, v, std::move(labels));
    out.push_back(std::move(f));
  };
  auto counter = [&out](const char* name, const char* help, double v) {
    auto f = CounterFamily(name, help);
    AddCounterSample(f, v);
    out.push_back(std::move(f));
  };
  {
    auto f = GaugeFamily(
        "tessera_queue_depth_shards",
        "Shards waiting to be dispatched (the autoscaling signal), by queue.");
    std::map<std::string, int64_t> depth = stats.pending_by_queue;
    depth.emplace(kDefaultQueue, 0);
    for (const auto& [queue, n] : depth) {
      AddGaugeSample(f, static_cast<double>(n), {{"queue", queue}});
    }
    out.push_back(std::move(f));
  }
  gauge("tessera_shards_running", "Shards leased to executors right now.",
        static_cast<double>(stats.shards_running));
  gauge("tessera_executors_connected", "Executors with an open stream.", stats.executors);
  {
    auto f = GaugeFamily("tessera_slots", "Executor slots, by state (busy, free).");
    AddGaugeSample(f, stats.slots_busy, {{"state", "busy"}});
    AddGaugeSample(f, stats.slots_total - stats.slots_busy, {{"state", "free"}});
    out.push_back(std::move(f));
  }
  counter("tessera_jobs_submitted_total", "Jobs accepted.",
          static_cast<double>(c.jobs_submitted));
  counter("tessera_shards_dispatched_total", "Shard assignments sent to executors.",
          static_cast<double>(c.shards_dispatched));
  {
    auto f = CounterFamily("tessera_shards_completed_total",
                           "Shard attempts finished, by outcome (succeeded, failed).");
    AddCounterSample(f, static_cast<double>(c.shards_succeeded),
                     {{"outcome", "succeeded"}});
    AddCounterSample(f, static_cast<double>(c.shards_failed), {{"outcome", "failed"}});
    out.push_back(std::move(f));
  }
  counter("tessera_shards_requeued_total",
          "Leases ended without a result (stream closed, released) and put back.",
          static_cast<double>(c.shards_requeued));
  counter("tessera_stale_results_dropped_total",
          "Results for leases that had already ended (duplicates, late), dropped.",
          static_cast<double>(c.results_dropped));
  counter("tessera_executors_expired_total", "Executors closed for missed heartbeats.",
          static_cast<double>(c.executors_expired));
  counter("tessera_results_persisted_total", "Job results persisted to the sink.",
          static_cast<double>(c.results_persisted));
  counter("tessera_result_writes_total", "Writes made to the result sink.",
          static_cast<double>(core.sink_writes));
  counter("tessera_shards_retried_total", "Failed attempts put back after a backoff.",
          static_cast<double>(c.shards_retried));
  counter("tessera_lease_expirations_total",
          "Leases ended by the scheduler because a shard ran past its timeout.",
          static_cast<double>(c.leases_expired));
  counter("tessera_results_adopted_total",
          "Results accepted for an open shard without a live lease (after a restart or "
          "reconnect).",
          static_cast<double>(c.results_adopted));
  {
    auto f = CounterFamily(
        "tessera_results_rejected_total",
        "Results and claimed shards refused, by reason (leased_to_another: another "
        "executor holds the shard's lease; unknown_lease: a lease id this scheduler "
        "never issued for the shard).");
    AddCounterSample(f, static_cast<double>(c.results_rejected_leased_to_another),
                     {{"reason", "leased_to_another"}});
    AddCounterSample(f, static_cast<double>(c.results_rejected_unknown_lease),
                     {{"reason", "unknown_lease"}});
    out.push_back(std::move(f));
  }
  for (prometheus::MetricFamily& f : registry_.Collect()) out.push_back(std::move(f));
  return out;
}

}  // namespace tessera::scheduler
