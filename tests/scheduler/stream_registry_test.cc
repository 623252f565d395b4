// The executor stream registry: a newer stream of an executor replaces (and
// closes) the older one, and nothing reaches a stream by a stale generation.
#include "scheduler/service/stream_registry.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tessera::scheduler {
namespace {

class FakeStream : public ExecutorStream {
 public:
  void SendAssignments(std::vector<Assignment> a) override {
    for (Assignment& x : a) sent.push_back("assign " + x.lease_id);
  }
  void SendCancel(const std::string& lease_id) override {
    sent.push_back("cancel " + lease_id);
  }
  void SendAcks(std::vector<std::string> ids) override {
    for (std::string& id : ids) sent.push_back("ack " + id);
  }
  void Close(const std::string& reason) override { closed = reason; }

  std::vector<std::string> sent;
  std::string closed;
};

TEST(StreamRegistryTest, ANewerStreamReplacesAndClosesTheOlderOne) {
  StreamRegistry registry;
  FakeStream old_stream, new_stream;
  registry.Replace({"e1", 1}, &old_stream);
  registry.Replace({"e1", 2}, &new_stream);
  EXPECT_EQ(old_stream.closed, "replaced by a newer connection of the same executor");
  EXPECT_TRUE(new_stream.closed.empty());
  EXPECT_TRUE(registry.Send({"e1", 2}, [](ExecutorStream& s) { s.SendCancel("l1"); }));
  EXPECT_EQ(new_stream.sent, std::vector<std::string>{"cancel l1"});
  EXPECT_TRUE(old_stream.sent.empty());
}

TEST(StreamRegistryTest, AStaleGenerationReachesNothingAndUnregistersNothing) {
  StreamRegistry registry;
  FakeStream old_stream, new_stream;
  registry.Replace({"e1", 1}, &old_stream);
  registry.Replace({"e1", 2}, &new_stream);
  EXPECT_FALSE(registry.Send({"e1", 1}, [](ExecutorStream& s) { s.SendAcks({"l1"}); }));
  EXPECT_FALSE(registry.Unregister({"e1", 1}));
  registry.Close({"e1", 1}, "stale");
  EXPECT_TRUE(new_stream.sent.empty());
  EXPECT_TRUE(new_stream.closed.empty());
  EXPECT_TRUE(registry.Contains({"e1", 2}));
  EXPECT_FALSE(registry.Send({"e9", 1}, [](ExecutorStream& s) { s.SendAcks({"l1"}); }));
}

TEST(StreamRegistryTest, UnregisterAndCloseRemoveTheCurrentStream) {
  StreamRegistry registry;
  FakeStream a, b;
  registry.Replace({"e1", 1}, &a);
  registry.Replace({"e2", 1}, &b);
  EXPECT_TRUE(registry.Unregister({"e1", 1}));
  EXPECT_FALSE(registry.Contains({"e1", 1}));
  EXPECT_TRUE(a.closed.empty());
  registry.Close({"e2", 1}, "lease lost");
  EXPECT_EQ(b.closed, "lease lost");
  EXPECT_FALSE(registry.Contains({"e2", 1}));
}

}  // namespace
}  // namespace tessera::scheduler
