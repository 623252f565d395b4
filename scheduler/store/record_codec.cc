#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "scheduler/store/store.h"
#include "shared/json_limits.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;

// An integer field. json::get<int>() casts a float or a too large integer,
// which is undefined behaviour or wraps (found by tests/fuzz); a damaged
// record is refused instead, like a field of the wrong type.
template <typename Int>
Int GetInt(const json& j) {
  if (j.is_number_unsigned()) {
    if (j.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<Int>::max())) {
      return static_cast<Int>(j.get<uint64_t>());
    }
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= std::numeric_limits<Int>::min() && v <= std::numeric_limits<Int>::max()) {
      return static_cast<Int>(v);
    }
  }
  throw json::type_error::create(
      302,
      absl::StrCat("not an integer in range: ", j.is_number() ? j.dump() : j.type_name()),
      nullptr);
}

template <typename Int>
Int GetInt(const json& j, const char* key, Int absent) {
  auto it = j.find(key);
  return it == j.end() ? absent : GetInt<Int>(*it);
}

json TimeToJson(absl::Time t) {
  if (t == absl::InfinitePast()) return nullptr;
  return absl::ToUnixNanos(t);
}

absl::Time TimeFromJson(const json& j) {
  if (j.is_null()) return absl::InfinitePast();
  return absl::FromUnixNanos(GetInt<int64_t>(j));
}

json SpecToJson(const JobSpec& s) {
  json fields = json::object();
  for (const auto& [path, r] : s.aggregate.fields) fields[path] = ReducerName(r);
  return {
      {"name", s.name},
      {"task", s.task},
      {"params", s.params},
      {"range",
       {{"start", s.range.start},
        {"end", s.range.end},
        {"shard_size", s.range.shard_size},
        {"shard_count", s.range.shard_count}}},
      {"aggregate",
       {{"default", ReducerName(s.aggregate.default_reducer)}, {"fields", fields}}},
      {"max_parallel", s.max_parallel},
      {"retry",
       {{"max_attempts", s.retry.max_attempts},
        {"initial_backoff_ns", absl::ToInt64Nanoseconds(s.retry.initial_backoff)},
        {"max_backoff_ns", absl::ToInt64Nanoseconds(s.retry.max_backoff)},
        {"multiplier", s.retry.multiplier},
        {"jitter", s.retry.jitter}}},
      {"shard_timeout_ns", absl::ToInt64Nanoseconds(s.shard_timeout)},
      {"max_failed_shards", s.max_failed_shards},
      {"has_items", s.has_items},
      {"items", s.items.values()},
      {"batch_size", s.batch_size},
      {"idempotency_key", s.idempotency_key},
      {"concurrency_key", s.concurrency_key},
      {"concurrency_limit", s.concurrency_limit},
      {"queue", s.queue},
      {"priority", s.priority},
      {"rate_limit", s.rate_limit},
      {"labels", s.labels},
  };
}

absl::StatusOr<JobSpec> SpecFromJson(const json& j) {
  JobSpec s;
  s.name = j.at("name").get<std::string>();
  s.task = j.at("task").get<std::string>();
  s.params = j.at("params");
  const json& r = j.at("range");
  s.range = {GetInt<int64_t>(r.at("start")), GetInt<int64_t>(r.at("end")),
             GetInt<int64_t>(r.at("shard_size")), GetInt<int64_t>(r.at("shard_count"))};
  auto def = ParseReducer(j.at("aggregate").at("default").get<std::string>());
  if (!def.ok()) return def.status();
  s.aggregate.default_reducer = *def;
  for (const auto& [path, name] : j.at("aggregate").at("fields").items()) {
    auto red = ParseReducer(name.get<std::string>());
    if (!red.ok()) return red.status();
    s.aggregate.fields[path] = *red;
  }
  s.max_parallel = GetInt<int32_t>(j.at("max_parallel"));
  const json& rp = j.at("retry");
  s.retry.max_attempts = GetInt<int32_t>(rp.at("max_attempts"));
  s.retry.initial_backoff =
      absl::Nanoseconds(GetInt<int64_t>(rp.at("initial_backoff_ns")));
  s.retry.max_backoff = absl::Nanoseconds(GetInt<int64_t>(rp.at("max_backoff_ns")));
  s.retry.multiplier = rp.at("multiplier").get<double>();
  s.retry.jitter = rp.at("jitter").get<double>();
  s.shard_timeout = absl::Nanoseconds(GetInt<int64_t>(j.at("shard_timeout_ns")));
  s.max_failed_shards = GetInt<int64_t>(j.at("max_failed_shards"));
  s.has_items = j.value("has_items", false);
  if (j.contains("items")) s.items = ItemList(j.at("items").get<std::vector<json>>());
  s.batch_size = GetInt<int32_t>(j, "batch_size", 0);
  s.idempotency_key = j.value("idempotency_key", "");
  s.concurrency_key = j.value("concurrency_key", "");
  s.concurrency_limit = GetInt<int32_t>(j, "concurrency_limit", 1);
  s.queue = j.value("queue", "default");
  s.priority = GetInt<int32_t>(j, "priority", 0);
  s.rate_limit = j.value("rate_limit", 0.0);
  if (j.contains("labels")) {
    s.labels = j.at("labels").get<std::map<std::string, std::string>>();
  }
  return s;
}

}  // namespace

std::string EncodeJobRecord(const JobRecord& r) {
  json errors = json::array();
  for (const ShardError& e : r.errors) {
    errors.push_back({{"shard", e.shard},
                      {"start", e.bounds.start},
                      {"end", e.bounds.end},
                      {"executor", e.executor},
                      {"message", e.message}});
  }
  json failed = json::array();
  for (const FailedShard& f : r.failed) {
    failed.push_back({{"shard", f.shard},
                      {"start", f.bounds.start},
                      {"end", f.bounds.end},
                      {"attempts", f.attempts},
                      {"last_error", f.last_error}});
  }
  json j = {
      {"id", r.id},
      {"seq", r.seq},
      {"spec", SpecToJson(r.spec)},
      {"state", static_cast<int>(r.state)},
      {"created", TimeToJson(r.created)},
      {"started", TimeToJson(r.started)},
      {"ended", TimeToJson(r.ended)},
      {"message", r.message},
      {"errors", errors},
      {"failed", failed},
      {"location", r.location},
      {"sha256", r.sha256},
      {"result_version", r.result_version},
      {"shards_succeeded", r.shards_succeeded},
      {"items_done", r.items_done},
      {"finalizing", r.finalizing},
      {"final_bytes", r.final_bytes},
  };
  // Replace: invalid UTF-8 in a message must not make the record unwritable.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<JobRecord> DecodeJobRecord(const std::string& text) {
  // A record holds a spec whose params and items were bounded when it was
  // accepted; one nested deeper than this is damaged, and is refused before
  // anything copies it (a deep copy would overflow the stack).
  constexpr int kMaxRecordDepth = 1000;
  if (JsonTextDepth(text, kMaxRecordDepth) > kMaxRecordDepth) {
    return absl::DataLossError(
        absl::StrCat("job record nests deeper than ", kMaxRecordDepth, " levels"));
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError("job record is not valid JSON");
  }
  try {
    JobRecord r;
    r.id = j.at("id").get<std::string>();
    r.seq = GetInt<int64_t>(j.at("seq"));
    auto spec = SpecFromJson(j.at("spec"));
    if (!spec.ok()) return spec.status();
    r.spec = *std::move(spec);
    const int state = GetInt<int>(j.at("state"));
    if (state < 0 || state > static_cast<int>(JobState::kPartial)) {
      return absl::DataLossError(absl::StrCat("job ", r.id, ": unknown state ", state));
    }
    r.state = static_cast<JobState>(state);
    r.created = TimeFromJson(j.at("created"));
    r.started = TimeFromJson(j.at("started"));
    r.ended = TimeFromJson(j.at("ended"));
    r.message = j.at("message").get<std::string>();
    for (const json& e : j.at("errors")) {
      r.errors.push_back({GetInt<int64_t>(e.at("shard")),
                          {GetInt<int64_t>(e.at("start")), GetInt<int64_t>(e.at("end"))},
                          e.at("executor").get<std::string>(),
                          e.at("message").get<std::string>()});
    }
    for (const json& f : j.at("failed")) {
      r.failed.push_back({GetInt<int64_t>(f.at("shard")),
                          {GetInt<int64_t>(f.at("start")), GetInt<int64_t>(f.at("end"))},
                          GetInt<int32_t>(f.at("attempts")),
                          f.at("last_error").get<std::string>()});
    }
    r.location = j.at("location").get<std::string>();
    r.sha256 = j.at("sha256").get<std::string>();
    r.result_version = GetInt<int32_t>(j.at("result_version"));
    r.shards_succeeded = GetInt<int64_t>(j.at("shards_succeeded"));
    r.items_done = GetInt<int64_t>(j, "items_done", int64_t{-1});
    r.finalizing = j.at("finalizing").get<bool>();
    r.final_bytes = j.at("final_bytes").get<std::string>();
    // The scheduler counts on from these (the next job's seq, the next result
    // version): a record it could not count on from is not one it wrote.
    if (r.seq < 0 || r.seq == std::numeric_limits<int64_t>::max()) {
      return absl::DataLossError(absl::StrCat("job ", r.id, ": seq out of range"));
    }
    if (r.result_version < 0 || r.result_version == std::numeric_limits<int32_t>::max()) {
      return absl::DataLossError(
          absl::StrCat("job ", r.id, ": result_version out of range"));
    }
    return r;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("job record: ", e.what()));
  }
}

}  // namespace tessera::scheduler
