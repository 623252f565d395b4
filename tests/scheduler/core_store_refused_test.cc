// The core when the store refuses one job's record for good (e.g. too big):
// that job fails, its leases are cancelled, a result it was persisting is
// dropped, and the other jobs go on.
#include "gtest/gtest.h"
#include "scheduler/core/scheduler_core.h"
#include "tests/scheduler/core_fixture.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;

TEST_F(SchedulerCoreTest, AJobWhoseRecordTheStoreRefusesFailsAndFreesItsExecutor) {
  Submit(RangeJob(10, 2), "big");
  Connect(Hello("e1", 2));
  ASSERT_EQ(assigns_.size(), 2u);
  assigns_.clear();
  saved_jobs_.clear();
  Actions out;
  core_.StoreRefused("big", "record is 2 GB", now_, out);
  Take(out);
  const JobView big = Get("big");
  EXPECT_EQ(big.state, JobState::kFailed);
  EXPECT_EQ(big.message, "the store cannot keep this job: record is 2 GB");
  EXPECT_EQ(cancels_.size(), 2u);  // its running shards
  ASSERT_EQ(saved_jobs_.size(), 1u);
  EXPECT_EQ(saved_jobs_[0].state, JobState::kFailed);
  // The other jobs go on, on the freed slots.
  Submit(RangeJob(10, 2), "other");
  EXPECT_EQ(assigns_.size(), 2u);
  RunAll();
  ASSERT_EQ(persists_.size(), 1u);
  EXPECT_EQ(persists_[0].job_id, "other");
}

TEST_F(SchedulerCoreTest, AFinalizingRecordTheStoreRefusesDropsTheResultAndFailsTheJob) {
  Submit(RangeJob(10, 1), "job1");
  Connect(Hello("e1", 1));
  RunAll();
  ASSERT_EQ(persists_.size(), 1u);
  ASSERT_TRUE(saved_jobs_.back().finalizing);
  Actions out;
  core_.StoreRefused("job1", "too big", now_, out);
  Take(out);
  EXPECT_EQ(Get("job1").state, JobState::kFailed);
  EXPECT_FALSE(saved_jobs_.back().finalizing);
  EXPECT_TRUE(saved_jobs_.back().final_bytes.empty());
  // The sink's late report changes nothing.
  Actions late;
  core_.Persisted("job1", "/r/job1.json", "sha", now_, late);
  EXPECT_TRUE(late.durable.empty());
  EXPECT_EQ(Get("job1").state, JobState::kFailed);
}

TEST_F(SchedulerCoreTest, AFinishedJobStaysAsItIsWhenTheStoreRefusesItsRecord) {
  Submit(RangeJob(10, 1), "job1");
  Actions cancel;
  ASSERT_THAT(core_.Cancel("job1", now_, cancel), IsOk());
  Actions out;
  core_.StoreRefused("job1", "too big", now_, out);
  EXPECT_TRUE(out.durable.empty());
  EXPECT_EQ(Get("job1").state, JobState::kCancelled);
}

}  // namespace
}  // namespace tessera::scheduler
