#include "executor/core/result_buffer.h"

#include <utility>

namespace tessera::executor {

size_t ResultBuffer::Add(ShardOutcome outcome) {
  if (capacity_ == 0) return 1;
  size_t dropped = 0;
  if (items_.size() >= capacity_) {
    items_.pop_front();
    dropped = 1;
  }
  items_.push_back(std::move(outcome));
  return dropped;
}

std::vector<ShardOutcome> ResultBuffer::TakeAll() {
  std::vector<ShardOutcome> out(std::make_move_iterator(items_.begin()),
                                std::make_move_iterator(items_.end()));
  items_.clear();
  return out;
}

void ResultBuffer::PutBack(std::vector<ShardOutcome> outcomes) {
  for (auto it = outcomes.rbegin(); it != outcomes.rend(); ++it) {
    items_.push_front(std::move(*it));
  }
  while (items_.size() > capacity_) items_.pop_front();  // oldest first, as in Add
}

}  // namespace tessera::executor
