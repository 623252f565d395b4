#include "scheduler/service/convert.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "shared/proto_duration.h"

namespace tessera::scheduler {
namespace {

void TimeToProto(absl::Time t, google::protobuf::Timestamp* ts) {
  if (t == absl::InfinitePast()) return;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts->set_seconds(nanos / 1'000'000'000);
  ts->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
}

}  // namespace

void JsonToValue(const nlohmann::json& json, google::protobuf::Value* value) {
  switch (json.type()) {
    case nlohmann::json::value_t::object:
      JsonToStruct(json, value->mutable_struct_value());
      return;
    case nlohmann::json::value_t::array: {
      google::protobuf::ListValue* list = value->mutable_list_value();
      list->mutable_values()->Reserve(static_cast<int>(json.size()));
      for (const nlohmann::json& item : json) JsonToValue(item, list->add_values());
      return;
    }
    case nlohmann::json::value_t::string:
      value->set_string_value(json.get_ref<const std::string&>());
      return;
    case nlohmann::json::value_t::boolean:
      value->set_bool_value(json.get<bool>());
      return;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      value->set_number_value(json.get<double>());
      return;
    default:  // null (nothing else comes from parsing text)
      value->set_null_value(google::protobuf::NULL_VALUE);
      return;
  }
}

void JsonToStruct(const nlohmann::json& object, google::protobuf::Struct* out) {
  if (!object.is_object()) return;
  auto* fields = out->mutable_fields();
  for (const auto& [key, item] : object.items()) JsonToValue(item, &(*fields)[key]);
}

absl::StatusOr<JobSpec> SpecFromProto(const v1::JobSpec& proto) {
  JobSpec spec;
  spec.name = proto.name();
  spec.task = proto.task();
  if (proto.has_params()) {
    std::string text;
    auto st = google::protobuf::util::MessageToJsonString(proto.params(), &text);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("spec.params: ", st.ToString()));
    }
    spec.params = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (spec.params.is_discarded()) {
      return absl::InvalidArgumentError("spec.params is not valid JSON");
    }
  }
  if (proto.has_items()) {
    spec.has_items = true;
    spec.batch_size = proto.items().batch_size();
    std::vector<nlohmann::json> items;
    items.reserve(proto.items().items_size());
    for (int i = 0; i < proto.items().items_size(); ++i) {
      std::string text;
      auto st =
          google::protobuf::util::MessageToJsonString(proto.items().items(i), &text);
      nlohmann::json item = nlohmann::json::parse(text, nullptr, false);
      if (!st.ok() || item.is_discarded()) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.items.items[", i, "] is not a JSON value"));
      }
      items.push_back(std::move(item));
    }
    spec.items = ItemList(std::move(items));
  } else if (!proto.has_range()) {
    return absl::InvalidArgumentError(
        "spec needs an input: range (start, end and shard_size or shard_count) or items "
        "(items and batch_size)");
  }
  spec.range.start = proto.range().start();
  spec.range.end = proto.range().end();
  spec.range.shard_size = proto.range().shard_size();
  spec.range.shard_count = proto.range().shard_count();
  {
    auto r = ParseReducer(proto.aggregate().default_reducer());
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.aggregate.default_reducer: ", r.status().message()));
    }
    spec.aggregate.default_reducer = *r;
  }
  for (const auto& [path, name] : proto.aggregate().fields()) {
    auto r = ParseReducer(name);
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.aggregate.fields[\"", path, "\"]: ", r.status().message()));
    }
    spec.aggregate.fields[path] = *r;
  }
  spec.max_parallel = proto.max_parallel();
  const v1::RetryPolicy& r = proto.retry();
  if (r.max_attempts() != 0) spec.retry.max_attempts = r.max_attempts();
  if (r.has_initial_backoff())
    spec.retry.initial_backoff = DurationFromProto(r.initial_backoff());
  if (r.has_max_backoff()) spec.retry.max_backoff = DurationFromProto(r.max_backoff());
  if (r.has_multiplier()) spec.retry.multiplier = r.multiplier();
  if (r.has_jitter()) spec.retry.jitter = r.jitter();
  if (spec.retry.max_backoff < spec.retry.initial_backoff && !r.has_max_backoff()) {
    spec.retry.max_backoff = spec.retry.initial_backoff;
  }
  if (proto.has_shard_timeout())
    spec.shard_timeout = DurationFromProto(proto.shard_timeout());
  spec.max_failed_shards = proto.failure_policy().max_failed_shards();
  spec.idempotency_key = proto.idempotency_key();
  spec.concurrency_key = proto.concurrency_key();
  if (proto.concurrency_limit() != 0) spec.concurrency_limit = proto.concurrency_limit();
  if (!proto.queue().empty()) spec.queue = proto.queue();
  spec.priority = proto.priority();
  spec.rate_limit = proto.rate_limit();
  spec.labels.insert(proto.labels().begin(), proto.labels().end());
  return spec;
}

void SpecToProto(const JobSpec& spec, v1::JobSpec* proto) {
  proto->set_name(spec.name);
  proto->set_task(spec.task);
  // The params came from a Struct (bounded in depth), so they convert back
  // without loss.
  if (!spec.params.empty()) JsonToStruct(spec.params, proto->mutable_params());
  if (spec.has_items) {
    // Items are not echoed back (they can be many); the count says how many.
    proto->mutable_items()->set_batch_size(spec.batch_size);
    proto->mutable_items()->set_item_count(static_cast<int64_t>(spec.items.size()));
  } else {
    auto* range = proto->mutable_range();
    range->set_start(spec.range.start);
    range->set_end(spec.range.end);
    range->set_shard_size(spec.range.shard_size);
    range->set_shard_count(spec.range.shard_count);
  }
  proto->set_idempotency_key(spec.idempotency_key);
  proto->set_concurrency_key(spec.concurrency_key);
  proto->set_concurrency_limit(spec.concurrency_limit);
  proto->set_queue(spec.queue);
  proto->set_priority(spec.priority);
  proto->set_rate_limit(spec.rate_limit);
  for (const auto& [k, v] : spec.labels) (*proto->mutable_labels())[k] = v;
  if (spec.aggregate.default_reducer != Reducer::kAuto) {
    proto->mutable_aggregate()->set_default_reducer(
        std::string(ReducerName(spec.aggregate.default_reducer)));
  }
  for (const auto& [path, reducer] : spec.aggregate.fields) {
    (*proto->mutable_aggregate()->mutable_fields())[path] =
        std::string(ReducerName(reducer));
  }
  proto->set_max_parallel(spec.max_parallel);
  auto* r = proto->mutable_retry();
  r->set_max_attempts(spec.retry.max_attempts);
  DurationToProto(spec.retry.initial_backoff, r->mutable_initial_backoff());
  DurationToProto(spec.retry.max_backoff, r->mutable_max_backoff());
  r->set_multiplier(spec.retry.multiplier);
  r->set_jitter(spec.retry.jitter);
  if (spec.shard_timeout > absl::ZeroDuration()) {
    DurationToProto(spec.shard_timeout, proto->mutable_shard_timeout());
  }
  if (spec.max_failed_shards > 0) {
    proto->mutable_failure_policy()->set_max_failed_shards(spec.max_failed_shards);
  }
}

v1::JobState StateToProto(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return v1::JOB_STATE_QUEUED;
    case JobState::kRunning:
      return v1::JOB_STATE_RUNNING;
    case JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case JobState::kCancelled:
      return v1::JOB_STATE_CANCELLED;
    case JobState::kPartial:
      return v1::JOB_STATE_PARTIAL;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

absl::StatusOr<std::optional<JobState>> StateFromProto(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_UNSPECIFIED:
      return std::optional<JobState>();
    case v1::JOB_STATE_QUEUED:
      return JobState::kQueued;
    case v1::JOB_STATE_RUNNING:
      return JobState::kRunning;
    case v1::JOB_STATE_SUCCEEDED:
      return JobState::kSucceeded;
    case v1::JOB_STATE_FAILED:
      return JobState::kFailed;
    case v1::JOB_STATE_CANCELLED:
      return JobState::kCancelled;
    case v1::JOB_STATE_PARTIAL:
      return JobState::kPartial;
    default:
      return absl::InvalidArgumentError(absl::StrCat("state: unknown value ", state));
  }
}

void JobToProto(const JobView& v, v1::Job* proto) {
  proto->set_id(v.id);
  SpecToProto(v.spec, proto->mutable_spec());
  proto->set_state(StateToProto(v.state));
  auto* s = proto->mutable_shards();
  s->set_total(v.shards.total);
  s->set_pending(v.shards.pending);
  s->set_running(v.shards.running);
  s->set_succeeded(v.shards.succeeded);
  s->set_failed(v.shards.failed);
  proto->set_items_done(v.items_done);
  proto->set_items_total(v.items_total);
  TimeToProto(v.create_time, proto->mutable_create_time());
  if (v.start_time != absl::InfinitePast()) {
    TimeToProto(v.start_time, proto->mutable_start_time());
  }
  if (v.end_time != absl::InfinitePast())
    TimeToProto(v.end_time, proto->mutable_end_time());
  proto->set_message(v.message);
  for (const ShardError& e : v.errors) {
    auto* pe = proto->add_errors();
    pe->set_shard(e.shard);
    pe->set_start(e.bounds.start);
    pe->set_end(e.bounds.end);
    pe->set_executor(e.executor);
    pe->set_message(e.message);
  }
  proto->set_result_location(v.result_location);
  proto->set_result_sha256(v.result_sha256);
  proto->set_result_version(v.result_version);
  for (const FailedShard& f : v.failed_shards) {
    auto* pf = proto->add_failed_shards();
    pf->set_shard(f.shard);
    pf->set_start(f.bounds.start);
    pf->set_end(f.bounds.end);
    pf->set_attempts(f.attempts);
    pf->set_last_error(f.last_error);
  }
}

void ExecutorToProto(const ExecutorView& v, v1::Executor* proto) {
  proto->set_id(v.id);
  proto->set_name(v.name);
  for (const auto& t : v.tasks) proto->add_tasks(t);
  proto->set_slots(v.slots);
  proto->set_assigned(v.assigned);
  proto->set_version(v.version);
  proto->set_draining(v.draining);
  TimeToProto(v.connect_time, proto->mutable_connect_time());
  TimeToProto(v.last_seen, proto->mutable_last_seen_time());
  proto->set_shards_completed(v.shards_completed);
  for (const auto& q : v.queues) proto->add_queues(q);
}

void QueueStatsToProto(const QueueStats& s, v1::GetQueueStatsResponse* proto) {
  proto->set_jobs_queued(s.jobs_queued);
  proto->set_jobs_running(s.jobs_running);
  proto->set_shards_pending(s.shards_pending);
  proto->set_shards_running(s.shards_running);
  proto->set_executors(s.executors);
  proto->set_slots_total(s.slots_total);
  proto->set_slots_busy(s.slots_busy);
}

ExecutorHello HelloFromProto(const v1::Hello& proto) {
  ExecutorHello h;
  h.executor_id = proto.executor_id();
  h.name = proto.name().empty() ? proto.executor_id() : proto.name();
  h.tasks.assign(proto.tasks().begin(), proto.tasks().end());
  h.slots = proto.slots();
  h.version = proto.version();
  h.queues.assign(proto.queues().begin(), proto.queues().end());
  for (const v1::HeldShard& held : proto.held()) {
    h.held.push_back({held.lease_id(), held.job_id(), held.shard(), held.attempt()});
  }
  return h;
}

ExecutorResult ResultFromProto(v1::ShardResult& proto) {
  return {proto.lease_id(), proto.job_id(), proto.shard(),
          std::move(*proto.mutable_result_json()),
          absl::Microseconds(proto.run_micros())};
}

size_t ApproxBytes(const v1::Assignment& a) {
  constexpr size_t kFixed = 128;  // ids, numbers, the task's name
  return kFixed + a.items_json().size() + a.params_json().size();
}

void AssignmentToProto(const Assignment& a, v1::Assignment* proto) {
  proto->set_lease_id(a.lease_id);
  proto->set_job_id(a.job_id);
  proto->set_shard(a.shard);
  proto->set_task(a.task);
  proto->set_params_json(a.params_json);
  proto->set_start(a.bounds.start);
  proto->set_end(a.bounds.end);
  proto->set_attempt(a.attempt);
  proto->set_timeout_ms(absl::ToInt64Milliseconds(a.timeout));
  proto->set_items_json(a.items_json);
}

}  // namespace tessera::scheduler
