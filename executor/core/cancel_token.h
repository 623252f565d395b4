// A one-way "stop now" flag shared between the executor and a running handler.
#ifndef TESSERA_EXECUTOR_CORE_CANCEL_TOKEN_H_
#define TESSERA_EXECUTOR_CORE_CANCEL_TOKEN_H_

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shared/clock.h"
#include "shared/steady_wait.h"

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
    cv_.SignalAll();
  }

  // The shard's timeout: from `deadline` on `clock` (its monotonic Now) the
  // token reads as cancelled. Set once, before the handler runs; `clock` is
  // borrowed and must outlive the token.
  void SetDeadline(absl::Time deadline, const Clock* clock) {
    clock_ = clock;
    deadline_ns_.store(absl::ToUnixNanos(deadline), std::memory_order_release);
  }

  bool cancelled() const { return flag_.load(std::memory_order_acquire) || expired(); }
  // Cancel() was called (as opposed to the deadline passing).
  bool cancel_requested() const { return flag_.load(std::memory_order_acquire); }
  bool expired() const {
    const int64_t d = deadline_ns_.load(std::memory_order_acquire);
    return d != kNoDeadline && absl::ToUnixNanos(clock_->Now()) >= d;
  }

  // Sleeps up to `timeout`, returning early when cancelled. Returns cancelled().
  bool WaitFor(absl::Duration timeout) const {
    const int64_t d = deadline_ns_.load(std::memory_order_acquire);
    if (d != kNoDeadline)
      timeout = std::min(timeout, absl::FromUnixNanos(d) - clock_->Now());
    absl::MutexLock lock(&mu_);
    if (timeout > absl::ZeroDuration()) {
      AwaitFor(
          &mu_, cv_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return cancelled_; },
          timeout);
    }
    return cancelled_ || expired();
  }

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  mutable SteadyCondVar cv_;
  std::atomic<bool> flag_{false};  // lock-free mirror of cancelled_
  static constexpr int64_t kNoDeadline = INT64_MAX;
  std::atomic<int64_t> deadline_ns_{kNoDeadline};
  const Clock* clock_ = nullptr;  // set with the deadline, before any reader
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_CANCEL_TOKEN_H_
