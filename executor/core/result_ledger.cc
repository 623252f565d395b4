#include "executor/core/result_ledger.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace tessera::executor {

ResultLedger::ResultLedger(size_t max_unacked, size_t max_unsent)
    : max_unacked_(std::max<size_t>(max_unacked, 1)), unsent_(max_unsent) {}

ResultLedger::Backpressure ResultLedger::Keep(const ShardOutcome& result,
                                              absl::Time now) {
  unacked_[result.lease_id] = result;
  return Update(now);
}

ResultLedger::Backpressure ResultLedger::Ack(const std::vector<std::string>& lease_ids,
                                             absl::Time now) {
  for (const std::string& lease : lease_ids) unacked_.erase(lease);
  return Update(now);
}

std::vector<ShardOutcome> ResultLedger::Unacked() const {
  std::vector<ShardOutcome> out;
  out.reserve(unacked_.size());
  for (const auto& [lease, result] : unacked_) out.push_back(result);
  return out;
}

bool ResultLedger::Queue(ShardOutcome result) {
  outbox_.push_back(std::move(result));
  return outbox_.size() == 1;
}

std::vector<ShardOutcome> ResultLedger::TakeBatch(size_t max_bytes) {
  size_t bytes = 0;
  size_t n = 0;
  while (n < outbox_.size() &&
         (n == 0 || bytes + outbox_[n].result_json.size() <= max_bytes)) {
    bytes += outbox_[n].result_json.size();
    ++n;
  }
  std::vector<ShardOutcome> batch(std::make_move_iterator(outbox_.begin()),
                                  std::make_move_iterator(outbox_.begin() + n));
  outbox_.erase(outbox_.begin(), outbox_.begin() + n);
  return batch;
}

ResultLedger::Backpressure ResultLedger::Update(absl::Time now) {
  Backpressure out;
  out.unacked = unacked_.size();
  out.resume_at = max_unacked_ / 2;
  if (!backpressure_ && out.unacked >= max_unacked_) {
    backpressure_ = true;
    backpressure_since_ = now;
    out.change = Backpressure::Change::kStarted;
  } else if (backpressure_ && out.unacked <= out.resume_at) {
    backpressure_ = false;
    out.change = Backpressure::Change::kEnded;
    out.lasted = now - backpressure_since_;
  }
  return out;
}

}  // namespace tessera::executor
