// Two real schedulers on one real PostgreSQL server (leader election with an
// epoch fence) and a real executor given both addresses: one leads, the other
// is NOT_SERVING and answers UNAVAILABLE naming the leader; the leader killed
// mid-job is replaced within TTL + renew, and a leader paused past its TTL
// commits nothing once it wakes, says so, and follows. Each time the job ends
// with the exact answer and one result write to the shared result directory.
// And calls arriving while a follower takes the lease never hold it up.
#include <atomic>
#include <deque>
#include <fstream>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/e2e/cluster.h"
#include "tests/util/postgres_server.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::GrpcStatusIs;
using ::tessera::testing::IsOk;

using grpc::health::v1::HealthCheckResponse;
using json = nlohmann::json;

constexpr char kPrimes[] =
    R"({"spec":{"name":"ha","task":"primes","range":{"start":"0","end":"3000000","shardCount":300},"rateLimit":60}})";
constexpr absl::Duration kRenew = absl::Milliseconds(500);
constexpr absl::Duration kTtl = absl::Seconds(3);

struct Replica {
  int port = 0;
  int metrics_port = 0;
  std::string address;
  std::unique_ptr<Process> process;
};

class HaE2E : public Cluster {
 protected:
  void SetUp() override {
    if (PostgresSkipped()) GTEST_SKIP() << "TESSERA_SKIP_POSTGRES=1";
    Cluster::SetUp();
    ASSERT_THAT(pg_.Start(), IsOk());
    ASSERT_THAT(pg_.CreateDatabase("tessera"), IsOk());
    password_file_ = dir() + "/pgpass";
    std::ofstream(password_file_) << pg_.password() << "\n";
    results_ = dir() + "/shared-results";
  }
  void TearDown() override {
    for (Replica& r : replicas_) {
      if (r.process && r.process->running()) r.process->Signal(SIGCONT);
    }
    executors().clear();
    replicas_.clear();
  }

  Replica& StartReplica(const std::string& name) {
    Replica r;
    r.port = FreePort();
    r.metrics_port = FreePort();
    r.address = absl::StrCat("127.0.0.1:", r.port);
    std::vector<std::string> argv = {
        TESSERA_SCHEDULER_BIN,
        "--listen=" + r.address,
        absl::StrCat("--metrics-listen=127.0.0.1:", r.metrics_port),
        "--data-dir=" + dir() + "/" + name,
        "--result-sink=" + results_,
        "--store=postgres",
        "--postgres-url=" + pg_.Url("tessera"),
        "--postgres-password-file=" + password_file_,
        "--advertise-address=" + r.address,
        "--leader-renew=" + absl::FormatDuration(kRenew),
        "--leader-lease-ttl=" + absl::FormatDuration(kTtl),
        "--reattach-grace=1s",
        "--heartbeat-interval=500ms",
        "--heartbeat-timeout=3s"};
    r.process = std::make_unique<Process>(argv, dir() + "/" + name + ".log");
    replicas_.push_back(std::move(r));
    return replicas_.back();
  }

  static HealthCheckResponse::ServingStatus Health(const Replica& r) {
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(r.address, grpc::InsecureChannelCredentials()));
    grpc::health::v1::HealthCheckRequest req;
    HealthCheckResponse resp;
    auto ctx = Ctx();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    if (!health->Check(ctx.get(), req, &resp).ok()) return HealthCheckResponse::UNKNOWN;
    return resp.status();
  }
  // How long until `r` reports `want` (or nullopt after `timeout`).
  static std::optional<absl::Duration> WaitForHealth(
      const Replica& r, HealthCheckResponse::ServingStatus want, absl::Duration timeout) {
    const absl::Time start = absl::Now();
    while (Health(r) != want) {
      if (absl::Now() - start > timeout) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(25));
    }
    return absl::Now() - start;
  }
  // JobService calls go to `r` from now on.
  void Use(const Replica& r) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    cluster().set_jobs(v1::JobService::NewStub(
        grpc::CreateCustomChannel(r.address, grpc::InsecureChannelCredentials(), args)));
  }
  int SharedResultFiles() {
    int files = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(results_, ec)) {
      files += e.path().extension() == ".json" ? 1 : 0;
    }
    return files;
  }
  std::string AllLogs() {
    std::string out;
    for (const Replica& r : replicas_)
      out += "--- " + r.address + "\n" + r.process->Log();
    for (auto& e : executors()) out += "--- executor\n" + e->Log();
    return out;
  }
  // Starts a (leading) and b (following), an executor given both, and a job
  // that is running with some shards done.
  std::string StartTwoReplicasAndAJob() {
    Replica& a = StartReplica("a");
    EXPECT_TRUE(WaitForHealth(a, HealthCheckResponse::SERVING, absl::Seconds(20)))
        << AllLogs();
    Replica& b = StartReplica("b");
    EXPECT_TRUE(WaitForHealth(b, HealthCheckResponse::NOT_SERVING, absl::Seconds(20)))
        << AllLogs();
    // The follower refuses JobService calls, naming the leader.
    Use(replicas_[1]);
    // (It reads the lease within one renew interval of starting.)
    v1::GetQueueStatsResponse stats;
    grpc::Status refused;
    const absl::Time until = absl::Now() + absl::Seconds(10);
    do {
      refused = jobs()->GetQueueStats(Ctx().get(), v1::GetQueueStatsRequest(), &stats);
      if (refused.error_message().find("the leader is") != std::string::npos) break;
      absl::SleepFor(absl::Milliseconds(50));
    } while (absl::Now() < until);
    EXPECT_THAT(refused, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
    EXPECT_NE(refused.error_message().find("the leader is"), std::string::npos)
        << refused.error_message();
    EXPECT_NE(refused.error_message().find(replicas_[0].address), std::string::npos)
        << refused.error_message();
    EXPECT_EQ(
        MetricValue(HttpGet(replicas_[1].metrics_port, "/metrics"), "tessera_leader"), 0);
    EXPECT_EQ(
        MetricValue(HttpGet(replicas_[0].metrics_port, "/metrics"), "tessera_leader"), 1);
    // The executor is given the follower first: it must find the leader.
    cluster().set_executor_scheduler(replicas_[1].address + "," + replicas_[0].address);
    StartExecutor("exec-1", 2, {"--keepalive=1s"});
    Use(replicas_[0]);
    const std::string id = Submit(kPrimes).id();
    EXPECT_FALSE(id.empty());
    v1::Job mid = WaitFor(
        id, [](const v1::Job& j) { return j.shards().succeeded() >= 20; },
        absl::Seconds(60));
    EXPECT_GE(mid.shards().succeeded(), 20) << AllLogs();
    EXPECT_LT(mid.shards().succeeded(), 300) << "too late to act mid-job";
    return id;
  }
  void ExpectExactAnswerAndOneWrite(const std::string& id, const Replica& leader,
                                    bool failed_over = true) {
    Use(leader);
    v1::Job done = WaitForEnd(id, absl::Seconds(120));
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << AllLogs();
    EXPECT_EQ(json::parse(Result(id).result_json())["primes"],
              ReferencePrimeCount(3'000'000));
    EXPECT_EQ(done.shards().succeeded(), 300);
    EXPECT_EQ(SharedResultFiles(), 1);
    const std::string metrics = HttpGet(leader.metrics_port, "/metrics");
    EXPECT_EQ(MetricValue(metrics, "tessera_result_writes_total"), 1) << metrics;
    EXPECT_EQ(MetricValue(metrics, "tessera_leader"), 1) << metrics;
    if (failed_over) {
      EXPECT_EQ(MetricValue(metrics, "tessera_leader_failovers_total"), 1) << metrics;
      EXPECT_GE(MetricValue(metrics, "tessera_leader_epoch"), 2) << metrics;
    }
    // The finalizing (and done) record was written by the new leader's epoch.
    auto epoch =
        pg_.Psql("tessera", "SELECT epoch FROM tessera_jobs WHERE id = '" + id + "'");
    ASSERT_THAT(epoch, IsOk());
    EXPECT_EQ(*epoch, absl::StrCat(MetricValue(metrics, "tessera_leader_epoch")));
  }

  PostgresServer pg_;
  std::string password_file_;
  std::string results_;
  std::deque<Replica> replicas_;  // references stay valid as replicas start
};

TEST_F(HaE2E, CallsAtTheMomentAFollowerTakesTheLeaseDoNotHoldItUp) {
  // Clients keep calling a follower while the leader gives the lease back.
  // Calls reaching the follower's server as it takes the lease are answered
  // (UNAVAILABLE, naming the leader) while that server shuts down to hand its
  // port to the leader's; a new leader once hung unserved when one arrived
  // just then.
  Replica* leader = &StartReplica("r0");
  ASSERT_TRUE(WaitForHealth(*leader, HealthCheckResponse::SERVING, absl::Seconds(30)))
      << AllLogs();
  for (int round = 1; round <= 4; ++round) {
    Replica& next = StartReplica(absl::StrCat("r", round));
    ASSERT_TRUE(WaitForHealth(next, HealthCheckResponse::NOT_SERVING, absl::Seconds(30)))
        << AllLogs();
    std::atomic<bool> stop{false};
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; ++t) {
      callers.emplace_back([&stop, address = next.address] {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 10);
        args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10);
        args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 20);
        auto stub = v1::JobService::NewStub(
            grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
        while (!stop) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(200));
          v1::GetQueueStatsResponse stats;
          stub->GetQueueStats(&ctx, v1::GetQueueStatsRequest(), &stats);
        }
      });
    }
    // A clean stop gives the lease back: the follower takes it at its next poll.
    leader->process->Signal(SIGTERM);
    const std::optional<absl::Duration> serving =
        WaitForHealth(next, HealthCheckResponse::SERVING, absl::Seconds(20));
    stop = true;
    for (std::thread& t : callers) t.join();
    ASSERT_TRUE(serving.has_value()) << "round " << round << "\n" << AllLogs();
    ASSERT_TRUE(leader->process->Wait(absl::Seconds(30)).has_value()) << AllLogs();
    leader = &next;
  }
}

TEST_F(HaE2E, TheFollowerTakesOverWithinTheLeaseWhenTheLeaderIsKilled) {
  const std::string id = StartTwoReplicasAndAJob();
  ASSERT_FALSE(id.empty());
  replicas_[0].process->Signal(SIGKILL);
  ASSERT_EQ(replicas_[0].process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  std::optional<absl::Duration> took = WaitForHealth(
      replicas_[1], HealthCheckResponse::SERVING, kTtl + kRenew + absl::Seconds(10));
  ASSERT_TRUE(took.has_value()) << AllLogs();
  // The issue's bound is TTL + 1 s; the poll and recovery fit in it.
  EXPECT_LE(*took, kTtl + kRenew + absl::Seconds(1)) << AllLogs();
  std::cout << "failover took " << absl::FormatDuration(*took) << "\n";
  ExpectExactAnswerAndOneWrite(id, replicas_[1]);
  // The CLI given the dead replica first finds the one that leads.
  CommandResult r =
      RunCommand({TESSERA_CLI_BIN, "--scheduler",
                  replicas_[0].address + "," + replicas_[1].address, "result", id},
                 {}, absl::Seconds(30));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(absl::StrCat(ReferencePrimeCount(3'000'000))), std::string::npos)
      << r.out;
}

TEST_F(HaE2E, ALeaderPausedPastItsLeaseCommitsNothingAndFollowsWhenItWakes) {
  const std::string id = StartTwoReplicasAndAJob();
  ASSERT_FALSE(id.empty());
  replicas_[0].process->Signal(SIGSTOP);
  ASSERT_TRUE(WaitForHealth(replicas_[1], HealthCheckResponse::SERVING,
                            kTtl + kRenew + absl::Seconds(10)))
      << AllLogs();
  // The new leader runs for a while, then the old one wakes up.
  absl::SleepFor(absl::Seconds(1));
  replicas_[0].process->Signal(SIGCONT);
  ASSERT_TRUE(
      WaitForHealth(replicas_[0], HealthCheckResponse::NOT_SERVING, absl::Seconds(30)))
      << AllLogs();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (replicas_[0].process->Log().find("stepping down") == std::string::npos &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  const std::string old_log = replicas_[0].process->Log();
  EXPECT_NE(old_log.find("stepping down from epoch 1"), std::string::npos) << old_log;
  EXPECT_NE(old_log.find("fenced"), std::string::npos) << old_log;
  EXPECT_EQ(MetricValue(HttpGet(replicas_[0].metrics_port, "/metrics"), "tessera_leader"),
            0);
  ExpectExactAnswerAndOneWrite(id, replicas_[1]);
  // The old leader wrote no result and still follows.
  EXPECT_LE(MetricValue(HttpGet(replicas_[0].metrics_port, "/metrics"),
                        "tessera_result_writes_total"),
            0);
  EXPECT_TRUE(replicas_[0].process->running());
}

// The database goes away mid-job and comes back: the leader rides it out
// (calls answer UNAVAILABLE meanwhile, executors keep their results), nothing
// acknowledged is lost and the job ends exactly, its result written once.
TEST_F(HaE2E, APostgresRestartMidJobLosesNothingAndTheJobEndsExactly) {
  Replica& a = StartReplica("a");
  ASSERT_TRUE(WaitForHealth(a, HealthCheckResponse::SERVING, absl::Seconds(20)))
      << AllLogs();
  cluster().set_executor_scheduler(a.address);
  StartExecutor("exec-1", 2, {"--keepalive=1s"});
  Use(a);
  const std::string id = Submit(kPrimes).id();
  ASSERT_FALSE(id.empty());
  v1::Job mid = WaitFor(
      id, [](const v1::Job& j) { return j.shards().succeeded() >= 20; },
      absl::Seconds(60));
  ASSERT_GE(mid.shards().succeeded(), 20) << AllLogs();
  ASSERT_LT(mid.shards().succeeded(), 300) << "too late to act mid-job";

  ASSERT_THAT(pg_.Stop(), IsOk());
  // A change asked for while the database is down is refused, not hung.
  v1::SubmitJobRequest req;
  req.mutable_spec()->set_task("noop");
  req.mutable_spec()->mutable_range()->set_end(1);
  req.mutable_spec()->mutable_range()->set_shard_count(1);
  v1::Job refused_job;
  auto ctx = Ctx();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  const grpc::Status refused = jobs()->SubmitJob(ctx.get(), req, &refused_job);
  EXPECT_THAT(refused, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  ASSERT_THAT(pg_.Start(), IsOk());

  // It leads again (the same lease, or a new epoch if it lapsed meanwhile).
  ASSERT_TRUE(WaitForHealth(a, HealthCheckResponse::SERVING, absl::Seconds(30)))
      << AllLogs();
  ExpectExactAnswerAndOneWrite(id, a, /*failed_over=*/false);
}

}  // namespace
}  // namespace tessera::testing
