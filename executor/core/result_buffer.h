// Failed shards whose outcome could not be sent because the stream was down
// (results are kept until acked; see ExecutorClient).
#ifndef TESSERA_EXECUTOR_CORE_RESULT_BUFFER_H_
#define TESSERA_EXECUTOR_CORE_RESULT_BUFFER_H_

#include <cstddef>
#include <deque>
#include <vector>

#include "executor/core/assignment.h"

namespace tessera::executor {

// Kept until the next connection, where they are sent after Hello; the
// scheduler accepts an outcome for a shard that is still open under that lease
// and drops the rest. Bounded: when full, the oldest is dropped (the scheduler
// will rerun that shard, execution is at-least-once). Not thread-safe.

class ResultBuffer {
 public:
  explicit ResultBuffer(size_t capacity) : capacity_(capacity) {}

  // Returns how many older outcomes were dropped to make room (0 or 1).
  size_t Add(ShardOutcome outcome);
  std::vector<ShardOutcome> TakeAll();
  // Puts back outcomes that could not be sent, ahead of newer ones.
  void PutBack(std::vector<ShardOutcome> outcomes);
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }

 private:
  const size_t capacity_;
  std::deque<ShardOutcome> items_;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_RESULT_BUFFER_H_
