// Test decorator: a ResultSink that fails on demand in front of a real one
// (e.g. FileSink), to drive the runtime's retries of result writes: Stage
// fails as a full disk would (ENOSPC writing the temp file), Publish as a
// failing rename (EIO).
#ifndef TESSERA_TESTS_SCHEDULER_FAULTY_SINK_H_
#define TESSERA_TESTS_SCHEDULER_FAULTY_SINK_H_

#include <climits>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "scheduler/sink/result_sink.h"

namespace tessera::scheduler {

// Thread-safe.
class FaultySink : public ResultSink {
 public:
  explicit FaultySink(std::unique_ptr<ResultSink> real) : real_(std::move(real)) {}

  static constexpr int kForever = INT_MAX;
  // The next `n` Stage (or Publish) calls fail with `error` and write nothing.
  void FailStages(int n, absl::Status error) {
    absl::MutexLock lock(&mu_);
    stage_failures_ = n;
    stage_error_ = std::move(error);
  }
  void FailPublishes(int n, absl::Status error) {
    absl::MutexLock lock(&mu_);
    publish_failures_ = n;
    publish_error_ = std::move(error);
  }
  void Heal() {
    FailStages(0, absl::OkStatus());
    FailPublishes(0, absl::OkStatus());
  }
  // Calls that failed on demand so far.
  int failed() const {
    absl::MutexLock lock(&mu_);
    return failed_;
  }

  absl::StatusOr<StagedResult> Stage(const std::string& job_id, int32_t version,
                                     const std::string& bytes) override {
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = Take(stage_failures_, stage_error_); !s.ok()) return s;
    }
    return real_->Stage(job_id, version, bytes);
  }
  absl::StatusOr<PersistedResult> Publish(const StagedResult& staged) override {
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = Take(publish_failures_, publish_error_); !s.ok()) return s;
    }
    return real_->Publish(staged);
  }
  absl::Status Sync() override { return real_->Sync(); }
  void Prepare() override { real_->Prepare(); }
  bool PublishesQuickly() const override { return real_->PublishesQuickly(); }
  absl::StatusOr<std::string> Read(const std::string& location) override {
    return real_->Read(location);
  }
  absl::StatusOr<int64_t> Size(const std::string& location) override {
    return real_->Size(location);
  }
  absl::Status Delete(const std::string& location) override {
    return real_->Delete(location);
  }
  void Cancel() override { real_->Cancel(); }
  int64_t writes() const override { return real_->writes(); }

 private:
  absl::Status Take(int& left, const absl::Status& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (left == 0) return absl::OkStatus();
    if (left != kForever) --left;
    ++failed_;
    return error;
  }

  const std::unique_ptr<ResultSink> real_;
  mutable absl::Mutex mu_;
  int stage_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int publish_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status stage_error_ ABSL_GUARDED_BY(mu_);
  absl::Status publish_error_ ABSL_GUARDED_BY(mu_);
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_TESTS_SCHEDULER_FAULTY_SINK_H_
