// End-to-end exec tasks: the real scheduler and an executor started with
// --tasks-file, running examples/promo/promo.py and small failing programs.
#include <sys/stat.h>

#include <fstream>

#include "gmock/gmock.h"
#include "tests/e2e/cluster.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::IsOk;

using json = nlohmann::json;
using ::testing::HasSubstr;

const std::string kPromoDir = std::string(TESSERA_SOURCE_DIR) + "/examples/promo";

// The shared cluster; a job naming a task no executor offers says so after 1 s.
class ExecCluster : public Cluster {
 protected:
  void StartScheduler() { Cluster::StartScheduler({"--unknown-task-grace=1s"}); }

  void StartExecutor(const std::string& name, int slots, const std::string& tasks_file) {
    Cluster::StartExecutor(name, slots, {"--tasks-file=" + tasks_file});
  }
};

TEST_F(ExecCluster, PromoInEightShardsMergesToTheSingleProcessAnswer) {
  StartScheduler();
  StartExecutor("exec-1", 2, kPromoDir + "/tasks.json");
  const std::string params = R"({"seed":"spring-sale","codes_per_amount":3})";
  // "merge" unites the shards' amount keys; one produced twice is an error.
  v1::Job job = Submit(PromoJob(params));
  v1::Job done = WaitForEnd(job.id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString() << Logs();
  EXPECT_EQ(done.shards().total(), 8);

  v1::GetResultRequest req;
  req.set_job_id(job.id());
  v1::GetResultResponse r;
  ASSERT_THAT(jobs()->GetResult(Ctx().get(), req, &r), IsOk());
  json result = json::parse(r.result_json());
  ASSERT_TRUE(result.contains("_metadata"));
  result.erase("_metadata");
  EXPECT_EQ(result.size(), 1000u);
  EXPECT_EQ(result["1"].size(), 3u);
  EXPECT_EQ(result, PromoReference(kPromoDir, params));
  // The program's stderr went to the executor's log, tagged.
  EXPECT_THAT(executors()[0]->Log(), HasSubstr("task=promo stderr: shard 7: amounts"));
}

TEST_F(ExecCluster, AFailingProgramsStderrTailShowsInGetJobAndTheExecutorKeepsServing) {
  const std::string script = dir() + "/fail.sh";
  std::ofstream(script)
      << "#!/bin/sh\n"
         "if [ \"$TESSERA_SHARD_INDEX\" = 1 ]; then\n"
         "  echo 'connecting to https://api.example.com' >&2\n"
         "  echo 'HTTP 401: API key rejected' >&2\n"
         "  echo '{\"error\": \"API key rejected\", \"retryable\": false}'\n"
         "  exit 1\n"
         "fi\n"
         "echo \"{\\\"result\\\": {\\\"n\\\": $TESSERA_SHARD_INDEX}}\"\n";
  chmod(script.c_str(), 0755);
  const std::string tasks = dir() + "/tasks.json";
  std::ofstream(tasks) << R"({"tasks": {"flaky": {"command": [")" << script
                       << R"("], "timeout": "30s"}}})";
  StartScheduler();
  StartExecutor("exec-1", 1, tasks);
  v1::Job bad = Submit(
      R"({"spec":{"task":"flaky","range":{"start":"0","end":"2","shardCount":2}}})");
  v1::Job failed = WaitForEnd(bad.id());
  ASSERT_EQ(failed.state(), v1::JOB_STATE_FAILED) << failed.DebugString() << Logs();
  ASSERT_GE(failed.errors_size(), 1) << failed.DebugString();
  EXPECT_THAT(failed.errors(0).message(),
              HasSubstr("task flaky failed: API key rejected (exited with status 1)"));
  EXPECT_THAT(failed.errors(0).message(), HasSubstr("HTTP 401: API key rejected"));

  // The same executor runs the next job.
  v1::Job good = Submit(
      R"({"spec":{"task":"flaky","range":{"start":"2","end":"3","shardCount":1}}})");
  v1::Job ok = WaitForEnd(good.id());
  EXPECT_EQ(ok.state(), v1::JOB_STATE_SUCCEEDED) << ok.DebugString() << Logs();
}

TEST_F(ExecCluster, AJobNamingAnUnknownTaskStaysQueuedAndSaysWhy) {
  StartScheduler();
  StartExecutor("exec-1", 1, kPromoDir + "/tasks.json");
  v1::Job job = Submit(
      R"({"spec":{"task":"promo-typo","range":{"start":"0","end":"10","shardCount":1}}})");
  v1::Job queued = WaitFor(
      job.id(), [](const v1::Job& j) { return !j.message().empty(); }, absl::Seconds(20));
  EXPECT_EQ(queued.state(), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(queued.message(), HasSubstr("promo-typo")) << queued.DebugString();
}

}  // namespace
}  // namespace tessera::testing
