// Test decorator: a Store that fails on demand in front of a real one (e.g.
// SqliteStore), to drive the runtime's handling of store faults: commits that
// fail for a while (busy, EIO, a full disk) and records refused for good.
#ifndef TESSERA_TESTS_SCHEDULER_FAULTY_STORE_H_
#define TESSERA_TESTS_SCHEDULER_FAULTY_STORE_H_

#include <climits>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/store/store.h"

namespace tessera::scheduler {

// Thread-safe.
class FaultyStore : public Store {
 public:
  explicit FaultyStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}

  // The next `n` commits and flushes fail with `error` and commit nothing
  // (kForever: until Heal).
  static constexpr int kForever = INT_MAX;
  void FailCommits(int n, absl::Status error) {
    absl::MutexLock lock(&mu_);
    failures_left_ = n;
    error_ = std::move(error);
  }
  void Heal() { FailCommits(0, absl::OkStatus()); }
  // Commits block (as on a hung disk) until Release.
  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }
  // A commit holding a record for which `refuse` says yes fails with a
  // RecordError naming its job (as SQLITE_TOOBIG does), every time.
  void RefuseRecords(std::function<bool(const JobRecord&)> refuse) {
    absl::MutexLock lock(&mu_);
    refuse_ = std::move(refuse);
  }
  // Commits (and flushes) that failed on demand so far, and that went through.
  int failed() const {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  int committed() const {
    absl::MutexLock lock(&mu_);
    return committed_;
  }
  Store* real() { return real_.get(); }

  using Store::Commit;
  absl::Status Commit(const StoreWrite& write, bool durable) override {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](bool* held) { return !*held; }, &held_));
      if (absl::Status s = InjectedLocked(); !s.ok()) return s;
      for (const JobRecord* j : write.jobs) {
        if (refuse_ && refuse_(*j)) {
          return RecordError(absl::StatusCode::kInvalidArgument, j->id,
                             absl::StrCat("the record of job ", j->id, " is too big"));
        }
      }
    }
    absl::Status s = real_->Commit(write, durable);
    absl::MutexLock lock(&mu_);
    committed_ += s.ok();
    return s;
  }
  absl::Status Flush() override {
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = InjectedLocked(); !s.ok()) return s;
    }
    return real_->Flush();
  }
  absl::StatusOr<StoredState> Load() override { return real_->Load(); }
  absl::StatusOr<StoredState> LoadUnfinished() override {
    return real_->LoadUnfinished();
  }
  absl::StatusOr<std::optional<JobRecord>> LoadJob(const std::string& id) override {
    return real_->LoadJob(id);
  }
  absl::StatusOr<std::vector<JobRecord>> ListFinishedJobs(const JobFilter& filter,
                                                          int64_t before,
                                                          int limit) override {
    return real_->ListFinishedJobs(filter, before, limit);
  }
  absl::StatusOr<std::vector<StoredResult>> LoadResults(
      const std::string& job_id) override {
    return real_->LoadResults(job_id);
  }
  absl::StatusOr<std::string> InitMeta(const std::string& key,
                                       const std::string& value_if_new) override {
    return real_->InitMeta(key, value_if_new);
  }
  absl::StatusOr<RowCounts> CountRows() override { return real_->CountRows(); }
  absl::Status Compact() override { return real_->Compact(); }
  std::string name() const override { return real_->name(); }

 private:
  absl::Status InjectedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failures_left_ == 0) return absl::OkStatus();
    if (failures_left_ != kForever) --failures_left_;
    ++failed_;
    return error_;
  }

  const std::unique_ptr<Store> real_;
  mutable absl::Mutex mu_;
  int failures_left_ ABSL_GUARDED_BY(mu_) = 0;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::function<bool(const JobRecord&)> refuse_ ABSL_GUARDED_BY(mu_);
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  int committed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_TESTS_SCHEDULER_FAULTY_STORE_H_
