// A one-way "stop now" flag shared between the executor and a running handler.
#ifndef TESSERA_EXECUTOR_CORE_CANCEL_TOKEN_H_
#define TESSERA_EXECUTOR_CORE_CANCEL_TOKEN_H_

#include <atomic>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tessera::executor {

// Set once, never cleared. Thread-safe: Cancel() from any thread, handlers
// poll cancelled() or sleep with WaitFor() so that a cancel wakes them at once.
class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Idempotent.
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    flag_.store(true, std::memory_order_release);
  }

  bool cancelled() const { return flag_.load(std::memory_order_acquire); }

  // Sleeps up to `timeout`, returning early when cancelled. Returns cancelled().
  bool WaitFor(absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&cancelled_), timeout);
    return cancelled_;
  }

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> flag_{false};  // lock-free mirror of cancelled_
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_CANCEL_TOKEN_H_
