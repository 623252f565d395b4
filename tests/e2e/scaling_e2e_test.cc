// End-to-end replica scaling: the test plays the autoscaler on one machine with the
// real binaries. A long job starts on 1 executor, is scaled to 4 mid-job (throughput
// must rise), down to 2 by SIGTERM (a drain: nothing lost, nothing run twice, no retry
// budget used), then one more is SIGKILLed (its shards are requeued). The answer must
// equal the reference. Prints shards/s at 1, 4 and 2 executors ("scaling: ..." lines,
// which scripts/test.sh repeats after ctest).
//
// The work is the `sleep` task (I/O-like: waiting, not computing), so four executors
// on a 2-core machine really do four times the work of one, as slow API calls would.
#include <iostream>
#include <regex>

#include "absl/strings/str_format.h"
#include "tests/e2e/cluster.h"

namespace tessera::testing {
namespace {

using json = nlohmann::json;

// 300 shards of 10 items at 20 ms per item: 200 ms per shard, 10 shards/s per
// 2-slot executor.
constexpr int64_t kItems = 3000;
constexpr int64_t kShards = 300;
constexpr char kJob[] =
    R"({"spec":{"name":"scaling","task":"sleep","params":{"ms":20},
        "range":{"start":"0","end":"3000","shardSize":"10"}}})";
constexpr int kSlots = 2;

// Sums the N of every "released N queued shards" / "released N new assignments"
// line of an executor's log: the leases it gave back unstarted while draining.
int64_t ReleasedUnstarted(const std::string& log) {
  static const std::regex kReleased(R"(released (\d+) (queued shards|new assignments))");
  int64_t n = 0;
  for (std::sregex_iterator it(log.begin(), log.end(), kReleased), end; it != end; ++it) {
    n += std::stoll((*it)[1]);
  }
  return n;
}

class Scaling : public Cluster {
 protected:
  // The autoscaler's "add a replica".
  Process* AddExecutor() {
    return StartExecutor(absl::StrCat("replica-", executors().size() + 1), kSlots);
  }

  double Metric(const std::string& series) { return MetricValue(Metrics(), series); }

  void WaitForConnected(int n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (Metric("tessera_executors_connected") != n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_EQ(Metric("tessera_executors_connected"), n) << Logs();
  }

  // Shards finished per second over `window` of steady state.
  double Throughput(const std::string& id, absl::Duration window) {
    const int64_t before = Get(id).shards().succeeded();
    const absl::Time t0 = absl::Now();
    absl::SleepFor(window);
    const int64_t after = Get(id).shards().succeeded();
    return (after - before) / absl::ToDoubleSeconds(absl::Now() - t0);
  }

  void Step(const std::string& what) {
    std::cout << "scaling: "
              << absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone()) << " "
              << what << std::endl;
  }
};

TEST_F(Scaling, ScaleOutThenDrainThenKillKeepsEveryShardExactlyOnce) {
  StartScheduler();
  AddExecutor();
  ASSERT_NO_FATAL_FAILURE(WaitForConnected(1));

  const std::string id = Submit(kJob).id();
  ASSERT_FALSE(id.empty()) << Logs();
  Step(
      absl::StrCat("job ", id, " submitted: ", kShards, " shards of 200 ms; 1 executor"));

  absl::SleepFor(absl::Milliseconds(500));  // past the start
  const double at1 = Throughput(id, absl::Seconds(2));
  Step(absl::StrFormat("1 executor: %.1f shards/s", at1));

  // Scale out to 4.
  for (int i = 0; i < 3; ++i) AddExecutor();
  ASSERT_NO_FATAL_FAILURE(WaitForConnected(4));
  Step("scaled out to 4 executors");
  absl::SleepFor(absl::Milliseconds(300));
  const double at4 = Throughput(id, absl::Seconds(2));
  Step(absl::StrFormat("4 executors: %.1f shards/s", at4));
  ASSERT_LT(Get(id).shards().succeeded(), kShards * 2 / 3) << "the job is too short";

  // Scale in to 2 by SIGTERM: each drains (finishes what runs, releases what it
  // had not started) and exits 0.
  const double requeued_before_drain = Metric("tessera_shards_requeued_total");
  for (int i : {2, 3}) executors()[i]->Signal(SIGTERM);
  Step("SIGTERM to replica-3 and replica-4");
  int64_t released = 0;
  for (int i : {2, 3}) {
    EXPECT_EQ(executors()[i]->Wait(absl::Seconds(30)), 0) << executors()[i]->Log();
    const std::string log = executors()[i]->Log();
    EXPECT_FALSE(absl::StrContains(log, "drain timeout")) << log;
    EXPECT_FALSE(absl::StrContains(log, "could not send")) << log;
    released += ReleasedUnstarted(log);
  }
  ASSERT_NO_FATAL_FAILURE(WaitForConnected(2));
  // Every lease the drained executors gave back was one they never started: no
  // shard was run twice, and (checked at the end) no attempt was charged.
  EXPECT_EQ(Metric("tessera_shards_requeued_total") - requeued_before_drain, released);
  Step(absl::StrCat("drained: both exited 0, released ", released,
                    " unstarted shards, none cut short"));
  absl::SleepFor(absl::Milliseconds(300));
  const double at2 = Throughput(id, absl::Seconds(2));
  Step(absl::StrFormat("2 executors: %.1f shards/s", at2));

  // SIGKILL one of the two: its leases go back to the queue.
  const double requeued_before_kill = Metric("tessera_shards_requeued_total");
  ASSERT_NE(Get(id).state(), v1::JOB_STATE_SUCCEEDED) << "the job ended too soon";
  executors()[1]->Signal(SIGKILL);
  ASSERT_EQ(executors()[1]->Wait(absl::Seconds(10)), 128 + SIGKILL);
  ASSERT_NO_FATAL_FAILURE(WaitForConnected(1));
  const double requeued_by_kill =
      Metric("tessera_shards_requeued_total") - requeued_before_kill;
  EXPECT_GE(requeued_by_kill, 1) << Metrics();
  Step(absl::StrCat("SIGKILL to replica-2: ", requeued_by_kill, " shards requeued"));

  // The survivor finishes the job.
  const v1::Job done = WaitForEnd(id, absl::Seconds(120));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  Step("job succeeded on the last executor");

  const json r = json::parse(Result(id).result_json());
  EXPECT_EQ(r["items"], kItems);  // the reference: every item of the range, once
  EXPECT_EQ(r["_metadata"]["shards"]["succeeded"], kShards);
  const std::string metrics = Metrics();
  // Every assignment either produced the one accepted result of its shard or was
  // given back (released by a drain, or lost with the killed executor).
  EXPECT_EQ(r["_metadata"]["attempts"].get<double>(),
            kShards + MetricValue(metrics, "tessera_shards_requeued_total"))
      << r.dump() << metrics;
  EXPECT_EQ(
      MetricValue(metrics, R"(tessera_shards_completed_total{outcome="succeeded"})"),
      kShards);
  EXPECT_EQ(MetricValue(metrics, R"(tessera_shards_completed_total{outcome="failed"})"),
            0);
  EXPECT_EQ(MetricValue(metrics, "tessera_stale_results_dropped_total"), 0);
  EXPECT_EQ(MetricValue(metrics, "tessera_result_writes_total"), 1);

  // Throughput follows the replicas (loose bounds: CI machines are noisy).
  EXPECT_GT(at4, 2 * at1) << "1: " << at1 << " 4: " << at4;
  EXPECT_GT(at2, 1.3 * at1) << "1: " << at1 << " 2: " << at2;
  EXPECT_GT(at4, at2);
  std::cout
      << absl::StrFormat(
             "scaling: shards/s at 1 executor: %.1f, at 4: %.1f (x%.2f), at 2: %.1f "
             "(x%.2f); %d slots each, 200 ms shards",
             at1, at4, at4 / at1, at2, at2 / at1, kSlots)
      << std::endl;
}

}  // namespace
}  // namespace tessera::testing
