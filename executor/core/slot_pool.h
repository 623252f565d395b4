// Bookkeeping of an executor's slots: which assignments run, which wait, and
// what to do when one is offered, finishes, is cancelled or the executor drains.
#ifndef TESSERA_EXECUTOR_CORE_SLOT_POOL_H_
#define TESSERA_EXECUTOR_CORE_SLOT_POOL_H_

#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "executor/core/assignment.h"

namespace tessera::executor {

// What the caller must carry out after a SlotPool transition.
struct SlotActions {
  std::vector<Assignment> start;     // now counted as running; start them
  std::vector<std::string> release;  // give these leases back to the scheduler
};

// A pure state machine: no threads, no clock, no I/O. Never more than `slots`
// assignments are running; extras (the scheduler's prefetch) wait in FIFO order
// and start as slots free up. Not thread-safe: the owner holds a lock.
class SlotPool {
 public:
  explicit SlotPool(int slots);

  // Queues `a` and starts what fits. While draining, `a` is released instead.
  // A lease already known is ignored (the scheduler never sends one twice, but
  // a duplicate must not run twice).
  SlotActions Offer(Assignment a);

  // A running assignment ended (whatever the outcome): its slot is free.
  SlotActions Finish(const std::string& lease_id);

  enum class CancelResult { kUnknown, kDequeued, kRunning };
  // A queued assignment is forgotten; a running one keeps its slot until its
  // handler returns and Finish is called.
  CancelResult Cancel(const std::string& lease_id);

  // Forgets every queued assignment (their leases ended with the stream they
  // came on) and returns their leases. Running ones are untouched.
  std::vector<std::string> DropQueued();

  // Stops taking work: every queued assignment is released, later offers too.
  // Running ones are untouched. Idempotent.
  SlotActions Drain();

  bool draining() const { return draining_; }
  int slots() const { return slots_; }
  int running() const { return static_cast<int>(running_.size()); }
  int queued() const { return static_cast<int>(queue_.size()); }
  bool idle() const { return running_.empty() && queue_.empty(); }
  bool IsRunning(const std::string& lease_id) const {
    return running_.contains(lease_id);
  }
  std::vector<std::string> RunningLeases() const;

 private:
  void Fill(SlotActions& actions);

  const int slots_;
  bool draining_ = false;
  std::deque<Assignment> queue_;
  absl::flat_hash_set<std::string> queued_;  // lease ids in queue_
  absl::flat_hash_set<std::string> running_;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_SLOT_POOL_H_
