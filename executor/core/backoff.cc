#include "executor/core/backoff.h"

#include <algorithm>

#include "absl/random/distributions.h"

namespace tessera::executor {

Backoff::Backoff(absl::Duration initial, absl::Duration max, double multiplier,
                 double jitter)
    : initial_(initial),
      max_(std::max(max, initial)),
      multiplier_(std::max(multiplier, 1.0)),
      jitter_(std::clamp(jitter, 0.0, 1.0)),
      current_(initial) {}

absl::Duration Backoff::Next(absl::BitGenRef gen) {
  const double factor = jitter_ > 0 ? absl::Uniform(absl::IntervalClosedClosed, gen,
                                                    1.0 - jitter_, 1.0 + jitter_)
                                    : 1.0;
  const absl::Duration delay = std::min(current_ * factor, max_);
  current_ = std::min(current_ * multiplier_, max_);
  return delay;
}

}  // namespace tessera::executor
