#include "scheduler/core/job_report.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/core/job_spec.h"

namespace tessera::scheduler {

using json = nlohmann::json;

namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

}  // namespace

std::string ResultDocument(const CoreJob& j, absl::Time wall_now) {
  const JobSpec& spec = j.record.spec;
  json result = j.shards.folded_value();
  json range = {{"start", spec.range.start}, {"end", spec.range.end}};
  if (spec.range.shard_size > 0) range["shard_size"] = spec.range.shard_size;
  if (spec.range.shard_count > 0) range["shard_count"] = spec.range.shard_count;
  json failed = json::array();
  for (const auto& [s, f] : j.shards.failed()) {
    failed.push_back({{"shard", s},
                      {"start", f.bounds.start},
                      {"end", f.bounds.end},
                      {"attempts", f.attempts},
                      {"error", f.last_error}});
  }
  result["_metadata"] = {
      {"job_id", j.record.id},
      {"name", spec.name},
      {"task", spec.task},
      {spec.has_items ? "items" : "range",
       spec.has_items
           ? json{{"count", spec.items.size()}, {"batch_size", spec.batch_size}}
           : range},
      {"shards",
       {{"total", j.shards.num_shards()},
        {"succeeded", j.shards.succeeded()},
        {"failed", static_cast<int64_t>(j.shards.failed().size())}}},
      {"failed_shards", failed},
      {"attempts", j.assignments},
      {"executors",
       std::vector<std::string>(j.executors_used.begin(), j.executors_used.end())},
      {"result_version", j.record.result_version + 1},
      {"created_at", Rfc3339(j.record.created)},
      {"started_at", Rfc3339(j.record.started)},
      {"finished_at", Rfc3339(wall_now)},
  };
  return result.dump(2) + "\n";
}

std::string WaitReason(const CoreJob& j, const WaitFacts& facts, absl::Time now) {
  const JobSpec& spec = j.record.spec;
  // Said only when results wait: a full window of shards merely running is
  // normal progress.
  if (j.record.state == JobState::kRunning && !j.persisting &&
      facts.policy.PausedForFold(j) && j.shards.buffered() > 0 &&
      j.shards.next_shard() < j.shards.num_shards()) {
    return absl::StrCat("dispatch paused: ", j.shards.buffered(),
                        " results wait to be folded in order behind shard ",
                        j.shards.folded(), " (at most ", facts.config.fold_window,
                        " shards ahead, --fold-window)");
  }
  if (j.record.state != JobState::kQueued) return j.record.message;
  if (now < j.hold_until) {
    return "waiting for executors to re-attach after a scheduler restart";
  }
  if (const CoreJob* blocker = facts.policy.BlockedBy(j, facts.active)) {
    return absl::StrCat("waiting for job ", blocker->record.id, " (concurrency key \"",
                        spec.concurrency_key, "\", at most ", spec.concurrency_limit,
                        " running)");
  }
  for (const auto& [id, e] : facts.executors) {
    if (e->tasks.count(spec.task) && e->queues.count(spec.queue) && !e->draining) {
      return absl::StrCat("waiting for a free executor slot in queue \"", spec.queue,
                          "\"");
    }
  }
  if (!facts.known_tasks.count(spec.task) &&
      now - j.created_mono >= facts.config.unknown_task_grace) {
    return absl::StrCat(
        "no executor has advertised task \"", spec.task, "\" in ",
        absl::FormatDuration(now - j.created_mono), "; tasks advertised: ",
        facts.known_tasks.empty() ? "none" : absl::StrJoin(facts.known_tasks, ", "));
  }
  return absl::StrCat("waiting for an executor that runs task \"", spec.task, "\"");
}

JobView ViewOf(const CoreJob& j, const LeaseTable& leases, std::string message) {
  JobView v;
  const JobRecord& r = j.record;
  const JobShards& s = j.shards;
  v.id = r.id;
  v.spec = r.spec;
  v.state = r.state;
  v.shards.total = s.num_shards();
  v.shards.running = static_cast<int64_t>(s.running().size());
  v.shards.succeeded = s.succeeded();
  v.shards.failed = static_cast<int64_t>(s.failed().size());
  v.shards.pending = IsTerminal(r.state) ? 0
                                         : v.shards.total - v.shards.succeeded -
                                               v.shards.failed - v.shards.running;
  v.items_total = s.partition().TotalItems();
  v.items_done = s.items_completed();
  for (const auto& [shard, id] : s.running()) {
    v.items_done = SaturatingAdd(v.items_done, leases.at(id).progress);
  }
  v.create_time = r.created;
  v.start_time = r.started;
  v.end_time = r.ended;
  v.message = std::move(message);
  v.errors = r.errors;
  v.result_location = r.location;
  v.result_sha256 = r.sha256;
  v.result_version = r.result_version;
  v.failed_shards.reserve(s.failed().size());
  for (const auto& [shard, f] : s.failed()) v.failed_shards.push_back(f);
  v.version = j.version;
  return v;
}

int64_t FinishedItemsDone(const JobRecord& r, const RangePartition& p) {
  if (r.items_done >= 0) return r.items_done;
  if (r.state != JobState::kSucceeded && r.state != JobState::kPartial) return 0;
  int64_t done = p.TotalItems();
  for (const FailedShard& f : r.failed) {
    if (f.shard >= 0 && f.shard < p.num_shards()) done -= p.Items(f.shard);
  }
  return done;
}

JobView FinishedView(const JobRecord& r) {
  static const CoreConfig kUnlimited = ReadBackLimits(CoreConfig());
  JobView v;
  v.id = r.id;
  v.spec = r.spec;
  v.state = r.state;
  absl::StatusOr<RangePartition> partition = MakePartition(r.spec, kUnlimited);
  if (partition.ok()) {
    v.shards.total = partition->num_shards();
    v.items_total = partition->TotalItems();
    v.items_done = FinishedItemsDone(r, *partition);
  }
  v.shards.succeeded = r.shards_succeeded;
  v.shards.failed = static_cast<int64_t>(r.failed.size());
  v.create_time = r.created;
  v.start_time = r.started;
  v.end_time = r.ended;
  v.message = r.message;
  v.errors = r.errors;
  v.result_location = r.location;
  v.result_sha256 = r.sha256;
  v.result_version = r.result_version;
  v.failed_shards = r.failed;
  return v;
}

}  // namespace tessera::scheduler
