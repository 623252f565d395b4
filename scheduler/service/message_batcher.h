// The messages queued for one executor stream, cut by size: assignments join
// the Assign message at the tail of the queue until it holds about
// kMaxAssignMessageBytes, acks join the Ack message at the tail, anything else
// starts a message of its own. Only the tail is merged, so the order of kinds
// is kept (an assignment is never overtaken by its cancel), and no message is
// ever empty. The message being written is taken out of the queue (PopFront),
// so it is never changed while gRPC holds it.
//
// Not thread-safe: the stream's lock guards it.
#ifndef TESSERA_SCHEDULER_SERVICE_MESSAGE_BATCHER_H_
#define TESSERA_SCHEDULER_SERVICE_MESSAGE_BATCHER_H_

#include <cstddef>
#include <deque>
#include <string>
#include <vector>

#include "scheduler/core/types.h"
#include "tessera/v1/executor.pb.h"

namespace tessera::scheduler {

class MessageBatcher {
 public:
  // `max_assign_bytes`: where an Assign message is cut (one larger
  // assignment still goes, alone).
  explicit MessageBatcher(size_t max_assign_bytes);

  void AddAssignments(std::vector<Assignment> assignments);
  void AddAcks(std::vector<std::string> lease_ids);
  // A message of its own (welcome, cancel).
  void Add(v1::SchedulerMessage message);

  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }
  // The oldest message, taken out of the queue.
  v1::SchedulerMessage PopFront();
  void Clear();

 private:
  const size_t max_assign_bytes_;
  std::deque<v1::SchedulerMessage> queue_;
  size_t tail_bytes_ = 0;  // roughly the assignment bytes in queue_.back()
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_MESSAGE_BATCHER_H_
