// The real scheduler on a real PostgreSQL server (--store=postgres) with real
// executors: a job runs to the exact answer across a scheduler SIGKILL and
// restarts on the same database, and the password never reaches a log.
#include <fstream>

#include "absl/strings/numbers.h"
#include "tests/e2e/cluster.h"
#include "tests/util/postgres_server.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::IsOk;

using json = nlohmann::json;

constexpr char kPrimes[] =
    R"({"spec":{"name":"pg","task":"primes","range":{"start":"0","end":"10000000","shardCount":640},"rateLimit":150}})";

class PostgresE2E : public Cluster {
 protected:
  void SetUp() override {
    if (PostgresSkipped()) GTEST_SKIP() << "TESSERA_SKIP_POSTGRES=1";
    Cluster::SetUp();
    absl::Status s = pg_.Start();
    ASSERT_THAT(s, IsOk());
    ASSERT_THAT(pg_.CreateDatabase("tessera"), IsOk());
    password_file_ = dir() + "/pgpass";
    std::ofstream(password_file_) << pg_.password() << "\n";
  }

  int64_t StoredResults(const std::string& job_id) {
    auto n = pg_.Psql("tessera", "SELECT count(*) FROM tessera_results WHERE job_id = '" +
                                     job_id + "'");
    int64_t count = -1;
    if (!n.ok() || !absl::SimpleAtoi(*n, &count)) return -1;
    return count;
  }

  PostgresServer pg_;
  std::string password_file_;
};

TEST_F(PostgresE2E, AJobRunsToTheExactAnswerAcrossSchedulerRestartsOnTheSameDatabase) {
  // First start: the password in the URL.
  // A short lease: the restarted scheduler takes over from the killed one.
  StartScheduler({"--store=postgres", "--postgres-url=" + pg_.UrlWithPassword("tessera"),
                  "--reattach-grace=1s", "--leader-renew=200ms",
                  "--leader-lease-ttl=1s"});
  StartExecutor("exec-1", 2);
  StartExecutor("exec-2", 2);
  const std::string id = Submit(kPrimes).id();
  ASSERT_FALSE(id.empty());
  v1::Job mid = WaitFor(
      id, [](const v1::Job& j) { return j.shards().succeeded() >= 20; },
      absl::Seconds(60));
  ASSERT_GE(mid.shards().succeeded(), 20) << Logs();
  std::cerr << "at the kill: " << mid.shards().succeeded() << " shards shown, "
            << StoredResults(id) << " results stored\n";
  // Some results are committed (the count GetJob shows may run ahead of them).
  // The rate limit (150 shards/s) keeps the job running for about 4 s.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (StoredResults(id) <= 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_GT(StoredResults(id), 0) << Logs();
  ASSERT_LT(Get(id).shards().succeeded(), 640) << "too late to kill mid-job";
  KillScheduler();
  const int64_t durable = StoredResults(id);
  ASSERT_GT(durable, 0);
  ASSERT_LT(durable, 640);

  // Then: the password from a file, the URL without it.
  const std::vector<std::string> flags = {"--store=postgres",
                                          "--postgres-url=" + pg_.Url("tessera"),
                                          "--postgres-password-file=" + password_file_,
                                          "--reattach-grace=1s",
                                          "--leader-renew=200ms",
                                          "--leader-lease-ttl=1s"};
  StartScheduler(flags);
  EXPECT_GE(Get(id).shards().succeeded(), durable) << "committed results were lost";
  v1::Job done = WaitForEnd(id);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_EQ(json::parse(Result(id).result_json())["primes"],
            ReferencePrimeCount(10'000'000));
  // Compaction: a SUCCEEDED job's shard rows went with its done record.
  EXPECT_EQ(StoredResults(id), 0);
  EXPECT_EQ(ResultFiles(), 1);

  // A restart after the end keeps the job and its result, and writes nothing again.
  scheduler()->Signal(SIGTERM);
  ASSERT_EQ(scheduler()->Wait(absl::Seconds(20)), 0) << Logs();
  StartScheduler(flags);
  v1::Job kept = Get(id);
  EXPECT_EQ(kept.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(json::parse(Result(id).result_json())["primes"],
            ReferencePrimeCount(10'000'000));
  EXPECT_EQ(ResultFiles(), 1);
  EXPECT_EQ(MetricValue(Metrics(), "tessera_result_writes_total"), 0) << Metrics();

  const std::string log = scheduler()->Log();
  EXPECT_EQ(log.find(pg_.password()), std::string::npos) << "the password was logged";
  EXPECT_NE(log.find("store postgres (postgresql://tessera:***@127.0.0.1"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("0 migrations applied"), std::string::npos) << log;
}

TEST_F(PostgresE2E, AnUnreachableDatabaseIsAClearErrorAtStartThatHidesThePassword) {
  Process scheduler(
      {TESSERA_SCHEDULER_BIN, "--listen=127.0.0.1:0",
       "--metrics-listen=", "--data-dir=" + dir() + "/data", "--store=postgres",
       absl::StrCat("--postgres-url=postgresql://tessera:", pg_.password(),
                    "@127.0.0.1:", FreePort(), "/tessera?connect_timeout=2")},
      dir() + "/unreachable.log");
  EXPECT_EQ(scheduler.Wait(absl::Seconds(30)), 1) << scheduler.Log();
  const std::string log = scheduler.Log();
  EXPECT_NE(log.find("cannot connect"), std::string::npos) << log;
  EXPECT_EQ(log.find(pg_.password()), std::string::npos) << log;
  // --store=postgres without a URL is refused before anything starts.
  Process no_url({TESSERA_SCHEDULER_BIN, "--listen=127.0.0.1:0", "--metrics-listen=",
                  "--data-dir=" + dir() + "/data2", "--store=postgres"},
                 dir() + "/no-url.log");
  EXPECT_EQ(no_url.Wait(absl::Seconds(30)), 2) << no_url.Log();
  EXPECT_NE(no_url.Log().find("--postgres-url"), std::string::npos);
}

}  // namespace
}  // namespace tessera::testing
