// A handler that blocks until the test opens its gate (or the shard is
// cancelled), so that tests decide when shards finish instead of sleeping.
#ifndef TESSERA_TESTS_EXECUTOR_GATE_HANDLER_H_
#define TESSERA_TESTS_EXECUTOR_GATE_HANDLER_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "executor/handlers/handler.h"
#include "shared/steady_wait.h"

namespace tessera::executor {

// Thread-safe. Counts how many shards run at once; a cancelled shard returns
// CANCELLED, an opened one {"shard": n}.
class GateHandler : public Handler {
 public:
  absl::StatusOr<nlohmann::json> Run(const ShardTask& task, ProgressReporter&,
                                     const CancelToken& cancel) override {
    {
      absl::MutexLock lock(&mu_);
      ++running_;
      max_running_ = std::max(max_running_, running_);
      started_.push_back(task.shard);
      cv_.SignalAll();
    }
    while (!cancel.WaitFor(absl::Milliseconds(5))) {
      absl::MutexLock lock(&mu_);
      if (open_) break;
    }
    absl::MutexLock lock(&mu_);
    --running_;
    if (cancel.cancelled()) return absl::CancelledError("cancelled");
    return nlohmann::json{{"shard", task.shard}};
  }
  // Lets every shard, running or to come, finish.
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  bool WaitStarted(size_t n) {
    absl::MutexLock lock(&mu_);
    return AwaitFor(
        &mu_, cv_,
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return started_.size() >= n; },
        absl::Seconds(10));
  }
  int max_running() {
    absl::MutexLock lock(&mu_);
    return max_running_;
  }
  std::vector<int64_t> started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }

 private:
  absl::Mutex mu_;
  SteadyCondVar cv_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int max_running_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> started_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::executor

#endif  // TESSERA_TESTS_EXECUTOR_GATE_HANDLER_H_
