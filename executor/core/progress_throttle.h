// Decides which of a handler's progress reports go on the wire.
#ifndef TESSERA_EXECUTOR_CORE_PROGRESS_THROTTLE_H_
#define TESSERA_EXECUTOR_CORE_PROGRESS_THROTTLE_H_

#include <cstdint>

#include "absl/time/time.h"

namespace tessera::executor {

// At most one report per `interval` per shard, none when nothing moved and
// none for the final count (the result says the shard is done). A shard
// shorter than `interval` sends no progress at all. Not thread-safe; one per
// running shard.
class ProgressThrottle {
 public:
  ProgressThrottle(absl::Time started, absl::Duration interval = absl::Milliseconds(500))
      : last_sent_(started), interval_(interval) {}

  // True when (done, total) observed at `now` should be sent; records it as sent.
  bool ShouldSend(absl::Time now, int64_t done, int64_t total) {
    if (done >= total || done == last_done_ || now - last_sent_ < interval_) return false;
    last_sent_ = now;
    last_done_ = done;
    return true;
  }

 private:
  absl::Time last_sent_;
  absl::Duration interval_;
  int64_t last_done_ = 0;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_PROGRESS_THROTTLE_H_
