#include "scheduler/store/memory_store.h"

#include <algorithm>

namespace tessera::scheduler {

absl::Status MemoryStore::Commit(const StoreWrite& w, bool /*durable*/) {
  absl::MutexLock lock(&mu_);
  for (const JobRecord* r : w.jobs) {
    jobs_[r->id] = *r;
    by_seq_[r->seq] = r->id;
  }
  for (const SaveResultOp* r : w.results)
    results_[r->job_id].emplace(r->shard, r->result_json);
  for (const SaveFailedShardOp* f : w.failed)
    failed_[f->job_id][f->shard.shard] = f->shard;
  // What the records imply (store.h): after the rows above, as SQLite does.
  for (const JobRecord* r : w.jobs) {
    if (r->state == JobState::kSucceeded) results_.erase(r->id);
    if (IsTerminal(r->state)) failed_.erase(r->id);
  }
  for (const std::string& id : w.retired) {
    if (auto it = jobs_.find(id); it != jobs_.end()) {
      if (auto s = by_seq_.find(it->second.seq); s != by_seq_.end() && s->second == id) {
        by_seq_.erase(s);
      }
      jobs_.erase(it);
    }
    results_.erase(id);
    failed_.erase(id);
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredState> MemoryStore::Load() {
  absl::MutexLock lock(&mu_);
  StoredState state;
  for (const auto& [id, r] : jobs_) state.jobs.push_back(r);
  std::sort(state.jobs.begin(), state.jobs.end(),
            [](const JobRecord& a, const JobRecord& b) { return a.seq < b.seq; });
  for (const JobRecord& r : state.jobs) {
    if (IsTerminal(r.state)) continue;
    auto& out = state.results[r.id];
    if (auto it = results_.find(r.id); it != results_.end()) {
      for (const auto& [shard, text] : it->second) out.push_back({shard, text});
    }
    if (auto it = failed_.find(r.id); it != failed_.end()) {
      for (const auto& [shard, f] : it->second) state.failed[r.id].push_back(f);
    }
  }
  return state;
}

absl::StatusOr<StoredState> MemoryStore::LoadUnfinished() {
  absl::StatusOr<StoredState> all = Load();
  if (!all.ok()) return all.status();
  StoredState state;
  state.results = std::move(all->results);
  state.failed = std::move(all->failed);
  for (JobRecord& r : all->jobs) {
    state.max_seq = std::max(state.max_seq, r.seq);
    if (IsTerminal(r.state)) {
      state.finished.push_back(SummaryOf(r));
    } else {
      state.jobs.push_back(std::move(r));
    }
  }
  return state;
}

absl::StatusOr<std::optional<JobRecord>> MemoryStore::LoadJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::vector<JobRecord>> MemoryStore::ListFinishedJobs(
    const JobFilter& filter, int64_t before, int limit) {
  absl::MutexLock lock(&mu_);
  std::vector<JobRecord> out;
  auto it = before < 0 ? by_seq_.end() : by_seq_.upper_bound(before);
  while (it != by_seq_.begin() && static_cast<int>(out.size()) < limit) {
    --it;
    const JobRecord& r = jobs_.at(it->second);
    if (IsTerminal(r.state) && MatchesFilter(filter, r.state, r.spec)) out.push_back(r);
  }
  return out;
}

absl::StatusOr<std::vector<StoredResult>> MemoryStore::LoadResults(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  std::vector<StoredResult> out;
  if (auto it = results_.find(job_id); it != results_.end()) {
    for (const auto& [shard, text] : it->second) out.push_back({shard, text});
  }
  return out;
}

absl::StatusOr<Store::RowCounts> MemoryStore::CountRows() {
  absl::MutexLock lock(&mu_);
  RowCounts n;
  n.jobs = static_cast<int64_t>(jobs_.size());
  for (const auto& [id, rows] : results_) n.results += static_cast<int64_t>(rows.size());
  for (const auto& [id, rows] : failed_) n.failed += static_cast<int64_t>(rows.size());
  return n;
}

}  // namespace tessera::scheduler
