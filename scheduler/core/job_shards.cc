#include "scheduler/core/job_shards.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shared/json_limits.h"

namespace tessera::scheduler {

using json = nlohmann::json;

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t out;
  return __builtin_add_overflow(a, b, &out) ? std::numeric_limits<int64_t>::max() : out;
}

JobShards::JobShards(RangePartition partition, AggregateSpec aggregate)
    : partition_(std::move(partition)), folder_(std::move(aggregate)) {}

bool JobShards::IsDone(int64_t shard) const {
  return shard < folded_ || buffered_.count(shard) || failed_.count(shard);
}

int64_t JobShards::pending() const {
  return num_shards() - next_shard_ + static_cast<int64_t>(retry_.size());
}

bool JobShards::PausedForFold(int64_t window) const {
  // Retries are never held back: they are below next_shard, inside the window.
  return next_shard_ - folded_ >= window;
}

bool JobShards::HasDue(absl::Time now, int64_t fold_window) const {
  if (next_shard_ < num_shards() && !PausedForFold(fold_window)) return true;
  for (const auto& [shard, p] : retry_) {
    if (p.not_before <= now) return true;
  }
  return false;
}

JobShards::Next JobShards::TakeNext(absl::Time now) {
  for (auto it = retry_.begin(); it != retry_.end(); ++it) {
    if (it->second.not_before <= now) {
      Next next{it->first, it->second.attempts + 1};
      retry_.erase(it);
      return next;
    }
  }
  return Next{next_shard_++, 1};
}

void JobShards::Claim(int64_t shard) {
  retry_.erase(shard);
  detached_.erase(shard);  // its executor is back: no loss
  if (shard >= next_shard_) {
    for (int64_t s = next_shard_; s < shard; ++s) retry_[s] = {};
    next_shard_ = shard + 1;
  }
}

void JobShards::Run(int64_t shard, const std::string& lease_id) {
  running_[shard] = lease_id;
}

void JobShards::Stop(int64_t shard, int32_t attempt, bool requeue) {
  running_.erase(shard);
  if (requeue && !IsDone(shard)) retry_[shard] = {attempt, absl::InfinitePast()};
}

void JobShards::Accept(int64_t shard, json result) {
  ++succeeded_;
  items_completed_ = SaturatingAdd(items_completed_, partition_.Items(shard));
  failures_.erase(shard);
  losses_.erase(shard);
  buffered_.emplace(shard, std::move(result));
}

absl::Status JobShards::FoldPrefix() {
  while (folded_ < num_shards()) {
    auto it = buffered_.find(folded_);
    if (it != buffered_.end()) {
      absl::Status s = folder_.Add(it->first, it->second);
      buffered_.erase(it);
      if (!s.ok()) return s;
    } else if (!failed_.count(folded_)) {
      break;
    }
    ++folded_;
  }
  return absl::OkStatus();
}

void JobShards::RetryAt(int64_t shard, int32_t attempts, absl::Time not_before) {
  retry_[shard] = {attempts, not_before};
}

const FailedShard& JobShards::Fail(int64_t shard, int32_t attempts,
                                   const std::string& message) {
  failures_.erase(shard);
  losses_.erase(shard);
  retry_.erase(shard);
  return failed_[shard] = FailedShard{shard, partition_.Bounds(shard), attempts, message};
}

void JobShards::Detach(int64_t shard, int32_t attempt, absl::Time until,
                       const std::string& executor_id) {
  auto r = retry_.find(shard);
  if (r == retry_.end()) return;
  r->second.not_before = until;
  r->second.attempts = attempt;
  detached_[shard] = {until, executor_id};
}

bool JobShards::AbandonDetached(const std::string& executor_id, absl::Time now) {
  bool any = false;
  for (auto& [shard, d] : detached_) {
    if (d.executor_id != executor_id) continue;
    d.until = now;
    if (auto r = retry_.find(shard); r != retry_.end()) r->second.not_before = now;
    any = true;
  }
  return any;
}

bool JobShards::HasLost(absl::Time now) const {
  for (const auto& [shard, d] : detached_) {
    if (d.until <= now) return true;
  }
  return false;
}

std::vector<JobShards::Lost> JobShards::TakeLost(absl::Time now) {
  std::vector<Lost> lost;
  for (auto it = detached_.begin(); it != detached_.end();) {
    if (now < it->second.until) {
      ++it;
      continue;
    }
    auto r = retry_.find(it->first);
    lost.push_back({it->first, r == retry_.end() ? 1 : r->second.attempts});
    it = detached_.erase(it);
  }
  return lost;
}

void JobShards::Clear() {
  buffered_.clear();
  retry_.clear();
  failures_.clear();
  losses_.clear();
  detached_.clear();
  folder_ = Folder();
}

void JobShards::KeepFailed(const FailedShard& f) {
  // A damaged record may name a shard the job does not have (found by
  // tests/fuzz): Rebuild would count up to it.
  if (f.shard >= 0 && f.shard < num_shards()) failed_[f.shard] = f;
}

void JobShards::SetFinished(int64_t succeeded, int64_t items_done) {
  next_shard_ = num_shards();
  folded_ = num_shards();
  succeeded_ = succeeded;
  items_completed_ = items_done;
}

absl::Status JobShards::Rebuild(const std::vector<StoredResult>& results,
                                int32_t max_json_depth, const AggregateSpec& aggregate) {
  int64_t unreadable_shard = -1;
  folder_ = Folder(aggregate);
  folded_ = 0;
  buffered_.clear();
  retry_.clear();
  failures_.clear();
  losses_.clear();
  detached_.clear();
  succeeded_ = 0;
  items_completed_ = 0;
  int64_t max_done = -1;
  for (const StoredResult& r : results) {
    if (r.shard < 0 || r.shard >= num_shards()) continue;
    // A stored result is bounded like one that arrives (it may predate the
    // limits); one that cannot be read fails its job instead of the start.
    json parsed;
    if (JsonTextDepth(r.result_json, max_json_depth) <= max_json_depth) {
      parsed = json::parse(r.result_json, nullptr, /*allow_exceptions=*/false);
    } else {
      parsed = json(json::value_t::discarded);
    }
    if (parsed.is_discarded() || !parsed.is_object()) {
      unreadable_shard = r.shard;
      break;
    }
    if (buffered_.emplace(r.shard, std::move(parsed)).second) {
      ++succeeded_;
      items_completed_ = SaturatingAdd(items_completed_, partition_.Items(r.shard));
      max_done = std::max(max_done, r.shard);
    }
  }
  if (unreadable_shard >= 0) {
    return absl::DataLossError(
        absl::StrCat("the stored result of shard ", unreadable_shard,
                     " cannot be read back (not a JSON object, or nested deeper than ",
                     max_json_depth, " levels)"));
  }
  for (const auto& [shard, f] : failed_) max_done = std::max(max_done, shard);
  next_shard_ = max_done + 1;
  for (int64_t s = 0; s < next_shard_; ++s) {
    if (!buffered_.count(s) && !failed_.count(s)) retry_[s] = {};
  }
  return absl::OkStatus();
}

absl::Status JobShards::RetryFailed(const std::vector<StoredResult>& results,
                                    int32_t max_json_depth,
                                    const AggregateSpec& aggregate) {
  std::map<int64_t, int32_t> attempts;  // attempt numbers go on from there
  for (const auto& [shard, f] : failed_) attempts[shard] = f.attempts;
  failed_.clear();
  if (absl::Status rebuilt = Rebuild(results, max_json_depth, aggregate); !rebuilt.ok()) {
    return rebuilt;
  }
  for (const auto& [shard, n] : attempts) {
    if (auto it = retry_.find(shard); it != retry_.end()) it->second.attempts = n;
  }
  next_shard_ = std::max<int64_t>(next_shard_, 0);
  return absl::OkStatus();
}

}  // namespace tessera::scheduler
