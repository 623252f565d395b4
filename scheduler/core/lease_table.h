// The scheduler core's leases: which executor runs which shard of which job,
// since when and until when, and the ids that name them (minted, recognised
// later, unguessable when the runtime supplies LeaseIds). Separate from
// SchedulerCore so that a lease's life (add, find by its holder, expire, end)
// is one small piece with its own tests; the core decides when.
// Thread-compatible; owned by SchedulerCore. The CoreJob and CoreExecutor a
// lease points to are the core's and outlive the lease.
#ifndef TESSERA_SCHEDULER_CORE_LEASE_TABLE_H_
#define TESSERA_SCHEDULER_CORE_LEASE_TABLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "scheduler/core/core_entries.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

// Makes lease ids and recognises them later. Ids must be unguessable to
// peers and never reused, also across restarts (the runtime's implementation
// signs them with a key kept in the store); the core's default, for tests,
// is "<job>.<shard>.<attempt>" plus the incarnation.
class LeaseIds {
 public:
  virtual ~LeaseIds() = default;
  // `holder`: the identity of the executor the lease goes to ("" without auth).
  virtual std::string Mint(const std::string& job_id, int64_t shard, int32_t attempt,
                           const std::string& holder) = 0;
  // Whether `lease_id` was made by Mint (in this run or an earlier one on the
  // same store) for shard `shard` of `job_id` and for `holder`: a result or
  // claim counts only from the identity its lease was issued to.
  virtual bool Issued(const std::string& lease_id, const std::string& job_id,
                      int64_t shard, const std::string& holder) const = 0;
};

struct Lease {
  std::string id;
  CoreJob* job = nullptr;
  int64_t shard = 0;
  CoreExecutor* executor = nullptr;
  int32_t attempt = 0;
  int64_t progress = 0;
  absl::Time assigned;
  absl::Time deadline = absl::InfiniteFuture();
};

class LeaseTable {
 public:
  // A lease of a job with a shard timeout expires `grace` after the timeout.
  explicit LeaseTable(absl::Duration grace) : grace_(grace) {}

  // Borrowed; must outlive the table. Unset: the default ids.
  void SetLeaseIds(LeaseIds* ids) { ids_ = ids; }
  // A short token that makes this process's default ids differ from those of
  // an earlier run (e.g. random hex); empty in tests.
  void SetIncarnation(const std::string& token) {
    incarnation_ = token.empty() ? "" : "." + token;
  }
  // The id of attempt `attempt` of the shard, for the executor whose
  // identity is `holder`.
  std::string Mint(const std::string& job_id, int64_t shard, int32_t attempt,
                   const std::string& holder) const;
  // Whether `lease_id` is one this scheduler issued for the job's shard.
  bool Issued(const std::string& lease_id, const std::string& job_id, int64_t shard,
              const std::string& holder) const;

  // Leases `shard` of `job` to `executor` at `now`, and records it in both.
  void Add(const std::string& id, CoreJob& job, int64_t shard, CoreExecutor& executor,
           int32_t attempt, absl::Time now);
  // Ends a lease: off its executor and its job's running shards; the shard
  // runs again when `requeue` (and its job is unfinished). Returns its job
  // (nullptr: no such lease).
  CoreJob* End(const std::string& lease_id, bool requeue);

  // The lease if it is held by this connection, else nullptr.
  Lease* Find(const ExecutorConn& conn, const std::string& lease_id) const;
  // Requires contains(lease_id).
  Lease& at(const std::string& lease_id) const { return *leases_.at(lease_id); }
  bool contains(const std::string& lease_id) const { return leases_.count(lease_id) > 0; }
  size_t size() const { return leases_.size(); }
  // Ids of the leases past their deadline at `now`.
  std::vector<std::string> Overdue(absl::Time now) const;

 private:
  absl::Duration grace_;
  LeaseIds* ids_ = nullptr;
  std::string incarnation_;
  absl::flat_hash_map<std::string, std::unique_ptr<Lease>> leases_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_LEASE_TABLE_H_
