// Exponential reconnect backoff with jitter.
#ifndef TESSERA_EXECUTOR_CORE_BACKOFF_H_
#define TESSERA_EXECUTOR_CORE_BACKOFF_H_

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"

namespace tessera::executor {

// initial, initial*multiplier, ... capped at max; each delay is scaled by a
// random factor in [1-jitter, 1+jitter] (then capped at max) so that a fleet of
// executors does not reconnect in lockstep. Randomness is injected. Not
// thread-safe.
class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max, double multiplier = 2.0,
          double jitter = 0.2);

  // The delay before the next attempt.
  absl::Duration Next(absl::BitGenRef gen);
  // After a success: start again from `initial`.
  void Reset() { current_ = initial_; }

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  const double multiplier_;
  const double jitter_;
  absl::Duration current_;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_BACKOFF_H_
