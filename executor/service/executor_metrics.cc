#include "executor/service/executor_metrics.h"

#include "shared/metrics.h"

namespace tessera::executor {

ExecutorMetrics::ExecutorMetrics(prometheus::Registry& registry)
    : shards_(prometheus::BuildCounter()
                  .Name("tessera_executor_shards_total")
                  .Help("Shards run by this executor, by task and outcome "
                        "(succeeded, failed, cancelled).")
                  .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("tessera_executor_shard_duration_seconds")
                    .Help("Wall time of a shard's handler, by task and outcome.")
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
      shards_running_(prometheus::BuildGauge()
                          .Name("tessera_executor_shards_running")
                          .Help("Shards running on this executor now.")
                          .Register(registry)
                          .Add({})),
      connected_(prometheus::BuildGauge()
                     .Name("tessera_executor_connected")
                     .Help("1 while a stream to the scheduler is up (welcomed), else 0.")
                     .Register(registry)
                     .Add({})),
      reconnects_(prometheus::BuildCounter()
                      .Name("tessera_executor_reconnects_total")
                      .Help("Streams to the scheduler opened again after the first one.")
                      .Register(registry)
                      .Add({})),
      unacked_(prometheus::BuildGauge()
                   .Name("tessera_executor_unacked_results")
                   .Help("Results sent and not yet acknowledged as durable by the "
                         "scheduler (kept for re-sending until they are).")
                   .Register(registry)
                   .Add({})),
      backpressure_(prometheus::BuildGauge()
                        .Name("tessera_executor_backpressure")
                        .Help("1 while this executor starts no new shard because too "
                              "many results await an ack, else 0.")
                        .Register(registry)
                        .Add({})),
      backpressure_episodes_(prometheus::BuildCounter()
                                 .Name("tessera_executor_backpressure_episodes_total")
                                 .Help("Times this executor stopped starting shards "
                                       "because too many results awaited an ack.")
                                 .Register(registry)
                                 .Add({})) {}

void ExecutorMetrics::SetBackpressure(bool on) {
  backpressure_.Set(on ? 1 : 0);
  if (on) backpressure_episodes_.Increment();
}

void ExecutorMetrics::ShardFinished(const std::string& task, const std::string& outcome,
                                    absl::Duration duration) {
  shards_.Add({{"task", task}, {"outcome", outcome}}).Increment();
  duration_.Add({{"task", task}, {"outcome", outcome}}, WorkBuckets())
      .Observe(absl::ToDoubleSeconds(duration));
}

void ExecutorMetrics::SetSlotsBusy(int busy) {
  slots_busy_.Set(busy);
  shards_running_.Set(busy);
}

void ExecutorMetrics::SetConnected(bool connected) {
  connected_.Set(connected ? 1 : 0);
  const bool before = connected_now_.exchange(connected);
  if (connected && !before && was_connected_.exchange(true)) reconnects_.Increment();
}

}  // namespace tessera::executor
