// The Store contract: one behaviour suite run against every store (memory,
// SQLite in a temp dir, PostgreSQL on a real server on loopback). A new store
// adds itself to StoreKinds and must pass all of it. What a kind cannot do
// (memory keeps nothing across a restart and refuses no record) is skipped
// by name, never silently.
#include <filesystem>
#include <memory>

#include "gtest/gtest.h"
#include "scheduler/store/memory_store.h"
#include "scheduler/store/postgres_store.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/scheduler/store_fixture.h"
#include "tests/util/postgres_server.h"
#include "tests/util/process.h"
#include "tests/util/s3rver.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

using ::tessera::testing::TempDir;

// Each kind opens a fresh, empty store per test, and can open it again as a
// restarted scheduler would (after the first one is closed).
struct MemoryKind {
  static constexpr char kName[] = "memory";
  static constexpr bool kSurvivesRestart = false;
  static constexpr bool kRefusesBigRecords = false;
  absl::StatusOr<std::unique_ptr<Store>> Open() {
    return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  }
  void LimitRecordBytes(Store*, size_t) {}
};

struct SqliteKind {
  static constexpr char kName[] = "sqlite";
  static constexpr bool kSurvivesRestart = true;
  static constexpr bool kRefusesBigRecords = true;
  TempDir tmp{"tessera-store-contract"};  // kind_ outlives the fixture's store_
  std::string dir = tmp.path();
  absl::StatusOr<std::unique_ptr<Store>> Open() {
    auto s = SqliteStore::Open(dir);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Store>(*std::move(s));
  }
  void LimitRecordBytes(Store* s, size_t n) {
    static_cast<SqliteStore*>(s)->SetMaxRecordBytesForTesting(static_cast<int>(n));
  }
};

struct PostgresKind {
  static constexpr char kName[] = "postgres";
  static constexpr bool kSurvivesRestart = true;
  static constexpr bool kRefusesBigRecords = true;
  // The test program's one server (store_fixture.h); each test its own database.
  std::string db;
  absl::StatusOr<std::unique_ptr<Store>> Open() {
    if (db.empty()) db = SharedPostgres::Get()->NewDatabase();
    if (db.empty()) return absl::UnavailableError("no PostgreSQL database");
    auto s = SharedPostgres::Get()->OpenDatabase(db);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Store>(*std::move(s));
  }
  void LimitRecordBytes(Store* s, size_t n) {
    static_cast<PostgresStore*>(s)->SetMaxRecordBytesForTesting(n);
  }
};

template <typename Kind>
class StoreContract : public ::testing::Test {
 protected:
  void SetUp() override {
    if constexpr (std::is_same_v<Kind, PostgresKind>) {
      if (::tessera::testing::PostgresSkipped()) {
        GTEST_SKIP() << "TESSERA_SKIP_POSTGRES=1";
      }
    }
    auto store = kind_.Open();
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }
  // Closes the store and opens it again, as a restarted scheduler would.
  void Restart() {
    store_.reset();
    auto store = kind_.Open();
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  Kind kind_;
  std::unique_ptr<Store> store_;
};

using StoreKinds = ::testing::Types<MemoryKind, SqliteKind, PostgresKind>;
class KindNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};
TYPED_TEST_SUITE(StoreContract, StoreKinds, KindNames);

TYPED_TEST(StoreContract, ReadsBackCommittedJobsInSubmissionOrderWithTheirResults) {
  const JobRecord second = StoreRecord("second", 2, JobState::kRunning);
  const JobRecord first = StoreRecord("first", 1, JobState::kRunning);
  // Bytes a text column might mangle: non-ASCII, quotes, backslashes, and
  // shard numbers beyond 32 bits.
  const SaveResultOp r0{"first", 0, "{\"k\":\"\xc3\xa9\\\"\\\\\"}"};
  const SaveResultOp r1{"first", 5'000'000'000, R"({"n":1})"};
  const SaveResultOp r2{"second", 3, R"({"n":2})"};
  ASSERT_THAT(this->store_->Commit({&second, &first}, {&r1, &r2, &r0}, false), IsOk());
  auto state = this->store_->Load();
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 2u);
  EXPECT_EQ(state->jobs[0].id, "first");
  EXPECT_EQ(state->jobs[1].id, "second");
  EXPECT_EQ(state->jobs[1].seq, 2);
  EXPECT_EQ(state->jobs[0].spec.task, "noop");
  const std::vector<StoredResult>& results = state->results["first"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].shard, 0);
  EXPECT_EQ(results[0].result_json, r0.result_json);
  EXPECT_EQ(results[1].shard, 5'000'000'000);
  ASSERT_EQ(state->results["second"].size(), 1u);
  EXPECT_EQ(state->results["second"][0].result_json, R"({"n":2})");
}

TYPED_TEST(StoreContract, TheFirstResultForAShardWins) {
  const JobRecord job = StoreRecord("j1", 1, JobState::kRunning);
  const SaveResultOp first{"j1", 0, R"({"v":1})"};
  const SaveResultOp same_batch{"j1", 0, R"({"v":2})"};
  const SaveResultOp later{"j1", 0, R"({"v":3})"};
  ASSERT_THAT(this->store_->Commit({&job}, {&first, &same_batch}, false), IsOk());
  ASSERT_THAT(this->store_->Commit({}, {&later}, true), IsOk());
  auto results = this->store_->LoadResults("j1");
  ASSERT_THAT(results, IsOk());
  ASSERT_EQ(results->size(), 1u);
  EXPECT_EQ((*results)[0].result_json, R"({"v":1})");
}

TYPED_TEST(StoreContract, AJobSavedAgainIsReadBackOnceAsItsLatestRecord) {
  JobRecord first = StoreRecord("first", 1, JobState::kQueued);
  const JobRecord second = StoreRecord("second", 2, JobState::kQueued);
  ASSERT_THAT(this->store_->Commit({&second, &first}, {}, false), IsOk());
  first.state = JobState::kRunning;
  ASSERT_THAT(this->store_->Commit({&first}, {}, false), IsOk());
  first.state = JobState::kSucceeded;
  first.location = "/results/first.json";
  ASSERT_THAT(this->store_->Commit({&first}, {}, true), IsOk());
  auto state = this->store_->Load();
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 2u);
  EXPECT_EQ(state->jobs[0].id, "first");
  EXPECT_EQ(state->jobs[0].state, JobState::kSucceeded);
  EXPECT_EQ(state->jobs[0].location, "/results/first.json");
  EXPECT_EQ(state->jobs[1].state, JobState::kQueued);
}

TYPED_TEST(StoreContract, LoadLeavesOutTheResultsOfFinishedJobsButLoadResultsReadsThem) {
  // PARTIAL keeps its shard results (for RetryFailedShards); SUCCEEDED does not.
  const JobRecord done = StoreRecord("done", 1, JobState::kPartial);
  const SaveResultOp r{"done", 0, R"({"v":1})"};
  ASSERT_THAT(this->store_->Commit({&done}, {&r}, true), IsOk());
  auto state = this->store_->Load();
  ASSERT_THAT(state, IsOk());
  EXPECT_EQ(state->results.count("done"), 0u);
  auto results = this->store_->LoadResults("done");
  ASSERT_THAT(results, IsOk());
  ASSERT_EQ(results->size(), 1u);
  auto none = this->store_->LoadResults("no-such-job");
  ASSERT_THAT(none, IsOk());
  EXPECT_TRUE(none->empty());
}

TYPED_TEST(StoreContract, ARefusedRecordIsARecordErrorAndNothingOfTheBatchIsKept) {
  if constexpr (!TypeParam::kRefusesBigRecords) {
    GTEST_SKIP() << TypeParam::kName << " takes a record of any size";
  } else {
    const JobRecord kept = StoreRecord("kept", 1, JobState::kRunning);
    ASSERT_THAT(this->store_->Commit({&kept}, {}, false), IsOk());
    this->kind_.LimitRecordBytes(this->store_.get(), 4096);
    const JobRecord small = StoreRecord("small", 2, JobState::kRunning);
    const SaveResultOp ok_result{"kept", 0, R"({"v":1})"};
    const SaveResultOp big{"big", 0, "\"" + std::string(8192, 'x') + "\""};
    absl::Status s = this->store_->Commit({&small}, {&ok_result, &big}, false);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_EQ(RecordErrorJob(s), "big") << s;
    // The store stays in service: the batch without the refused record commits.
    ASSERT_THAT(this->store_->Commit({&small}, {&ok_result}, false), IsOk());
    auto state = this->store_->Load();
    ASSERT_THAT(state, IsOk());
    ASSERT_EQ(state->jobs.size(), 2u);
    EXPECT_EQ(state->results["kept"].size(), 1u);
    EXPECT_EQ(state->results.count("big"), 0u);
  }
}

TYPED_TEST(StoreContract, ARefusedBatchLeavesNothingBehind) {
  if constexpr (!TypeParam::kRefusesBigRecords) {
    GTEST_SKIP() << TypeParam::kName << " takes a record of any size";
  } else {
    this->kind_.LimitRecordBytes(this->store_.get(), 4096);
    const JobRecord small = StoreRecord("small", 1, JobState::kRunning);
    JobRecord big = StoreRecord("big", 2, JobState::kRunning);
    big.finalizing = true;
    big.final_bytes = std::string(8192, 'x');
    const SaveResultOp r{"small", 0, R"({"v":1})"};
    absl::Status s = this->store_->Commit({&small, &big}, {&r}, true);
    EXPECT_EQ(RecordErrorJob(s), "big") << s;
    auto state = this->store_->Load();
    ASSERT_THAT(state, IsOk());
    EXPECT_TRUE(state->jobs.empty());
    auto results = this->store_->LoadResults("small");
    ASSERT_THAT(results, IsOk());
    EXPECT_TRUE(results->empty());
  }
}

TYPED_TEST(StoreContract, AShardFailedAgainIsOneRowWithItsLatestFailure) {
  const JobRecord job = StoreRecord("j1", 1, JobState::kRunning);
  const SaveFailedShardOp first{"j1", {7, {14, 16}, 1, "first \xc3\xa9"}};
  const SaveFailedShardOp again{"j1", {7, {14, 16}, 3, "again"}};
  const SaveFailedShardOp other{"j1", {5'000'000'000, {1, 2}, 2, "big shard"}};
  StoreWrite w;
  w.jobs = {&job};
  w.failed = {&first, &other};
  ASSERT_THAT(this->store_->Commit(w, false), IsOk());
  StoreWrite w2;
  w2.failed = {&again};
  ASSERT_THAT(this->store_->Commit(w2, true), IsOk());
  auto counts = this->store_->CountRows();
  ASSERT_THAT(counts, IsOk());
  EXPECT_EQ(counts->jobs, 1);
  EXPECT_EQ(counts->failed, 2);
  auto state = this->store_->Load();
  ASSERT_THAT(state, IsOk());
  const std::vector<FailedShard>& failed = state->failed["j1"];
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].shard, 7);
  EXPECT_EQ(failed[0].attempts, 3);
  EXPECT_EQ(failed[0].last_error, "again");
  EXPECT_EQ(failed[0].bounds.start, 14);
  EXPECT_EQ(failed[1].shard, 5'000'000'000);
  EXPECT_EQ(failed[1].bounds.end, 2);
  EXPECT_THAT(this->store_->Compact(), IsOk());
}

TYPED_TEST(StoreContract, InitMetaKeepsTheFirstValue) {
  auto first = this->store_->InitMeta("lease-key", "aaaa");
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(*first, "aaaa");
  auto second = this->store_->InitMeta("lease-key", "bbbb");
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(*second, "aaaa");
  auto other = this->store_->InitMeta("other", std::string("\x01\xff\x80z", 4));
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(*other, std::string("\x01\xff\x80z", 4));
}

TYPED_TEST(StoreContract, DurableCommitsAndFlushSucceedAndKeepTheirOrder) {
  JobRecord job = StoreRecord("j1", 1, JobState::kRunning);
  const SaveResultOp r0{"j1", 0, R"({"v":0})"};
  const SaveResultOp r1{"j1", 1, R"({"v":1})"};
  ASSERT_THAT(this->store_->Commit({&job}, {&r0}, /*durable=*/false), IsOk());
  ASSERT_THAT(this->store_->Commit({}, {&r1}, /*durable=*/true), IsOk());
  ASSERT_THAT(this->store_->Flush(), IsOk());
  auto results = this->store_->LoadResults("j1");
  ASSERT_THAT(results, IsOk());
  EXPECT_EQ(results->size(), 2u);
  // Its done record takes its shard results with it (compaction).
  job.state = JobState::kSucceeded;
  ASSERT_THAT(this->store_->Commit({&job}, {}, /*durable=*/true), IsOk());
  ASSERT_THAT(this->store_->Flush(), IsOk());
  results = this->store_->LoadResults("j1");
  ASSERT_THAT(results, IsOk());
  EXPECT_TRUE(results->empty());
}

TYPED_TEST(StoreContract, ARestartKeepsEverythingCommitted) {
  if constexpr (!TypeParam::kSurvivesRestart) {
    GTEST_SKIP() << TypeParam::kName << " keeps nothing across a restart";
  } else {
    const JobRecord running = StoreRecord("running", 1, JobState::kRunning);
    const JobRecord done = StoreRecord("done", 2, JobState::kSucceeded);
    const SaveResultOp r0{"running", 0, R"({"v":0})"};
    const SaveResultOp r1{"running", 1, R"({"v":1})"};
    ASSERT_THAT(this->store_->Commit({&running, &done}, {&r0}, false), IsOk());
    ASSERT_THAT(this->store_->Commit({}, {&r1}, true), IsOk());
    ASSERT_THAT(this->store_->InitMeta("lease-key", "k1"), IsOk());
    this->Restart();
    auto state = this->store_->Load();
    ASSERT_THAT(state, IsOk());
    ASSERT_EQ(state->jobs.size(), 2u);
    EXPECT_EQ(state->jobs[0].id, "running");
    EXPECT_EQ(state->jobs[1].state, JobState::kSucceeded);
    ASSERT_EQ(state->results["running"].size(), 2u);
    EXPECT_EQ(state->results["running"][1].result_json, R"({"v":1})");
    EXPECT_EQ(*this->store_->InitMeta("lease-key", "k2"), "k1");
    // And it takes new commits where it left off.
    const SaveResultOp again{"running", 1, R"({"v":99})"};
    ASSERT_THAT(this->store_->Commit({}, {&again}, true), IsOk());
    EXPECT_EQ((*this->store_->LoadResults("running"))[1].result_json, R"({"v":1})");
  }
}

}  // namespace
}  // namespace tessera::scheduler
