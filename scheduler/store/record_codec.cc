#include <algorithm>
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

absl::Time TimeFromJson(const json& j) {
  if (j.is_null()) return absl::InfinitePast();
  return absl::FromUnixNanos(GetInt<int64_t>(j));
}

// The record's text is written directly, not through a json tree: a record
// is encoded at every save of its job, on the store writer's thread. The
// output is what nlohmann's dump of the equivalent tree gives (keys sorted,
// invalid UTF-8 replaced), so records read the same either way.
void AppendString(std::string& out, absl::string_view v) {
  // Most strings (ids, names, digests) are printable ASCII with nothing to escape.
  const bool plain = std::all_of(v.begin(), v.end(), [](char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
  });
  if (plain) {
    out += '"';
    out.append(v.data(), v.size());
    out += '"';
    return;
  }
  // Replace: invalid UTF-8 in a message must not make the record unwritable.
  out += json(std::string(v)).dump(-1, ' ', false, json::error_handler_t::replace);
}

void AppendJson(std::string& out, const json& v) {
  out += v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// One JSON object's members, written in the order given (the callers give
// them sorted, as nlohmann's objects are).
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
  void End() { out_ += '}'; }

  // `"key":`; the caller appends the value.
  std::string& Key(absl::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    AppendString(out_, key);
    out_ += ':';
    return out_;
  }
  void Str(absl::string_view key, absl::string_view v) { AppendString(Key(key), v); }
  void Int(absl::string_view key, int64_t v) { absl::StrAppend(&Key(key), v); }
  void Bool(absl::string_view key, bool v) { Key(key) += v ? "true" : "false"; }
  void Json(absl::string_view key, const json& v) { AppendJson(Key(key), v); }
  void Time(absl::string_view key, absl::Time t) {
    if (t == absl::InfinitePast()) {
      Key(key) += "null";
    } else {
      Int(key, absl::ToUnixNanos(t));
    }
  }

 private:
  std::string& out_;
  bool first_ = true;
};

template <typename T, typename Write>
void AppendArray(std::string& out, const std::vector<T>& values, Write write) {
  out += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    write(values[i]);
  }
  out += ']';
}

void AppendSpec(std::string& out, const JobSpec& s) {
  ObjectWriter o(out);
  ObjectWriter aggregate(o.Key("aggregate"));
  aggregate.Str("default", ReducerName(s.aggregate.default_reducer));
  ObjectWriter fields(aggregate.Key("fields"));
  for (const auto& [path, r] : s.aggregate.fields) fields.Str(path, ReducerName(r));
  fields.End();
  aggregate.End();
  o.Int("batch_size", s.batch_size);
  o.Str("concurrency_key", s.concurrency_key);
  o.Int("concurrency_limit", s.concurrency_limit);
  o.Bool("has_items", s.has_items);
  o.Str("idempotency_key", s.idempotency_key);
  AppendArray(o.Key("items"), s.items.values(),
              [&out](const json& item) { AppendJson(out, item); });
  ObjectWriter labels(o.Key("labels"));
  for (const auto& [k, v] : s.labels) labels.Str(k, v);
  labels.End();
  o.Int("max_failed_shards", s.max_failed_shards);
  o.Int("max_parallel", s.max_parallel);
  o.Str("name", s.name);
  o.Json("params", s.params);
  o.Int("priority", s.priority);
  o.Str("queue", s.queue);
  ObjectWriter range(o.Key("range"));
  range.Int("end", s.range.end);
  range.Int("shard_count", s.range.shard_count);
  range.Int("shard_size", s.range.shard_size);
  range.Int("start", s.range.start);
  range.End();
  o.Json("rate_limit", s.rate_limit);
  ObjectWriter retry(o.Key("retry"));
  retry.Int("initial_backoff_ns", absl::ToInt64Nanoseconds(s.retry.initial_backoff));
  retry.Json("jitter", s.retry.jitter);
  retry.Int("max_attempts", s.retry.max_attempts);
  retry.Int("max_backoff_ns", absl::ToInt64Nanoseconds(s.retry.max_backoff));
  retry.Json("multiplier", s.retry.multiplier);
  retry.End();
  o.Int("shard_timeout_ns", absl::ToInt64Nanoseconds(s.shard_timeout));
  o.Str("task", s.task);
  o.End();
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
  std::string out;
  out.reserve(1024 + r.final_bytes.size() + r.message.size());
  ObjectWriter o(out);
  o.Time("created", r.created);
  o.Time("ended", r.ended);
  AppendArray(o.Key("errors"), r.errors, [&out](const ShardError& e) {
    ObjectWriter w(out);
    w.Int("end", e.bounds.end);
    w.Str("executor", e.executor);
    w.Str("message", e.message);
    w.Int("shard", e.shard);
    w.Int("start", e.bounds.start);
    w.End();
  });
  AppendArray(o.Key("failed"), r.failed, [&out](const FailedShard& f) {
    ObjectWriter w(out);
    w.Int("attempts", f.attempts);
    w.Int("end", f.bounds.end);
    w.Str("last_error", f.last_error);
    w.Int("shard", f.shard);
    w.Int("start", f.bounds.start);
    w.End();
  });
  o.Str("final_bytes", r.final_bytes);
  o.Bool("finalizing", r.finalizing);
  o.Str("id", r.id);
  o.Int("items_done", r.items_done);
  o.Str("location", r.location);
  o.Str("message", r.message);
  o.Int("result_version", r.result_version);
  o.Int("seq", r.seq);
  o.Str("sha256", r.sha256);
  o.Int("shards_succeeded", r.shards_succeeded);
  AppendSpec(o.Key("spec"), r.spec);
  o.Time("started", r.started);
  o.Int("state", static_cast<int>(r.state));
  o.End();
  return out;
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
