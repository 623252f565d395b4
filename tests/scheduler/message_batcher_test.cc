// The one place where an executor stream's messages are cut by size.
#include "scheduler/service/message_batcher.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/service/convert.h"

namespace tessera::scheduler {
namespace {

Assignment Make(const std::string& lease_id, size_t params_bytes = 100) {
  Assignment a;
  a.lease_id = lease_id;
  a.job_id = "j1";
  a.task = "noop";
  a.params_json = std::string(params_bytes, 'x');
  return a;
}

size_t Bytes(const Assignment& a) {
  v1::Assignment proto;
  AssignmentToProto(a, &proto);
  return ApproxBytes(proto);
}

// The queued messages, as kind and count: "assign 2", "ack 3", "cancel".
std::vector<std::string> Drain(MessageBatcher& batcher) {
  std::vector<std::string> out;
  while (!batcher.empty()) {
    v1::SchedulerMessage m = batcher.PopFront();
    if (m.has_assign()) {
      out.push_back("assign " + std::to_string(m.assign().assignments_size()));
    } else if (m.has_ack()) {
      out.push_back("ack " + std::to_string(m.ack().lease_ids_size()));
    } else if (m.has_cancel()) {
      out.push_back("cancel");
    } else {
      out.push_back("other");
    }
  }
  return out;
}

TEST(MessageBatcherTest, CutsAssignMessagesAtTheByteLimit) {
  const size_t one = Bytes(Make("l0"));
  MessageBatcher batcher(one * 2 + one / 2);
  std::vector<Assignment> five;
  for (int i = 0; i < 5; ++i) five.push_back(Make("l" + std::to_string(i)));
  batcher.AddAssignments(std::move(five));
  EXPECT_EQ(Drain(batcher),
            (std::vector<std::string>{"assign 2", "assign 2", "assign 1"}));
}

TEST(MessageBatcherTest, LaterAssignmentsJoinTheQueuedTailUntilItIsFull) {
  const size_t one = Bytes(Make("l0"));
  MessageBatcher batcher(one * 3);
  batcher.AddAssignments({Make("l0")});
  batcher.AddAssignments({Make("l1"), Make("l2")});
  batcher.AddAssignments({Make("l3")});
  EXPECT_EQ(Drain(batcher), (std::vector<std::string>{"assign 3", "assign 1"}));
}

TEST(MessageBatcherTest, AnAssignmentLargerThanTheLimitGoesAlone) {
  MessageBatcher batcher(200);
  batcher.AddAssignments({Make("small", 10), Make("big", 1000), Make("small2", 10)});
  EXPECT_EQ(Drain(batcher),
            (std::vector<std::string>{"assign 1", "assign 1", "assign 1"}));
}

TEST(MessageBatcherTest, NeverQueuesAnEmptyMessage) {
  MessageBatcher batcher(kMaxAssignMessageBytes);
  batcher.AddAssignments({});
  batcher.AddAcks({});
  EXPECT_TRUE(batcher.empty());
}

TEST(MessageBatcherTest, KeepsTheOrderOfKindsAndMergesOnlyTheTail) {
  MessageBatcher batcher(kMaxAssignMessageBytes);
  batcher.AddAssignments({Make("l1")});
  v1::SchedulerMessage cancel;
  cancel.mutable_cancel()->set_lease_id("l1");
  batcher.Add(std::move(cancel));
  batcher.AddAssignments({Make("l2")});
  batcher.AddAcks({"a1", "a2"});
  batcher.AddAcks({"a3"});
  batcher.AddAssignments({Make("l3")});
  EXPECT_EQ(Drain(batcher), (std::vector<std::string>{"assign 1", "cancel", "assign 1",
                                                      "ack 3", "assign 1"}));
}

TEST(MessageBatcherTest, TheMessageTakenForWritingIsNeverChangedAgain) {
  MessageBatcher batcher(kMaxAssignMessageBytes);
  batcher.AddAcks({"a1"});
  v1::SchedulerMessage writing = batcher.PopFront();
  batcher.AddAcks({"a2"});
  EXPECT_EQ(writing.ack().lease_ids_size(), 1);
  EXPECT_EQ(Drain(batcher), std::vector<std::string>{"ack 1"});
}

}  // namespace
}  // namespace tessera::scheduler
