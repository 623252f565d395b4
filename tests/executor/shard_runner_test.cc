#include "executor/service/shard_runner.h"

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/executor/gate_handler.h"
#include "tests/util/status_matchers.h"

namespace tessera::executor {
namespace {

using ::tessera::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class RecordingListener : public ShardRunner::Listener {
 public:
  void OnProgress(const Assignment&, int64_t, int64_t) override {}
  void OnFinished(const ShardOutcome& outcome) override {
    absl::MutexLock lock(&mu_);
    outcomes_.push_back(outcome);
  }
  std::vector<ShardOutcome> outcomes() {
    absl::MutexLock lock(&mu_);
    return outcomes_;
  }

 private:
  absl::Mutex mu_;
  std::vector<ShardOutcome> outcomes_;
};

Assignment Make(const std::string& lease, const std::string& task, int64_t shard,
                std::string params = "") {
  Assignment a;
  a.lease_id = lease;
  a.job_id = "job1";
  a.shard = shard;
  a.task = task;
  a.start = 0;
  a.end = 10;
  a.params_json = std::move(params);
  return a;
}

class ShardRunnerTest : public ::testing::Test {
 protected:
  ShardRunnerTest() {
    auto gate = std::make_unique<GateHandler>();
    gate_ = gate.get();
    EXPECT_THAT(registry_.Register("gate", std::move(gate)), IsOk());
    EXPECT_THAT(RegisterBuiltinHandlers(registry_), IsOk());
  }

  HandlerRegistry registry_;
  GateHandler* gate_;
  RecordingListener listener_;
  RealClock clock_;
};

TEST_F(ShardRunnerTest, RunsNoMoreThanSlotsAndStartsQueuedWhenASlotFrees) {
  ShardRunner runner(&registry_, 2, &listener_, &clock_, nullptr);
  runner.Start();
  std::vector<Assignment> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(Make("l" + std::to_string(i), "gate", i));
  EXPECT_THAT(runner.Offer(std::move(batch)), IsEmpty());
  ASSERT_TRUE(gate_->WaitStarted(2));
  EXPECT_EQ(runner.running(), 2);
  EXPECT_THAT(gate_->started(), UnorderedElementsAre(0, 1));
  gate_->Open();
  ASSERT_TRUE(runner.WaitIdle(absl::Seconds(10)));
  EXPECT_EQ(gate_->max_running(), 2);
  EXPECT_EQ(listener_.outcomes().size(), 5u);
}

TEST_F(ShardRunnerTest, FailsAnUnknownTaskPermanentlyNamingIt) {
  ShardRunner runner(&registry_, 1, &listener_, &clock_, nullptr);
  runner.Start();
  runner.Offer({Make("l1", "frobnicate", 3)});
  ASSERT_EQ(listener_.outcomes().size(), 1u);
  const ShardOutcome o = listener_.outcomes()[0];
  EXPECT_EQ(o.kind, ShardOutcome::Kind::kFailed);
  EXPECT_FALSE(o.retryable);
  EXPECT_THAT(o.message, HasSubstr("no handler for task \"frobnicate\""));
  EXPECT_THAT(o.message, HasSubstr("noop, primes, sleep"));
}

TEST_F(ShardRunnerTest, MapsHandlerErrorsToRetryableOrNot) {
  ShardRunner runner(&registry_, 2, &listener_, &clock_, nullptr);
  runner.Start();
  runner.Offer({Make("bad-param", "sleep", 1, R"({"ms":"x"})"),
                Make("bad-json", "noop", 2, "[1,2]"), Make("ok", "noop", 3, "{}")});
  ASSERT_TRUE(runner.WaitIdle(absl::Seconds(10)));
  std::map<std::string, ShardOutcome> by_lease;
  for (const ShardOutcome& o : listener_.outcomes()) by_lease[o.lease_id] = o;
  ASSERT_EQ(by_lease.size(), 3u);
  EXPECT_EQ(by_lease["bad-param"].kind, ShardOutcome::Kind::kFailed);
  EXPECT_FALSE(by_lease["bad-param"].retryable);
  EXPECT_THAT(by_lease["bad-param"].message, HasSubstr("params.ms"));
  EXPECT_THAT(by_lease["bad-json"].message,
              HasSubstr("params_json must be a JSON object"));
  EXPECT_EQ(by_lease["ok"].kind, ShardOutcome::Kind::kSucceeded);
  EXPECT_EQ(by_lease["ok"].result_json, R"({"items":10})");
}

TEST_F(ShardRunnerTest, CancelledShardReportsNothing) {
  ShardRunner runner(&registry_, 1, &listener_, &clock_, nullptr);
  runner.Start();
  runner.Offer({Make("run", "gate", 1), Make("queued", "gate", 2)});
  ASSERT_TRUE(gate_->WaitStarted(1));
  EXPECT_TRUE(runner.Cancel("queued"));
  EXPECT_TRUE(runner.Cancel("run"));
  EXPECT_FALSE(runner.Cancel("unknown"));
  ASSERT_TRUE(runner.WaitIdle(absl::Seconds(10)));
  EXPECT_THAT(listener_.outcomes(), IsEmpty());
  EXPECT_THAT(gate_->started(), ElementsAre(1));
}

TEST_F(ShardRunnerTest, StopAcceptingReleasesQueuedAndLetsRunningFinish) {
  ShardRunner runner(&registry_, 1, &listener_, &clock_, nullptr);
  runner.Start();
  runner.Offer({Make("a", "gate", 1), Make("b", "gate", 2), Make("c", "gate", 3)});
  ASSERT_TRUE(gate_->WaitStarted(1));
  EXPECT_THAT(runner.StopAccepting(), ElementsAre("b", "c"));
  EXPECT_THAT(runner.Offer({Make("d", "noop", 4)}), ElementsAre("d"));
  gate_->Open();
  ASSERT_TRUE(runner.WaitIdle(absl::Seconds(10)));
  ASSERT_EQ(listener_.outcomes().size(), 1u);
  EXPECT_EQ(listener_.outcomes()[0].lease_id, "a");
}

TEST_F(ShardRunnerTest, CancelRunningReturnsTheLeasesItCancelled) {
  ShardRunner runner(&registry_, 2, &listener_, &clock_, nullptr);
  runner.Start();
  runner.Offer({Make("a", "gate", 1), Make("b", "gate", 2)});
  ASSERT_TRUE(gate_->WaitStarted(2));
  runner.StopAccepting();
  EXPECT_THAT(runner.CancelRunning(), ElementsAre("a", "b"));
  ASSERT_TRUE(runner.WaitIdle(absl::Seconds(10)));
  EXPECT_THAT(listener_.outcomes(), IsEmpty());
}

}  // namespace
}  // namespace tessera::executor
