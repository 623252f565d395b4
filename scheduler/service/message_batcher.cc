#include "scheduler/service/message_batcher.h"

#include <utility>

#include "scheduler/service/convert.h"

namespace tessera::scheduler {

MessageBatcher::MessageBatcher(size_t max_assign_bytes)
    : max_assign_bytes_(max_assign_bytes) {}

void MessageBatcher::AddAssignments(std::vector<Assignment> assignments) {
  for (Assignment& a : assignments) {
    v1::Assignment proto;
    AssignmentToProto(a, &proto);
    const size_t bytes = ApproxBytes(proto);
    if (queue_.empty() || !queue_.back().has_assign() ||
        (tail_bytes_ > 0 && tail_bytes_ + bytes > max_assign_bytes_)) {
      queue_.emplace_back();
      tail_bytes_ = 0;
    }
    tail_bytes_ += bytes;
    *queue_.back().mutable_assign()->add_assignments() = std::move(proto);
  }
}

void MessageBatcher::AddAcks(std::vector<std::string> lease_ids) {
  if (lease_ids.empty()) return;
  if (queue_.empty() || !queue_.back().has_ack()) {
    queue_.emplace_back();
    tail_bytes_ = 0;
  }
  v1::Ack* ack = queue_.back().mutable_ack();
  for (std::string& id : lease_ids) ack->add_lease_ids(std::move(id));
}

void MessageBatcher::Add(v1::SchedulerMessage message) {
  queue_.push_back(std::move(message));
  tail_bytes_ = 0;
}

v1::SchedulerMessage MessageBatcher::PopFront() {
  v1::SchedulerMessage m = std::move(queue_.front());
  queue_.pop_front();
  if (queue_.empty()) tail_bytes_ = 0;
  return m;
}

void MessageBatcher::Clear() {
  queue_.clear();
  tail_bytes_ = 0;
}

}  // namespace tessera::scheduler
