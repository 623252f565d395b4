// Compaction and retirement in every store: a SUCCEEDED job's shard results go
// with its "done" record; a finished job's failed-shard rows go into its
// record; a retired job leaves no row at all.
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>

#include "gtest/gtest.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/scheduler/store_fixture.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;

class StoreRetentionTest : public StoreTest {
 protected:
  Store::RowCounts Rows() {
    absl::StatusOr<Store::RowCounts> n = store_->CountRows();
    EXPECT_THAT(n, IsOk());
    return n.ok() ? *n : Store::RowCounts{};
  }
  absl::Status Write(std::vector<const JobRecord*> jobs,
                     std::vector<const SaveResultOp*> results = {},
                     std::vector<const SaveFailedShardOp*> failed = {},
                     std::vector<std::string> retired = {}) {
    StoreWrite w;
    w.jobs = std::move(jobs);
    w.results = std::move(results);
    w.failed = std::move(failed);
    w.retired = std::move(retired);
    return store_->Commit(w, /*durable=*/false);
  }
};

TEST_P(StoreRetentionTest, AfterDoneTheShardRowsOfASucceededJobAreGone) {
  JobRecord ok = StoreRecord("ok", 1, JobState::kRunning);
  JobRecord partial = StoreRecord("partial", 2, JobState::kRunning);
  SaveResultOp r0{"ok", 0, R"({"n":1})"}, r1{"ok", 1, R"({"n":2})"};
  SaveResultOp p0{"partial", 0, R"({"n":3})"};
  SaveFailedShardOp p1{"partial", {1, {5, 10}, 3, "boom"}};
  ASSERT_THAT(Write({&ok, &partial}, {&r0, &r1, &p0}, {&p1}), IsOk());
  EXPECT_EQ(Rows().results, 3);
  EXPECT_EQ(Rows().failed, 1);
  // A restart of the unfinished jobs reads both kinds of rows back.
  absl::StatusOr<StoredState> loaded = store_->Load();
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->results["ok"].size(), 2u);
  ASSERT_EQ(loaded->failed["partial"].size(), 1u);
  EXPECT_EQ(loaded->failed["partial"][0].last_error, "boom");
  EXPECT_EQ(loaded->failed["partial"][0].bounds.end, 10);

  // "done": SUCCEEDED with its result's location, in one commit.
  ok.state = JobState::kSucceeded;
  ok.location = "/r/ok.json";
  partial.state = JobState::kPartial;
  partial.location = "/r/partial.json";
  partial.failed = {p1.shard};  // the finished record lists its failed shards
  ASSERT_THAT(Write({&ok, &partial}), IsOk());
  absl::StatusOr<std::vector<StoredResult>> ok_rows = store_->LoadResults("ok");
  ASSERT_THAT(ok_rows, IsOk());
  EXPECT_TRUE(ok_rows->empty());
  // PARTIAL keeps its results for RetryFailedShards; its failed shards are in
  // its record now.
  absl::StatusOr<std::vector<StoredResult>> partial_rows = store_->LoadResults("partial");
  ASSERT_THAT(partial_rows, IsOk());
  EXPECT_EQ(partial_rows->size(), 1u);
  EXPECT_EQ(Rows().results, 1);
  EXPECT_EQ(Rows().failed, 0);
  loaded = store_->Load();
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->jobs.size(), 2u);
  EXPECT_EQ(loaded->jobs[1].failed.size(), 1u);
}

TEST_P(StoreRetentionTest, AfterRetirementAJobHasNoRowsAtAll) {
  JobRecord gone = StoreRecord("gone", 1, JobState::kRunning);
  JobRecord kept = StoreRecord("kept", 2, JobState::kRunning);
  SaveResultOp g0{"gone", 0, R"({"n":1})"}, k0{"kept", 0, R"({"n":1})"};
  SaveFailedShardOp g1{"gone", {1, {5, 10}, 1, "boom"}};
  ASSERT_THAT(Write({&gone, &kept}, {&g0, &k0}, {&g1}), IsOk());
  gone.state = JobState::kFailed;
  ASSERT_THAT(Write({&gone}), IsOk());
  ASSERT_THAT(Write({}, {}, {}, {"gone"}), IsOk());
  EXPECT_EQ(Rows().jobs, 1);
  EXPECT_EQ(Rows().results, 1);
  EXPECT_EQ(Rows().failed, 0);
  absl::StatusOr<StoredState> loaded = store_->Load();
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->jobs.size(), 1u);
  EXPECT_EQ(loaded->jobs[0].id, "kept");
  EXPECT_TRUE(store_->LoadResults("gone")->empty());
  // Its record and its retirement in one batch leave nothing either.
  JobRecord brief = StoreRecord("brief", 3, JobState::kCancelled);
  ASSERT_THAT(Write({&brief}, {}, {}, {"brief"}), IsOk());
  EXPECT_EQ(Rows().jobs, 1);
  EXPECT_THAT(store_->Compact(), IsOk());
}

INSTANTIATE_TEST_SUITE_P(EveryStore, StoreRetentionTest, EveryStoreKind(), StoreKindName);

int64_t FileBytes(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

TEST(SqliteStoreSpaceTest, CompactHandsTheSpaceOfRetiredJobsBack) {
  const ::tessera::testing::TempDir tmp("tessera-retire");
  const std::string dir = tmp.path();
  const std::string db = dir + "/tessera.db";
  {
    auto store = SqliteStore::Open(dir, "normal");
    ASSERT_THAT(store, IsOk());
    std::vector<JobRecord> records;
    for (int i = 0; i < 2000; ++i) {
      records.push_back(StoreRecord(absl::StrCat("job", i), i + 1, JobState::kCancelled));
      records.back().message = std::string(2000, 'x');
    }
    std::vector<const JobRecord*> ptrs;
    for (const JobRecord& r : records) ptrs.push_back(&r);
    ASSERT_THAT((*store)->Commit(ptrs, {}, /*durable=*/false), IsOk());
    ASSERT_THAT((*store)->Compact(), IsOk());
    const int64_t full = FileBytes(db);
    ASSERT_GT(full, 2000 * 2000);
    StoreWrite retire;
    for (const JobRecord& r : records) retire.retired.push_back(r.id);
    ASSERT_THAT((*store)->Commit(retire, /*durable=*/false), IsOk());
    ASSERT_THAT((*store)->Compact(), IsOk());
    // The file shrinks (incremental vacuum), and the WAL is truncated.
    EXPECT_LT(FileBytes(db), full / 4) << full;
    EXPECT_EQ(FileBytes(db + "-wal"), 0);
  }
}

TEST(SqliteStoreSpaceTest, ADatabaseOfSchemaVersionOneIsMigratedAndKeepsItsJobs) {
  const ::tessera::testing::TempDir tmp("tessera-retire");
  const std::string dir = tmp.path();
  const std::string db = dir + "/tessera.db";
  const JobRecord old = StoreRecord("old", 7, JobState::kRunning);
  {
    // What a scheduler of schema version 1 left behind (no auto-vacuum).
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
    const std::string sql = absl::StrCat(
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
        "state INTEGER NOT NULL, record TEXT NOT NULL);"
        "CREATE INDEX jobs_by_seq ON jobs (seq);"
        "CREATE TABLE results (job_id TEXT NOT NULL, shard INTEGER NOT NULL, "
        "result TEXT NOT NULL, PRIMARY KEY (job_id, shard)) WITHOUT ROWID;"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "INSERT INTO results VALUES ('old', 0, '{\"n\":1}');"
        "INSERT INTO jobs VALUES ('old', 7, 1, '",
        EncodeJobRecord(old), "');");
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(raw);
    sqlite3_close(raw);
  }
  {
    auto store = SqliteStore::Open(dir);
    ASSERT_THAT(store, IsOk());
    absl::StatusOr<StoredState> loaded = (*store)->Load();
    ASSERT_THAT(loaded, IsOk());
    ASSERT_EQ(loaded->jobs.size(), 1u);
    EXPECT_EQ(loaded->jobs[0].seq, 7);
    EXPECT_EQ(loaded->results["old"].size(), 1u);
    SaveFailedShardOp f{"old", {1, {5, 10}, 1, "boom"}};
    StoreWrite w;
    w.failed = {&f};
    ASSERT_THAT((*store)->Commit(w, /*durable=*/true), IsOk());
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  auto one = [raw](const char* sql) {
    sqlite3_stmt* q = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(raw, sql, -1, &q, nullptr) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    return out;
  };
  EXPECT_EQ(one("SELECT value FROM meta WHERE key = 'schema_version'"), "3");
  // Schema 3: the summary columns (filled from the records:
  // store_finished_test.cc).
  EXPECT_EQ(one("SELECT COUNT(*) FROM jobs WHERE queue = 'default' AND idem_key = ''"),
            "1");
  EXPECT_EQ(one("PRAGMA auto_vacuum"), "2");  // incremental
  EXPECT_EQ(one("SELECT COUNT(*) FROM failed_shards"), "1");
  sqlite3_close(raw);
}

}  // namespace
}  // namespace tessera::scheduler
