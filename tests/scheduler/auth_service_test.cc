// TLS, mTLS and tokens against a real scheduler server on 127.0.0.1:0, with
// certificates and tokens made at test time (tests/util/make-test-certs.sh).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/service/scheduler_server.h"
#include "shared/sha256.h"
#include "shared/tls.h"
#include "tessera/v1/executor.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/scheduler/executor_stream.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::GrpcStatusIs;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::Not;

using json = nlohmann::json;
using Stream = grpc::ClientReaderWriter<v1::ExecutorMessage, v1::SchedulerMessage>;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path + ".tmp");
  f << text;
  f.close();
  std::filesystem::rename(path + ".tmp", path);
}

std::string ReadFile(const std::string& path) { return *ReadSmallFile(path, path); }

json Token(const std::string& name, const std::string& token, const std::string& role,
           std::vector<std::string> queues = {}) {
  json t = {{"name", name}, {"sha256", Sha256Hex(token)}, {"role", role}};
  if (!queues.empty()) t["queues"] = queues;
  return t;
}

class AuthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = dir_ + "/certs";
    testing::CommandResult made =
        testing::RunCommand({"bash", MAKE_CERTS_SCRIPT, certs_});
    ASSERT_EQ(made.status, 0) << made.out;
    tokens_file_ = dir_ + "/tokens.json";
    WriteTokens({Token("ops", "admin-token", "admin"),
                 Token("viewer", "reader-token", "reader"),
                 Token("team-a", "submitter-a-token", "submitter", {"a"}),
                 Token("runner", "executor-token", "executor")});
    // The server's files are copies, so that rotation can replace them.
    std::filesystem::copy_file(certs_ + "/server.pem", dir_ + "/tls.crt");
    std::filesystem::copy_file(certs_ + "/server.key", dir_ + "/tls.key");
    SchedulerConfig config;
    config.listen = "127.0.0.1:0";
    config.metrics_listen = "127.0.0.1:0";
    config.data_dir = dir_ + "/data";
    config.tls.cert_file = dir_ + "/tls.crt";
    config.tls.key_file = dir_ + "/tls.key";
    config.tls.client_ca_file = certs_ + "/ca.pem";
    config.tls.refresh = absl::Seconds(1);
    config.auth_tokens_file = tokens_file_;
    config.core.heartbeat_interval = absl::Milliseconds(200);
    config.core.heartbeat_timeout = absl::Seconds(2);
    auto server = SchedulerServer::Create(config, &clock_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    jobs_ = v1::JobService::NewStub(Channel(certs_ + "/ca.pem"));
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  void WriteTokens(const std::vector<json>& tokens) {
    WriteFile(tokens_file_, json{{"tokens", tokens}}.dump());
  }

  // A fresh TLS channel (its own subchannel) trusting `ca`, with an optional
  // client certificate.
  std::shared_ptr<grpc::Channel> Channel(const std::string& ca,
                                         const std::string& client = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadFile(ca);
    if (!client.empty()) {
      ssl.pem_cert_chain = ReadFile(certs_ + "/" + client + ".pem");
      ssl.pem_private_key = ReadFile(certs_ + "/" + client + ".key");
    }
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(address_, grpc::SslCredentials(ssl), args);
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  grpc::Status Submit(const std::string& token, const std::string& queue,
                      v1::Job* job = nullptr) {
    v1::SubmitJobRequest req;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(
                    absl::StrCat(R"({"spec":{"task":"noop",)",
                                 R"("range":{"start":"0","end":"10","shardCount":1},)",
                                 R"("queue":")", queue, R"("}})"),
                    &req)
                    .ok());
    v1::Job ignored;
    return jobs_->SubmitJob(Ctx(token).get(), req, job != nullptr ? job : &ignored);
  }

  grpc::Status Stats(const std::string& token) {
    v1::GetQueueStatsResponse resp;
    return jobs_->GetQueueStats(Ctx(token).get(), v1::GetQueueStatsRequest(), &resp);
  }

  struct Executor {
    std::unique_ptr<v1::ExecutorService::Stub> stub;
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<Stream> stream;
    grpc::Status Finish() { return stream->Finish(); }
  };
  // An executor stream that has sent hello; `welcomed` says whether a
  // Welcome came back.
  Executor Hello(const std::string& id, const std::string& client_cert,
                 const std::string& token, bool* welcomed) {
    Executor e;
    e.stub = v1::ExecutorService::NewStub(Channel(certs_ + "/ca.pem", client_cert));
    e.ctx = Ctx(token);
    e.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    e.stream = e.stub->Connect(e.ctx.get());
    v1::ExecutorMessage hello;
    hello.mutable_hello()->set_executor_id(id);
    hello.mutable_hello()->set_name(id);
    hello.mutable_hello()->add_tasks("noop");
    hello.mutable_hello()->set_slots(1);
    e.stream->Write(hello);
    v1::SchedulerMessage welcome;
    *welcomed = e.stream->Read(&welcome) && welcome.has_welcome();
    return e;
  }

  double Metric(const std::string& sample) {
    const std::string text = testing::HttpGet(server_->metrics_port(), "/metrics");
    const size_t at = text.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + sample.size() + 2));
  }

  RealClock clock_;
  // Before the server, so that it has stopped when the dir is removed.
  const testing::TempDir tmp_{"tessera-auth"};
  const std::string dir_ = tmp_.path();
  std::string certs_;
  std::string tokens_file_;
  std::string address_;
  std::unique_ptr<SchedulerServer> server_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

TEST_F(AuthServiceTest, ACallWithoutAKnownTokenIsUnauthenticated) {
  grpc::Status none = Stats("");
  EXPECT_THAT(none, GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_NE(none.error_message().find("authorization: Bearer <token>"), std::string::npos)
      << none.error_message();
  grpc::Status wrong = Stats("no-such-token");
  EXPECT_THAT(wrong, GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_EQ(wrong.error_message().find("no-such-token"), std::string::npos);
  auto ctx = Ctx();
  ctx->AddMetadata("authorization", "Basic abc");
  v1::GetQueueStatsResponse resp;
  EXPECT_THAT(jobs_->GetQueueStats(ctx.get(), {}, &resp),
              GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED));
}

TEST_F(AuthServiceTest, AReaderMayReadButNotSubmit) {
  EXPECT_THAT(Stats("reader-token"), IsOk());
  grpc::Status s = Submit("reader-token", "default");
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(s.error_message(),
            "SubmitJob needs role submitter or admin; \"viewer\" has role reader");
  v1::ListJobsResponse list;
  EXPECT_THAT(jobs_->ListJobs(Ctx("reader-token").get(), {}, &list), IsOk());
  EXPECT_EQ(list.jobs_size(), 0);  // the refused submission changed nothing
}

TEST_F(AuthServiceTest, ASubmitterScopedToQueueAMayNotTouchQueueB) {
  v1::Job in_a;
  ASSERT_THAT(Submit("submitter-a-token", "a", &in_a), IsOk());
  grpc::Status s = Submit("submitter-a-token", "b");
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_NE(s.error_message().find("queue \"b\" needs a submitter token for that queue"),
            std::string::npos)
      << s.error_message();
  // A job in b (the admin's) may be read but not cancelled by team-a.
  v1::Job in_b;
  ASSERT_THAT(Submit("admin-token", "b", &in_b), IsOk());
  v1::CancelJobRequest cancel;
  cancel.set_job_id(in_b.id());
  v1::Job out;
  EXPECT_THAT(jobs_->CancelJob(Ctx("submitter-a-token").get(), cancel, &out),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED));
  v1::GetJobRequest get;
  get.set_job_id(in_b.id());
  ASSERT_THAT(jobs_->GetJob(Ctx("submitter-a-token").get(), get, &out), IsOk());
  EXPECT_EQ(out.state(), v1::JOB_STATE_QUEUED);
  cancel.set_job_id(in_a.id());
  EXPECT_THAT(jobs_->CancelJob(Ctx("submitter-a-token").get(), cancel, &out), IsOk());
  // A job that does not exist is NOT_FOUND only for a caller who may submit.
  cancel.set_job_id("nope");
  EXPECT_THAT(jobs_->CancelJob(Ctx("reader-token").get(), cancel, &out),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_THAT(jobs_->CancelJob(Ctx("submitter-a-token").get(), cancel, &out),
              GrpcStatusIs(grpc::StatusCode::NOT_FOUND));
}

TEST_F(AuthServiceTest, AnAdminMayDoEverythingAndHealthNeedsNoCredentials) {
  v1::Job job;
  ASSERT_THAT(Submit("admin-token", "anything", &job), IsOk());
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.id());
  v1::Job out;
  EXPECT_THAT(jobs_->CancelJob(Ctx("admin-token").get(), cancel, &out), IsOk());
  bool welcomed = false;
  Executor e = Hello("admin-exec", "", "admin-token", &welcomed);
  EXPECT_TRUE(welcomed);
  e.ctx->TryCancel();

  auto health = grpc::health::v1::Health::NewStub(Channel(certs_ + "/ca.pem"));
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_THAT(health->Check(Ctx().get(), {}, &resp), IsOk());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(AuthServiceTest, APlaintextClientCannotTalkToTheTlsPort) {
  auto plain = v1::JobService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  v1::GetQueueStatsResponse resp;
  EXPECT_THAT(plain->GetQueueStats(Ctx("admin-token").get(), {}, &resp),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
}

TEST_F(AuthServiceTest, AnExecutorNeedsACertificateOrAnExecutorToken) {
  bool welcomed = true;
  Executor none = Hello("e1", "", "", &welcomed);
  EXPECT_FALSE(welcomed);
  EXPECT_THAT(none.Finish(), GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED));

  Executor reader = Hello("e2", "", "reader-token", &welcomed);
  EXPECT_FALSE(welcomed);
  grpc::Status s = reader.Finish();
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_NE(s.error_message().find("needs role executor or admin"), std::string::npos);

  // A certificate from a CA the scheduler does not trust fails the handshake.
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(certs_ + "/ca.pem");
  ssl.pem_cert_chain = ReadFile(certs_ + "/rogue.pem");
  ssl.pem_private_key = ReadFile(certs_ + "/rogue.key");
  auto rogue =
      v1::JobService::NewStub(grpc::CreateChannel(address_, grpc::SslCredentials(ssl)));
  v1::GetQueueStatsResponse resp;
  EXPECT_THAT(rogue->GetQueueStats(Ctx("admin-token").get(), {}, &resp),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));

  Executor with_token = Hello("e3", "", "executor-token", &welcomed);
  EXPECT_TRUE(welcomed);
  Executor with_cert = Hello("e4", "executor-a", "", &welcomed);
  EXPECT_TRUE(welcomed);
  // An executor identity may run shards, not submit them.
  EXPECT_THAT(Submit("executor-token", "default"),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED));
  with_token.ctx->TryCancel();
  with_cert.ctx->TryCancel();
}

TEST_F(AuthServiceTest, ExecutorBCannotTakeAsIdNorCountAResultForAsShard) {
  bool welcomed = false;
  Executor a = Hello("exec-a", "executor-a", "", &welcomed);
  ASSERT_TRUE(welcomed);
  v1::Job job;
  ASSERT_THAT(Submit("admin-token", "default", &job), IsOk());
  std::vector<v1::Assignment> got = ReadAssignments(a.stream.get(), 1);
  ASSERT_EQ(got.size(), 1u);

  // B's own certificate does not let it take A's executor id.
  Executor b_as_a = Hello("exec-a", "executor-b", "", &welcomed);
  EXPECT_FALSE(welcomed);
  grpc::Status s = b_as_a.Finish();
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_NE(s.error_message().find("executor id \"exec-a\" belongs to \"executor-a\""),
            std::string::npos)
      << s.error_message();

  // Under its own id, B's result for A's shard (A's real lease id, even) is
  // refused and counted; A's lease stands.
  Executor b = Hello("exec-b", "executor-b", "", &welcomed);
  ASSERT_TRUE(welcomed);
  v1::ExecutorMessage forged;
  forged.mutable_result()->set_lease_id(got[0].lease_id());
  forged.mutable_result()->set_job_id(job.id());
  forged.mutable_result()->set_shard(0);
  forged.mutable_result()->set_result_json(R"({"items":1000000})");
  ASSERT_TRUE(b.stream->Write(forged));
  // Refused: the lease was issued to A's identity (and A holds the shard).
  const std::string unknown = R"(tessera_results_rejected_total{reason="unknown_lease"})";
  for (int i = 0; i < 100 && Metric(unknown) < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(Metric(unknown), 1);

  // A's stream breaks; while the shard waits for A to re-attach nobody holds
  // it, and B's result with A's real lease id still does not count.
  a.ctx->TryCancel();
  a.Finish();
  ASSERT_TRUE(b.stream->Write(forged));
  for (int i = 0; i < 100 && Metric(unknown) < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(Metric(unknown), 2);

  // A comes back with the shard it still runs and its result counts.
  Executor back;
  back.stub = v1::ExecutorService::NewStub(Channel(certs_ + "/ca.pem", "executor-a"));
  back.ctx = Ctx();
  back.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  back.stream = back.stub->Connect(back.ctx.get());
  v1::ExecutorMessage hello;
  hello.mutable_hello()->set_executor_id("exec-a");
  hello.mutable_hello()->set_name("exec-a");
  hello.mutable_hello()->add_tasks("noop");
  hello.mutable_hello()->set_slots(1);
  v1::HeldShard* held = hello.mutable_hello()->add_held();
  held->set_lease_id(got[0].lease_id());
  held->set_job_id(job.id());
  held->set_shard(0);
  held->set_attempt(got[0].attempt());
  ASSERT_TRUE(back.stream->Write(hello));
  v1::ExecutorMessage real;
  real.mutable_result()->set_lease_id(got[0].lease_id());
  real.mutable_result()->set_result_json(R"({"items":10})");
  ASSERT_TRUE(back.stream->Write(real));
  v1::GetResultRequest req;
  req.set_job_id(job.id());
  v1::GetResultResponse result;
  grpc::Status rs;
  for (int i = 0; i < 200; ++i) {
    rs = jobs_->GetResult(Ctx("reader-token").get(), req, &result);
    if (rs.ok()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_THAT(rs, IsOk());
  EXPECT_EQ(json::parse(result.result_json())["items"], 10);
  back.ctx->TryCancel();
  b.ctx->TryCancel();
}

TEST_F(AuthServiceTest, RotatedCertificateFilesServeNewConnectionsWithoutARestart) {
  auto ca2_stats = [&] {
    auto stub = v1::JobService::NewStub(Channel(certs_ + "/ca2.pem"));
    v1::GetQueueStatsResponse resp;
    return stub->GetQueueStats(Ctx("admin-token").get(), {}, &resp);
  };
  EXPECT_THAT(ca2_stats(), GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
  WriteFile(dir_ + "/tls.key", ReadFile(certs_ + "/server2.key"));
  WriteFile(dir_ + "/tls.crt", ReadFile(certs_ + "/server2.pem"));
  grpc::Status s;
  for (int i = 0; i < 50; ++i) {
    s = ca2_stats();
    if (s.ok()) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_THAT(s, IsOk());
  // The old certificate is no longer served.
  EXPECT_THAT(Stats("admin-token"), GrpcStatusIs(grpc::StatusCode::UNAVAILABLE));
}

TEST_F(AuthServiceTest, TheTokensFileIsReReadWhenItChangesAndABadOneKeepsTheOld) {
  ASSERT_THAT(Stats("reader-token"), IsOk());
  WriteTokens(
      {Token("ops", "admin-token", "admin"), Token("new", "new-token", "reader")});
  grpc::Status s;
  for (int i = 0; i < 40; ++i) {
    s = Stats("new-token");
    if (s.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(s, IsOk());
  EXPECT_THAT(Stats("reader-token"), GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED));
  WriteFile(tokens_file_, "{not json");
  absl::SleepFor(absl::Milliseconds(1200));
  EXPECT_THAT(Stats("new-token"), IsOk());
}

class StartupTest : public ::testing::Test {
 protected:
  const testing::TempDir tmp_{"tessera-auth-start"};
  const std::string dir_ = tmp_.path();
  RealClock clock_;
};

TEST_F(StartupTest, ANonLoopbackListenWithoutTlsOrTokensIsRefusedUnlessInsecure) {
  SchedulerConfig config;
  config.listen = "0.0.0.0:0";
  config.metrics_listen = "";
  config.data_dir = dir_;
  auto refused = SchedulerServer::Create(config, &clock_);
  ASSERT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(
      refused.status().message().find("neither TLS (--tls-cert, --tls-key) nor tokens "
                                      "(--auth-tokens-file) are set"),
      std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("--insecure"), std::string::npos);
  config.insecure = true;
  auto allowed = SchedulerServer::Create(config, &clock_);
  ASSERT_THAT(allowed, IsOk());
  (*allowed)->Shutdown();
}

TEST_F(StartupTest, BadTlsOrTokenFilesAreRefusedNamingTheFlag) {
  const std::string certs = dir_ + "/certs";
  ASSERT_EQ(testing::RunCommand({"bash", MAKE_CERTS_SCRIPT, certs}).status, 0);
  SchedulerConfig config;
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.data_dir = dir_ + "/data";
  config.tls.cert_file = certs + "/server.pem";
  config.tls.key_file = certs + "/executor-a.key";
  auto mismatched = SchedulerServer::Create(config, &clock_);
  ASSERT_THAT(mismatched, Not(IsOk()));
  EXPECT_NE(mismatched.status().message().find("--tls-key " + certs +
                                               "/executor-a.key is not the key of"),
            std::string::npos)
      << mismatched.status().message();
  config.tls.key_file = certs + "/server.key";
  config.tls.client_ca_file = certs + "/server.key";
  auto bad_ca = SchedulerServer::Create(config, &clock_);
  ASSERT_THAT(bad_ca, Not(IsOk()));
  EXPECT_NE(bad_ca.status().message().find("--tls-client-ca"), std::string::npos);
  config.tls = {};
  config.auth_tokens_file = dir_ + "/missing.json";
  auto missing = SchedulerServer::Create(config, &clock_);
  ASSERT_THAT(missing, Not(IsOk()));
  EXPECT_EQ(missing.status().message(),
            "--auth-tokens-file " + dir_ + "/missing.json cannot be read");
}

}  // namespace
}  // namespace tessera::scheduler
