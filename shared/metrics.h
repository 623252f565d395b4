// The Prometheus /metrics endpoint of a service (prometheus-cpp pull exposer).
#ifndef TESSERA_SHARED_METRICS_H_
#define TESSERA_SHARED_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tessera {

// Owns the HTTP exposer and a registry, and exports the standard process_*
// metrics (shared/process_metrics.h) and tessera_build_info{version,commit}. Families are
// created on `registry()`; snapshot-style metrics (read from a core under its lock at
// scrape time) are added with AddCollector. Thread-safe after Create.
class MetricsServer {
 public:
  using Collector = std::function<std::vector<prometheus::MetricFamily>()>;

  // Listens on `listen` ("host:port"; port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(const std::string& listen);

  prometheus::Registry& registry() { return *registry_; }
  void AddCollector(Collector collector);
  // The bound port (useful with port 0).
  int port() const;

 private:
  MetricsServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectors_;
};

// What to do when Create fails for the address a flag named `flag` gave:
// "pass another address with --metrics-listen (e.g.
// --metrics-listen=127.0.0.1:9092) or an empty one (--metrics-listen=) to
// disable /metrics", suggesting the next port on the same host.
std::string MetricsListenAdvice(absl::string_view flag, absl::string_view listen);

// Histogram buckets, in seconds. WorkBuckets fit shard work and queue waits,
// from 1 ms to 4 hours; LatencyBuckets fit internal operations (store
// commits, result writes), from 100 µs to 30 s.
const prometheus::Histogram::BucketBoundaries& WorkBuckets();
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

// Helpers to build snapshot families for collectors.
prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help);
void AddGaugeSample(prometheus::MetricFamily& family, double value,
                    std::vector<prometheus::ClientMetric::Label> labels = {});
prometheus::MetricFamily CounterFamily(const std::string& name, const std::string& help);
void AddCounterSample(prometheus::MetricFamily& family, double value,
                      std::vector<prometheus::ClientMetric::Label> labels = {});

}  // namespace tessera

#endif  // TESSERA_SHARED_METRICS_H_
