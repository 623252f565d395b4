#include "shared/metrics.h"

#include <exception>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "shared/process_metrics.h"
#include "shared/version.h"

namespace tessera {
namespace {

class CallbackCollectable : public prometheus::Collectable {
 public:
  explicit CallbackCollectable(MetricsServer::Collector fn) : fn_(std::move(fn)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return fn_(); }

 private:
  MetricsServer::Collector fn_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(
    const std::string& listen) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  try {
    // civetweb takes "host:port"; one worker thread is plenty for scrapes.
    server->exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception&) {
    // civetweb's own text ("null context when constructing CivetServer") says
    // nothing a person can act on.
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot listen on ", listen,
                     " (the port is in use, or the address is not one of this host's)"));
  }
  server->registry_ = std::make_shared<prometheus::Registry>();
  server->exposer_->RegisterCollectable(server->registry_);
  server->AddCollector(CollectProcessMetrics);
  // The Prometheus convention for the build: a constant 1, the facts in labels.
  prometheus::BuildGauge()
      .Name("tessera_build_info")
      .Help("Always 1; the labels say which version and commit this process runs")
      .Register(*server->registry_)
      .Add({{"version", Version()}, {"commit", Commit()}})
      .Set(1);
  return server;
}

std::string MetricsListenAdvice(absl::string_view flag, absl::string_view listen) {
  // Suggest the next port on the same host: what a second process on one
  // host needs.
  std::string suggestion = "127.0.0.1:9092";
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon != absl::string_view::npos &&
      absl::SimpleAtoi(listen.substr(colon + 1), &port) && port > 0 && port < 65535) {
    suggestion = absl::StrCat(listen.substr(0, colon), ":", port + 1);
  }
  return absl::StrCat("pass another address with ", flag, " (e.g. ", flag, "=",
                      suggestion, ") or an empty one (", flag, "=) to disable /metrics");
}

void MetricsServer::AddCollector(Collector collector) {
  auto c = std::make_shared<CallbackCollectable>(std::move(collector));
  collectors_.push_back(c);
  exposer_->RegisterCollectable(c);
}

int MetricsServer::port() const {
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

const prometheus::Histogram::BucketBoundaries& WorkBuckets() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,  0.25, 0.5,  1,    2.5,  5,
      10,    30,     60,    120,  300,   600,  1200, 1800, 3600, 7200, 14400};
  return *kBuckets;
}

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  return *kBuckets;
}

prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void AddGaugeSample(prometheus::MetricFamily& family, double value,
                    std::vector<prometheus::ClientMetric::Label> labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  family.metric.push_back(std::move(m));
}

prometheus::MetricFamily CounterFamily(const std::string& name, const std::string& help) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Counter;
  return f;
}

void AddCounterSample(prometheus::MetricFamily& family, double value,
                      std::vector<prometheus::ClientMetric::Label> labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  family.metric.push_back(std::move(m));
}

}  // namespace tessera
