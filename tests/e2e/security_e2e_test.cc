// Auth end to end with the real binaries: a scheduler with TLS, client
// certificates and tokens; executors with a client certificate or a token
// file; the CLI and buf curl (through reflection) with the test CA and a token.
// Certificates and tokens are made at test time; secrets go through files and
// the environment, never argv.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/e2e/cluster.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::IsOk;

using json = nlohmann::json;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Put(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string Sha256OfText(const std::string& dir, const std::string& text) {
  Put(dir + "/hash-input", text);
  CommandResult r = RunCommand({"sha256sum", dir + "/hash-input"});
  std::filesystem::remove(dir + "/hash-input");
  return r.out.substr(0, 64);
}

// Random hex from openssl, like an operator would make a token.
std::string NewToken() {
  CommandResult r = RunCommand({"openssl", "rand", "-hex", "24"});
  return std::string(absl::StripAsciiWhitespace(r.out));
}

class SecureCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = dir_ + "/certs";
    ASSERT_EQ(RunCommand({"bash", MAKE_CERTS_SCRIPT, certs_}).status, 0);
    submitter_token_ = NewToken();
    executor_token_ = NewToken();
    reader_token_ = NewToken();
    ASSERT_EQ(submitter_token_.size(), 48u);
    json tokens = {{"tokens",
                    {{{"name", "ci"},
                      {"sha256", Sha256OfText(dir_, submitter_token_)},
                      {"role", "submitter"},
                      {"queues", {"default"}}},
                     {{"name", "runner"},
                      {"sha256", Sha256OfText(dir_, executor_token_)},
                      {"role", "executor"}},
                     {{"name", "viewer"},
                      {"sha256", Sha256OfText(dir_, reader_token_)},
                      {"role", "reader"}}}}};
    Put(dir_ + "/tokens.json", tokens.dump(2));
    Put(dir_ + "/executor.token", executor_token_ + "\n");
    Put(dir_ + "/ci.token", submitter_token_ + "\n");
    Put(dir_ + "/ci.headers", "authorization: Bearer " + submitter_token_ + "\n");
    port_ = FreePort();
    address_ = absl::StrCat("127.0.0.1:", port_);
  }

  void StartScheduler() {
    scheduler_ = std::make_unique<Process>(
        std::vector<std::string>{
            TESSERA_SCHEDULER_BIN, "--listen=" + address_,
            "--metrics-listen=", "--data-dir=" + dir_ + "/data",
            "--tls-cert=" + certs_ + "/server.pem", "--tls-key=" + certs_ + "/server.key",
            "--tls-client-ca=" + certs_ + "/ca.pem",
            "--auth-tokens-file=" + dir_ + "/tokens.json", "--heartbeat-interval=500ms"},
        dir_ + "/scheduler.log");
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = Slurp(certs_ + "/ca.pem");
    for (int i = 0; i < 250; ++i) {
      // A fresh channel per try: one that failed waits out its reconnect backoff.
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      jobs_ = v1::JobService::NewStub(
          grpc::CreateCustomChannel(address_, grpc::SslCredentials(ssl), args));
      v1::GetQueueStatsResponse stats;
      if (jobs_->GetQueueStats(Ctx(reader_token_).get(), {}, &stats).ok()) return;
      ASSERT_TRUE(scheduler_->running()) << scheduler_->Log();
      absl::SleepFor(absl::Milliseconds(20));
    }
    FAIL() << "the scheduler did not answer over TLS\n" << scheduler_->Log();
  }

  Process* StartExecutor(const std::string& name, std::vector<std::string> credentials) {
    std::vector<std::string> argv = {
        TESSERA_EXECUTOR_BIN, "--scheduler=" + address_,
        "--slots=2",          "--name=" + name,
        "--metrics-listen=",  "--tls-ca=" + certs_ + "/ca.pem"};
    argv.insert(argv.end(), credentials.begin(), credentials.end());
    executors_.push_back(std::make_unique<Process>(argv, dir_ + "/" + name + ".log"));
    return executors_.back().get();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  // The names of the executors the scheduler lists, sorted.
  std::vector<std::string> ExecutorNames() {
    v1::ListExecutorsResponse resp;
    EXPECT_THAT(jobs_->ListExecutors(Ctx(reader_token_).get(), {}, &resp), IsOk());
    std::vector<std::string> names;
    for (const auto& e : resp.executors()) names.push_back(e.name());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string Logs() {
    std::string out = "--- scheduler\n" + (scheduler_ ? scheduler_->Log() : "");
    for (auto& e : executors_) out += "--- executor\n" + e->Log();
    return out;
  }

  // Before the processes, so they have ended when it is removed.
  const TempDir tmp_{"tessera-sec"};
  const std::string dir_ = tmp_.path();
  std::string certs_, address_;
  int port_ = 0;
  std::string submitter_token_, executor_token_, reader_token_;
  std::unique_ptr<Process> scheduler_;
  std::vector<std::unique_ptr<Process>> executors_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

TEST_F(SecureCluster, ExecutorsWithACertificateOrATokenRunAJobTheCliSubmitsOverTls) {
  StartScheduler();
  StartExecutor("with-cert", {"--tls-cert=" + certs_ + "/executor-a.pem",
                              "--tls-key=" + certs_ + "/executor-a.key"});
  StartExecutor("with-token", {"--auth-token-file=" + dir_ + "/executor.token"});
  Process* nothing = StartExecutor("no-credentials", {});
  for (int i = 0; i < 250 && ExecutorNames().size() < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(ExecutorNames(), (std::vector<std::string>{"with-cert", "with-token"}))
      << Logs();

  // The CLI: the CA and the token from the environment, so neither is in argv.
  CommandResult r = RunCommand(
      {TESSERA_CLI_BIN, "--scheduler", address_, "submit", "--task", "primes", "--range",
       "0:1000000", "--shards", "16", "--wait"},
      {"TESSERA_TOKEN=" + submitter_token_, "TESSERA_TLS_CA=" + certs_ + "/ca.pem"},
      absl::Seconds(120));
  EXPECT_EQ(r.status, 0) << r.out << Logs();
  EXPECT_NE(r.out.find("\"primes\": 78498"), std::string::npos) << r.out;
  // And with --token-file; a reader may list but not submit.
  CommandResult list =
      RunCommand({TESSERA_CLI_BIN, "--scheduler", address_, "--tls-ca",
                  certs_ + "/ca.pem", "--token-file", dir_ + "/ci.token", "list"});
  EXPECT_EQ(list.status, 0) << list.out;
  CommandResult denied = RunCommand(
      {TESSERA_CLI_BIN, "--scheduler", address_, "--tls-ca", certs_ + "/ca.pem", "submit",
       "--task", "noop", "--range", "0:10", "--shards", "1"},
      {"TESSERA_TOKEN=" + reader_token_});
  EXPECT_EQ(denied.status, 3) << denied.out;

  // The executor without credentials says why it cannot connect and gets no work.
  EXPECT_TRUE(nothing->running());
  EXPECT_NE(nothing->Log().find("UNAUTHENTICATED"), std::string::npos) << nothing->Log();

  // Audit lines name the caller; no log holds a token.
  const std::string logs = Logs();
  EXPECT_NE(logs.find("audit: SubmitJob job="), std::string::npos) << logs;
  EXPECT_NE(logs.find(" by ci"), std::string::npos);
  EXPECT_NE(logs.find("identity=executor-a"), std::string::npos);
  EXPECT_NE(logs.find("identity=runner"), std::string::npos);
  for (const std::string& t : {submitter_token_, executor_token_, reader_token_}) {
    EXPECT_EQ(logs.find(t), std::string::npos) << "a token reached a log";
  }
  // Nor does any process's command line.
  for (auto& e : executors_) {
    const std::string cmdline = Slurp(absl::StrCat("/proc/", e->pid(), "/cmdline"));
    EXPECT_EQ(cmdline.find(executor_token_), std::string::npos);
  }
}

TEST_F(SecureCluster, BufCurlWorksThroughReflectionWithTheCaAndAToken) {
  StartScheduler();
  const std::string buf = BUF_BIN;
  ASSERT_TRUE(std::filesystem::exists(buf))
      << buf << " missing: run scripts/install-deps.sh --test";
  const std::string base = "https://" + address_;
  auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {buf,    "curl",     "--protocol",
                                     "grpc", "--cacert", certs_ + "/ca.pem"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {"HOME=" + dir_}, absl::Seconds(60));
  };
  // The token goes in a header file (-H @file), not on the command line.
  CommandResult list = curl({"-H", "@" + dir_ + "/ci.headers", "--reflect-header", "*",
                             "--list-services", base});
  ASSERT_EQ(list.status, 0) << list.out << scheduler_->Log();
  EXPECT_NE(list.out.find("tessera.v1.JobService"), std::string::npos) << list.out;
  CommandResult submitted =
      curl({"-H", "@" + dir_ + "/ci.headers", "--reflect-header", "*", "-d",
            R"({"spec":{"task":"noop","range":{"start":"0","end":"10","shardCount":1}}})",
            base + "/tessera.v1.JobService/SubmitJob"});
  ASSERT_EQ(submitted.status, 0) << submitted.out;
  EXPECT_FALSE(json::parse(submitted.out)["id"].get<std::string>().empty());
  // Without a token, reflection itself is refused.
  CommandResult anonymous = curl({"--list-services", base});
  EXPECT_NE(anonymous.status, 0) << anonymous.out;
  EXPECT_EQ(anonymous.out.find("tessera.v1.JobService"), std::string::npos);
  // Health needs nothing (the schema comes from reflection, which does).
  CommandResult health = curl({"-H", "@" + dir_ + "/ci.headers", "--reflect-header", "*",
                               "-d", "{}", base + "/grpc.health.v1.Health/Check"});
  EXPECT_NE(health.out.find("SERVING"), std::string::npos) << health.out;
}

TEST(SchedulerStartup, ANonLoopbackListenWithoutCredentialsExitsOneUnlessInsecure) {
  const TempDir tmp("tessera-insecure");  // outlives the processes below
  const std::string dir = tmp.path();
  const std::string listen = absl::StrCat("--listen=0.0.0.0:", FreePort());
  CommandResult refused = RunCommand(
      {TESSERA_SCHEDULER_BIN, listen, "--metrics-listen=", "--data-dir=" + dir + "/data"},
      {}, absl::Seconds(30));
  EXPECT_EQ(refused.status, 1);
  Process refused_again(
      {TESSERA_SCHEDULER_BIN, listen, "--metrics-listen=", "--data-dir=" + dir + "/data"},
      dir + "/refused.log");
  EXPECT_EQ(refused_again.Wait(absl::Seconds(30)), 1);
  EXPECT_NE(refused_again.Log().find("neither TLS (--tls-cert, --tls-key) nor tokens"),
            std::string::npos)
      << refused_again.Log();
  EXPECT_NE(refused_again.Log().find("--insecure"), std::string::npos);

  Process insecure({TESSERA_SCHEDULER_BIN, listen,
                    "--metrics-listen=", "--data-dir=" + dir + "/data", "--insecure"},
                   dir + "/insecure.log");
  for (int i = 0; i < 250 && insecure.Log().find("listening") == std::string::npos; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(insecure.running()) << insecure.Log();
  EXPECT_NE(insecure.Log().find("--insecure: serving"), std::string::npos)
      << insecure.Log();
  insecure.Signal(SIGTERM);
  EXPECT_EQ(insecure.Wait(absl::Seconds(30)), 0);
}

}  // namespace
}  // namespace tessera::testing
