#include "executor/core/slot_pool.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace tessera::executor {

SlotPool::SlotPool(int slots) : slots_(std::max(slots, 1)) {}

SlotActions SlotPool::Offer(Assignment a) {
  SlotActions actions;
  if (draining_) {
    actions.release.push_back(std::move(a.lease_id));
    return actions;
  }
  if (running_.contains(a.lease_id) || !queued_.insert(a.lease_id).second) {
    return actions;
  }
  queue_.push_back(std::move(a));
  Fill(actions);
  return actions;
}

SlotActions SlotPool::Finish(const std::string& lease_id) {
  SlotActions actions;
  running_.erase(lease_id);
  Fill(actions);
  return actions;
}

SlotPool::CancelResult SlotPool::Cancel(const std::string& lease_id) {
  if (running_.contains(lease_id)) return CancelResult::kRunning;
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const Assignment& q) { return q.lease_id == lease_id; });
  if (it == queue_.end()) return CancelResult::kUnknown;
  queued_.erase(it->lease_id);
  queue_.erase(it);
  return CancelResult::kDequeued;
}

SlotActions SlotPool::Drain() {
  draining_ = true;
  SlotActions actions;
  for (Assignment& a : queue_) actions.release.push_back(std::move(a.lease_id));
  queue_.clear();
  queued_.clear();
  return actions;
}

std::vector<std::string> SlotPool::DropQueued() {
  std::vector<std::string> dropped;
  for (Assignment& a : queue_) dropped.push_back(std::move(a.lease_id));
  queue_.clear();
  queued_.clear();
  return dropped;
}

std::vector<std::string> SlotPool::RunningLeases() const {
  std::vector<std::string> out(running_.begin(), running_.end());
  std::sort(out.begin(), out.end());
  return out;
}

void SlotPool::Fill(SlotActions& actions) {
  while (!draining_ && !queue_.empty() && running() < slots_) {
    queued_.erase(queue_.front().lease_id);
    running_.insert(queue_.front().lease_id);
    actions.start.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  assert(running() <= slots_);
}

}  // namespace tessera::executor
