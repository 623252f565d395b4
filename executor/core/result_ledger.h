// What the executor owes the scheduler: every result until the scheduler acks
// it, the failures a dead stream could not take, and the results queued for
// the sender thread. Decides backpressure on unacknowledged results.
#ifndef TESSERA_EXECUTOR_CORE_RESULT_LEDGER_H_
#define TESSERA_EXECUTOR_CORE_RESULT_LEDGER_H_

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "executor/core/assignment.h"
#include "executor/core/result_buffer.h"

namespace tessera::executor {

// Results are kept until acked (the scheduler acks once they are durable) and
// re-sent after Hello on every new connection; nothing is let go for want of
// room. With `max_unacked` results awaiting an ack backpressure starts (the
// executor starts no new shard) and it ends when acks bring them down to half
// of that. Failures are not acked: those the stream could not take wait in a
// bounded buffer for the next connection (oldest dropped; the scheduler
// reruns that shard). A pure state machine: time is given, changes come back
// as data. Not thread-safe (the stream client holds its lock around it).
class ResultLedger {
 public:
  // What a change to the unacknowledged results means for backpressure.
  struct Backpressure {
    enum class Change { kNone, kStarted, kEnded };
    Change change = Change::kNone;
    size_t unacked = 0;    // results awaiting an ack now
    size_t resume_at = 0;  // kStarted: acks must bring `unacked` down to this
    absl::Duration lasted = absl::ZeroDuration();  // kEnded: how long it held
  };

  // `max_unacked` below 1 counts as 1; `max_unsent` bounds the failure buffer.
  ResultLedger(size_t max_unacked, size_t max_unsent);

  // A successful result, kept until acked (again for the same lease: replaced).
  Backpressure Keep(const ShardOutcome& result, absl::Time now);
  // The scheduler has made these durable; unknown leases are ignored.
  Backpressure Ack(const std::vector<std::string>& lease_ids, absl::Time now);
  // Every result still awaiting an ack, by lease: re-sent on a new connection.
  std::vector<ShardOutcome> Unacked() const;
  size_t unacked() const { return unacked_.size(); }
  bool backpressure() const { return backpressure_; }

  // A failure the stream could not take. Returns how many older ones were
  // dropped to make room (0 or 1).
  size_t KeepUnsent(ShardOutcome failure) { return unsent_.Add(std::move(failure)); }
  std::vector<ShardOutcome> TakeUnsent() { return unsent_.TakeAll(); }
  // Those TakeUnsent gave that could not be sent either, ahead of newer ones.
  void PutBackUnsent(std::vector<ShardOutcome> failures) {
    unsent_.PutBack(std::move(failures));
  }
  size_t unsent() const { return unsent_.size(); }

  // The outbox: results (already kept) waiting to be written, as batches.
  // Returns true when the outbox was empty (the sender may be asleep).
  bool Queue(ShardOutcome result);
  // The oldest results whose JSON adds up to at most `max_bytes` (at least
  // one), removed from the outbox; empty when it is.
  std::vector<ShardOutcome> TakeBatch(size_t max_bytes);
  bool outbox_empty() const { return outbox_.empty(); }

  // No result awaits an ack and no failure awaits a stream.
  bool settled() const { return unacked_.empty() && unsent_.empty(); }

 private:
  Backpressure Update(absl::Time now);

  const size_t max_unacked_;
  std::map<std::string, ShardOutcome> unacked_;  // by lease id
  ResultBuffer unsent_;
  std::vector<ShardOutcome> outbox_;
  bool backpressure_ = false;
  absl::Time backpressure_since_;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_RESULT_LEDGER_H_
