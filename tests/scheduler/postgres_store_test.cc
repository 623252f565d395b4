// The PostgreSQL store's own behaviour beyond the Store contract: passwords
// kept out of messages, reconnecting after the server restarts, the schema's
// version and migrations, the fence, and SQLSTATEs mapped as store.h says.
#include "scheduler/store/postgres_store.h"

#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "scheduler/store/postgres_conninfo.h"
#include "scheduler/store/postgres_leader.h"
#include "tests/util/postgres_server.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::Not;

using ::tessera::testing::PostgresServer;

TEST(RedactConninfoTest, HidesThePasswordOfAUri) {
  EXPECT_EQ(RedactConninfo("postgresql://alice:s3cret@db.example:5432/tessera"),
            "postgresql://alice:***@db.example:5432/tessera");
  EXPECT_EQ(RedactConninfo("postgres://alice:p@ss@w0rd@db/x?sslmode=require"),
            "postgres://alice:***@db/x?sslmode=require");
  EXPECT_EQ(
      RedactConninfo("postgresql://db/x?user=a&password=s3cret&sslmode=verify-full"),
      "postgresql://db/x?user=a&password=***&sslmode=verify-full");
  EXPECT_EQ(RedactConninfo("postgresql://alice@db/x"), "postgresql://alice@db/x");
  EXPECT_EQ(RedactConninfo("postgresql://alice:s3cret@db"), "postgresql://alice:***@db");
}

TEST(RedactConninfoTest, HidesThePasswordOfKeywordConninfo) {
  EXPECT_EQ(RedactConninfo("host=db user=alice password=s3cret dbname=tessera"),
            "host=db user=alice password=*** dbname=tessera");
  EXPECT_EQ(RedactConninfo("host=db password = 'it\\'s a \\\\ secret' port=5432"),
            "host=db password = *** port=5432");
  EXPECT_EQ(RedactConninfo("PASSWORD=s3cret"), "PASSWORD=***");
  EXPECT_EQ(RedactConninfo("host=db dbname=x"), "host=db dbname=x");
  // Unparseable: hidden from the first unclear point.
  EXPECT_EQ(RedactConninfo("host=db password='unterminated s3cret"),
            "host=db password=***");
  EXPECT_EQ(RedactConninfo("host=db garbage s3cret"), "host=db garbage ***");
}

TEST(ReadPasswordFileTest, ReadsTheFirstLineAndNamesOnlyTheFile) {
  const ::tessera::testing::TempDir tmp("tessera-pwfile");
  const std::string dir = tmp.path();
  { std::ofstream(dir + "/pw") << "s3cret-pw\r\nsecond line\n"; }
  auto pw = ReadPasswordFile(dir + "/pw");
  ASSERT_THAT(pw, IsOk());
  EXPECT_EQ(*pw, "s3cret-pw");
  auto missing = ReadPasswordFile(dir + "/none");
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(absl::StrContains(missing.status().message(), dir + "/none"));
}

// Each test has a server of its own: some stop it.
class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::tessera::testing::PostgresSkipped()) GTEST_SKIP() << "TESSERA_SKIP_POSTGRES=1";
    absl::Status s = server_.Start();
    ASSERT_THAT(s, IsOk());
    ASSERT_THAT(server_.CreateDatabase("tessera"), IsOk());
  }
  PostgresOptions Options() const {
    PostgresOptions o;
    o.url = server_.Url("tessera");
    o.password = server_.password();
    return o;
  }
  absl::StatusOr<std::unique_ptr<PostgresStore>> Open() {
    return PostgresStore::Open(Options());
  }

  PostgresServer server_;
};

JobRecord Record(const std::string& id, int64_t seq) {
  JobRecord r;
  r.id = id;
  r.seq = seq;
  r.state = JobState::kRunning;
  r.spec.task = "noop";
  r.spec.range = {0, 10, 0, 2};
  return r;
}

TEST_F(PostgresStoreTest, ThePasswordNeverAppearsInAnError) {
  // A wrong password, in the URL, from options: refused, and neither shows.
  const std::string wrong = "wrong-" + server_.password();
  PostgresOptions o = Options();
  o.url = absl::StrCat("postgresql://tessera:", wrong, "@127.0.0.1:", server_.port(),
                       "/tessera");
  auto refused = PostgresStore::Open(o);
  ASSERT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(absl::StrContains(refused.status().ToString(), wrong));
  EXPECT_FALSE(absl::StrContains(refused.status().ToString(), server_.password()));
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "tessera:***@127.0.0.1"))
      << refused.status();
  // The right password in the URL, to a database that is not there.
  o.url = server_.UrlWithPassword("nosuchdb");
  auto missing = PostgresStore::Open(o);
  ASSERT_THAT(missing, Not(IsOk()));
  EXPECT_FALSE(absl::StrContains(missing.status().ToString(), server_.password()))
      << missing.status();
  // And a server that is gone, with the password in keyword form.
  o.url = absl::StrCat("host=127.0.0.1 port=", ::tessera::testing::FreePort(),
                       " dbname=tessera user=tessera password=", server_.password());
  o.connect_timeout_seconds = 2;
  auto gone = PostgresStore::Open(o);
  ASSERT_THAT(gone, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(absl::StrContains(gone.status().ToString(), server_.password()));
  EXPECT_TRUE(absl::StrContains(gone.status().message(), "password=***"))
      << gone.status();
}

TEST_F(PostgresStoreTest, AServerStoppedMidRunIsUnavailableAndTheNextCommitReconnects) {
  auto store = Open();
  ASSERT_THAT(store, IsOk());
  const JobRecord job = Record("j1", 1);
  const SaveResultOp r0{"j1", 0, R"({"v":0})"};
  ASSERT_THAT((*store)->Commit({&job}, {&r0}, true), IsOk());
  ASSERT_THAT(server_.Stop(), IsOk());
  const SaveResultOp r1{"j1", 1, R"({"v":1})"};
  absl::Status down = (*store)->Commit({}, {&r1}, true);
  EXPECT_THAT(down, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(absl::StrContains(down.ToString(), server_.password()));
  // Still down: the reconnect fails, as UNAVAILABLE too.
  absl::Status still = (*store)->Commit({}, {&r1}, true);
  EXPECT_THAT(still, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT((*store)->Load(), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(server_.Start(), IsOk());
  absl::Status back = (*store)->Commit({}, {&r1}, true);
  ASSERT_THAT(back, IsOk());
  auto results = (*store)->LoadResults("j1");
  ASSERT_THAT(results, IsOk());
  EXPECT_EQ(results->size(), 2u);
}

TEST_F(PostgresStoreTest, RecordsTheSchemaVersionAndASecondStartMigratesNothing) {
  {
    auto store = Open();
    ASSERT_THAT(store, IsOk());
    EXPECT_EQ((*store)->migrations_applied(), PostgresStore::SchemaVersion());
    const JobRecord job = Record("j1", 1);
    const SaveResultOp r0{"j1", 0, R"({"v":0})"};
    ASSERT_THAT((*store)->Commit({&job}, {&r0}, true), IsOk());
  }
  auto version = server_.Psql("tessera",
                              "SELECT convert_from(value, 'UTF8') FROM tessera_meta "
                              "WHERE key = 'schema_version'");
  ASSERT_THAT(version, IsOk());
  EXPECT_EQ(*version, std::to_string(PostgresStore::SchemaVersion()));
  auto again = Open();
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ((*again)->migrations_applied(), 0);
  auto state = (*again)->Load();
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 1u);
  EXPECT_EQ(state->results["j1"].size(), 1u);
}

TEST_F(PostgresStoreTest, ADatabaseOfSchemaVersionOneIsMigratedAndKeepsItsJobs) {
  const JobRecord old = Record("old", 7);
  {
    auto store = Open();
    ASSERT_THAT(store, IsOk());
    const SaveResultOp r0{"old", 0, R"({"n":1})"};
    ASSERT_THAT((*store)->Commit({&old}, {&r0}, true), IsOk());
  }
  // What a scheduler of schema version 1 left behind.
  ASSERT_THAT(
      server_.Psql("tessera",
                   "DROP TABLE tessera_failed_shards, tessera_leader; "
                   "DROP INDEX tessera_jobs_by_state, tessera_jobs_by_queue; "
                   "ALTER TABLE tessera_jobs DROP COLUMN epoch, DROP COLUMN queue, "
                   "DROP COLUMN created, DROP COLUMN ended, DROP COLUMN idem_key; "
                   "UPDATE tessera_meta SET "
                   "value = convert_to('1', 'UTF8') WHERE key = 'schema_version'"),
      IsOk());
  auto store = Open();
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ((*store)->migrations_applied(), PostgresStore::SchemaVersion() - 1);
  auto state = (*store)->Load();
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 1u);
  EXPECT_EQ(state->jobs[0].seq, 7);
  EXPECT_EQ(state->results["old"].size(), 1u);
  const SaveFailedShardOp f{"old", {1, {5, 10}, 1, "boom"}};
  StoreWrite w;
  w.failed = {&f};
  ASSERT_THAT((*store)->Commit(w, true), IsOk());
  auto n = server_.Psql("tessera", "SELECT COUNT(*) FROM tessera_failed_shards");
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, "1");
}

TEST_F(PostgresStoreTest, ASchemaThreeDatabaseGetsItsFinishedJobsSummaryColumnsFilled) {
  JobRecord done = Record("done", 4);
  done.state = JobState::kSucceeded;
  done.spec.queue = "q9";
  done.spec.idempotency_key = "k";
  done.created = absl::FromUnixSeconds(1'700'000'000);
  done.ended = done.created + absl::Seconds(5);
  {
    auto store = Open();
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->Commit({&done}, {}, true), IsOk());
  }
  // What a scheduler of schema version 3 left behind.
  ASSERT_THAT(
      server_.Psql("tessera",
                   "DROP INDEX tessera_jobs_by_state, tessera_jobs_by_queue; "
                   "ALTER TABLE tessera_jobs DROP COLUMN queue, DROP COLUMN created, "
                   "DROP COLUMN ended, DROP COLUMN idem_key; UPDATE tessera_meta SET "
                   "value = convert_to('3', 'UTF8') WHERE key = 'schema_version'"),
      IsOk());
  auto store = Open();
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ((*store)->migrations_applied(), PostgresStore::SchemaVersion() - 3);
  absl::StatusOr<StoredState> state = (*store)->LoadUnfinished();
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->finished.size(), 1u);
  EXPECT_EQ(state->finished[0].queue, "q9");
  EXPECT_EQ(state->finished[0].created, done.created);
  EXPECT_EQ(state->finished[0].ended, done.ended);
  EXPECT_EQ(state->finished[0].idempotency_key, "k");
  EXPECT_EQ(state->max_seq, 4);
  JobFilter q9;
  q9.queue = "q9";
  absl::StatusOr<std::vector<JobRecord>> page = (*store)->ListFinishedJobs(q9, -1, 5);
  ASSERT_THAT(page, IsOk());
  EXPECT_EQ(page->size(), 1u);
}

TEST_F(PostgresStoreTest, SchedulersStartingAtOnceMigrateOnce) {
  std::vector<absl::StatusOr<std::unique_ptr<PostgresStore>>> stores(4);
  std::vector<std::thread> threads;
  for (auto& s : stores) threads.emplace_back([&s, this] { s = Open(); });
  for (auto& t : threads) t.join();
  int applied = 0;
  for (auto& s : stores) {
    ASSERT_THAT(s, IsOk());
    applied += (*s)->migrations_applied();
  }
  EXPECT_EQ(applied, PostgresStore::SchemaVersion());
}

TEST_F(PostgresStoreTest, RefusesASchemaNewerThanItReads) {
  ASSERT_THAT(Open(), IsOk());
  ASSERT_THAT(server_.Psql("tessera",
                           "UPDATE tessera_meta SET value = convert_to('99', 'UTF8') "
                           "WHERE key = 'schema_version'"),
              IsOk());
  auto store = Open();
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(absl::StrContains(store.status().message(), "schema version 99"));
}

TEST_F(PostgresStoreTest, AFenceThatSaysNoCommitsNothing) {
  auto store = Open();
  ASSERT_THAT(store, IsOk());
  const JobRecord job = Record("j1", 1);
  (*store)->SetFenceSql("SELECT false");
  absl::Status fenced = (*store)->Commit({&job}, {}, true);
  EXPECT_THAT(fenced, StatusIs(absl::StatusCode::kAborted));
  EXPECT_TRUE(absl::StrContains(fenced.message(), "fenced"));
  EXPECT_TRUE((*store)->Load()->jobs.empty());
  (*store)->SetFenceSql("SELECT true");
  ASSERT_THAT((*store)->Commit({&job}, {}, true), IsOk());
  EXPECT_EQ((*store)->Load()->jobs.size(), 1u);
}

TEST_F(PostgresStoreTest, TheLeaseHasOneHolderAndADeposedLeaderCommitsNothing) {
  auto a_store = Open();
  auto b_store = Open();
  ASSERT_THAT(a_store, IsOk());
  ASSERT_THAT(b_store, IsOk());
  PostgresLeaderLease a(Options(), "replica-a", "127.0.0.1:1", absl::Seconds(1));
  PostgresLeaderLease b(Options(), "replica-b", "127.0.0.1:2", absl::Seconds(1));
  ASSERT_EQ(*a.TryAcquire(), 1);
  EXPECT_EQ(*b.TryAcquire(), 0) << "a live lease is not taken";
  auto seen = b.Current();
  ASSERT_THAT(seen, IsOk());
  EXPECT_EQ(seen->holder, "replica-a");
  EXPECT_EQ(seen->address, "127.0.0.1:1");
  EXPECT_TRUE(seen->live);
  EXPECT_TRUE(*a.Renew(1));
  (*a_store)->SetFenceSql(a.FenceSql(1), 1);
  const JobRecord job = Record("j1", 1);
  ASSERT_THAT((*a_store)->Commit({&job}, {}, true), IsOk());

  // a stops renewing (paused): after the TTL, b takes over at epoch 2.
  absl::SleepFor(absl::Milliseconds(1200));
  ASSERT_EQ(*b.TryAcquire(), 2);
  EXPECT_FALSE(*a.Renew(1)) << "a lease taken over is never extended";
  JobRecord late = Record("j1", 1);
  late.state = JobState::kSucceeded;
  absl::Status fenced = (*a_store)->Commit({&late}, {}, true);
  EXPECT_THAT(fenced, StatusIs(absl::StatusCode::kAborted));
  EXPECT_TRUE(absl::StrContains(fenced.message(), "fenced")) << fenced;
  auto state = (*b_store)->Load();
  ASSERT_THAT(state, IsOk());
  ASSERT_EQ(state->jobs.size(), 1u);
  EXPECT_EQ(state->jobs[0].state, JobState::kRunning) << "the deposed write was kept";

  (*b_store)->SetFenceSql(b.FenceSql(2), 2);
  ASSERT_THAT((*b_store)->Commit({&late}, {}, true), IsOk());
  EXPECT_EQ(*server_.Psql("tessera", "SELECT epoch FROM tessera_jobs WHERE id = 'j1'"),
            "2");
  // A lease given back is taken at once, at the next epoch.
  ASSERT_THAT(b.Resign(2), IsOk());
  EXPECT_EQ(*a.TryAcquire(), 3);
  EXPECT_THAT((*b_store)->Commit({&late}, {}, true), Not(IsOk()));
}

TEST_F(PostgresStoreTest, MapsDiskFullAndSerializationFailuresAsStoreHSays) {
  ASSERT_THAT(server_.Psql("tessera",
                           "CREATE FUNCTION fail_with(code text) RETURNS boolean "
                           "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected' "
                           "USING ERRCODE = code; END $$"),
              IsOk());
  auto store = Open();
  ASSERT_THAT(store, IsOk());
  const JobRecord job = Record("j1", 1);
  for (const auto& [sqlstate, code] :
       {std::pair{"53100", absl::StatusCode::kResourceExhausted},
        std::pair{"40001", absl::StatusCode::kUnavailable},
        std::pair{"40P01", absl::StatusCode::kUnavailable},
        std::pair{"57P01", absl::StatusCode::kUnavailable},
        std::pair{"42501", absl::StatusCode::kFailedPrecondition}}) {
    // The fence runs inside the transaction, so it stands for any statement.
    (*store)->SetFenceSql(absl::StrCat("SELECT fail_with('", sqlstate, "')"));
    absl::Status s = (*store)->Commit({&job}, {}, true);
    EXPECT_EQ(s.code(), code) << sqlstate << ": " << s;
    EXPECT_TRUE(absl::StrContains(s.message(), sqlstate)) << s;
  }
  (*store)->SetFenceSql("");
  ASSERT_THAT((*store)->Commit({&job}, {}, true), IsOk());
}

TEST_F(PostgresStoreTest, DurableCommitsWithSyncNormalAreReadBackAfterReopening) {
  PostgresOptions o = Options();
  o.sync = "normal";
  {
    auto store = PostgresStore::Open(o);
    ASSERT_THAT(store, IsOk());
    const JobRecord job = Record("j1", 1);
    const SaveResultOp r0{"j1", 0, R"({"v":0})"};
    const SaveResultOp r1{"j1", 1, R"({"v":1})"};
    ASSERT_THAT((*store)->Commit({&job}, {&r0}, false), IsOk());
    ASSERT_THAT((*store)->Flush(), IsOk());
    ASSERT_THAT((*store)->Commit({}, {&r1}, true), IsOk());
  }
  auto store = PostgresStore::Open(o);
  ASSERT_THAT(store, IsOk());
  auto results = (*store)->LoadResults("j1");
  ASSERT_THAT(results, IsOk());
  EXPECT_EQ(results->size(), 2u);
  o.sync = "sometimes";
  EXPECT_THAT(PostgresStore::Open(o), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tessera::scheduler
