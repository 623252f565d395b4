// The executor's drain on shutdown as a state machine fed `now`: when to
// announce it, when the stream may close, when running shards are cancelled.
#ifndef TESSERA_EXECUTOR_CORE_DRAIN_STATE_H_
#define TESSERA_EXECUTOR_CORE_DRAIN_STATE_H_

#include "absl/time/time.h"

namespace tessera::executor {

// A drain lets running shards finish within the timeout and waits for their
// results to be acked (durable) before the stream closes; at the deadline the
// shards still running are cancelled and released instead. A second request
// moves the deadline to now. Pure: no threads, no clock, no I/O; the stream
// client carries out the steps and tells it what it sees. Not thread-safe.
class DrainState {
 public:
  enum class Request { kStarted, kCutShort, kIgnored };
  // What the control loop of a live stream does next.
  enum class Step {
    kNone,            // no drain requested
    kAnnounce,        // send Draining and release the queued work on this stream
    kWait,            // shards still run or results await an ack; check again later
    kClose,           // nothing left to do: close the stream
    kCancelAndClose,  // the deadline passed: cancel and release running shards, close
  };

  explicit DrainState(absl::Duration timeout) : timeout_(timeout) {}

  // Drain() was called: the first time starts the grace period, the next ones
  // cut it short; after the drain is complete nothing changes.
  Request Ask(absl::Time now);
  // `announced`: Draining was sent on this stream. `idle`: no shard runs or
  // waits. `acked`: every result sent has been acked.
  Step OnStream(absl::Time now, bool announced, bool idle, bool acked) const;
  // While disconnected: true when there is no reason left to reconnect (the
  // deadline passed, or nothing runs and nothing is owed to the scheduler).
  bool OverWhileDisconnected(absl::Time now, bool idle, bool settled) const;
  // The stream closed after the drain: the executor stops.
  void Complete() { complete_ = true; }

  bool requested() const { return requested_; }
  bool complete() const { return complete_; }
  absl::Time deadline() const { return deadline_; }

 private:
  const absl::Duration timeout_;
  bool requested_ = false;
  bool complete_ = false;
  absl::Time deadline_ = absl::InfiniteFuture();
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_DRAIN_STATE_H_
