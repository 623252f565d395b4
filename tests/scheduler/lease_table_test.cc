// The lease table on its own: ids, deadlines, finding a lease by its holder,
// and ending one.
#include "scheduler/core/lease_table.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace tessera::scheduler {
namespace {

const absl::Time kNow = absl::UnixEpoch() + absl::Hours(1);

class LeaseTableTest : public ::testing::Test {
 protected:
  LeaseTableTest() {
    job_.record.id = "j1";
    job_.shards = JobShards(*RangePartition::Create({0, 4, 1, 0}, 100), {});
    executor_.conn = {"e1", 7};
    executor_.hello.name = "worker-1";
  }

  LeaseTable table_{absl::Seconds(5)};
  CoreJob job_;
  CoreExecutor executor_;
};

TEST_F(LeaseTableTest, DefaultIdsNameTheShardAndAttemptAndTheIncarnation) {
  EXPECT_EQ(table_.Mint("j1", 3, 2, ""), "j1.3.2");
  table_.SetIncarnation("ab12");
  EXPECT_EQ(table_.Mint("j1", 3, 2, ""), "j1.3.2.ab12");
  EXPECT_TRUE(table_.Issued("j1.3.2.ab12", "j1", 3, ""));
  EXPECT_FALSE(table_.Issued("j1.4.2.ab12", "j1", 3, ""));
}

TEST_F(LeaseTableTest, AddRecordsTheLeaseOnItsJobAndExecutor) {
  table_.Add("l1", job_, 2, executor_, 1, kNow);
  EXPECT_EQ(job_.shards.running().at(2), "l1");
  EXPECT_EQ(executor_.leases.count("l1"), 1u);
  EXPECT_EQ(job_.executors_used.count("worker-1"), 1u);
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_EQ(table_.at("l1").deadline, absl::InfiniteFuture());  // no shard timeout
}

TEST_F(LeaseTableTest, ALeaseIsFoundOnlyThroughTheConnectionThatHoldsIt) {
  table_.Add("l1", job_, 0, executor_, 1, kNow);
  EXPECT_NE(table_.Find({"e1", 7}, "l1"), nullptr);
  EXPECT_EQ(table_.Find({"e1", 8}, "l1"), nullptr);  // a newer stream of e1
  EXPECT_EQ(table_.Find({"e2", 7}, "l1"), nullptr);
  EXPECT_EQ(table_.Find({"e1", 7}, "l2"), nullptr);
}

TEST_F(LeaseTableTest, AShardTimeoutExpiresTheLeaseAfterTheGrace) {
  job_.record.spec.shard_timeout = absl::Seconds(10);
  table_.Add("l1", job_, 0, executor_, 1, kNow);
  EXPECT_EQ(table_.at("l1").deadline, kNow + absl::Seconds(15));
  EXPECT_TRUE(table_.Overdue(kNow + absl::Seconds(15)).empty());
  EXPECT_EQ(table_.Overdue(kNow + absl::Seconds(16)), std::vector<std::string>{"l1"});
}

TEST_F(LeaseTableTest, EndRequeuesTheShardOfAnUnfinishedJobOnly) {
  table_.Add("l1", job_, 0, executor_, 3, kNow);
  table_.Add("l2", job_, 1, executor_, 1, kNow);
  EXPECT_EQ(table_.End("l1", /*requeue=*/true), &job_);
  EXPECT_EQ(job_.shards.retry().at(0).attempts, 3);
  EXPECT_EQ(executor_.leases.count("l1"), 0u);
  job_.record.state = JobState::kCancelled;
  table_.End("l2", /*requeue=*/true);
  EXPECT_FALSE(job_.shards.QueuedAgain(1));
  EXPECT_TRUE(job_.shards.running().empty());
  EXPECT_EQ(table_.size(), 0u);
  EXPECT_EQ(table_.End("l2", /*requeue=*/true), nullptr);
}

}  // namespace
}  // namespace tessera::scheduler
