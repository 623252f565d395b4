// Timed waits on the monotonic clock for code that holds an absl::Mutex.
//
// absl::Mutex::AwaitWithTimeout and absl::CondVar::WaitWithTimeout (Abseil
// 20220623, Debian 12) sleep until an absolute CLOCK_REALTIME deadline: if the
// wall clock steps back an hour, a 100 ms wait lasts an hour. SteadyCondVar
// waits on CLOCK_MONOTONIC (std::condition_variable_any over steady_clock ends
// in pthread_cond_clockwait), so a wall-clock step changes no timeout.
// Unlike absl::Condition, it wakes only when signalled: whoever changes what a
// waiter waits for must Signal or SignalAll.
#ifndef TESSERA_SHARED_STEADY_WAIT_H_
#define TESSERA_SHARED_STEADY_WAIT_H_

#include <chrono>
#include <condition_variable>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shared/clock.h"

namespace tessera {

class SteadyCondVar {
 public:
  // `mu` is held on entry and on return. True when woken, false at the
  // deadline (a deadline on MonoNow()'s timeline; InfiniteFuture waits for a
  // signal). Spurious wake-ups happen: callers recheck their condition.
  bool WaitWithDeadline(absl::Mutex* mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Lockable lockable{mu};
    if (deadline == absl::InfiniteFuture()) {
      cv_.wait(lockable);
      return true;
    }
    const absl::Duration left = deadline - MonoNow();
    if (left <= absl::ZeroDuration()) return false;
    return cv_.wait_until(lockable, std::chrono::steady_clock::now() +
                                        absl::ToChronoNanoseconds(left)) ==
           std::cv_status::no_timeout;
  }
  bool WaitWithTimeout(absl::Mutex* mu, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return WaitWithDeadline(mu, timeout == absl::InfiniteDuration()
                                    ? absl::InfiniteFuture()
                                    : MonoNow() + timeout);
  }
  void Wait(absl::Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    WaitWithDeadline(mu, absl::InfiniteFuture());
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  // What std::condition_variable_any needs of a lock, over an absl::Mutex
  // already held by the caller.
  struct Lockable {
    absl::Mutex* mu;
    void lock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Lock(); }
    void unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Unlock(); }
  };
  std::condition_variable_any cv_;
};

// Waits until `pred()` holds or `timeout` passes on the monotonic clock; true
// when it holds. `mu` is held throughout except while asleep; `cv` must be
// signalled whenever what `pred` reads changes. (The analysis cannot follow a
// predicate annotated as needing `mu` through the template: the caller's
// holding `mu` is what it checks.)
template <typename Pred>
bool AwaitFor(absl::Mutex* mu, SteadyCondVar& cv, Pred pred, absl::Duration timeout)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  const absl::Time deadline = MonoNow() + timeout;
  while (!pred()) {
    if (!cv.WaitWithDeadline(mu, deadline)) return pred();
  }
  return true;
}

// absl::Notification's interface with the timeout on the monotonic clock.
class SteadyNotification {
 public:
  void Notify() {
    absl::MutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }
  bool HasBeenNotified() const {
    absl::MutexLock lock(&mu_);
    return notified_;
  }
  // True when notified before `timeout` passed.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    return AwaitFor(
        &mu_, cv_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return notified_; },
        timeout);
  }

 private:
  mutable absl::Mutex mu_;
  mutable SteadyCondVar cv_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tessera

#endif  // TESSERA_SHARED_STEADY_WAIT_H_
