// SchedulerCore and the store: restoring after a restart, jobs leaving
// memory once their finished record is committed and coming back to be
// retried, retention (retiring finished jobs) and idempotency keys.
#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/core/job_report.h"
#include "scheduler/core/scheduler_core.h"

namespace tessera::scheduler {

void SchedulerCore::Restore(
    const std::vector<JobRecord>& records,
    const std::map<std::string, std::vector<StoredResult>>& results, absl::Time now,
    Actions& out, const std::map<std::string, std::vector<FailedShard>>& failed) {
  static const std::vector<StoredResult> kNone;
  for (const JobRecord& r : records) {
    auto partition = MakePartition(r.spec, ReadBackLimits(config_));
    if (!partition.ok() || jobs_.count(r.id)) continue;
    std::unique_ptr<Job> job = FromRecord(r, *std::move(partition), now);
    Job* j = job.get();
    jobs_.emplace(r.id, std::move(job));
    if (!by_seq_.emplace(r.seq, j).second) {
      // Two records with one submission number (a damaged store): the later
      // one gets a fresh number, so that listing shows both.
      j->record.seq = by_seq_.rbegin()->first + 1;
      by_seq_.emplace(j->record.seq, j);
    }
    next_seq_ = std::max(next_seq_, j->record.seq + 1);
    if (!r.spec.idempotency_key.empty() &&
        Wall(now) - r.created < config_.idempotency_retention) {
      idempotency_[r.spec.idempotency_key] = {r.id, r.created};
      idempotency_by_time_.emplace(r.created, r.spec.idempotency_key);
    }
    // An unfinished job's failed shards are rows of their own.
    if (auto it = failed.find(r.id); it != failed.end() && !IsTerminal(r.state)) {
      for (const FailedShard& f : it->second) j->shards.KeepFailed(f);
    }
    Index(*j);
    if (IsTerminal(r.state)) {
      j->shards.SetFinished(r.shards_succeeded,
                            FinishedItemsDone(r, j->shards.partition()));
      j->once_finished = true;
      continue;
    }
    auto it = results.find(r.id);
    absl::Status rebuilt = j->shards.Rebuild(it == results.end() ? kNone : it->second,
                                             config_.max_json_depth, r.spec.aggregate);
    if (!rebuilt.ok() && !r.finalizing) {
      FailJob(*j, std::string(rebuilt.message()), now, out);
      continue;
    }
    if (r.finalizing) {
      // The sink may or may not have the bytes: persist them again (the
      // writer skips the write when the sink already holds them).
      j->persisting = true;
      j->shards.DropFolder();
      out.durable.push_back(
          PersistAction{r.id, std::max(1, r.result_version + 1), r.final_bytes});
    }
    j->hold_until = now + config_.reattach_grace;
    active_.push_back(j);
  }
  for (Job* j : active_) {
    if (!j->persisting) FoldPrefix(*j, now, out);
  }
  CheckInvariants();
}

void SchedulerCore::RestoreFinished(const std::vector<FinishedJob>& finished,
                                    int64_t max_seq, absl::Time now) {
  next_seq_ = std::max(next_seq_, max_seq + 1);
  for (const FinishedJob& f : finished) {
    next_seq_ = std::max(next_seq_, f.seq + 1);
    if (!IsTerminal(f.state) || jobs_.count(f.id) || finished_info_.count(f.id)) continue;
    auto& by_state = counts_[f.queue];
    ++by_state[f.state];
    JobRecord times;
    times.created = f.created;
    times.ended = f.ended;
    const absl::Time retire_at = RetireAt(times);
    finished_.insert({retire_at, f.id});
    finished_info_.emplace(
        f.id, FinishedEntry{retire_at, &counts_.find(f.queue)->first, f.state});
    if (!f.idempotency_key.empty() &&
        Wall(now) - f.created < config_.idempotency_retention) {
      auto k = idempotency_.find(f.idempotency_key);
      if (k == idempotency_.end() || k->second.created < f.created) {
        idempotency_[f.idempotency_key] = {f.id, f.created};
        idempotency_by_time_.emplace(f.created, f.idempotency_key);
      }
    }
  }
}

bool SchedulerCore::Committed(const SaveJobOp& op) {
  Job* j = FindJob(op.record().id);
  if (j == nullptr || j->last_saved != op.ptr.get() || !IsTerminal(j->record.state) ||
      j->persisting || !j->shards.running().empty() || !j->retire_at.has_value()) {
    return false;
  }
  // Finished, no leases, not active: nothing points at it but these maps.
  if (auto it = by_seq_.find(j->record.seq); it != by_seq_.end() && it->second == j) {
    by_seq_.erase(it);
  }
  jobs_.erase(op.record().id);
  ++version_;
  return true;
}

int64_t SchedulerCore::SeqOf(const std::string& job_id) const {
  const Job* j = FindJob(job_id);
  return j == nullptr ? -1 : j->record.seq;
}

bool SchedulerCore::InStoreOnly(const std::string& job_id) const {
  return finished_info_.count(job_id) > 0 && jobs_.count(job_id) == 0;
}

std::vector<std::string> SchedulerCore::HeldOnceFinished() const {
  std::vector<std::string> out;
  for (const auto& [id, j] : jobs_) {
    if (j->once_finished) out.push_back(id);
  }
  return out;
}

std::optional<std::string> SchedulerCore::IdempotentJobInStore(const JobSpec& spec,
                                                               absl::Time now) const {
  if (spec.idempotency_key.empty()) return std::nullopt;
  auto it = idempotency_.find(spec.idempotency_key);
  if (it == idempotency_.end() ||
      Wall(now) - it->second.created >= config_.idempotency_retention ||
      !InStoreOnly(it->second.job_id)) {
    return std::nullopt;
  }
  return it->second.job_id;
}

JobView SchedulerCore::FinishedView(const JobRecord& r) {
  return ::tessera::scheduler::FinishedView(r);
}

CoreJob* SchedulerCore::Adopt(const JobRecord& r, absl::Time now) {
  auto info = finished_info_.find(r.id);
  if (info == finished_info_.end() || jobs_.count(r.id) || !IsTerminal(r.state)) {
    return nullptr;
  }
  absl::StatusOr<RangePartition> partition =
      MakePartition(r.spec, ReadBackLimits(config_));
  if (!partition.ok()) return nullptr;
  std::unique_ptr<Job> job = FromRecord(r, *std::move(partition), now);
  Job* j = job.get();
  j->shards.SetFinished(r.shards_succeeded, FinishedItemsDone(r, j->shards.partition()));
  // Counted and in finished_ already (RestoreFinished, or Index before it left).
  j->counted = info->second.state;
  j->retire_at = info->second.retire_at;
  j->once_finished = true;
  jobs_.emplace(r.id, std::move(job));
  by_seq_.emplace(r.seq, j);
  Index(*j);
  Touch(*j);
  return j;
}

void SchedulerCore::Index(Job& j) {
  const JobState state = j.record.state;
  if (j.counted != state) {
    auto& by_state = counts_[j.record.spec.queue];
    if (j.counted.has_value()) --by_state[*j.counted];
    ++by_state[state];
    j.counted = state;
  }
  std::optional<absl::Time> retire_at;
  if (IsTerminal(state)) retire_at = RetireAt(j.record);
  if (j.retire_at != retire_at) {
    if (j.retire_at.has_value()) finished_.erase({*j.retire_at, j.record.id});
    if (retire_at.has_value()) finished_.insert({*retire_at, j.record.id});
    j.retire_at = retire_at;
  }
  if (retire_at.has_value()) {
    j.once_finished = true;
    finished_info_[j.record.id] =
        FinishedEntry{*retire_at, &counts_.find(j.record.spec.queue)->first, state};
  } else if (j.once_finished) {
    finished_info_.erase(j.record.id);
  }
}

absl::Time SchedulerCore::RetireAt(const JobRecord& r) const {
  // A finished record without an end (written by an old scheduler) counts
  // from its creation.
  const absl::Time ended = r.ended == absl::InfinitePast() ? r.created : r.ended;
  return ended + config_.job_retention;
}

void SchedulerCore::Retire(absl::Time now, Actions& out) {
  if (config_.job_retention <= absl::ZeroDuration()) return;
  for (int n = 0; n < config_.max_retired_per_tick && !finished_.empty(); ++n) {
    auto first = finished_.begin();
    if (first->first > Wall(now)) break;  // retention is counted in wall time
    const std::string id = first->second;
    finished_.erase(first);
    auto info = finished_info_.find(id);
    auto it = jobs_.find(id);
    std::string location;  // a job held in the store only: the writer reads it
    if (it != jobs_.end()) {
      Job& j = *it->second;
      // Finished: no leases, not active, nothing persisting (Index says so).
      const std::string& key = j.record.spec.idempotency_key;
      if (auto k = idempotency_.find(key);
          k != idempotency_.end() && k->second.job_id == id) {
        idempotency_.erase(k);
      }
      if (j.counted.has_value()) --counts_[j.record.spec.queue][*j.counted];
      if (auto s = by_seq_.find(j.record.seq); s != by_seq_.end() && s->second == &j) {
        by_seq_.erase(s);
      }
      location = j.record.location;
      jobs_.erase(it);
    } else if (info != finished_info_.end()) {
      // Its idempotency key, if any, is dropped by Submit or by its own expiry.
      --counts_[*info->second.queue][info->second.state];
    } else {
      continue;
    }
    if (info != finished_info_.end()) finished_info_.erase(info);
    out.durable.push_back(RetireJobOp{id, location});
    if (config_.retired_ids_kept > 0) {
      retired_.insert(id);
      retired_order_.push_back(id);
      while (retired_order_.size() > static_cast<size_t>(config_.retired_ids_kept)) {
        retired_.erase(retired_order_.front());
        retired_order_.pop_front();
      }
    }
    ++version_;
  }
}

void SchedulerCore::ExpireIdempotencyKeys(absl::Time now) {
  while (!idempotency_by_time_.empty()) {
    auto first = idempotency_by_time_.begin();
    if (Wall(now) - first->first < config_.idempotency_retention) break;
    auto k = idempotency_.find(first->second);
    // The key may have been taken again since (by a newer job).
    if (k != idempotency_.end() && k->second.created == first->first) {
      idempotency_.erase(k);
    }
    idempotency_by_time_.erase(first);
  }
}

absl::Status SchedulerCore::NotFound(const std::string& job_id) const {
  if (retired_.count(job_id)) {
    return absl::NotFoundError(
        absl::StrCat("job ", job_id, " was retired: it finished more than ",
                     absl::FormatDuration(config_.job_retention),
                     " ago (--job-retention) and its record was deleted"));
  }
  if (config_.job_retention > absl::ZeroDuration()) {
    return absl::NotFoundError(absl::StrCat("job ", job_id,
                                            " not found (finished jobs are retired ",
                                            absl::FormatDuration(config_.job_retention),
                                            " after they end, --job-retention)"));
  }
  return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
}

std::unique_ptr<CoreJob> SchedulerCore::FromRecord(const JobRecord& r,
                                                   RangePartition partition,
                                                   absl::Time now) const {
  auto j = std::make_unique<Job>();
  j->record = r;
  j->shards = JobShards(std::move(partition), AggregateSpec());
  j->params_json = r.spec.params.dump();
  // Its age on the monotonic clock: its wall-clock age, less a step back.
  j->created_mono = now - std::max(absl::ZeroDuration(), Wall(now) - r.created);
  for (const FailedShard& f : r.failed) j->shards.KeepFailed(f);
  j->record.failed.clear();  // j->shards.failed() is the list from here on
  return j;
}

}  // namespace tessera::scheduler
