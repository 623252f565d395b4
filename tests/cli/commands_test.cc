#include "cli/commands.h"

#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "shared/version.h"
#include "tests/util/temp_dir.h"

namespace tessera::cli {
namespace {

namespace v1 = tessera::v1;

v1::Job MakeJob(v1::JobState state, int64_t succeeded, int64_t items_done) {
  v1::Job job;
  job.set_id("j1");
  job.set_state(state);
  job.mutable_shards()->set_total(4);
  job.mutable_shards()->set_succeeded(succeeded);
  job.set_items_done(items_done);
  job.set_items_total(100);
  return job;
}

// Answers from canned responses and records what it was asked.
class FakeJobApi : public JobApi {
 public:
  absl::StatusOr<v1::Job> SubmitJob(const v1::JobSpec& spec) override {
    submitted.push_back(spec);
    return submit_response;
  }
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) override {
    calls.push_back("GetJob " + job_id);
    return get_response;
  }
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& r) override {
    list_requests.push_back(r);
    return list_response;
  }
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id) override {
    calls.push_back("CancelJob " + job_id);
    return cancel_response;
  }
  absl::StatusOr<v1::Job> RetryFailedShards(const std::string& job_id) override {
    calls.push_back("RetryFailedShards " + job_id);
    return retry_response;
  }
  absl::StatusOr<v1::Job> UpdateJob(const v1::UpdateJobRequest& r) override {
    calls.push_back("UpdateJob " + r.job_id());
    update_requests.push_back(r);
    return update_response;
  }
  absl::StatusOr<v1::GetResultResponse> GetResult(const std::string& job_id) override {
    calls.push_back("GetResult " + job_id);
    return result_response;
  }
  absl::StatusOr<v1::ListExecutorsResponse> ListExecutors() override {
    return executors_response;
  }
  absl::StatusOr<v1::GetQueueStatsResponse> GetQueueStats() override {
    return queue_response;
  }
  absl::Status WatchJob(
      const std::string& job_id,
      const std::function<void(const v1::JobEvent&)>& on_event) override {
    calls.push_back("WatchJob " + job_id);
    for (size_t i = 0; i < watch_events.size(); ++i) {
      v1::JobEvent event;
      *event.mutable_job() = watch_events[i];
      if (end_result && i + 1 == watch_events.size())
        *event.mutable_result() = *end_result;
      on_event(event);
    }
    return watch_status;
  }

  std::vector<v1::JobSpec> submitted;
  std::vector<v1::ListJobsRequest> list_requests;
  std::vector<v1::UpdateJobRequest> update_requests;
  std::vector<std::string> calls;
  absl::StatusOr<v1::Job> submit_response = MakeJob(v1::JOB_STATE_QUEUED, 0, 0);
  absl::StatusOr<v1::Job> get_response = MakeJob(v1::JOB_STATE_RUNNING, 1, 25);
  absl::StatusOr<v1::Job> cancel_response = MakeJob(v1::JOB_STATE_CANCELLED, 1, 25);
  absl::StatusOr<v1::Job> retry_response = MakeJob(v1::JOB_STATE_RUNNING, 2, 50);
  absl::StatusOr<v1::Job> update_response = MakeJob(v1::JOB_STATE_RUNNING, 1, 25);
  absl::StatusOr<v1::ListJobsResponse> list_response = v1::ListJobsResponse();
  absl::StatusOr<v1::ListExecutorsResponse> executors_response =
      v1::ListExecutorsResponse();
  absl::StatusOr<v1::GetQueueStatsResponse> queue_response = v1::GetQueueStatsResponse();
  absl::StatusOr<v1::GetResultResponse> result_response;
  std::vector<v1::Job> watch_events;
  // Carried by the last watch event (as a scheduler does on a job's end).
  std::optional<v1::GetResultResponse> end_result;
  absl::Status watch_status;
};

class RunCliTest : public ::testing::Test {
 protected:
  RunCliTest() {
    v1::GetResultResponse result;
    result.set_job_id("j1");
    result.set_result_json(R"({"count":25})");
    result.set_location("/results/j1.json");
    result.set_sha256("beef");
    api_.result_response = result;
  }

  // Runs the CLI; the fake stays owned by the test.
  int Run(const std::vector<std::string>& args, const char* env = nullptr) {
    RunContext ctx{out_, err_};
    ctx.in = &in_;
    ctx.clock = &clock_;
    CliEnv cli_env;
    cli_env.scheduler = env;
    cli_env.token = env_token_;
    cli_env.tls_ca = env_tls_ca_;
    return RunCli(
        args, cli_env,
        [this](const ConnectOptions& options) -> absl::StatusOr<std::unique_ptr<JobApi>> {
          addresses_.push_back(options.address);
          connects_.push_back(options);
          if (!connect_error_.ok()) return connect_error_;
          return std::make_unique<Forwarder>(api_);
        },
        ctx);
  }

  // Lets RunCli own a JobApi while calls reach the test's fake.
  class Forwarder : public JobApi {
   public:
    explicit Forwarder(JobApi& to) : to_(to) {}
    absl::StatusOr<v1::Job> SubmitJob(const v1::JobSpec& s) override {
      return to_.SubmitJob(s);
    }
    absl::StatusOr<v1::Job> GetJob(const std::string& id) override {
      return to_.GetJob(id);
    }
    absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& r) override {
      return to_.ListJobs(r);
    }
    absl::StatusOr<v1::Job> CancelJob(const std::string& id) override {
      return to_.CancelJob(id);
    }
    absl::StatusOr<v1::Job> RetryFailedShards(const std::string& id) override {
      return to_.RetryFailedShards(id);
    }
    absl::StatusOr<v1::Job> UpdateJob(const v1::UpdateJobRequest& r) override {
      return to_.UpdateJob(r);
    }
    absl::StatusOr<v1::GetResultResponse> GetResult(const std::string& id) override {
      return to_.GetResult(id);
    }
    absl::StatusOr<v1::ListExecutorsResponse> ListExecutors() override {
      return to_.ListExecutors();
    }
    absl::StatusOr<v1::GetQueueStatsResponse> GetQueueStats() override {
      return to_.GetQueueStats();
    }
    absl::Status WatchJob(const std::string& id,
                          const std::function<void(const v1::JobEvent&)>& f) override {
      return to_.WatchJob(id, f);
    }

   private:
    JobApi& to_;
  };

  FakeJobApi api_;
  FakeClock clock_;
  std::ostringstream out_;
  std::ostringstream err_;
  std::istringstream in_;
  std::vector<std::string> addresses_;
  std::vector<ConnectOptions> connects_;
  absl::Status connect_error_;
  const char* env_token_ = nullptr;
  const char* env_tls_ca_ = nullptr;
};

TEST_F(RunCliTest, ExitsTwoOnUsageErrorWithoutConnecting) {
  EXPECT_EQ(Run({"submit", "--task", "primes", "--range", "10", "--shards", "2"}), 2);
  EXPECT_TRUE(addresses_.empty());
  EXPECT_EQ(err_.str(),
            "tessera: --range: expected START:END (e.g. 0:1000), got \"10\"\n"
            "Run 'tessera --help' for usage.\n");
  EXPECT_EQ(out_.str(), "");
}

TEST_F(RunCliTest, ExitsTwoWithUsageWhenNoArgumentsAreGiven) {
  EXPECT_EQ(Run({}), 2);
  EXPECT_TRUE(absl::StartsWith(err_.str(), "usage: tessera"));
}

TEST_F(RunCliTest, PrintsHelpOnStdoutAndExitsZero) {
  EXPECT_EQ(Run({"help"}), 0);
  EXPECT_TRUE(absl::StartsWith(out_.str(), "usage: tessera"));
  EXPECT_TRUE(addresses_.empty());
}

TEST_F(RunCliTest, PrintsTheVersionLineWithoutConnecting) {
  EXPECT_EQ(Run({"--version"}), 0);
  EXPECT_EQ(out_.str(), tessera::VersionLine() + "\n");
  EXPECT_TRUE(absl::StartsWith(out_.str(), "tessera ")) << out_.str();
  EXPECT_TRUE(addresses_.empty());
}

TEST_F(RunCliTest, ConnectsToTheAddressFromFlagThenEnvironmentThenDefault) {
  Run({"queue"}, "env:1");
  Run({"--scheduler", "flag:2", "queue"}, "env:1");
  Run({"queue"});
  EXPECT_EQ(addresses_, (std::vector<std::string>{"env:1", "flag:2", "127.0.0.1:50051"}));
}

TEST_F(RunCliTest, TakesTheTokenFromTheFlagThenTheFileThenTheEnvironment) {
  env_token_ = " from-env \n";
  Run({"queue"});
  Run({"--token", "from-flag", "queue"});
  const ::tessera::testing::TempDir tmp("tessera-cli");
  const std::string file = tmp.path() + "/cli_token";
  {
    std::ofstream f(file);
    f << "from-file\n";
  }
  Run({"queue", "--token-file", file});
  ASSERT_EQ(connects_.size(), 3u);
  EXPECT_EQ(connects_[0].token, "from-env");
  EXPECT_EQ(connects_[1].token, "from-flag");
  EXPECT_EQ(connects_[2].token, "from-file");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(RunCliTest, TakesTheTlsCaFromTheFlagElseTheEnvironment) {
  env_tls_ca_ = "/env/ca.pem";
  Run({"queue"});
  Run({"--tls-ca", "/flag/ca.pem", "queue"});
  ASSERT_EQ(connects_.size(), 2u);
  EXPECT_EQ(connects_[0].tls_ca, "/env/ca.pem");
  EXPECT_EQ(connects_[1].tls_ca, "/flag/ca.pem");
}

TEST_F(RunCliTest, AnUnreadableTokenFileIsAUsageErrorThatNamesTheFlagNotTheToken) {
  EXPECT_EQ(Run({"queue", "--token-file", "/nonexistent/token"}), 2);
  EXPECT_TRUE(connects_.empty());
  EXPECT_EQ(err_.str(), "tessera: --token-file /nonexistent/token cannot be read\n");
}

TEST_F(RunCliTest, TokenAndTokenFileTogetherAreRefused) {
  EXPECT_EQ(Run({"--token", "a", "--token-file", "/x", "queue"}), 2);
  EXPECT_TRUE(connects_.empty());
  EXPECT_NE(err_.str().find("--token: and --token-file are exclusive"), std::string::npos)
      << err_.str();
}

TEST_F(RunCliTest, AConnectionErrorIsPrintedAndExitsTwo) {
  connect_error_ = absl::FailedPreconditionError("--tls-ca /x/ca.pem cannot be read");
  EXPECT_EQ(Run({"queue"}), 2);
  EXPECT_EQ(err_.str(), "tessera: --tls-ca /x/ca.pem cannot be read\n");
}

TEST_F(RunCliTest, SubmitSendsTheSpecAndPrintsTheJobId) {
  EXPECT_EQ(Run({"submit", "--task", "primes", "--range", "0:100", "--shards", "4"}), 0);
  ASSERT_EQ(api_.submitted.size(), 1u);
  EXPECT_EQ(api_.submitted[0].task(), "primes");
  EXPECT_EQ(api_.submitted[0].range().shard_count(), 4);
  EXPECT_EQ(out_.str(), "j1\n");
}

TEST_F(RunCliTest, SubmitWithJsonPrintsTheJob) {
  EXPECT_EQ(Run({"--json", "submit", "--task", "t", "--range", "0:1", "--shards", "1"}),
            0);
  EXPECT_TRUE(absl::StartsWith(out_.str(), "{\"id\":\"j1\""));
}

TEST_F(RunCliTest, SubmitWithWaitFollowsTheJobAndPrintsTheResult) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_RUNNING, 1, 25),
                       MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 100)};
  EXPECT_EQ(Run({"submit", "--task", "t", "--range", "0:100", "--shards", "4", "--wait"}),
            0);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"WatchJob j1", "GetResult j1"}));
  EXPECT_EQ(out_.str(),
            "job j1 SUCCEEDED  4/4 shards  100 items\n"
            "{\n  \"count\": 25\n}\n"
            "result: /results/j1.json (sha256 beef)\n");
  EXPECT_EQ(err_.str(),
            "submitted job j1\n"
            "job j1 RUNNING 1/4 shards 25% -- items/s ETA --\n");
}

TEST_F(RunCliTest, SubmitWithWaitTakesTheResultFromTheEndEventWithoutGetResult) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_RUNNING, 1, 25),
                       MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 100)};
  api_.end_result = *api_.result_response;
  api_.end_result->set_result_json(R"({"count":100})");
  api_.result_response = absl::InternalError("GetResult must not be called");
  EXPECT_EQ(Run({"submit", "--task", "t", "--range", "0:100", "--shards", "4", "--wait"}),
            0);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"WatchJob j1"}));
  EXPECT_EQ(out_.str(),
            "job j1 SUCCEEDED  4/4 shards  100 items\n"
            "{\n  \"count\": 100\n}\n"
            "result: /results/j1.json (sha256 beef)\n");
}

TEST_F(RunCliTest, WatchWithJsonPrintsTheResultCarriedByTheEndEvent) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 100)};
  api_.end_result = *api_.result_response;
  api_.result_response = absl::InternalError("GetResult must not be called");
  EXPECT_EQ(Run({"--json", "watch", "j1"}), 0);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"WatchJob j1"}));
  EXPECT_NE(out_.str().find(R"("resultJson":"{\"count\":25}")"), std::string::npos)
      << out_.str();
}

TEST_F(RunCliTest, WatchExitsOneWhenTheJobFails) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_FAILED, 3, 75)};
  EXPECT_EQ(Run({"watch", "j1"}), 1);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"WatchJob j1"}));
  EXPECT_TRUE(absl::StartsWith(out_.str(), "job j1 FAILED")) << out_.str();
  EXPECT_EQ(err_.str(), "");  // no failed shards listed, so no retry hint
}

// Two of four shards out of attempts; the other two folded into the result.
v1::Job PartialJob() {
  v1::Job job = MakeJob(v1::JOB_STATE_PARTIAL, 2, 50);
  job.mutable_shards()->set_failed(2);
  job.set_message("2 shards failed");
  for (int64_t shard : {1, 3}) {
    v1::FailedShard* f = job.add_failed_shards();
    f->set_shard(shard);
    f->set_start(shard * 25);
    f->set_end(shard * 25 + 25);
    f->set_attempts(3);
    f->set_last_error("boom");
  }
  job.set_result_version(1);
  return job;
}

TEST_F(RunCliTest, WatchOnAPartialJobPrintsSummaryResultAndFailedShardsAndExitsOne) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_RUNNING, 1, 25), PartialJob()};
  EXPECT_EQ(Run({"watch", "j1"}), 1);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"WatchJob j1", "GetResult j1"}));
  EXPECT_EQ(out_.str(),
            "job j1 PARTIAL  2/4 shards (2 failed)  50 items\n"
            "  2 shards failed\n"
            "{\n  \"count\": 25\n}\n"
            "result: /results/j1.json (sha256 beef)\n"
            "failed shards:\n"
            "  shard 1 [25, 50) after 3 attempts: boom\n"
            "  shard 3 [75, 100) after 3 attempts: boom\n");
  EXPECT_EQ(err_.str(),
            "job j1 RUNNING 1/4 shards 25% -- items/s ETA --\n"
            "run `tessera retry j1` to re-run the failed shards\n");
}

TEST_F(RunCliTest, SubmitWithWaitExitsOneOnPartialWithJsonJobAndResult) {
  api_.watch_events = {PartialJob()};
  EXPECT_EQ(Run({"--json", "submit", "--task", "t", "--range", "0:100", "--shards", "4",
                 "--max-failed-shards", "2", "--wait"}),
            1);
  ASSERT_EQ(api_.submitted.size(), 1u);
  EXPECT_EQ(api_.submitted[0].failure_policy().max_failed_shards(), 2);
  std::string out = out_.str();
  EXPECT_TRUE(absl::StartsWith(out, "{\"id\":\"j1\"")) << out;
  EXPECT_NE(out.find("\"failedShards\":[{"), std::string::npos) << out;
  EXPECT_NE(out.find("\n{\"jobId\":\"j1\""), std::string::npos) << out;
}

TEST_F(RunCliTest, WatchTreatsPartialAsFinishedWhenTheStreamEndsEarly) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_RUNNING, 1, 25)};
  api_.get_response = PartialJob();
  EXPECT_EQ(Run({"watch", "j1"}), 1);
  EXPECT_EQ(api_.calls,
            (std::vector<std::string>{"WatchJob j1", "GetJob j1", "GetResult j1"}));
}

TEST_F(RunCliTest, WatchOnAPartialJobReportsAMissingResultAsRpcError) {
  api_.watch_events = {PartialJob()};
  api_.result_response = absl::UnavailableError("connection reset");
  EXPECT_EQ(Run({"watch", "j1"}), 3);
  EXPECT_NE(out_.str().find("failed shards:\n"), std::string::npos) << out_.str();
  EXPECT_NE(err_.str().find("tessera: UNAVAILABLE: connection reset"), std::string::npos)
      << err_.str();
}

TEST_F(RunCliTest, WatchPrintsTheResultVersionAfterARetry) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 100)};
  v1::GetResultResponse result = *api_.result_response;
  result.set_version(2);
  api_.result_response = result;
  EXPECT_EQ(Run({"watch", "j1"}), 0);
  EXPECT_NE(out_.str().find("result: /results/j1.json (sha256 beef, version 2)\n"),
            std::string::npos)
      << out_.str();
}

TEST_F(RunCliTest, GetShowsFailedShardsAndResultVersion) {
  v1::Job job = PartialJob();
  job.set_result_location("/results/j1.json");
  job.set_result_sha256("beef");
  api_.get_response = job;
  EXPECT_EQ(Run({"get", "j1"}), 0);
  EXPECT_NE(out_.str().find("result:       /results/j1.json (sha256 beef, version 1)\n"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(
      out_.str().find("failed shards:\n  shard 1 [25, 50) after 3 attempts: boom\n"),
      std::string::npos)
      << out_.str();
}

TEST_F(RunCliTest, RetryCountsTheFailedShardsBeforeTheCall) {
  api_.get_response = PartialJob();
  EXPECT_EQ(Run({"retry", "j1"}), 0);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"GetJob j1", "RetryFailedShards j1"}));
  EXPECT_EQ(out_.str(), "job j1 RUNNING: retrying 2 failed shards\n");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(RunCliTest, RetryWithJsonPrintsTheReturnedJob) {
  api_.get_response = PartialJob();
  EXPECT_EQ(Run({"retry", "j1", "--json"}), 0);
  EXPECT_TRUE(absl::StartsWith(out_.str(), "{\"id\":\"j1\"")) << out_.str();
  EXPECT_NE(out_.str().find("\"state\":\"JOB_STATE_RUNNING\""), std::string::npos)
      << out_.str();
}

TEST_F(RunCliTest, RetryWithWaitFollowsTheJobUntilItSucceeds) {
  v1::Job failed = MakeJob(v1::JOB_STATE_FAILED, 3, 75);
  v1::FailedShard* f = failed.add_failed_shards();
  f->set_shard(2);
  api_.get_response = failed;
  api_.watch_events = {MakeJob(v1::JOB_STATE_RUNNING, 3, 80),
                       MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 100)};
  EXPECT_EQ(Run({"retry", "--wait", "j1"}), 0);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"GetJob j1", "RetryFailedShards j1",
                                                  "WatchJob j1", "GetResult j1"}));
  EXPECT_EQ(out_.str(),
            "job j1 SUCCEEDED  4/4 shards  100 items\n"
            "{\n  \"count\": 25\n}\n"
            "result: /results/j1.json (sha256 beef)\n");
  EXPECT_EQ(err_.str(),
            "job j1 RUNNING: retrying 1 failed shard\n"
            "job j1 RUNNING 3/4 shards 80% -- items/s ETA --\n");
}

TEST_F(RunCliTest, RetryWithWaitExitsOneWhenTheJobEndsPartialAgain) {
  api_.get_response = PartialJob();
  api_.watch_events = {PartialJob()};
  EXPECT_EQ(Run({"retry", "j1", "--wait"}), 1);
  EXPECT_NE(out_.str().find("failed shards:\n"), std::string::npos) << out_.str();
}

TEST_F(RunCliTest, RetryReportsARefusalAsRpcError) {
  api_.get_response = MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 100);
  api_.retry_response = absl::FailedPreconditionError(
      "job j1 is SUCCEEDED; only PARTIAL or FAILED jobs have failed shards to retry");
  EXPECT_EQ(Run({"retry", "j1"}), 3);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(),
            "tessera: FAILED_PRECONDITION: job j1 is SUCCEEDED; only PARTIAL or FAILED "
            "jobs have failed shards to retry\n");
}

TEST_F(RunCliTest, RetryDoesNotCallRetryWhenTheJobCannotBeRead) {
  api_.get_response = absl::NotFoundError("job j1 not found");
  EXPECT_EQ(Run({"retry", "j1"}), 3);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"GetJob j1"}));
}

TEST_F(RunCliTest, BadSubmitDurationIsAUsageErrorWithoutConnecting) {
  EXPECT_EQ(Run({"submit", "--task", "t", "--range", "0:10", "--shards", "2",
                 "--shard-timeout", "5"}),
            2);
  EXPECT_TRUE(addresses_.empty());
  EXPECT_TRUE(api_.submitted.empty());
  EXPECT_EQ(err_.str(),
            "tessera: --shard-timeout: expected a duration like 500ms, 2s or 1m, got "
            "\"5\"\n"
            "Run 'tessera --help' for usage.\n");
}

TEST_F(RunCliTest, WatchWithJsonPrintsFinalJobAndResultAsJsonLines) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 100)};
  EXPECT_EQ(Run({"watch", "j1", "--json"}), 0);
  std::string out = out_.str();
  EXPECT_TRUE(absl::StartsWith(out, "{\"id\":\"j1\"")) << out;
  EXPECT_NE(out.find("\n{\"jobId\":\"j1\""), std::string::npos) << out;
}

TEST_F(RunCliTest, WatchAsksForTheJobWhenTheStreamEndsEarly) {
  api_.watch_events = {MakeJob(v1::JOB_STATE_RUNNING, 1, 25)};
  api_.get_response = MakeJob(v1::JOB_STATE_CANCELLED, 1, 25);
  EXPECT_EQ(Run({"watch", "j1"}), 1);
  EXPECT_EQ(api_.calls, (std::vector<std::string>{"WatchJob j1", "GetJob j1"}));
}

TEST_F(RunCliTest, WatchExitsThreeWhenTheStreamEndsAndTheJobIsStillRunning) {
  api_.watch_events = {};
  EXPECT_EQ(Run({"watch", "j1"}), 3);
  EXPECT_NE(err_.str().find("tessera: UNAVAILABLE: the watch of job j1 ended"),
            std::string::npos)
      << err_.str();
}

TEST_F(RunCliTest, PrintsRpcErrorWithCodeNameAndExitsThree) {
  api_.get_response = absl::NotFoundError("job nope not found");
  EXPECT_EQ(Run({"get", "nope"}), 3);
  EXPECT_EQ(err_.str(), "tessera: NOT_FOUND: job nope not found\n");
}

TEST_F(RunCliTest, NamesTheSchedulerWhenItIsUnreachable) {
  api_.watch_status = absl::UnavailableError("failed to connect to all addresses");
  EXPECT_EQ(Run({"--scheduler", "h:1", "watch", "j1"}), 3);
  EXPECT_EQ(
      err_.str(),
      "tessera: UNAVAILABLE: failed to connect to all addresses (scheduler at h:1)\n");
}

TEST_F(RunCliTest, ResultPrintsJsonOnStdoutAndLocationOnStderr) {
  EXPECT_EQ(Run({"result", "j1"}), 0);
  EXPECT_EQ(out_.str(), "{\n  \"count\": 25\n}\n");
  EXPECT_EQ(err_.str(), "result: /results/j1.json (sha256 beef)\n");
}

TEST_F(RunCliTest, ResultReportsNotFinishedYetAsRpcError) {
  api_.result_response = absl::FailedPreconditionError("job j1 is RUNNING");
  EXPECT_EQ(Run({"result", "j1"}), 3);
  EXPECT_EQ(err_.str(), "tessera: FAILED_PRECONDITION: job j1 is RUNNING\n");
}

TEST_F(RunCliTest, ListPrintsATableAndTheNextPageHint) {
  v1::ListJobsResponse response;
  *response.add_jobs() = MakeJob(v1::JOB_STATE_RUNNING, 1, 25);
  response.set_next_page_token("p2");
  api_.list_response = response;
  EXPECT_EQ(Run({"list"}), 0);
  EXPECT_TRUE(
      absl::StartsWith(out_.str(), "ID  STATE    NAME  TASK  QUEUE    SHARDS  CREATED\n"))
      << out_.str();
  EXPECT_EQ(err_.str(), "more jobs: tessera list --page-token p2\n");
}

TEST_F(RunCliTest, CancelPrintsTheNewState) {
  EXPECT_EQ(Run({"cancel", "j1"}), 0);
  EXPECT_EQ(out_.str(), "job j1 CANCELLED\n");
  api_.cancel_response = MakeJob(v1::JOB_STATE_SUCCEEDED, 4, 100);
  out_.str("");
  EXPECT_EQ(Run({"cancel", "j1"}), 0);
  EXPECT_EQ(out_.str(), "job j1 SUCCEEDED (already finished, unchanged)\n");
}

TEST_F(RunCliTest, QueuePrintsStats) {
  v1::GetQueueStatsResponse stats;
  stats.set_jobs_queued(2);
  stats.set_slots_total(8);
  stats.set_slots_busy(3);
  api_.queue_response = stats;
  EXPECT_EQ(Run({"queue"}), 0);
  EXPECT_NE(out_.str().find("jobs:      2 queued, 0 running\n"), std::string::npos);
  EXPECT_NE(out_.str().find("slots:     3/8 busy\n"), std::string::npos);
}

// A file `name` in `dir` (the test's TempDir) holding `text`.
std::string WriteTempFile(const std::string& dir, const std::string& name,
                          const std::string& text) {
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST_F(RunCliTest, SubmitReadsItemsFromAJsonArrayFile) {
  const ::tessera::testing::TempDir tmp("tessera-cli");
  std::string path =
      WriteTempFile(tmp.path(), "items.json", R"([3, "four", {"n": 5}, [6], null])");
  EXPECT_EQ(Run({"submit",  "--task",
                 "square",  "--items-file",
                 path,      "--batch-size",
                 "2",       "--queue",
                 "batch",   "--priority",
                 "10",      "--rate-limit",
                 "2.5",     "--idempotency-key",
                 "run-1",   "--concurrency-key",
                 "nightly", "--concurrency-limit",
                 "2",       "--label",
                 "team=ml", "--label",
                 "env=prod"}),
            0);
  ASSERT_EQ(api_.submitted.size(), 1u);
  const v1::JobSpec& spec = api_.submitted[0];
  EXPECT_FALSE(spec.has_range());
  ASSERT_TRUE(spec.has_items());
  EXPECT_EQ(spec.items().batch_size(), 2);
  ASSERT_EQ(spec.items().items_size(), 5);
  EXPECT_EQ(spec.items().items(0).number_value(), 3);
  EXPECT_EQ(spec.items().items(1).string_value(), "four");
  EXPECT_EQ(spec.items().items(2).struct_value().fields().at("n").number_value(), 5);
  EXPECT_EQ(spec.items().items(3).list_value().values(0).number_value(), 6);
  EXPECT_TRUE(spec.items().items(4).has_null_value());
  EXPECT_EQ(spec.queue(), "batch");
  EXPECT_EQ(spec.priority(), 10);
  EXPECT_EQ(spec.rate_limit(), 2.5);
  EXPECT_EQ(spec.idempotency_key(), "run-1");
  EXPECT_EQ(spec.concurrency_key(), "nightly");
  EXPECT_EQ(spec.concurrency_limit(), 2);
  EXPECT_EQ(spec.labels().size(), 2);
  EXPECT_EQ(spec.labels().at("team"), "ml");
  EXPECT_EQ(spec.labels().at("env"), "prod");
  EXPECT_EQ(out_.str(), "j1\n");
}

TEST_F(RunCliTest, SubmitReadsJsonLinesItemsFromStdin) {
  in_.str("{\"x\": 1}\n\n{\"x\": 2}\n[1, 2]\n");
  EXPECT_EQ(Run({"submit", "--task", "t", "--items-file", "-", "--batch-size", "1"}), 0);
  ASSERT_EQ(api_.submitted.size(), 1u);
  const v1::ItemsInput& items = api_.submitted[0].items();
  ASSERT_EQ(items.items_size(), 3);
  EXPECT_EQ(items.items(1).struct_value().fields().at("x").number_value(), 2);
  EXPECT_EQ(items.items(2).list_value().values_size(), 2);
}

TEST_F(RunCliTest, BadItemsAreAUsageErrorWithoutConnecting) {
  in_.str("{\"x\": 1}\n{oops\n");
  EXPECT_EQ(Run({"submit", "--task", "t", "--items-file", "-", "--batch-size", "1"}), 2);
  EXPECT_TRUE(addresses_.empty());
  EXPECT_TRUE(
      absl::StartsWith(err_.str(), "tessera: --items-file: line 2 is not valid JSON"))
      << err_.str();
}

TEST_F(RunCliTest, AMissingItemsFileIsAUsageErrorNamingThePath) {
  EXPECT_EQ(Run({"submit", "--task", "t", "--items-file", "/nonexistent/items.json",
                 "--batch-size", "1"}),
            2);
  EXPECT_TRUE(addresses_.empty());
  EXPECT_TRUE(absl::StartsWith(
      err_.str(), "tessera: --items-file: cannot open \"/nonexistent/items.json\": "))
      << err_.str();
}

TEST_F(RunCliTest, ItemsFlagConflictsAreUsageErrorsWithoutReadingOrConnecting) {
  in_.str("[1]");
  EXPECT_EQ(Run({"submit", "--task", "t", "--items-file", "-", "--range", "0:10",
                 "--batch-size", "1"}),
            2);
  EXPECT_NE(err_.str().find("--range: not allowed with --items-file"), std::string::npos)
      << err_.str();
  EXPECT_EQ(in_.tellg(), 0);  // stdin untouched
  EXPECT_TRUE(addresses_.empty());
}

TEST_F(RunCliTest, UpdateSendsAMaskOfTheGivenFieldsAndPrintsTheNewValues) {
  v1::Job job = MakeJob(v1::JOB_STATE_RUNNING, 1, 25);
  job.mutable_spec()->set_max_parallel(8);
  job.mutable_spec()->set_rate_limit(0);
  api_.update_response = job;
  EXPECT_EQ(Run({"update", "j1", "--max-parallel", "8", "--rate-limit", "0"}), 0);
  ASSERT_EQ(api_.update_requests.size(), 1u);
  const v1::UpdateJobRequest& r = api_.update_requests[0];
  EXPECT_EQ(r.job_id(), "j1");
  EXPECT_EQ(r.update().max_parallel(), 8);
  EXPECT_EQ(r.update().rate_limit(), 0);
  EXPECT_EQ(std::vector<std::string>(r.update_mask().paths().begin(),
                                     r.update_mask().paths().end()),
            (std::vector<std::string>{"max_parallel", "rate_limit"}));
  EXPECT_EQ(out_.str(), "job j1 RUNNING: max parallel 8, rate limit no limit\n");
}

TEST_F(RunCliTest, UpdateOfOneFieldMasksOnlyThatField) {
  v1::Job job = MakeJob(v1::JOB_STATE_QUEUED, 0, 0);
  job.mutable_spec()->set_rate_limit(2.5);
  api_.update_response = job;
  EXPECT_EQ(Run({"update", "j1", "--rate-limit=2.5"}), 0);
  ASSERT_EQ(api_.update_requests.size(), 1u);
  ASSERT_EQ(api_.update_requests[0].update_mask().paths_size(), 1);
  EXPECT_EQ(api_.update_requests[0].update_mask().paths(0), "rate_limit");
  EXPECT_EQ(out_.str(), "job j1 QUEUED: max parallel no cap, rate limit 2.5 shards/s\n");
}

TEST_F(RunCliTest, UpdateWithJsonPrintsTheJob) {
  EXPECT_EQ(Run({"--json", "update", "j1", "--max-parallel", "2"}), 0);
  EXPECT_TRUE(absl::StartsWith(out_.str(), "{\"id\":\"j1\"")) << out_.str();
}

TEST_F(RunCliTest, UpdateWithoutFieldsIsAUsageErrorWithoutConnecting) {
  EXPECT_EQ(Run({"update", "j1"}), 2);
  EXPECT_TRUE(addresses_.empty());
  EXPECT_NE(err_.str().find("--max-parallel"), std::string::npos) << err_.str();
}

TEST_F(RunCliTest, UpdateReportsARefusalAsRpcError) {
  api_.update_response = absl::FailedPreconditionError("job j1 is SUCCEEDED");
  EXPECT_EQ(Run({"update", "j1", "--max-parallel", "4"}), 3);
  EXPECT_EQ(err_.str(), "tessera: FAILED_PRECONDITION: job j1 is SUCCEEDED\n");
}

TEST_F(RunCliTest, ListSendsQueueAndLabelFilters) {
  EXPECT_EQ(Run({"list", "--queue", "batch", "--label", "team=ml", "--label=env=prod"}),
            0);
  ASSERT_EQ(api_.list_requests.size(), 1u);
  const v1::ListJobsRequest& r = api_.list_requests[0];
  EXPECT_EQ(r.queue(), "batch");
  EXPECT_EQ(r.labels().size(), 2);
  EXPECT_EQ(r.labels().at("team"), "ml");
  EXPECT_EQ(r.labels().at("env"), "prod");
}

TEST_F(RunCliTest, GetShowsQueuePriorityLimitsAndLabels) {
  v1::Job job = MakeJob(v1::JOB_STATE_RUNNING, 1, 25);
  job.mutable_spec()->mutable_items()->set_item_count(100);
  job.mutable_spec()->mutable_items()->set_batch_size(25);
  job.mutable_spec()->set_queue("batch");
  job.mutable_spec()->set_priority(7);
  job.mutable_spec()->set_rate_limit(3);
  job.mutable_spec()->set_concurrency_key("nightly");
  (*job.mutable_spec()->mutable_labels())["team"] = "ml";
  api_.get_response = job;
  EXPECT_EQ(Run({"get", "j1"}), 0);
  const std::string out = out_.str();
  for (const char* line :
       {"input:        100 items, batch size 25\n", "queue:        batch\n",
        "priority:     7\n", "rate limit:   3 shards/s\n",
        "concurrency:  nightly (at most 1 running)\n", "labels:       team=ml\n"}) {
    EXPECT_NE(out.find(line), std::string::npos) << line << out;
  }
}

TEST_F(RunCliTest, ExecutorsShowsQueues) {
  v1::ListExecutorsResponse response;
  v1::Executor* e = response.add_executors();
  e->set_id("ex1");
  e->add_queues("default");
  e->add_queues("gpu");
  api_.executors_response = response;
  EXPECT_EQ(Run({"executors"}), 0);
  EXPECT_NE(out_.str().find("QUEUES"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("default,gpu"), std::string::npos) << out_.str();
}

}  // namespace
}  // namespace tessera::cli
