#include "scheduler/store/memory_store.h"

#include <algorithm>

namespace tessera::scheduler {

absl::Status MemoryStore::Commit(const std::vector<const JobRecord*>& jobs,
                                 const std::vector<const SaveResultOp*>& results,
                                 bool /*durable*/) {
  absl::MutexLock lock(&mu_);
  for (const JobRecord* r : jobs) jobs_[r->id] = *r;
  for (const SaveResultOp* r : results)
    results_[r->job_id].emplace(r->shard, r->result_json);
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
    for (const auto& [shard, text] : results_[r.id]) out.push_back({shard, text});
  }
  return state;
}

absl::StatusOr<std::vector<StoredResult>> MemoryStore::LoadResults(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  std::vector<StoredResult> out;
  for (const auto& [shard, text] : results_[job_id]) out.push_back({shard, text});
  return out;
}

}  // namespace tessera::scheduler
