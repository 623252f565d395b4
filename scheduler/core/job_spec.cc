// Job specs (job_spec.h): validation, partitioning, comparison and the retry
// backoff; also the job state names and CoreConfig::Validate.
#include "scheduler/core/job_spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tessera::scheduler {

absl::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
    case JobState::kPartial:
      return "PARTIAL";
  }
  return "UNKNOWN";
}

absl::Status CoreConfig::Validate() const {
  if (max_shards_per_job <= 0) {
    return absl::InvalidArgumentError("max_shards_per_job must be > 0");
  }
  if (prefetch < 0) return absl::InvalidArgumentError("prefetch must be >= 0");
  if (max_prefetch < prefetch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_prefetch must be >= prefetch (got ", max_prefetch, " < ", prefetch, ")"));
  }
  if (prefetch_window < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("prefetch_window must be >= 0");
  }
  if (max_executor_losses < 1) {
    return absl::InvalidArgumentError("max_executor_losses must be >= 1");
  }
  if (heartbeat_interval <= absl::ZeroDuration() ||
      heartbeat_timeout <= heartbeat_interval) {
    return absl::InvalidArgumentError(
        "heartbeat_timeout must be greater than heartbeat_interval (both > 0)");
  }
  if (max_json_depth < 2 || max_json_depth > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_json_depth must be between 2 and 1000 (got ", max_json_depth, ")"));
  }
  if (job_retention < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--job-retention must be >= 0 (0: never retire; got ",
                     absl::FormatDuration(job_retention), ")"));
  }
  if (fold_window < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("fold_window must be >= 1 (got ", fold_window, ")"));
  }
  if (max_params_bytes < 2 || max_result_bytes < 2 || max_folded_result_bytes < 2) {
    return absl::InvalidArgumentError(
        "max_params_bytes, max_result_bytes and max_folded_result_bytes must be > 1");
  }
  return absl::OkStatus();
}

absl::Status ValidateSpecLimits(const JobSpec& spec, const CoreConfig& config) {
  if (JsonValueDepth(spec.params, config.max_json_depth) > config.max_json_depth) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.params nests deeper than ", config.max_json_depth,
                     " levels (the limit, --max-json-depth)"));
  }
  const size_t bytes = spec.params.dump().size();
  if (static_cast<int64_t>(bytes) > config.max_params_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.params is ", bytes, " bytes as JSON; the limit is ",
                     config.max_params_bytes, " (--max-params-bytes)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSpec(const JobSpec& spec) {
  if (spec.task.empty()) return absl::InvalidArgumentError("spec.task is required");
  if (spec.task.size() > 100) {
    return absl::InvalidArgumentError("spec.task must be at most 100 bytes");
  }
  if (spec.name.size() > 200) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.name must be at most 200 bytes (got ", spec.name.size(), ")"));
  }
  if (!spec.params.is_object()) {
    return absl::InvalidArgumentError("spec.params must be a JSON object");
  }
  if (spec.max_parallel < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.max_parallel must be >= 0 (got ", spec.max_parallel, ")"));
  }
  for (const auto& [path, reducer] : spec.aggregate.fields) {
    if (path.empty() || path.front() == '.' || path.back() == '.') {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.aggregate.fields: invalid field path \"", path, "\""));
    }
  }
  const RetryPolicy& r = spec.retry;
  if (r.max_attempts < 1 || r.max_attempts > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.retry.max_attempts must be between 1 and 100 (got ", r.max_attempts, ")"));
  }
  if (r.initial_backoff < absl::ZeroDuration() || r.max_backoff < r.initial_backoff) {
    return absl::InvalidArgumentError(
        "spec.retry: need 0 <= initial_backoff <= max_backoff");
  }
  if (!(r.multiplier >= 1.0 && r.multiplier <= 100.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.retry.multiplier must be between 1 and 100 (got ", r.multiplier, ")"));
  }
  if (!(r.jitter >= 0.0 && r.jitter <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.retry.jitter must be between 0 and 1 (got ", r.jitter, ")"));
  }
  if (spec.shard_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("spec.shard_timeout must be >= 0");
  }
  // The store and GetJob keep durations as int64 nanoseconds: a longer one
  // would come back shorter (found by tests/fuzz).
  const absl::Duration kMaxDuration =
      absl::Nanoseconds(std::numeric_limits<int64_t>::max());
  if (r.max_backoff > kMaxDuration) {
    return absl::InvalidArgumentError(
        "spec.retry.max_backoff must be at most 292 years (2^63 ns)");
  }
  if (spec.shard_timeout > kMaxDuration) {
    return absl::InvalidArgumentError(
        "spec.shard_timeout must be at most 292 years (2^63 ns)");
  }
  if (spec.max_failed_shards < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.failure_policy.max_failed_shards must be >= 0 (got ",
                     spec.max_failed_shards, ")"));
  }
  auto name_ok = [](const std::string& s, size_t max) {
    if (s.empty() || s.size() > max) return false;
    for (char c : s) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
            c == '.' || c == '/')) {
        return false;
      }
    }
    return true;
  };
  if (!name_ok(spec.queue, 63)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.queue must be 1-63 characters of letters, digits, '-', '_', "
                     "'.', '/' (got \"",
                     spec.queue, "\")"));
  }
  if (spec.priority < -1000 || spec.priority > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.priority must be between -1000 and 1000 (got ", spec.priority, ")"));
  }
  if (!(spec.rate_limit >= 0 && spec.rate_limit <= 1e6)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.rate_limit must be between 0 and 1000000 shards/s (got ",
                     spec.rate_limit, ")"));
  }
  if (spec.idempotency_key.size() > 200) {
    return absl::InvalidArgumentError("spec.idempotency_key must be at most 200 bytes");
  }
  if (spec.concurrency_key.size() > 200) {
    return absl::InvalidArgumentError("spec.concurrency_key must be at most 200 bytes");
  }
  if (spec.concurrency_limit < 1 || spec.concurrency_limit > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.concurrency_limit must be between 1 and 1000 (got ",
                     spec.concurrency_limit, ")"));
  }
  if (spec.labels.size() > 64) {
    return absl::InvalidArgumentError("spec.labels: at most 64 labels");
  }
  for (const auto& [k, v] : spec.labels) {
    if (!name_ok(k, 63)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.labels: key \"", k,
          "\" must be 1-63 characters of letters, digits, '-', '_', '.', '/'"));
    }
    if (v.size() > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.labels[\"", k, "\"]: value must be at most 256 bytes"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RangePartition> MakePartition(const JobSpec& spec,
                                             const CoreConfig& config) {
  if (!spec.has_items)
    return RangePartition::Create(spec.range, config.max_shards_per_job);
  if (spec.items.empty()) {
    return absl::InvalidArgumentError("spec.items.items must not be empty");
  }
  if (static_cast<int64_t>(spec.items.size()) > config.max_items_per_job) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.items: ", spec.items.size(), " items exceed the limit of ",
                     config.max_items_per_job, " items per job"));
  }
  if (spec.batch_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.items.batch_size must be > 0 (got ", spec.batch_size, ")"));
  }
  for (size_t i = 0; i < spec.items.size(); ++i) {
    if (JsonValueDepth(spec.items[i], config.max_json_depth) > config.max_json_depth) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.items.items[", i, "] nests deeper than ",
                       config.max_json_depth, " levels (the limit, --max-json-depth)"));
    }
    const size_t bytes = spec.items[i].dump().size();
    if (static_cast<int64_t>(bytes) > config.max_item_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.items.items[", i, "] is ", bytes, " bytes; the limit is ",
                       config.max_item_bytes, " bytes per item"));
    }
  }
  return RangePartition::Create(
      {0, static_cast<int64_t>(spec.items.size()), spec.batch_size, 0},
      config.max_shards_per_job);
}

CoreConfig ReadBackLimits(CoreConfig config) {
  config.max_shards_per_job = std::numeric_limits<int64_t>::max();
  config.max_items_per_job = std::numeric_limits<int64_t>::max();
  config.max_json_depth = 1000;
  config.max_item_bytes = std::numeric_limits<int64_t>::max();
  return config;
}

bool SameSpec(const JobSpec& a, const JobSpec& b) {
  auto same_range = [](const RangeSpec& x, const RangeSpec& y) {
    return x.start == y.start && x.end == y.end && x.shard_size == y.shard_size &&
           x.shard_count == y.shard_count;
  };
  const RetryPolicy& ra = a.retry;
  const RetryPolicy& rb = b.retry;
  return a.name == b.name && a.task == b.task && a.params == b.params &&
         same_range(a.range, b.range) &&
         a.aggregate.default_reducer == b.aggregate.default_reducer &&
         a.aggregate.fields == b.aggregate.fields && a.max_parallel == b.max_parallel &&
         ra.max_attempts == rb.max_attempts && ra.initial_backoff == rb.initial_backoff &&
         ra.max_backoff == rb.max_backoff && ra.multiplier == rb.multiplier &&
         ra.jitter == rb.jitter && a.shard_timeout == b.shard_timeout &&
         a.max_failed_shards == b.max_failed_shards && a.has_items == b.has_items &&
         a.items == b.items && a.batch_size == b.batch_size &&
         a.idempotency_key == b.idempotency_key &&
         a.concurrency_key == b.concurrency_key &&
         a.concurrency_limit == b.concurrency_limit && a.queue == b.queue &&
         a.priority == b.priority && a.rate_limit == b.rate_limit && a.labels == b.labels;
}

absl::Duration RetryBackoff(const RetryPolicy& policy, int32_t attempt, double unit) {
  const double base_s = absl::ToDoubleSeconds(policy.initial_backoff) *
                        std::pow(policy.multiplier, std::max(0, attempt - 1));
  const double capped = std::min(base_s, absl::ToDoubleSeconds(policy.max_backoff));
  const double factor = 1.0 + policy.jitter * (2.0 * unit - 1.0);
  return absl::Seconds(std::max(0.0, capped * factor));
}

}  // namespace tessera::scheduler
