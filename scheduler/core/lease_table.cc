#include "scheduler/core/lease_table.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tessera::scheduler {

std::string LeaseTable::Mint(const std::string& job_id, int64_t shard, int32_t attempt,
                             const std::string& holder) const {
  // The incarnation keeps default ids unique across scheduler restarts, when
  // attempt numbers of re-queued shards start again.
  if (ids_ != nullptr) return ids_->Mint(job_id, shard, attempt, holder);
  return absl::StrCat(job_id, ".", shard, ".", attempt, incarnation_);
}

bool LeaseTable::Issued(const std::string& lease_id, const std::string& job_id,
                        int64_t shard, const std::string& holder) const {
  if (ids_ != nullptr) return ids_->Issued(lease_id, job_id, shard, holder);
  return absl::StartsWith(lease_id, absl::StrCat(job_id, ".", shard, "."));
}

void LeaseTable::Add(const std::string& id, CoreJob& job, int64_t shard,
                     CoreExecutor& executor, int32_t attempt, absl::Time now) {
  auto lease = std::make_unique<Lease>();
  lease->id = id;
  lease->job = &job;
  lease->shard = shard;
  lease->executor = &executor;
  lease->attempt = attempt;
  lease->assigned = now;
  if (job.record.spec.shard_timeout > absl::ZeroDuration()) {
    lease->deadline = now + job.record.spec.shard_timeout + grace_;
  }
  job.executors_used.insert(executor.hello.name);
  job.shards.Run(shard, id);
  executor.leases.insert(id);
  leases_.emplace(id, std::move(lease));
}

CoreJob* LeaseTable::End(const std::string& lease_id, bool requeue) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return nullptr;
  Lease* l = it->second.get();
  l->executor->leases.erase(lease_id);
  CoreJob* j = l->job;
  j->shards.Stop(l->shard, l->attempt, requeue && !IsTerminal(j->record.state));
  leases_.erase(it);
  return j;
}

Lease* LeaseTable::Find(const ExecutorConn& conn, const std::string& lease_id) const {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return nullptr;
  Lease* l = it->second.get();
  if (l->executor->conn.executor_id != conn.executor_id ||
      l->executor->conn.generation != conn.generation) {
    return nullptr;
  }
  return l;
}

std::vector<std::string> LeaseTable::Overdue(absl::Time now) const {
  std::vector<std::string> overdue;
  for (const auto& [id, l] : leases_) {
    if (now > l->deadline) overdue.push_back(id);
  }
  return overdue;
}

}  // namespace tessera::scheduler
