// Results in S3-compatible object storage, end to end: the real scheduler and
// executors with --result-sink=s3://…, against a real s3rver on loopback that
// checks every signature (tests/util/s3rver.h). Objects are read back from
// the server's own files, not through the sink under test. Credentials are
// throwaway keys made at run time and reach the scheduler through its
// environment or a credentials file, never argv.
#include <stdlib.h>
#include <sys/stat.h>

#include <functional>

#include "scheduler/sink/s3_credentials.h"
#include "scheduler/sink/s3_sink.h"
#include "shared/sha256.h"
#include "tests/e2e/cluster.h"
#include "tests/util/s3rver.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::IsOk;

using json = nlohmann::json;

constexpr char kPrimes[] =
    R"({"spec":{"name":"to-s3","task":"primes","range":{"start":"0","end":"1000000","shardCount":8}}})";

class S3Cluster : public Cluster {
 protected:
  void SetUp() override {
    Cluster::SetUp();
    s3_ = std::make_unique<S3rver>(dir() + "/s3", std::vector<std::string>{"results"});
    absl::Status s = s3_->Start();
    ASSERT_THAT(s, IsOk());
  }

  std::vector<std::string> SinkFlags(std::vector<std::string> extra = {}) const {
    std::vector<std::string> flags = {"--result-sink=s3://results/tessera/jobs",
                                      "--s3-endpoint=" + s3_->endpoint(),
                                      "--s3-timeout=1s"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    return flags;
  }

  // Starts the scheduler with the credentials in its environment only.
  void StartWithKeys(const std::string& secret, std::vector<std::string> flags) {
    setenv("AWS_ACCESS_KEY_ID", s3_->access_key_id().c_str(), 1);
    setenv("AWS_SECRET_ACCESS_KEY", secret.c_str(), 1);
    StartScheduler(std::move(flags));
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
  }

  std::string Key(const std::string& job_id) const {
    return "tessera/jobs/" + job_id + ".json";
  }

  // The secret must be in no log line and no argv.
  void ExpectSecretNowhere(const std::string& secret) {
    EXPECT_EQ(Logs().find(secret), std::string::npos) << "the secret was logged";
    if (scheduler() && scheduler()->running()) {
      std::ifstream cmdline("/proc/" + std::to_string(scheduler()->pid()) + "/cmdline");
      std::string argv((std::istreambuf_iterator<char>(cmdline)),
                       std::istreambuf_iterator<char>());
      EXPECT_EQ(argv.find(secret), std::string::npos) << "the secret is in argv";
    }
  }

  double MetricOr0(const std::string& name) {
    const double v = MetricValue(Metrics(), name);
    return v < 0 ? 0 : v;
  }

  std::unique_ptr<S3rver> s3_;
};

TEST_F(S3Cluster, AJobsResultLandsInS3WithItsExactBytesAndSha256) {
  // Credentials from a file this time (as a mounted Secret would be).
  const std::string creds = dir() + "/credentials";
  std::ofstream(creds) << "[default]\naws_access_key_id = " << s3_->access_key_id()
                       << "\naws_secret_access_key = " << s3_->secret_access_key()
                       << "\n";
  chmod(creds.c_str(), 0600);
  StartScheduler(SinkFlags({"--s3-credentials-file=" + creds}));
  StartExecutor("exec-1", 2);
  v1::Job job = Submit(kPrimes);
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();

  v1::GetResultResponse r = Result(job.id());
  EXPECT_EQ(r.location(), "s3://results/" + Key(job.id()));
  EXPECT_FALSE(r.content_omitted());
  std::optional<std::string> object = s3_->Object("results", Key(job.id()));
  ASSERT_TRUE(object.has_value()) << s3_->Log();
  EXPECT_EQ(*object, r.result_json());
  EXPECT_EQ(Sha256Hex(*object), r.sha256());
  EXPECT_EQ(r.size_bytes(), static_cast<int64_t>(object->size()));
  EXPECT_EQ(done.result_sha256(), r.sha256());
  EXPECT_EQ(json::parse(*object)["primes"], ReferencePrimeCount(1'000'000));
  EXPECT_NE(s3_->ObjectMetadata("results", Key(job.id())).find(r.sha256()),
            std::string::npos);
  EXPECT_EQ(s3_->StoredCount(Key(job.id())), 1);

  const std::string metrics = Metrics();
  EXPECT_EQ(MetricValue(metrics, "tessera_result_writes_total"), 1) << metrics;
  EXPECT_EQ(MetricValue(metrics,
                        R"(tessera_s3_request_duration_seconds_count{operation="put"})"),
            1);
  EXPECT_EQ(MetricValue(metrics, R"(tessera_s3_retries_total{operation="put"})"), 0);
  ExpectSecretNowhere(s3_->secret_access_key());
}

TEST_F(S3Cluster, AWrongSecretFailsTheJobWithSignatureDoesNotMatch) {
  const std::string wrong = "wrong-" + RandomHex(20);
  StartWithKeys(wrong, SinkFlags());
  StartExecutor("exec-1", 2);
  v1::Job job = Submit(kPrimes);
  v1::Job done = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(done.state(), v1::JOB_STATE_FAILED) << done.DebugString() << Logs();
  EXPECT_NE(done.message().find("SignatureDoesNotMatch"), std::string::npos)
      << done.message();
  EXPECT_NE(done.message().find("403"), std::string::npos) << done.message();
  EXPECT_FALSE(s3_->Object("results", Key(job.id())).has_value());
  ExpectSecretNowhere(wrong);
}

TEST_F(S3Cluster, TheSchedulerKilledBetweenThePutAndDoneRestartsAndWritesNothingNew) {
  // The persist delay holds the job between "object written" and "done".
  const std::vector<std::string> flags =
      SinkFlags({"--fault-persist-delay=4s", "--reattach-grace=1s"});
  StartWithKeys(s3_->secret_access_key(), flags);
  StartExecutor("exec-1", 2);
  v1::Job job = Submit(kPrimes);
  const std::string file = s3_->ObjectFile("results", Key(job.id()));
  for (int i = 0; i < 1000 && !std::filesystem::exists(file); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(std::filesystem::exists(file)) << Logs();
  absl::SleepFor(absl::Milliseconds(300));  // its metadata too
  ASSERT_EQ(Get(job.id()).state(), v1::JOB_STATE_RUNNING) << "too late to kill";
  ASSERT_EQ(MetricValue(Metrics(), "tessera_result_writes_total"), 1);
  const std::string before = *s3_->Object("results", Key(job.id()));
  const auto mtime = std::filesystem::last_write_time(file);
  KillScheduler();

  StartWithKeys(s3_->secret_access_key(), flags);
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  v1::GetResultResponse r = Result(job.id());
  EXPECT_EQ(r.result_json(), before);
  EXPECT_EQ(Sha256Hex(before), r.sha256());
  // Found in place: this process wrote nothing (so 1 write in all), and the
  // object was stored once and never touched again.
  EXPECT_EQ(MetricValue(Metrics(), "tessera_result_writes_total"), 0) << Metrics();
  EXPECT_EQ(s3_->StoredCount(Key(job.id())), 1) << s3_->Log();
  EXPECT_EQ(*s3_->Object("results", Key(job.id())), before);
  EXPECT_EQ(std::filesystem::last_write_time(file), mtime);
}

TEST_F(S3Cluster, AnObjectAlreadyThereWithOtherBytesFailsTheJobAndIsNotOverwritten) {
  StartWithKeys(s3_->secret_access_key(), SinkFlags());
  v1::Job job = Submit(kPrimes);  // no executor yet: it waits
  // Another writer puts other bytes where the result would go.
  scheduler::S3SinkOptions options;
  options.endpoint = s3_->endpoint();
  auto other = scheduler::S3Sink::Create(
      "s3://results/tessera/jobs", options,
      scheduler::CredentialsSource::Fixed(
          {s3_->access_key_id(), s3_->secret_access_key(), ""}));
  ASSERT_THAT(other, IsOk());
  const std::string foreign = "{\"written\": \"by someone else\"}\n";
  ASSERT_THAT((*other)->Write(job.id(), 1, foreign), IsOk());

  StartExecutor("exec-1", 2);
  v1::Job done = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(done.state(), v1::JOB_STATE_FAILED) << done.DebugString() << Logs();
  EXPECT_NE(done.message().find("already holds a different result"), std::string::npos)
      << done.message();
  EXPECT_NE(done.message().find("not overwritten"), std::string::npos);
  EXPECT_EQ(s3_->Object("results", Key(job.id())), foreign);
  EXPECT_EQ(s3_->StoredCount(Key(job.id())), 1);  // the other writer's
  EXPECT_EQ(MetricOr0("tessera_result_writes_total"), 0);
}

TEST_F(S3Cluster, ALargeResultGoesUpInPartsAboveTheThreshold) {
  StartWithKeys(s3_->secret_access_key(),
                SinkFlags({"--s3-multipart-threshold=4096", "--s3-part-size=1024"}));
  StartExecutor("exec-1", 2);
  json items = json::array();
  for (int i = 0; i < 3000; ++i) items.push_back(i);
  v1::Job job = Submit(absl::StrCat(R"({"spec":{"task":"square","items":{"items":)",
                                    items.dump(), R"(,"batchSize":"100"},)",
                                    R"("aggregate":{"fields":{"squares":"concat"}}}})"));
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  v1::GetResultResponse r = Result(job.id());
  std::optional<std::string> object = s3_->Object("results", Key(job.id()));
  ASSERT_TRUE(object.has_value());
  ASSERT_GT(object->size(), 30'000u);
  EXPECT_EQ(*object, r.result_json());
  EXPECT_EQ(Sha256Hex(*object), r.sha256());
  json squares = json::parse(*object)["squares"];
  ASSERT_EQ(squares.size(), 3000u);
  EXPECT_EQ(squares[2999], 2999 * 2999);
  EXPECT_EQ(s3_->StoredParts(), static_cast<int>((object->size() + 1023) / 1024));
  EXPECT_EQ(s3_->StoredCount(Key(job.id())), 1);
  const std::string metrics = Metrics();
  EXPECT_EQ(MetricValue(metrics, "tessera_result_writes_total"), 1);
  EXPECT_EQ(MetricValue(
                metrics,
                R"(tessera_s3_request_duration_seconds_count{operation="upload_part"})"),
            s3_->StoredParts());
}

TEST_F(S3Cluster, TheStoreStoppedForSecondsWhileAResultIsWrittenIsRetriedAndWrittenOnce) {
  StartWithKeys(s3_->secret_access_key(), SinkFlags());
  StartExecutor("exec-1", 2);
  // A job of 10 shards of 100 ms on 2 slots (its result is written ~0.5 s
  // after it is submitted) while the store is out: finished, it must wait
  // RUNNING ("finalizing") through 3 s of outage, then succeed, written once.
  auto outage = [this](const std::function<void()>& stop,
                       const std::function<void()>& restart) {
    v1::Job job = Submit(
        R"({"spec":{"task":"sleep","params":{"ms":100},"range":{"start":"0","end":"10","shardSize":"1"}}})");
    stop();
    v1::Job waiting = WaitFor(
        job.id(), [](const v1::Job& j) { return j.shards().succeeded() == 10; },
        absl::Seconds(30));
    ASSERT_EQ(waiting.shards().succeeded(), 10) << Logs();
    absl::SleepFor(absl::Seconds(3));
    ASSERT_EQ(Get(job.id()).state(), v1::JOB_STATE_RUNNING) << "not kept finalizing";
    restart();
    v1::Job done = WaitForEnd(job.id(), absl::Seconds(30));
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
    EXPECT_EQ(s3_->StoredCount(Key(job.id())), 1);
    EXPECT_EQ(Sha256Hex(*s3_->Object("results", Key(job.id()))), done.result_sha256());
    EXPECT_EQ(json::parse(Result(job.id()).result_json())["items"], 10);
  };
  // Killed: connections are refused until it is started again.
  outage([this] { s3_->Kill(); }, [this] { ASSERT_THAT(s3_->Start(), IsOk()); });
  // Stopped (SIGSTOP): connections hang until --s3-timeout (1s), again and again.
  outage([this] { s3_->Pause(); }, [this] { s3_->Resume(); });

  const std::string metrics = Metrics();
  EXPECT_EQ(MetricValue(metrics, "tessera_result_writes_total"), 2) << metrics;
  EXPECT_GE(MetricValue(metrics, R"(tessera_s3_retries_total{operation="head"})"), 2)
      << metrics;
}

TEST_F(S3Cluster, GetResultLeavesOutAResultTooLargeForAMessageAndSaysWhere) {
  // 100,000 zeros: 200 KB of JSON, but ~1.1 MB as the response's Struct,
  // more than --max-message-bytes (1 MiB) allows.
  const std::string tasks = dir() + "/tasks.json";
  std::ofstream(tasks) << json{
      {"tasks",
       {{"zeros",
         {{"command",
           {"python3", "-c",
            "import json; print(json.dumps({'result': {'z': [0] * 25000}}))"}},
          {"timeout",
           "30s"}}}}}}.dump();
  StartWithKeys(s3_->secret_access_key(), SinkFlags({"--max-message-bytes=1048576"}));
  StartExecutor("exec-1", 1, {"--tasks-file=" + tasks});
  v1::Job job = Submit(
      R"({"spec":{"task":"zeros","range":{"start":"0","end":"4","shardSize":"1"}}})");
  v1::Job done = WaitForEnd(job.id(), absl::Seconds(60));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  v1::GetResultResponse r = Result(job.id());
  std::optional<std::string> object = s3_->Object("results", Key(job.id()));
  ASSERT_TRUE(object.has_value());
  EXPECT_TRUE(r.content_omitted());
  EXPECT_TRUE(r.result_json().empty());
  EXPECT_EQ(r.result().fields_size(), 0);
  EXPECT_EQ(r.location(), "s3://results/" + Key(job.id()));
  EXPECT_EQ(r.sha256(), Sha256Hex(*object));
  EXPECT_EQ(r.size_bytes(), static_cast<int64_t>(object->size()));
  EXPECT_EQ(json::parse(*object)["z"].size(), 100000u);
}

TEST_F(S3Cluster, ThePromoMapIsWrittenToS3OnceWithTheSingleProcessAnswer) {
  // examples/promo/README.md, "The map in object storage (S3)".
  const std::string promo_dir = std::string(TESSERA_SOURCE_DIR) + "/examples/promo";
  StartWithKeys(s3_->secret_access_key(), SinkFlags());
  StartExecutor("exec-1", 2, {"--tasks-file=" + promo_dir + "/tasks.json"});
  const std::string params = R"({"seed":"spring-sale","codes_per_amount":3})";
  v1::Job job = Submit(PromoJob(params));
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  std::optional<std::string> object = s3_->Object("results", Key(job.id()));
  ASSERT_TRUE(object.has_value());
  EXPECT_EQ(Sha256Hex(*object), done.result_sha256());
  EXPECT_EQ(s3_->StoredCount(Key(job.id())), 1);
  json map = json::parse(*object);
  map.erase("_metadata");
  EXPECT_EQ(map.size(), 1000u);
  EXPECT_EQ(map, PromoReference(promo_dir, params));
}

TEST_F(S3Cluster, SigtermWhileTheStoreIsDownExitsAndTheNextStartWritesTheResult) {
  const std::vector<std::string> flags = SinkFlags({"--reattach-grace=1s"});
  StartWithKeys(s3_->secret_access_key(), flags);
  StartExecutor("exec-1", 2);
  s3_->Kill();
  v1::Job job = Submit(kPrimes);
  v1::Job waiting = WaitFor(
      job.id(), [](const v1::Job& j) { return j.shards().succeeded() == 8; },
      absl::Seconds(30));
  ASSERT_EQ(waiting.shards().succeeded(), 8) << Logs();
  absl::SleepFor(absl::Milliseconds(500));  // retrying by now
  scheduler()->Signal(SIGTERM);
  EXPECT_EQ(scheduler()->Wait(absl::Seconds(10)), 0) << scheduler()->Log();
  EXPECT_NE(scheduler()->Log().find("the next start writes it"), std::string::npos)
      << scheduler()->Log();

  ASSERT_THAT(s3_->Start(), IsOk());
  StartWithKeys(s3_->secret_access_key(), flags);
  v1::Job done = WaitForEnd(job.id(), absl::Seconds(30));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  EXPECT_EQ(s3_->StoredCount(Key(job.id())), 1);
  EXPECT_EQ(json::parse(Result(job.id()).result_json())["primes"],
            ReferencePrimeCount(1'000'000));
  EXPECT_EQ(MetricValue(Metrics(), "tessera_result_writes_total"), 1);
}

}  // namespace
}  // namespace tessera::testing
