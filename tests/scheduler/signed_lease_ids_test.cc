// Lease ids signed with the store's key: recognised for their own shard only,
// also by a restarted scheduler on the same store; made-up or altered ones
// are not.
#include "scheduler/service/signed_lease_ids.h"

#include "gtest/gtest.h"
#include "scheduler/store/memory_store.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;

TEST(SignedLeaseIdsTest, AMintedIdIsIssuedForItsShardOnly) {
  SignedLeaseIds ids("key");
  const std::string id = ids.Mint("job1", 3, 1, "exec-a");
  EXPECT_TRUE(ids.Issued(id, "job1", 3, "exec-a"));
  EXPECT_FALSE(ids.Issued(id, "job1", 4, "exec-a"));
  EXPECT_FALSE(ids.Issued(id, "job2", 3, "exec-a"));
  EXPECT_FALSE(ids.Issued("job1.3.1", "job1", 3, "exec-a"));
  EXPECT_FALSE(
      ids.Issued("job1.3.1.00.00000000000000000000000000000000", "job1", 3, "exec-a"));
  std::string altered = id;
  altered[altered.size() - 1] = altered.back() == '0' ? '1' : '0';
  EXPECT_FALSE(ids.Issued(altered, "job1", 3, "exec-a"));
  EXPECT_FALSE(SignedLeaseIds("other key").Issued(id, "job1", 3, "exec-a"));
}

TEST(SignedLeaseIdsTest, AnIdCountsOnlyForTheIdentityItWasIssuedTo) {
  SignedLeaseIds ids("key");
  const std::string id = ids.Mint("job1", 0, 1, "exec-a");
  EXPECT_TRUE(ids.Issued(id, "job1", 0, "exec-a"));
  EXPECT_FALSE(ids.Issued(id, "job1", 0, "exec-b"));
  EXPECT_FALSE(ids.Issued(id, "job1", 0, ""));
  const std::string anonymous = ids.Mint("job1", 0, 1, "");
  EXPECT_TRUE(ids.Issued(anonymous, "job1", 0, ""));
  EXPECT_FALSE(ids.Issued(anonymous, "job1", 0, "exec-a"));
}

TEST(SignedLeaseIdsTest, IdsAreNeverReusedForTheSameShardAndAttempt) {
  SignedLeaseIds ids("key");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i)
    EXPECT_TRUE(seen.insert(ids.Mint("job1", 0, 1, "exec-a")).second);
}

TEST(SignedLeaseIdsTest, TheKeyIsKeptInTheStoreSoARestartRecognisesEarlierLeases) {
  const testing::TempDir tmp("tessera-lease");  // both stores below open it
  const std::string dir = tmp.path();
  std::string id;
  {
    auto store = SqliteStore::Open(dir, "normal");
    ASSERT_THAT(store, IsOk());
    auto ids = SignedLeaseIds::Create(store->get());
    ASSERT_THAT(ids, IsOk());
    id = (*ids)->Mint("job1", 0, 1, "exec-a");
  }
  auto store = SqliteStore::Open(dir, "normal");
  ASSERT_THAT(store, IsOk());
  auto again = SignedLeaseIds::Create(store->get());
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE((*again)->Issued(id, "job1", 0, "exec-a"));
  // Another store has another key.
  MemoryStore other;
  auto elsewhere = SignedLeaseIds::Create(&other);
  ASSERT_THAT(elsewhere, IsOk());
  EXPECT_FALSE((*elsewhere)->Issued(id, "job1", 0, "exec-a"));
}

}  // namespace
}  // namespace tessera::scheduler
