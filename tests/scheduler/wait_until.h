// Polls a condition that another thread makes true, for tests of threaded
// parts.
#ifndef TESSERA_TESTS_SCHEDULER_WAIT_UNTIL_H_
#define TESSERA_TESTS_SCHEDULER_WAIT_UNTIL_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tessera::scheduler {

// True once `done()` holds; false after about five seconds.
inline bool WaitUntil(const std::function<bool()>& done) {
  for (int i = 0; i < 500; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

}  // namespace tessera::scheduler

#endif  // TESSERA_TESTS_SCHEDULER_WAIT_UNTIL_H_
