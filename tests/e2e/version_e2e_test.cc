// Versions end to end: --version of every binary, the version executors send
// in Hello (ListExecutors), tessera_build_info on both services' /metrics, and
// the refusal of a second executor on a metrics port already taken.
#include "absl/strings/str_cat.h"
#include "shared/version.h"
#include "tests/e2e/cluster.h"
#include "tests/util/status_matchers.h"

namespace tessera::testing {
namespace {

using ::tessera::testing::IsOk;

class VersionE2eTest : public Cluster {
 protected:
  // Waits until `port` serves /metrics; returns the scrape ("" on timeout).
  static std::string ScrapeWhenUp(int port) {
    for (int i = 0; i < 500; ++i) {
      std::string body = HttpGet(port, "/metrics");
      if (!body.empty()) return body;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return "";
  }
};

TEST_F(VersionE2eTest, EveryBinaryPrintsTheVersionLineAndExitsZero) {
  const std::string expected = VersionLine() + "\n";
  // "tessera 0.1.0 (commit abc1234)", or "(commit unknown)" without git.
  EXPECT_TRUE(
      absl::StartsWith(expected, absl::StrCat("tessera ", Version(), " (commit ")))
      << expected;
  for (const char* bin : {TESSERA_SCHEDULER_BIN, TESSERA_EXECUTOR_BIN, TESSERA_CLI_BIN}) {
    CommandResult r = RunCommand({bin, "--version"});
    EXPECT_EQ(r.status, 0) << bin;
    EXPECT_EQ(r.out, expected) << bin;
  }
}

TEST_F(VersionE2eTest, ExecutorsReportTheirVersionAndBothServicesExportBuildInfo) {
  StartScheduler();
  const int executor_metrics = FreePort();
  StartExecutor("versioned", 1,
                {absl::StrCat("--metrics-listen=127.0.0.1:", executor_metrics)});
  v1::ListExecutorsResponse executors;
  for (int i = 0; i < 500 && executors.executors_size() == 0; ++i) {
    ASSERT_THAT(
        jobs()->ListExecutors(Ctx().get(), v1::ListExecutorsRequest(), &executors),
        IsOk());
    if (executors.executors_size() == 0) absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(executors.executors_size(), 1) << Logs();
  EXPECT_EQ(executors.executors(0).version(), VersionTag());

  CommandResult table =
      RunCommand({TESSERA_CLI_BIN, "--scheduler", address(), "executors"});
  EXPECT_EQ(table.status, 0);
  EXPECT_TRUE(absl::StrContains(table.out, "VERSION")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, VersionTag())) << table.out;

  const std::string sample = absl::StrCat("tessera_build_info{commit=\"", Commit(),
                                          "\",version=\"", Version(), "\"}");
  EXPECT_EQ(MetricValue(Metrics(), sample), 1) << Metrics();
  const std::string scrape = ScrapeWhenUp(executor_metrics);
  EXPECT_EQ(MetricValue(scrape, sample), 1) << scrape;
}

TEST_F(VersionE2eTest, ASecondExecutorOnATakenMetricsPortExitsNamingTheFlag) {
  StartScheduler();
  const int metrics_port = FreePort();
  const std::string taken = absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port);
  StartExecutor("first", 1, {taken});
  ASSERT_FALSE(ScrapeWhenUp(metrics_port).empty()) << Logs();

  Process* second = StartExecutor("second", 1, {taken});
  ASSERT_EQ(second->Wait(absl::Seconds(20)), 1) << second->Log();
  const std::string log = second->Log();
  EXPECT_TRUE(
      absl::StrContains(log, absl::StrCat("cannot listen on 127.0.0.1:", metrics_port)))
      << log;
  EXPECT_TRUE(absl::StrContains(
      log, absl::StrCat("(e.g. --metrics-listen=127.0.0.1:", metrics_port + 1, ")")))
      << log;
  EXPECT_TRUE(absl::StrContains(log, "(--metrics-listen=) to disable /metrics")) << log;
  EXPECT_FALSE(absl::StrContains(log, "CivetServer")) << log;
}

}  // namespace
}  // namespace tessera::testing
