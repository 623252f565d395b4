// Nothing lost, nothing counted twice: the real binaries killed at chosen
// moments (scheduler and executors), stopped with SIGSTOP, fed failing shards
// and broken data dirs; answers compared with a single-process reference.
#include <sqlite3.h>

#include "tests/e2e/cluster.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::IsOk;

using json = nlohmann::json;

constexpr char kPrimes640[] =
    R"({"spec":{"name":"durable","task":"primes","range":{"start":"0","end":"10000000","shardCount":640}}})";

int64_t StoredResults(const std::string& db_path, const std::string& job_id) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return -1;
  }
  sqlite3_stmt* q = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM results WHERE job_id = ?", -1, &q,
                         nullptr) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, job_id.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return n;
}

using Durability = Cluster;

TEST_F(Durability, SchedulerKilledEarlyMidwayAndWhileFinalizingFinishesWithOneWrite) {
  // The persist delay keeps the job in "result written, not yet marked done"
  // long enough to kill the scheduler right there.
  const std::vector<std::string> flags = {"--reattach-grace=1s",
                                          "--fault-persist-delay=3s"};
  StartScheduler(flags);
  StartExecutor("exec-1", 2);
  StartExecutor("exec-2", 2);
  v1::Job job = Submit(kPrimes640);
  const std::string id = job.id();

  for (int64_t at : {10, 320}) {
    v1::Job mid = WaitFor(
        id, [at](const v1::Job& j) { return j.shards().succeeded() >= at; },
        absl::Seconds(60));
    ASSERT_GE(mid.shards().succeeded(), at) << Logs();
    ASSERT_LT(mid.shards().succeeded(), 640) << "too late to kill mid-job";
    KillScheduler();
    // What was committed when it died must all be there after the restart
    // (results accepted but not yet committed were never acked: executors
    // re-send them, so the count may dip below what GetJob showed before).
    const int64_t durable = StoredResults(dir() + "/data/tessera.db", id);
    ASSERT_GT(durable, 0);
    StartScheduler(flags);
    v1::Job back = Get(id);
    EXPECT_GE(back.shards().succeeded(), durable) << "committed results were lost";
  }
  // All shards in, the result being persisted: kill inside the window.
  v1::Job finalizing = WaitFor(
      id, [](const v1::Job& j) { return j.shards().succeeded() == 640; },
      absl::Seconds(120));
  ASSERT_EQ(finalizing.state(), v1::JOB_STATE_RUNNING) << Logs();
  absl::SleepFor(absl::Milliseconds(1500));  // the write happens; "done" does not
  ASSERT_EQ(Get(id).state(), v1::JOB_STATE_RUNNING);
  ASSERT_EQ(ResultFiles(), 1);
  KillScheduler();
  StartScheduler(flags);

  v1::Job done = WaitForEnd(id);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  v1::GetResultResponse r = Result(id);
  EXPECT_EQ(json::parse(r.result_json())["primes"], ReferencePrimeCount(10'000'000));
  EXPECT_EQ(ResultFiles(), 1);
  // The restarted scheduler found the bytes in place and did not write again.
  EXPECT_EQ(MetricValue(Metrics(), "tessera_result_writes_total"), 0) << Metrics();
  // Its shard results went with its "done" record (compaction): the sum above
  // shows each counted once.
  EXPECT_EQ(StoredResults(dir() + "/data/tessera.db", id), 0);
}

TEST_F(Durability, ExecutorsKilledAgainAndAgainCountEveryShardOnce) {
  StartScheduler();
  std::vector<Process*> live = {StartExecutor("e0", 2), StartExecutor("e1", 2)};
  // Shards of 10 ms (about 1.6 s in all on 4 slots), so that every kill lands
  // while the victim runs shards; a double count would show in the sum.
  v1::Job job = Submit(R"({"spec":{"name":"killed","task":"sleep","params":{"ms":1},)"
                       R"("range":{"start":"0","end":"6400","shardCount":640}}})");
  int next = 2;
  for (int round = 1; round <= 4; ++round) {
    const int64_t at = round * 100;
    v1::Job mid = WaitFor(
        job.id(), [at](const v1::Job& j) { return j.shards().succeeded() >= at; },
        absl::Seconds(60));
    ASSERT_GE(mid.shards().succeeded(), at) << Logs();
    Process* victim = live.front();
    live.erase(live.begin());
    victim->Signal(SIGKILL);
    ASSERT_EQ(victim->Wait(absl::Seconds(10)), 128 + SIGKILL);
    live.push_back(StartExecutor(absl::StrCat("e", next++), 2));
  }
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  json result = json::parse(Result(job.id()).result_json());
  EXPECT_EQ(result["items"], 6400);
  EXPECT_EQ(result["_metadata"]["shards"]["succeeded"], 640);
  const std::string metrics = Metrics();
  EXPECT_EQ(
      MetricValue(metrics, R"(tessera_shards_completed_total{outcome="succeeded"})"), 640)
      << metrics;
  EXPECT_GE(MetricValue(metrics, "tessera_shards_requeued_total"), 1);
  // Compacted with the "done" record; the counts above show each shard once.
  EXPECT_EQ(StoredResults(dir() + "/data/tessera.db", job.id()), 0);
}

// A program that fails chosen shards: shard 1 twice (exit 75, "retry me"),
// shard 3 until $FIXED exists. It logs each attempt with a timestamp.
void WriteFlakyTask(const std::string& dir) {
  // clang-format off
  std::ofstream(dir + "/flaky.sh") << R"SH(#!/bin/sh
echo "$TESSERA_JOB_ID $TESSERA_SHARD_INDEX $TESSERA_ATTEMPT $(date +%s.%N)" >> "$ATTEMPTS"
if [ "$TESSERA_SHARD_INDEX" = 1 ] && [ "$TESSERA_ATTEMPT" -lt 3 ]; then
  echo "shard 1 is flaky (attempt $TESSERA_ATTEMPT)" >&2; exit 75
fi
if [ "$TESSERA_SHARD_INDEX" = 3 ] && [ ! -e "$FIXED" ]; then
  echo "shard 3 hits a bug" >&2; exit 75
fi
echo "{\"result\": {\"items\": $((TESSERA_RANGE_END - TESSERA_RANGE_START))}}"
)SH";
  // clang-format on
  json tasks = {
      {"tasks",
       {{"flaky",
         {{"command", {"/bin/sh", dir + "/flaky.sh"}},
          {"env", {{"ATTEMPTS", dir + "/attempts.log"}, {"FIXED", dir + "/fixed"}}},
          {"timeout", "30s"}}}}}};
  std::ofstream(dir + "/tasks.json") << tasks.dump();
}

std::string FlakyJob(const std::string& failure_policy) {
  return absl::StrCat(
      R"({"spec":{"task":"flaky","range":{"start":"0","end":"50","shardSize":"10"},)",
      R"("retry":{"maxAttempts":3,"initialBackoff":"0.3s","multiplier":2,"jitter":0.1})",
      failure_policy, "}}");
}

TEST_F(Durability,
       FailingShardsRetryWithBackoffFailFastOrEndPartialThenRetryFailedShards) {
  WriteFlakyTask(dir());
  StartScheduler();
  StartExecutor("flaky-exec", 4, {"--tasks-file=" + dir() + "/tasks.json"});

  // Fail fast: shard 3 runs out of attempts and fails the job.
  v1::Job fast = Submit(FlakyJob(""));
  v1::Job failed = WaitForEnd(fast.id(), absl::Seconds(60));
  ASSERT_EQ(failed.state(), v1::JOB_STATE_FAILED) << failed.DebugString() << Logs();
  EXPECT_NE(failed.message().find("shard 3 failed after 3 attempts"), std::string::npos)
      << failed.message();

  // Continue: the job ends PARTIAL and lists shard 3.
  v1::Job cont = Submit(FlakyJob(R"(,"failurePolicy":{"maxFailedShards":"2"})"));
  v1::Job partial = WaitForEnd(cont.id(), absl::Seconds(60));
  ASSERT_EQ(partial.state(), v1::JOB_STATE_PARTIAL) << partial.DebugString() << Logs();
  ASSERT_EQ(partial.failed_shards_size(), 1);
  EXPECT_EQ(partial.failed_shards(0).shard(), 3);
  EXPECT_EQ(partial.failed_shards(0).start(), 30);
  EXPECT_EQ(partial.failed_shards(0).attempts(), 3) << partial.DebugString();

  // Backoff: shard 1's attempts are >= 0.27 s, then >= 0.54 s apart.
  std::map<int, double> shard1;
  std::ifstream log(dir() + "/attempts.log");
  std::string job_id;
  for (int shard, attempt; log >> job_id >> shard >> attempt;) {
    double t;
    log >> t;
    if (job_id == cont.id() && shard == 1) shard1[attempt] = t;
  }
  ASSERT_EQ(shard1.size(), 3u);
  EXPECT_GE(shard1[2] - shard1[1], 0.27);
  EXPECT_GE(shard1[3] - shard1[2], 0.54);
  EXPECT_NE(partial.failed_shards(0).last_error().find("shard 3 hits a bug"),
            std::string::npos);
  EXPECT_EQ(json::parse(Result(cont.id()).result_json())["items"], 40);

  // The bug is fixed: only shard 3 runs again, and version 2 is complete.
  std::ofstream(dir() + "/fixed") << "";
  v1::RetryFailedShardsRequest retry;
  retry.set_job_id(cont.id());
  v1::Job retried;
  ASSERT_THAT(jobs()->RetryFailedShards(Ctx().get(), retry, &retried), IsOk());
  v1::Job complete = WaitForEnd(cont.id(), absl::Seconds(60));
  ASSERT_EQ(complete.state(), v1::JOB_STATE_SUCCEEDED) << complete.DebugString();
  EXPECT_EQ(complete.result_version(), 2);
  v1::GetResultResponse r = Result(cont.id());
  EXPECT_EQ(json::parse(r.result_json())["items"], 50);
  EXPECT_TRUE(absl::EndsWith(r.location(), cont.id() + ".v2.json")) << r.location();
  int reruns = 0;
  std::ifstream again(dir() + "/attempts.log");
  std::string line;
  while (std::getline(again, line)) {
    reruns += absl::StartsWith(line, cont.id() + " 3 4 ") ? 1 : 0;
  }
  EXPECT_EQ(reruns, 1);
}

TEST_F(Durability, AStoppedExecutorsLeasesExpireAndItsLateResultsAreDropped) {
  StartScheduler({"--heartbeat-timeout=2s"});
  Process* frozen = StartExecutor("frozen", 1);
  // Shards of 20 items x 50 ms: about a second each.
  v1::Job job = Submit(
      R"({"spec":{"task":"sleep","params":{"ms":50},"range":{"start":"0","end":"80","shardSize":"20"}}})");
  v1::Job running = WaitFor(
      job.id(), [](const v1::Job& j) { return j.shards().running() > 0; },
      absl::Seconds(30));
  ASSERT_GT(running.shards().running(), 0) << Logs();
  absl::SleepFor(absl::Milliseconds(300));
  frozen->Signal(SIGSTOP);
  StartExecutor("thawed", 2);
  v1::Job done = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_EQ(json::parse(Result(job.id()).result_json())["items"], 80);
  EXPECT_GE(MetricValue(Metrics(), "tessera_executors_expired_total"), 1);
  frozen->Signal(SIGCONT);
  // It finishes its shard, reconnects and re-sends: dropped and counted.
  double dropped = 0;
  for (int i = 0; i < 200 && dropped < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    dropped = MetricValue(Metrics(), "tessera_stale_results_dropped_total");
  }
  EXPECT_GE(dropped, 1) << Logs();
  EXPECT_EQ(json::parse(Result(job.id()).result_json())["items"], 80);
}

TEST_F(Durability, SchedulerSigtermExitsZeroAndARestartFinishesTheJob) {
  StartScheduler({"--reattach-grace=1s"});
  StartExecutor("exec-1", 2);
  v1::Job job = Submit(kPrimes640);
  v1::Job mid = WaitFor(
      job.id(), [](const v1::Job& j) { return j.shards().succeeded() >= 50; },
      absl::Seconds(60));
  ASSERT_LT(mid.shards().succeeded(), 640) << "too late to stop mid-job";
  scheduler()->Signal(SIGTERM);
  EXPECT_EQ(scheduler()->Wait(absl::Seconds(15)), 0) << scheduler()->Log();
  StartScheduler({"--reattach-grace=1s"});
  EXPECT_GE(Get(job.id()).shards().succeeded(), mid.shards().succeeded());
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_EQ(json::parse(Result(job.id()).result_json())["primes"],
            ReferencePrimeCount(10'000'000));
}

TEST_F(Durability, ASecondSchedulerOnTheSameDataDirIsRefusedAndTheFirstRunsOn) {
  StartScheduler();
  StartExecutor("exec-1", 2);
  v1::Job job = Submit(kPrimes640);
  Process second({TESSERA_SCHEDULER_BIN, absl::StrCat("--listen=127.0.0.1:", FreePort()),
                  "--metrics-listen=", "--data-dir=" + dir() + "/data"},
                 dir() + "/second.log");
  std::optional<int> rc = second.Wait(absl::Seconds(20));
  ASSERT_TRUE(rc.has_value()) << "a second scheduler ran on the same data dir";
  EXPECT_NE(*rc, 0);
  EXPECT_NE(second.Log().find(absl::StrCat("data dir ", dir(),
                                           "/data is in use by another "
                                           "scheduler (pid ",
                                           scheduler()->pid(), " on ")),
            std::string::npos)
      << second.Log();
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_EQ(json::parse(Result(job.id()).result_json())["primes"],
            ReferencePrimeCount(10'000'000));
  // Its lock goes with it: a restart after a kill finds the job done.
  KillScheduler();
  StartScheduler();
  EXPECT_EQ(Get(job.id()).state(), v1::JOB_STATE_SUCCEEDED) << Logs();
}

TEST_F(Durability, ACorruptOrUnusableDataDirIsAClearErrorAtStart) {
  std::filesystem::create_directories(dir() + "/data");
  std::ofstream(dir() + "/data/tessera.db") << std::string(8192, 'x');
  Process corrupt({TESSERA_SCHEDULER_BIN, "--listen=" + address(),
                   "--metrics-listen=", "--data-dir=" + dir() + "/data"},
                  dir() + "/corrupt.log");
  std::optional<int> rc = corrupt.Wait(absl::Seconds(20));
  ASSERT_TRUE(rc.has_value()) << "the scheduler kept running on a corrupt store";
  EXPECT_NE(*rc, 0);
  EXPECT_NE(corrupt.Log().find(dir() + "/data/tessera.db"), std::string::npos)
      << corrupt.Log();

  std::ofstream(dir() + "/not-a-dir") << "a file";
  Process unusable({TESSERA_SCHEDULER_BIN, "--listen=" + address(),
                    "--metrics-listen=", "--data-dir=" + dir() + "/not-a-dir"},
                   dir() + "/unusable.log");
  rc = unusable.Wait(absl::Seconds(20));
  ASSERT_TRUE(rc.has_value());
  EXPECT_NE(*rc, 0);
  EXPECT_NE(unusable.Log().find("not-a-dir"), std::string::npos) << unusable.Log();
}

}  // namespace
}  // namespace tessera::testing
