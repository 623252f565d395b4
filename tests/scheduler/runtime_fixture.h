// Helpers for tests that drive a Runtime directly, playing one executor: a stream
// that records what the runtime sends, a synchronous Submit, the result message of
// an assignment, and a bounded wait for what the runtime's threads do.
#ifndef TESSERA_TESTS_SCHEDULER_RUNTIME_FIXTURE_H_
#define TESSERA_TESTS_SCHEDULER_RUNTIME_FIXTURE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "scheduler/service/runtime.h"

namespace tessera::scheduler {

// Collects what the runtime sends to one executor. Thread-safe.
class RecordingStream : public ExecutorStream {
 public:
  void Send(v1::SchedulerMessage message) override {
    absl::MutexLock lock(&mu_);
    for (const v1::Assignment& a : message.assign().assignments()) assigned_.push_back(a);
    if (message.has_ack()) acks_.push_back(message.ack().lease_ids_size());
  }
  void Close(const std::string&) override {}
  // Waits (a few seconds at most) for `n` assignments; returns all so far.
  std::vector<v1::Assignment> WaitAssigned(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return assigned_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(5));
    return assigned_;
  }
  // Leases acked, per ack message.
  std::vector<int> acks() {
    absl::MutexLock lock(&mu_);
    return acks_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::Assignment> assigned_ ABSL_GUARDED_BY(mu_);
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

// The executor's message that `a` succeeded with `result_json`.
inline v1::ExecutorMessage ResultMessage(const v1::Assignment& a,
                                         const std::string& result_json) {
  v1::ExecutorMessage m;
  v1::ShardResult* r = m.mutable_result_batch()->add_results();
  r->set_lease_id(a.lease_id());
  r->set_job_id(a.job_id());
  r->set_shard(a.shard());
  r->set_result_json(result_json);
  return m;
}

// Waits (up to 5 s of real time: the runtime's threads and ticker run on their
// own) until `done`; false if it never was.
inline bool WaitUntil(const std::function<bool()>& done) {
  for (int i = 0; i < 500; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

}  // namespace tessera::scheduler

#endif  // TESSERA_TESTS_SCHEDULER_RUNTIME_FIXTURE_H_
