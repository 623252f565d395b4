// Time as an injected dependency, so that cores and tests decide what "now" is.
//
// Two kinds of time: `Now()` is monotonic (it never steps; liveness, deadlines,
// backoff and rates are measured on it), `WallNow()` is the calendar time people
// read and the store keeps (created/ended stamps, retention across restarts).
// A wall-clock step of an hour either way moves WallNow() and nothing else.
#ifndef TESSERA_SHARED_CLOCK_H_
#define TESSERA_SHARED_CLOCK_H_

#include <chrono>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tessera {

// The process's monotonic clock as an absl::Time: it starts at the wall time
// of its first use and then advances with CLOCK_MONOTONIC, so it never steps.
// Deadlines for SteadyCondVar (shared/steady_wait.h) are on this timeline.
inline absl::Time MonoNow() {
  struct Anchor {
    absl::Time wall = absl::Now();
    std::chrono::steady_clock::time_point steady = std::chrono::steady_clock::now();
  };
  static const Anchor anchor;
  return anchor.wall + absl::FromChrono(std::chrono::steady_clock::now() - anchor.steady);
}

// Thread-safe source of the current time.
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic: what timeouts, leases, heartbeats and rates are measured on.
  virtual absl::Time Now() const = 0;
  // Calendar time, for what people read and the store keeps.
  virtual absl::Time WallNow() const { return Now(); }
};

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return MonoNow(); }
  absl::Time WallNow() const override { return absl::Now(); }
};

// A clock that moves only when told to. Thread-safe. Advance moves both
// times; StepWall moves the wall clock alone (an NTP step, a manual date).
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000))
      : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  absl::Time WallNow() const override {
    absl::MutexLock lock(&mu_);
    return now_ + wall_step_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void StepWall(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    wall_step_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  absl::Duration wall_step_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

}  // namespace tessera

#endif  // TESSERA_SHARED_CLOCK_H_
