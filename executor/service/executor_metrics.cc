#include "executor/service/executor_metrics.h"

namespace tessera::executor {

ExecutorMetrics::ExecutorMetrics(prometheus::Registry& registry)
    : shards_(prometheus::BuildCounter()
                  .Name("tessera_executor_shards_total")
                  .Help("Shards run by this executor, by task and outcome "
                        "(succeeded, failed, cancelled).")
                  .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("tessera_executor_shard_duration_seconds")
                    .Help("Wall time of a shard's handler, by task.")
                    .Register(registry)),
      slots_(prometheus::BuildGauge()
                 .Name("tessera_executor_slots")
                 .Help("Shards this executor runs at once.")
                 .Register(registry)
                 .Add({})),
      slots_busy_(prometheus::BuildGauge()
                      .Name("tessera_executor_slots_busy")
                      .Help("Slots running a shard now.")
                      .Register(registry)
                      .Add({})),
      connected_(prometheus::BuildGauge()
                     .Name("tessera_executor_connected")
                     .Help("1 while a stream to the scheduler is up (welcomed), else 0.")
                     .Register(registry)
                     .Add({})) {}

void ExecutorMetrics::ShardFinished(const std::string& task, const std::string& outcome,
                                    absl::Duration duration) {
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,   2.5,
      5,     10,    30,   60,    120,  300, 600,  1800, 3600};
  shards_.Add({{"task", task}, {"outcome", outcome}}).Increment();
  duration_.Add({{"task", task}}, *kBuckets).Observe(absl::ToDoubleSeconds(duration));
}

}  // namespace tessera::executor
