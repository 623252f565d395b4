#include "scheduler/store/sqlite_store.h"

#include "gtest/gtest.h"
#include "tests/util/small_disk.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

JobRecord Record(const std::string& id, JobState state) {
  JobRecord r;
  r.id = id;
  r.seq = 1;
  r.state = state;
  r.spec.task = "noop";
  r.spec.range = {0, 10, 0, 2};
  return r;
}

// What a scheduler restarting on `dir` would read back.
absl::StatusOr<StoredState> LoadAfterReopening(const std::string& dir) {
  auto store = SqliteStore::Open(dir);
  if (!store.ok()) return store.status();
  return (*store)->Load();
}

// Found by tests/fuzz (record_codec_fuzzer): a float or a too large number in
// an integer field was cast (undefined behaviour) instead of refused.
TEST(RecordCodecTest, RefusesAnIntegerFieldHoldingAFractionOrTooLargeANumber) {
  const std::string good = EncodeJobRecord(Record("j1", JobState::kRunning));
  ASSERT_THAT(DecodeJobRecord(good), IsOk());
  const std::pair<std::string, std::string> damages[] = {
      {"\"result_version\":0", "\"result_version\":184467440737095516160"},
      {"\"state\":1", "\"state\":1.5e300"},
      {"\"seq\":1", "\"seq\":18446744073709551615"},
      {"\"shard_count\":2", "\"shard_count\":2.5"},
      {"\"priority\":0", "\"priority\":4294967296"},
  };
  for (const auto& [field, damaged] : damages) {
    std::string text = good;
    const size_t at = text.find(field);
    ASSERT_NE(at, std::string::npos) << field;
    text.replace(at, field.size(), damaged);
    absl::StatusOr<JobRecord> r = DecodeJobRecord(text);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss)) << damaged;
  }
}

// Found by tests/fuzz (record_codec_fuzzer): Restore counts on from these
// (seq + 1, result_version + 1), which overflowed at the largest values.
TEST(RecordCodecTest, RefusesASeqOrResultVersionNothingCanFollow) {
  for (const auto& [seq, version] :
       {std::pair<int64_t, int32_t>{INT64_MAX, 1}, {-1, 1}, {1, INT32_MAX}, {1, -1}}) {
    JobRecord r = Record("j1", JobState::kRunning);
    r.seq = seq;
    r.result_version = version;
    EXPECT_THAT(DecodeJobRecord(EncodeJobRecord(r)),
                StatusIs(absl::StatusCode::kDataLoss))
        << seq << " " << version;
  }
  JobRecord r = Record("j1", JobState::kRunning);
  r.seq = INT64_MAX - 1;
  r.result_version = INT32_MAX - 1;
  EXPECT_THAT(DecodeJobRecord(EncodeJobRecord(r)), IsOk());
}

TEST(SqliteStoreTest, KeepsItsSyncSettingAcrossDurableCommits) {
  for (const auto& [setting, value] : {std::pair{"normal", 1}, std::pair{"full", 2}}) {
    const testing::TempDir dir("tessera-store");
    auto store = SqliteStore::Open(dir.path(), setting);
    ASSERT_THAT(store, IsOk());
    EXPECT_EQ(*(*store)->Synchronous(), value) << setting;
    const JobRecord job = Record("j1", JobState::kRunning);
    const SaveResultOp result{"j1", 0, R"({"items":5})"};
    ASSERT_THAT((*store)->Commit({&job}, {&result}, /*durable=*/true), IsOk());
    EXPECT_EQ(*(*store)->Synchronous(), value) << setting;
    ASSERT_THAT((*store)->Commit({&job}, {}, /*durable=*/false), IsOk());
    EXPECT_EQ(*(*store)->Synchronous(), value) << setting;
  }
}

TEST(SqliteStoreTest, DurableAndPlainCommitsAreReadBackAfterReopening) {
  const testing::TempDir tmp("tessera-store");
  const std::string dir = tmp.path();
  {
    auto store = SqliteStore::Open(dir);
    ASSERT_THAT(store, IsOk());
    const JobRecord job = Record("j1", JobState::kRunning);
    const SaveResultOp r0{"j1", 0, R"({"items":5})"};
    const SaveResultOp r1{"j1", 1, R"({"items":5})"};
    const SaveResultOp r0_again{"j1", 0, R"({"items":99})"};
    ASSERT_THAT((*store)->Commit({&job}, {&r0}, /*durable=*/true), IsOk());
    ASSERT_THAT((*store)->Commit({}, {&r1, &r0_again}, /*durable=*/false), IsOk());
  }
  absl::StatusOr<StoredState> state = LoadAfterReopening(dir);
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 1u);
  EXPECT_EQ(state->jobs[0].id, "j1");
  const std::vector<StoredResult>& results = state->results["j1"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].result_json, R"({"items":5})");  // the first result wins
  EXPECT_EQ(results[1].shard, 1);
}

TEST(SqliteStoreTest, AJobSavedAgainIsReadBackOnceAsItsLatestRecordInSubmissionOrder) {
  const testing::TempDir tmp("tessera-store");
  const std::string dir = tmp.path();
  {
    auto store = SqliteStore::Open(dir);
    ASSERT_THAT(store, IsOk());
    JobRecord first = Record("first", JobState::kQueued);
    JobRecord second = Record("second", JobState::kQueued);
    second.seq = 2;
    ASSERT_THAT((*store)->Commit({&second, &first}, {}, /*durable=*/false), IsOk());
    first.state = JobState::kRunning;
    ASSERT_THAT((*store)->Commit({&first}, {}, /*durable=*/false), IsOk());
    first.state = JobState::kSucceeded;
    first.location = "/results/first.json";
    ASSERT_THAT((*store)->Commit({&first}, {}, /*durable=*/true), IsOk());
  }
  absl::StatusOr<StoredState> state = LoadAfterReopening(dir);
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 2u);
  EXPECT_EQ(state->jobs[0].id, "first");
  EXPECT_EQ(state->jobs[0].seq, 1);
  EXPECT_EQ(state->jobs[0].state, JobState::kSucceeded);
  EXPECT_EQ(state->jobs[0].location, "/results/first.json");
  EXPECT_EQ(state->jobs[1].id, "second");
  EXPECT_EQ(state->jobs[1].state, JobState::kQueued);
}

TEST(SqliteStoreTest, ARecordTooBigIsARecordErrorNamingItsJobAndNothingIsCommitted) {
  const testing::TempDir tmp("tessera-store");
  const std::string dir = tmp.path();
  {
    auto store = SqliteStore::Open(dir);
    ASSERT_THAT(store, IsOk());
    (*store)->SetMaxRecordBytesForTesting(4096);
    const JobRecord small = Record("small", JobState::kRunning);
    JobRecord big = Record("big", JobState::kRunning);
    big.seq = 2;
    big.finalizing = true;
    big.final_bytes = std::string(8192, 'x');
    absl::Status s = (*store)->Commit({&small, &big}, {}, /*durable=*/false);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_EQ(RecordErrorJob(s), "big") << s;
    EXPECT_NE(s.message().find("the record of job big is"), std::string::npos) << s;
    // A shard result too big names its job too.
    const SaveResultOp huge{"small", 0, std::string(8192, '1')};
    s = (*store)->Commit({&small}, {&huge}, /*durable=*/false);
    EXPECT_EQ(RecordErrorJob(s), "small") << s;
    // Without them the rest commits.
    ASSERT_THAT((*store)->Commit({&small}, {}, /*durable=*/false), IsOk());
  }
  absl::StatusOr<StoredState> state = LoadAfterReopening(dir);
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 1u);
  EXPECT_EQ(state->jobs[0].id, "small");
  EXPECT_TRUE(state->results["small"].empty());
}

TEST(SqliteStoreTest, AFullDiskIsResourceExhaustedAndCommitsPassOnceSpaceReturns) {
  const testing::TempDir tmp("tessera-store");
  const std::string dir = tmp.path();
  std::string why;
  auto disk = testing::SmallDisk::Mount(dir, 2 << 20, &why);
  if (disk == nullptr) GTEST_SKIP() << why;
  auto store = SqliteStore::Open(dir);
  ASSERT_THAT(store, IsOk());
  const JobRecord first = Record("first", JobState::kRunning);
  ASSERT_THAT((*store)->Commit({&first}, {}, /*durable=*/true), IsOk());
  ASSERT_GT(disk->Fill(), 0);
  JobRecord second = Record("second", JobState::kRunning);
  second.seq = 2;
  const SaveResultOp result{"first", 0, std::string(6000, '7')};
  absl::Status s = (*store)->Commit({&second}, {&result}, /*durable=*/true);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(RecordErrorJob(s).has_value());
  disk->Free();
  s = (*store)->Commit({&second}, {&result}, /*durable=*/true);
  ASSERT_THAT(s, IsOk());
  store->reset();
  absl::StatusOr<StoredState> state = LoadAfterReopening(dir);
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 2u);
  ASSERT_EQ(state->results["first"].size(), 1u);
  EXPECT_EQ(state->results["first"][0].result_json, result.result_json);
}

}  // namespace
}  // namespace tessera::scheduler
