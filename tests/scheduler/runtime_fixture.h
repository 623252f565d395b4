// Helpers for tests that drive a Runtime directly, playing one executor: a stream
// that records what the runtime sends, a synchronous Submit, the result of an
// assignment, and (wait_until.h) a bounded wait for what the runtime's threads do.
#ifndef TESSERA_TESTS_SCHEDULER_RUNTIME_FIXTURE_H_
#define TESSERA_TESTS_SCHEDULER_RUNTIME_FIXTURE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "scheduler/service/executor_result.h"
#include "scheduler/service/runtime.h"
#include "shared/steady_wait.h"
#include "tests/scheduler/wait_until.h"

namespace tessera::scheduler {

// Collects what the runtime sends to one executor. Thread-safe.
class RecordingStream : public ExecutorStream {
 public:
  void SendAssignments(std::vector<Assignment> assignments) override {
    absl::MutexLock lock(&mu_);
    for (Assignment& a : assignments) assigned_.push_back(std::move(a));
    cv_.SignalAll();
  }
  void SendCancel(const std::string&) override {}
  void SendAcks(std::vector<std::string> lease_ids) override {
    absl::MutexLock lock(&mu_);
    acks_.push_back(static_cast<int>(lease_ids.size()));
  }
  void Close(const std::string&) override {}
  // Waits (a few seconds at most) for `n` assignments; returns all so far.
  std::vector<Assignment> WaitAssigned(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return assigned_.size() >= n;
    };
    AwaitFor(&mu_, cv_, enough, absl::Seconds(5));
    return assigned_;
  }
  // Leases acked, per ack message.
  std::vector<int> acks() {
    absl::MutexLock lock(&mu_);
    return acks_;
  }

 private:
  absl::Mutex mu_;
  SteadyCondVar cv_;
  std::vector<Assignment> assigned_ ABSL_GUARDED_BY(mu_);
  std::vector<int> acks_ ABSL_GUARDED_BY(mu_);
};

// Submits `spec` and waits for the answer.
inline absl::StatusOr<JobView> SubmitAndWait(Runtime& runtime, const JobSpec& spec) {
  absl::Notification done;
  absl::StatusOr<JobView> job;
  runtime.Submit(spec, [&](absl::StatusOr<JobView> j) {
    job = std::move(j);
    done.Notify();
  });
  done.WaitForNotification();
  return job;
}

// The executor's result for `a`: it succeeded with `result_json`.
inline ExecutorResult ResultOf(const Assignment& a, const std::string& result_json) {
  return ExecutorResult{a.lease_id, a.job_id, a.shard, result_json};
}

}  // namespace tessera::scheduler

#endif  // TESSERA_TESTS_SCHEDULER_RUNTIME_FIXTURE_H_
