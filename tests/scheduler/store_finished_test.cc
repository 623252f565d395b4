// The reads that keep finished jobs out of the scheduler's memory, in every
// store: LoadUnfinished (unfinished records whole, finished ones as
// summaries), LoadJob, and ListFinishedJobs paging newest first by state,
// queue and labels.
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/scheduler/store_fixture.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

JobRecord Record(const std::string& id, int64_t seq, JobState state,
                 const std::string& queue = "default",
                 std::map<std::string, std::string> labels = {}) {
  JobRecord r = StoreRecord(id, seq, state);
  r.spec.queue = queue;
  r.spec.labels = std::move(labels);
  r.created = kT0 + absl::Seconds(seq);
  if (IsTerminal(state)) r.ended = kT0 + absl::Seconds(seq + 1);
  return r;
}

class StoreFinishedTest : public StoreTest {
 protected:
  void Save(const std::vector<JobRecord>& records) {
    StoreWrite w;
    for (const JobRecord& r : records) w.jobs.push_back(&r);
    ASSERT_THAT(store_->Commit(w, false), IsOk());
  }
  std::vector<std::string> Ids(const JobFilter& filter, int64_t before, int limit) {
    absl::StatusOr<std::vector<JobRecord>> page =
        store_->ListFinishedJobs(filter, before, limit);
    EXPECT_THAT(page, IsOk());
    std::vector<std::string> ids;
    if (page.ok()) {
      for (const JobRecord& r : *page) ids.push_back(r.id);
    }
    return ids;
  }
};

TEST_P(StoreFinishedTest, LoadUnfinishedGivesUnfinishedRecordsAndFinishedSummaries) {
  JobRecord keyed = Record("done", 1, JobState::kSucceeded, "q1");
  keyed.spec.idempotency_key = "k1";
  Save({keyed, Record("running", 2, JobState::kRunning),
        Record("partial", 3, JobState::kPartial, "q2"),
        Record("queued", 4, JobState::kQueued)});
  SaveResultOp result{"running", 0, R"({"n":1})"};
  StoreWrite w;
  w.results = {&result};
  ASSERT_THAT(store_->Commit(w, false), IsOk());

  absl::StatusOr<StoredState> state = store_->LoadUnfinished();
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 2u);
  EXPECT_EQ(state->jobs[0].id, "running");
  EXPECT_EQ(state->jobs[1].id, "queued");
  EXPECT_EQ(state->results["running"].size(), 1u);
  EXPECT_EQ(state->max_seq, 4);
  ASSERT_EQ(state->finished.size(), 2u);
  const FinishedJob& f = state->finished[0];
  EXPECT_EQ(f.id, "done");
  EXPECT_EQ(f.seq, 1);
  EXPECT_EQ(f.state, JobState::kSucceeded);
  EXPECT_EQ(f.queue, "q1");
  EXPECT_EQ(f.created, keyed.created);
  EXPECT_EQ(f.ended, keyed.ended);
  EXPECT_EQ(f.idempotency_key, "k1");
  EXPECT_EQ(state->finished[1].id, "partial");
  EXPECT_EQ(state->finished[1].queue, "q2");
  EXPECT_EQ(state->finished[1].state, JobState::kPartial);
}

TEST_P(StoreFinishedTest, TheHighestSeqCountsAfterItsJobRetired) {
  Save({Record("a", 1, JobState::kSucceeded), Record("b", 9, JobState::kSucceeded)});
  StoreWrite w;
  w.retired = {"b"};
  ASSERT_THAT(store_->Commit(w, false), IsOk());
  absl::StatusOr<StoredState> state = store_->LoadUnfinished();
  ASSERT_THAT(state, IsOk());
  // A retired job's number is not known any more: at least the kept ones are.
  EXPECT_GE(state->max_seq, 1);
  EXPECT_EQ(state->finished.size(), 1u);
}

TEST_P(StoreFinishedTest, LoadJobReadsOneRecordOrNothing) {
  JobRecord r = Record("x", 5, JobState::kFailed);
  r.failed.push_back({1, {2, 4}, 3, "boom"});
  r.location = "/results/x.json";
  Save({r});
  absl::StatusOr<std::optional<JobRecord>> got = store_->LoadJob("x");
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->seq, 5);
  EXPECT_EQ((*got)->state, JobState::kFailed);
  ASSERT_EQ((*got)->failed.size(), 1u);
  EXPECT_EQ((*got)->failed[0].last_error, "boom");
  EXPECT_EQ((*got)->location, "/results/x.json");
  absl::StatusOr<std::optional<JobRecord>> none = store_->LoadJob("nope");
  ASSERT_THAT(none, IsOk());
  EXPECT_FALSE(none->has_value());
}

TEST_P(StoreFinishedTest, ListFinishedJobsPagesNewestFirstAndSkipsUnfinished) {
  std::vector<JobRecord> records;
  for (int i = 1; i <= 10; ++i) {
    records.push_back(Record(absl::StrCat("j", i), i,
                             i % 3 == 0 ? JobState::kRunning : JobState::kSucceeded));
  }
  Save(records);
  EXPECT_EQ(Ids({}, -1, 3), (std::vector<std::string>{"j10", "j8", "j7"}));
  EXPECT_EQ(Ids({}, 6, 3), (std::vector<std::string>{"j5", "j4", "j2"}));
  EXPECT_EQ(Ids({}, 1, 3), (std::vector<std::string>{"j1"}));
  EXPECT_TRUE(Ids({}, 0, 3).empty());
  JobFilter running;
  running.state = JobState::kRunning;
  EXPECT_TRUE(Ids(running, -1, 5).empty());  // unfinished jobs are the core's
}

TEST_P(StoreFinishedTest, ListFinishedJobsFiltersByStateQueueAndLabels) {
  Save({Record("a", 1, JobState::kSucceeded, "q1", {{"team", "x"}}),
        Record("b", 2, JobState::kFailed, "q1", {{"team", "y"}}),
        Record("c", 3, JobState::kSucceeded, "q2", {{"team", "x"}}),
        Record("d", 4, JobState::kCancelled, "q1", {{"team", "x"}, {"env", "prod"}}),
        Record("e", 5, JobState::kSucceeded, "q1")});
  JobFilter ok;
  ok.state = JobState::kSucceeded;
  EXPECT_EQ(Ids(ok, -1, 10), (std::vector<std::string>{"e", "c", "a"}));
  EXPECT_EQ(Ids(ok, 4, 1), (std::vector<std::string>{"c"}));
  JobFilter q1;
  q1.queue = "q1";
  EXPECT_EQ(Ids(q1, -1, 10), (std::vector<std::string>{"e", "d", "b", "a"}));
  q1.state = JobState::kSucceeded;
  EXPECT_EQ(Ids(q1, -1, 10), (std::vector<std::string>{"e", "a"}));
  JobFilter team;
  team.labels = {{"team", "x"}};
  EXPECT_EQ(Ids(team, -1, 2), (std::vector<std::string>{"d", "c"}));
  EXPECT_EQ(Ids(team, 2, 2), (std::vector<std::string>{"a"}));
  team.labels["env"] = "prod";
  EXPECT_EQ(Ids(team, -1, 10), (std::vector<std::string>{"d"}));
}

TEST_P(StoreFinishedTest, ALabelFilterFindsAMatchFarBelowManyOthers) {
  std::vector<JobRecord> records;
  records.push_back(Record("rare", 1, JobState::kSucceeded, "default", {{"k", "rare"}}));
  for (int i = 2; i <= 600; ++i) {
    records.push_back(Record(absl::StrCat("j", i), i, JobState::kSucceeded));
  }
  Save(records);
  JobFilter f;
  f.labels = {{"k", "rare"}};
  EXPECT_EQ(Ids(f, -1, 5), (std::vector<std::string>{"rare"}));
}

TEST_P(StoreFinishedTest, ARecordSavedAgainMovesBetweenStatesAndKeepsItsPlace) {
  Save({Record("a", 1, JobState::kPartial), Record("b", 2, JobState::kSucceeded)});
  Save({Record("a", 1, JobState::kQueued)});  // retried
  EXPECT_EQ(Ids({}, -1, 10), (std::vector<std::string>{"b"}));
  absl::StatusOr<StoredState> state = store_->LoadUnfinished();
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 1u);
  EXPECT_EQ(state->jobs[0].id, "a");
  Save({Record("a", 1, JobState::kSucceeded)});
  EXPECT_EQ(Ids({}, -1, 10), (std::vector<std::string>{"b", "a"}));
}

TEST(SqliteStoreMigrationTest, ASchemaTwoDatabaseGetsItsSummaryColumnsFilled) {
  const ::tessera::testing::TempDir tmp("tessera-fin");
  const std::string dir = tmp.path();
  JobRecord done = Record("done", 4, JobState::kSucceeded, "q9");
  done.spec.idempotency_key = "k";
  {
    // What a scheduler of schema version 2 left behind.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open((dir + "/tessera.db").c_str(), &raw), SQLITE_OK);
    const std::string sql = absl::StrCat(
        "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL;"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
        "state INTEGER NOT NULL, record TEXT NOT NULL);"
        "CREATE INDEX jobs_by_seq ON jobs (seq);"
        "INSERT INTO meta VALUES ('schema_version', '2');"
        "INSERT INTO jobs VALUES ('done', 4, 2, '",
        EncodeJobRecord(done), "');");
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(raw);
    sqlite3_close(raw);
  }
  {
    auto store = SqliteStore::Open(dir);
    ASSERT_THAT(store, IsOk());
    absl::StatusOr<StoredState> state = (*store)->LoadUnfinished();
    ASSERT_THAT(state, IsOk());
    ASSERT_EQ(state->finished.size(), 1u);
    EXPECT_EQ(state->finished[0].queue, "q9");
    EXPECT_EQ(state->finished[0].created, done.created);
    EXPECT_EQ(state->finished[0].ended, done.ended);
    EXPECT_EQ(state->finished[0].idempotency_key, "k");
    JobFilter q9;
    q9.queue = "q9";
    absl::StatusOr<std::vector<JobRecord>> page = (*store)->ListFinishedJobs(q9, -1, 5);
    ASSERT_THAT(page, IsOk());
    EXPECT_EQ(page->size(), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryStore, StoreFinishedTest, EveryStoreKind(), StoreKindName);

}  // namespace
}  // namespace tessera::scheduler
