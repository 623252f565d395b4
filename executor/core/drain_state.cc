#include "executor/core/drain_state.h"

namespace tessera::executor {

DrainState::Request DrainState::Ask(absl::Time now) {
  if (complete_) return Request::kIgnored;
  if (!requested_) {
    requested_ = true;
    deadline_ = now + timeout_;
    return Request::kStarted;
  }
  deadline_ = now;
  return Request::kCutShort;
}

DrainState::Step DrainState::OnStream(absl::Time now, bool announced, bool idle,
                                      bool acked) const {
  if (!requested_) return Step::kNone;
  if (!announced) return Step::kAnnounce;
  if (idle && acked) return Step::kClose;
  if (now < deadline_) return Step::kWait;
  // Results not acked in time are run again elsewhere.
  return idle ? Step::kClose : Step::kCancelAndClose;
}

bool DrainState::OverWhileDisconnected(absl::Time now, bool idle, bool settled) const {
  if (!requested_) return false;
  return now >= deadline_ || (settled && idle);
}

}  // namespace tessera::executor
