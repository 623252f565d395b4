// The executor's Prometheus metrics.
#ifndef TESSERA_EXECUTOR_SERVICE_EXECUTOR_METRICS_H_
#define TESSERA_EXECUTOR_SERVICE_EXECUTOR_METRICS_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tessera::executor {

// Families registered on a registry the caller owns (the MetricsServer's, or a
// private one when metrics are off). Thread-safe; must not outlive the registry.
class ExecutorMetrics {
 public:
  explicit ExecutorMetrics(prometheus::Registry& registry);

  // outcome: "succeeded", "failed" or "cancelled".
  void ShardFinished(const std::string& task, const std::string& outcome,
                     absl::Duration duration);
  void SetSlots(int slots) { slots_.Set(slots); }
  void SetSlotsBusy(int busy) { slots_busy_.Set(busy); }
  void SetConnected(bool connected) { connected_.Set(connected ? 1 : 0); }

 private:
  prometheus::Family<prometheus::Counter>& shards_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Gauge& slots_;
  prometheus::Gauge& slots_busy_;
  prometheus::Gauge& connected_;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_EXECUTOR_METRICS_H_
