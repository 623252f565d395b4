// The executor's Prometheus metrics. Names and labels are documented in
// docs/metrics.md; keep them stable.
#ifndef TESSERA_EXECUTOR_SERVICE_EXECUTOR_METRICS_H_
#define TESSERA_EXECUTOR_SERVICE_EXECUTOR_METRICS_H_

#include <atomic>
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
  // Slots running a shard now (also tessera_executor_shards_running).
  void SetSlotsBusy(int busy);
  // A change to connected after the first connection counts as a reconnect.
  void SetConnected(bool connected);
  // Results sent and not yet acknowledged as durable by the scheduler.
  void SetUnackedResults(size_t n) { unacked_.Set(static_cast<double>(n)); }
  // Backpressure on unacknowledged results: on (counted as an episode) or off.
  void SetBackpressure(bool on);

 private:
  prometheus::Family<prometheus::Counter>& shards_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Gauge& slots_;
  prometheus::Gauge& slots_busy_;
  prometheus::Gauge& shards_running_;
  prometheus::Gauge& connected_;
  prometheus::Counter& reconnects_;
  prometheus::Gauge& unacked_;
  prometheus::Gauge& backpressure_;
  prometheus::Counter& backpressure_episodes_;
  std::atomic<bool> was_connected_{false};
  std::atomic<bool> connected_now_{false};
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_EXECUTOR_METRICS_H_
