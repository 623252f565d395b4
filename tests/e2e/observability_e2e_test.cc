// Observability end to end: a real Prometheus (the Debian package) on
// loopback scrapes a scheduler and two executors while they run a job; then
// every query of the Grafana dashboard and of the alert rules is evaluated
// through Prometheus's HTTP API. Also: `promtool check metrics` on a scrape of
// each service, and the scheduler's --log-format=json lines.
//
// The rule for alert expressions, which are empty while all is well: each is
// evaluated as written and must be valid; if it returns nothing, its "series
// form" must return at least one series. The series form removes an outer
// absent(...) and gives every comparison against a number the `bool`
// modifier (`x > 0.2` becomes `x > bool 0.2`), so it returns the series the
// alert watches, whatever their values. An alert whose metric names or labels
// are wrong therefore fails here even though it would never fire.
#include <signal.h>

#include <fstream>
#include <regex>
#include <set>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "tests/e2e/cluster.h"

namespace tessera::testing {
namespace {

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(TESSERA_SOURCE_DIR) + "/" + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The JSON body of GET http://127.0.0.1:port/api/v1/<what>.
nlohmann::json PromApi(int port, const std::string& what, const std::string& query = "") {
  std::vector<std::string> argv = {"curl", "-s", "--max-time", "10", "-G"};
  if (!query.empty()) {
    argv.push_back("--data-urlencode");
    argv.push_back("query=" + query);
  }
  argv.push_back(absl::StrCat("http://127.0.0.1:", port, "/api/v1/", what));
  CommandResult r = RunCommand(argv, {}, absl::Seconds(15));
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return {{"status", "error"}, {"error", "not JSON: " + r.out}};
  return j;
}

// What Grafana substitutes at query time, with the dashboard's "All" queue.
std::string ExpandDashboardVariables(std::string expr) {
  return absl::StrReplaceAll(
      expr, {{"$__rate_interval", "1m"}, {"${queue}", ".*"}, {"$queue", ".*"}});
}

// See the rule at the top of this file.
std::string SeriesForm(std::string expr) {
  absl::string_view v(expr);
  if (absl::ConsumePrefix(&v, "absent(") && absl::ConsumeSuffix(&v, ")")) {
    expr = std::string(v);
  }
  static const std::regex kCompare(
      R"(\s(==|!=|>=|<=|>|<)\s+(-?[0-9][0-9.e+]*)(?![0-9a-zA-Z]))");
  return std::regex_replace(expr, kCompare, " $1 bool $2");
}

class ObservabilityTest : public Cluster {
 protected:
  void TearDown() override {
    if (prometheus_ != nullptr && prometheus_->running()) {
      prometheus_->Signal(SIGTERM);
      if (!prometheus_->Wait(absl::Seconds(10))) prometheus_->Signal(SIGKILL);
    }
  }

  void StartPrometheus(const std::vector<int>& executor_ports) {
    prom_port_ = FreePort();
    std::vector<std::string> targets;
    for (int p : executor_ports) targets.push_back(absl::StrCat("\"127.0.0.1:", p, "\""));
    const std::string config = dir() + "/prometheus.yml";
    std::ofstream(config) << absl::StrCat(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n", "rule_files: [\"",
        TESSERA_SOURCE_DIR, "/k8s/prometheus/rules.yaml\"]\n", "scrape_configs:\n",
        "  - job_name: tessera-scheduler\n",
        "    static_configs: [{targets: [\"127.0.0.1:", metrics_port(), "\"]}]\n",
        "  - job_name: tessera-executor\n", "    static_configs: [{targets: [",
        absl::StrJoin(targets, ","), "]}]\n");
    prometheus_ = std::make_unique<Process>(
        std::vector<std::string>{
            PROMETHEUS_BIN, "--config.file=" + config,
            "--storage.tsdb.path=" + dir() + "/tsdb",
            absl::StrCat("--web.listen-address=127.0.0.1:", prom_port_),
            "--log.level=warn"},
        dir() + "/prometheus.log");
  }

  // Polls `query` until it returns a series or the timeout.
  bool WaitForSeries(const std::string& query, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      nlohmann::json r = PromApi(prom_port_, "query", query);
      if (r.value("status", "") == "success" && !r["data"]["result"].empty()) return true;
      if (!prometheus_->running()) return false;
      absl::SleepFor(absl::Milliseconds(250));
    }
    return false;
  }

  // Evaluates `query`: "" if it is valid and returns a series, else why not.
  std::string Check(const std::string& query) {
    nlohmann::json r = PromApi(prom_port_, "query", query);
    if (r.value("status", "") != "success") return "invalid: " + r.dump();
    if (r["data"]["result"].empty()) return "no series";
    return "";
  }

  int prom_port_ = 0;
  std::unique_ptr<Process> prometheus_;
};

TEST_F(ObservabilityTest, LivePrometheusAnswersEveryDashboardAndAlertQuery) {
  StartScheduler({"--log-format=json"});
  std::vector<int> executor_ports = {FreePort(), FreePort()};
  for (int i = 0; i < 2; ++i) {
    StartExecutor(absl::StrCat("obs-", i), 2,
                  {absl::StrCat("--metrics-listen=127.0.0.1:", executor_ports[i])});
  }
  StartPrometheus(executor_ports);
  ASSERT_TRUE(WaitForSeries("count(up == 1) == 3", absl::Seconds(20)))
      << "Prometheus does not scrape all three services\n"
      << prometheus_->Log() << Logs();

  v1::Job job = Submit(
      R"({"spec":{"name":"obs","task":"sleep","params":{"ms":20},"range":{"start":"0","end":"400","shardCount":20}}})");
  ASSERT_EQ(WaitForEnd(job.id(), absl::Seconds(60)).state(), v1::JOB_STATE_SUCCEEDED)
      << Logs();
  // Enough scrapes after the end for every rate() window to hold two samples.
  ASSERT_TRUE(WaitForSeries(R"(tessera_jobs_finished_total{outcome="succeeded"} > 0)",
                            absl::Seconds(20)))
      << prometheus_->Log();
  absl::SleepFor(absl::Seconds(3));

  // promtool check metrics: each service's scrape, no warnings.
  for (int port : {metrics_port(), executor_ports[0], executor_ports[1]}) {
    CommandResult r =
        RunCommand({"sh", "-c",
                    absl::StrCat("curl -sS --max-time 10 http://127.0.0.1:", port,
                                 "/metrics | ", PROMTOOL_BIN, " check metrics 2>&1")});
    EXPECT_EQ(r.status, 0) << "port " << port << ": " << r.out;
    EXPECT_EQ(r.out, "") << "port " << port;
  }

  // The dashboard: every target and every template variable query.
  nlohmann::json dash = nlohmann::json::parse(ReadSource("k8s/grafana/tessera.json"));
  int dashboard_queries = 0;
  for (const nlohmann::json& panel : dash["panels"]) {
    if (!panel.contains("targets")) continue;
    for (const nlohmann::json& t : panel["targets"]) {
      const std::string expr = ExpandDashboardVariables(t["expr"].get<std::string>());
      EXPECT_EQ(Check(expr), "")
          << "panel \"" << panel["title"].get<std::string>() << "\": " << expr;
      ++dashboard_queries;
    }
  }
  for (const nlohmann::json& var : dash["templating"]["list"]) {
    if (var["type"] != "query") continue;
    // label_values(metric, label): the metric must have series with the label.
    static const std::regex kLabelValues(R"(label_values\((.+),\s*(\w+)\))");
    std::smatch m;
    const std::string def = var["definition"].get<std::string>();
    ASSERT_TRUE(std::regex_match(def, m, kLabelValues)) << def;
    EXPECT_EQ(Check(absl::StrCat(m[1].str(), "{", m[2].str(), "!=\"\"}")), "") << def;
  }
  EXPECT_GE(dashboard_queries, 30);

  // The alert rules, as Prometheus loaded them from rules.yaml.
  nlohmann::json rules = PromApi(prom_port_, "rules");
  ASSERT_EQ(rules.value("status", ""), "success") << rules.dump();
  const std::string rules_text = ReadSource("k8s/prometheus/rules.yaml");
  size_t alerts_in_file = 0;
  for (size_t at = rules_text.find("- alert:"); at != std::string::npos;
       at = rules_text.find("- alert:", at + 1)) {
    ++alerts_in_file;
  }
  size_t alerts = 0;
  for (const nlohmann::json& group : rules["data"]["groups"]) {
    for (const nlohmann::json& rule : group["rules"]) {
      const std::string name = rule["name"].get<std::string>();
      EXPECT_EQ(rule.value("health", ""), "ok") << name << ": " << rule.dump();
      const std::string query = rule["query"].get<std::string>();
      nlohmann::json r = PromApi(prom_port_, "query", query);
      ASSERT_EQ(r.value("status", ""), "success") << name << ": " << query << "\n"
                                                  << r.dump();
      if (r["data"]["result"].empty()) {
        EXPECT_EQ(Check(SeriesForm(query)), "")
            << name << ": series form " << SeriesForm(query);
      }
      ++alerts;
    }
  }
  EXPECT_EQ(alerts, alerts_in_file);
  EXPECT_GE(alerts, 6u);

  // JSON logs: every line of the scheduler's log is a JSON object, and the
  // job's events carry its id as a field.
  int job_lines = 0;
  for (absl::string_view line :
       absl::StrSplit(scheduler()->Log(), '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("msg")) << line;
    EXPECT_EQ(j.value("service", ""), "scheduler") << line;
    if (j.value("job", "") == job.id()) ++job_lines;
  }
  EXPECT_GE(job_lines, 2) << scheduler()->Log();  // submitted, finished
}

}  // namespace
}  // namespace tessera::testing
