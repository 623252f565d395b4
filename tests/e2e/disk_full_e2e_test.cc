// A full disk under the real tessera-scheduler: its data dir is a 4 MiB
// tmpfs the test mounts (root only; skipped, saying why, where mounting is
// not allowed) and fills while a job runs. New work is refused with
// RESOURCE_EXHAUSTED and health says NOT_SERVING; once space returns the
// scheduler recovers by itself and the job ends with the exact answer in one
// file. SIGTERM while the disk is full exits within the store timeout, and a
// restart finishes the job the same way; a shutdown stuck past its bound
// anyway (a hung disk) is ended by the watchdog.
#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/e2e/cluster.h"
#include "tests/util/small_disk.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::GrpcStatusIs;
using ::tessera::testing::IsOk;

using grpc::health::v1::HealthCheckResponse;

// 8 shards of one item, 400 ms each: with one slot the job runs for ~3 s.
constexpr char kSleepJob[] =
    R"({"spec":{"name":"fills","task":"sleep","params":{"ms":400},
        "range":{"start":"0","end":"8","shardCount":8}}})";
constexpr absl::Duration kStoreTimeout = absl::Seconds(2);

class DiskFull : public Cluster {
 protected:
  void SetUp() override {
    Cluster::SetUp();
    std::filesystem::create_directories(dir() + "/data");
    std::string why;
    disk_ = SmallDisk::Mount(dir() + "/data", 4 << 20, &why);
    if (disk_ == nullptr) GTEST_SKIP() << why;
    StartScheduler(
        {absl::StrCat("--store-timeout=", absl::FormatDuration(kStoreTimeout))});
    StartExecutor("exec-1", 1);
  }
  void TearDown() override {
    // Everything that holds files on the disk goes first, then the disk.
    cluster().StopAll();
    disk_.reset();
  }

  HealthCheckResponse::ServingStatus Health() {
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
    grpc::health::v1::HealthCheckRequest req;
    HealthCheckResponse resp;
    if (!health->Check(Ctx().get(), req, &resp).ok()) return HealthCheckResponse::UNKNOWN;
    return resp.status();
  }
  bool WaitForHealth(HealthCheckResponse::ServingStatus want, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (Health() != want) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return true;
  }

  // Runs the job until some of its results are in (so the store has
  // committed before), then fills the disk and waits for NOT_SERVING.
  std::string FillWhileRunning() {
    const std::string id = Submit(kSleepJob).id();
    const v1::Job started = WaitFor(
        id, [](const v1::Job& j) { return j.shards().succeeded() >= 2; },
        absl::Seconds(30));
    EXPECT_GE(started.shards().succeeded(), 2) << Logs();
    EXPECT_LT(started.shards().succeeded(), 8) << "the job ended before the disk filled";
    EXPECT_GT(disk_->Fill(), 0);
    EXPECT_TRUE(WaitForHealth(HealthCheckResponse::NOT_SERVING, absl::Seconds(10)))
        << Logs();
    return id;
  }

  void ExpectExactAnswerOnce(const std::string& id) {
    const v1::Job done = WaitForEnd(id, absl::Seconds(60));
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.message() << "\n" << Logs();
    const v1::GetResultResponse result = Result(id);
    const nlohmann::json answer = nlohmann::json::parse(result.result_json());
    EXPECT_EQ(answer["items"], 8);
    EXPECT_EQ(answer["_metadata"]["shards"]["succeeded"], 8);
    EXPECT_EQ(ResultFiles(), 1);
  }

  std::unique_ptr<SmallDisk> disk_;
};

TEST_F(DiskFull, NewWorkIsRefusedUntilSpaceReturnsAndTheRunningJobEndsExactlyOnce) {
  const std::string id = FillWhileRunning();
  // New work is refused at once, naming the full disk; reads still work.
  v1::SubmitJobRequest req;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(kSleepJob, &req).ok());
  v1::Job refused;
  const absl::Time start = absl::Now();
  grpc::Status s = jobs()->SubmitJob(Ctx().get(), req, &refused);
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_NE(s.error_message().find("disk is full"), std::string::npos)
      << s.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(Get(id).id(), id);
  // Space returns: no restart, no operator.
  disk_->Free();
  EXPECT_TRUE(WaitForHealth(HealthCheckResponse::SERVING, absl::Seconds(10))) << Logs();
  ExpectExactAnswerOnce(id);
  EXPECT_TRUE(scheduler()->running());
  v1::ListJobsResponse list;
  ASSERT_THAT(jobs()->ListJobs(Ctx().get(), v1::ListJobsRequest(), &list), IsOk());
  EXPECT_EQ(list.jobs_size(), 1);  // the refused submission left nothing
}

TEST_F(DiskFull, SigtermWhileTheDiskIsFullExitsInTimeAndARestartEndsTheJobExactlyOnce) {
  const std::string id = FillWhileRunning();
  const absl::Time start = absl::Now();
  scheduler()->Signal(SIGTERM);
  const std::optional<int> status = scheduler()->Wait(kStoreTimeout + absl::Seconds(8));
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(status, 0) << Logs();
  EXPECT_LT(took, kStoreTimeout + absl::Seconds(4)) << Logs();
  std::cerr << "SIGTERM with a full disk: exited in " << absl::FormatDuration(took)
            << "\n";
  disk_->Free();
  StartScheduler({absl::StrCat("--store-timeout=", absl::FormatDuration(kStoreTimeout)),
                  "--reattach-grace=1s"});
  ExpectExactAnswerOnce(id);
}

// A shutdown held up past its bound (here by the persist-delay fault, as a
// hung disk would) is cut short by the watchdog, and nothing is lost by it.
using ShutdownBound = Cluster;

TEST_F(ShutdownBound, AShutdownStuckPastItsBoundExitsAndTheRestartRepairsTheJob) {
  const std::vector<std::string> flags = {"--store-timeout=1s",
                                          "--fault-persist-delay=60s"};
  StartScheduler(flags);
  StartExecutor("exec-1", 1);
  const std::string id =
      Submit(R"({"spec":{"task":"noop","range":{"start":"0","end":"4","shardCount":2}}})")
          .id();
  // The result file is in place; marking the job done waits a minute.
  for (int i = 0; i < 500 && ResultFiles() == 0; ++i)
    absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(ResultFiles(), 1) << Logs();
  const absl::Time start = absl::Now();
  scheduler()->Signal(SIGTERM);
  const std::optional<int> status = scheduler()->Wait(absl::Seconds(20));
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(status, 1) << Logs();
  EXPECT_LT(took, absl::Seconds(8) + absl::Seconds(2));  // --store-timeout + 7s
  EXPECT_NE(scheduler()->Log().find("shutdown not done after 8s"), std::string::npos);
  StartScheduler({"--reattach-grace=1s"});
  const v1::Job done = WaitForEnd(id, absl::Seconds(30));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << Logs();
  EXPECT_EQ(ResultFiles(), 1);
}

}  // namespace
}  // namespace tessera::testing
