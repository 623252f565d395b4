#include "scheduler/core/dispatch_policy.h"

#include <algorithm>
#include <limits>

namespace tessera::scheduler {

bool DispatchPolicy::HasWork(const CoreJob& j, const std::vector<CoreJob*>& active,
                             absl::Time now) const {
  if (IsTerminal(j.record.state) || j.persisting || now < j.hold_until) return false;
  if (j.record.spec.max_parallel > 0 &&
      static_cast<int64_t>(j.shards.running().size()) >= j.record.spec.max_parallel) {
    return false;
  }
  if (j.record.state == JobState::kQueued && BlockedBy(j, active) != nullptr) {
    return false;
  }
  if (j.record.spec.rate_limit > 0 && TokensAt(j, now) < 1.0) return false;
  return j.shards.HasDue(now, config_.fold_window);
}

const CoreJob* DispatchPolicy::BlockedBy(const CoreJob& j,
                                         const std::vector<CoreJob*>& active) const {
  const std::string& key = j.record.spec.concurrency_key;
  if (key.empty()) return nullptr;
  // Every running job with the key counts, wherever it sits; queued ones
  // count when they are ahead (submission order).
  int32_t ahead = 0;
  const CoreJob* first = nullptr;
  bool before = true;
  for (const CoreJob* other : active) {
    if (other == &j) {
      before = false;
      continue;
    }
    if (other->record.spec.concurrency_key != key) continue;
    if (!before && other->record.state == JobState::kQueued) continue;
    if (first == nullptr) first = other;
    ++ahead;
  }
  return ahead >= j.record.spec.concurrency_limit ? first : nullptr;
}

double DispatchPolicy::TokensAt(const CoreJob& j, absl::Time now) const {
  const double rate = j.record.spec.rate_limit;
  if (rate <= 0) return std::numeric_limits<double>::infinity();
  // The bucket holds a tenth of a second of shards (at least one), so that
  // the 100 ms ticker can keep the pace without bursts.
  const double burst = std::max(1.0, rate / 10.0);
  if (j.tokens_at == absl::InfinitePast()) return burst;
  return std::min(burst, j.tokens + rate * absl::ToDoubleSeconds(now - j.tokens_at));
}

std::optional<DispatchPolicy::Pick> DispatchPolicy::NextJobFor(
    const CoreExecutor& e, const std::vector<CoreJob*>& active, size_t cursor,
    absl::Time now) const {
  const size_t n = active.size();
  const CoreJob* best = nullptr;
  size_t best_idx = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t idx = (cursor + k) % n;
    const CoreJob* j = active[idx];
    const JobSpec& spec = j->record.spec;
    if (best != nullptr && spec.priority <= best->record.spec.priority) continue;
    if (!e.tasks.count(spec.task) || !e.queues.count(spec.queue) ||
        !HasWork(*j, active, now)) {
      continue;
    }
    best = j;
    best_idx = idx;
  }
  if (best == nullptr) return std::nullopt;
  return Pick{best_idx, best_idx + 1};
}

int64_t DispatchPolicy::Prefetch(double run_seconds, int32_t slots) const {
  if (run_seconds <= 0) return config_.prefetch;
  const double keep_busy =
      slots * absl::ToDoubleSeconds(config_.prefetch_window) / run_seconds;
  return std::clamp<int64_t>(static_cast<int64_t>(std::min(keep_busy, 1e9)),
                             config_.prefetch, config_.max_prefetch);
}

double DispatchPolicy::ShortestRunSeconds(const std::vector<CoreJob*>& active) {
  double shortest = 0;
  for (const CoreJob* j : active) {
    if (j->run_seconds > 0 && (shortest == 0 || j->run_seconds < shortest)) {
      shortest = j->run_seconds;
    }
  }
  return shortest;
}

DispatchPolicy::Want DispatchPolicy::WantsMore(const CoreExecutor& e,
                                               int64_t prefetch) const {
  const int64_t held = static_cast<int64_t>(e.leases.size());
  if (held >= e.hello.slots + prefetch) return {false, false};
  // Topping a long queue up by one shard per result would cost a message per
  // shard: an executor holding many short shards is refilled once it has run
  // half of its prefetch down, and then all the way, in one message. A free
  // slot is always filled; a minimal prefetch is topped up shard by shard.
  if (e.refilling || prefetch <= config_.prefetch ||
      held <= e.hello.slots + prefetch / 2) {
    return {true, true};
  }
  return {false, e.refilling};
}

}  // namespace tessera::scheduler
