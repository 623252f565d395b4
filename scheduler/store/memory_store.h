// A Store that keeps everything in memory: for tests and benchmarks
// (--store=memory). Nothing survives the process.
#ifndef TESSERA_SCHEDULER_STORE_MEMORY_STORE_H_
#define TESSERA_SCHEDULER_STORE_MEMORY_STORE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "scheduler/store/store.h"

namespace tessera::scheduler {

// Thread-safe.
class MemoryStore : public Store {
 public:
  using Store::Commit;
  absl::Status Commit(const StoreWrite& write, bool durable) override;
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::StatusOr<StoredState> Load() override;
  absl::StatusOr<StoredState> LoadUnfinished() override;
  absl::StatusOr<std::optional<JobRecord>> LoadJob(const std::string& id) override;
  absl::StatusOr<std::vector<JobRecord>> ListFinishedJobs(const JobFilter& filter,
                                                          int64_t before,
                                                          int limit) override;
  absl::StatusOr<std::vector<StoredResult>> LoadResults(
      const std::string& job_id) override;
  absl::StatusOr<std::string> InitMeta(const std::string& key,
                                       const std::string& value_if_new) override {
    absl::MutexLock lock(&meta_mu_);
    return meta_.emplace(key, value_if_new).first->second;
  }
  absl::StatusOr<RowCounts> CountRows() override;
  std::string name() const override { return "memory"; }

 private:
  absl::Mutex meta_mu_;
  std::map<std::string, std::string> meta_ ABSL_GUARDED_BY(meta_mu_);
  absl::Mutex mu_;
  std::map<std::string, JobRecord> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::string> by_seq_ ABSL_GUARDED_BY(mu_);  // submission order
  std::map<std::string, std::map<int64_t, std::string>> results_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<int64_t, FailedShard>> failed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_STORE_MEMORY_STORE_H_
