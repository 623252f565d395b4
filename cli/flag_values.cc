#include "cli/flag_values.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "shared/duration.h"
#include "shared/json_limits.h"
#include "shared/proto_duration.h"
#include "shared/status_macros.h"

namespace tessera::cli {
namespace {

using tessera::v1::JobState;

template <typename Int>
absl::StatusOr<Int> ParseInt(absl::string_view flag, absl::string_view text, Int min) {
  Int value;
  if (!absl::SimpleAtoi(text, &value)) {
    return UsageError(flag, absl::StrCat("expected an integer, got \"", text, "\""));
  }
  if (value < min) {
    return UsageError(flag, absl::StrCat("must be >= ", min, " (got ", value, ")"));
  }
  return value;
}

// Shards per second: a finite number >= 0 (0: no limit).
absl::StatusOr<double> ParseRateLimit(absl::string_view text) {
  double value;
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return UsageError(
        "--rate-limit",
        absl::StrCat("expected shards per second like 2 or 0.5, got \"", text, "\""));
  }
  if (value < 0) {
    return UsageError("--rate-limit",
                      absl::StrCat("must be >= 0 (0: no limit; got ", text, ")"));
  }
  return value;
}

// Every --label KEY=VALUE into `labels`; a key given twice is an error.
absl::Status ParseLabels(
    const std::multimap<std::string, std::string, std::less<>>& flags,
    google::protobuf::Map<std::string, std::string>& labels) {
  auto [begin, end] = flags.equal_range("label");
  for (auto it = begin; it != end; ++it) {
    const std::string& text = it->second;
    size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError(
          "--label",
          absl::StrCat("expected KEY=VALUE (e.g. team=ml), got \"", text, "\""));
    }
    std::string key = text.substr(0, eq);
    if (labels.count(key) > 0) {
      return UsageError("--label", absl::StrCat("key \"", key, "\" given twice"));
    }
    labels[key] = text.substr(eq + 1);
  }
  return absl::OkStatus();
}

// A flag whose value must not be empty, or nullopt when it was not given.
absl::StatusOr<std::optional<std::string>> NonEmpty(
    const std::multimap<std::string, std::string, std::less<>>& flags,
    absl::string_view name) {
  auto it = flags.find(name);
  if (it == flags.end()) return std::optional<std::string>();
  if (it->second.empty())
    return UsageError(absl::StrCat("--", name), "must not be empty");
  return std::optional<std::string>(it->second);
}

// "[json.exception.parse_error.101] parse error at ..." without the tag.
std::string JsonErrorText(const std::exception& e) {
  absl::string_view what = e.what();
  if (size_t tag_end = what.find("] "); tag_end != absl::string_view::npos) {
    what.remove_prefix(tag_end + 2);
  }
  return std::string(what);
}

// Why `text` is not one JSON value, or "" when it is. nlohmann judges, without
// building a value: protobuf 3.21's JSON parser also takes {ms: 5} and 'x',
// which are not JSON.
std::string JsonSyntaxError(absl::string_view text) {
  if (nlohmann::json::accept(text.begin(), text.end())) return "";
  try {
    (void)nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    return JsonErrorText(e);
  }
  return "not JSON";
}

// JSON `text` (valid JSON) into a google.protobuf.Value, Struct or ListValue by
// protobuf's own converter. Deeper than the scheduler's default
// --max-json-depth is refused before any parsing.
absl::Status JsonToMessage(absl::string_view text, google::protobuf::Message& out) {
  if (JsonTextDepth(text, kDefaultMaxJsonDepth) > kDefaultMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("nests deeper than ", kDefaultMaxJsonDepth, " levels"));
  }
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), &out);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot convert to a protobuf ",
                                                   out.GetDescriptor()->name(), " (",
                                                   status.ToString(), ")"));
  }
  return absl::OkStatus();
}

// The JSON type of a Value, named as nlohmann::json::type_name() names it.
const char* JsonTypeName(const google::protobuf::Value& value) {
  // Indexed by Value::KindCase: not set, null, number, string, bool, struct, list.
  static constexpr const char* kNames[] = {"nothing", "null",   "number", "string",
                                           "boolean", "object", "array"};
  static_assert(google::protobuf::Value::kListValue == 6);
  return kNames[value.kind_case()];
}

absl::Status ParseParams(absl::string_view text, google::protobuf::Struct& params) {
  if (std::string why = JsonSyntaxError(text); !why.empty()) {
    return UsageError("--params", absl::StrCat("not valid JSON (", why, ")"));
  }
  google::protobuf::Value value;
  if (absl::Status status = JsonToMessage(text, value); !status.ok()) {
    return UsageError("--params", status.message());
  }
  if (value.kind_case() != google::protobuf::Value::kStructValue) {
    return UsageError("--params",
                      absl::StrCat("must be a JSON object like {\"ms\": 5}, got ",
                                   JsonTypeName(value)));
  }
  params = std::move(*value.mutable_struct_value());
  return absl::OkStatus();
}

absl::Status ParseAggregate(absl::string_view text, tessera::v1::Aggregate& aggregate) {
  std::pair<std::string, std::string> parts =
      absl::StrSplit(text, absl::MaxSplits('=', 1));
  if (!absl::StrContains(text, '=') || parts.first.empty() || parts.second.empty()) {
    return UsageError(
        "--aggregate",
        absl::StrCat("expected FIELD=REDUCER (e.g. primes=sum), got \"", text, "\""));
  }
  auto& fields = *aggregate.mutable_fields();
  if (fields.count(parts.first) > 0) {
    return UsageError("--aggregate",
                      absl::StrCat("field \"", parts.first, "\" given twice"));
  }
  fields[parts.first] = parts.second;
  return absl::OkStatus();
}

absl::StatusOr<JobState> ParseState(absl::string_view text) {
  static const auto* states = new std::map<std::string, JobState, std::less<>>{
      {"queued", tessera::v1::JOB_STATE_QUEUED},
      {"running", tessera::v1::JOB_STATE_RUNNING},
      {"succeeded", tessera::v1::JOB_STATE_SUCCEEDED},
      {"failed", tessera::v1::JOB_STATE_FAILED},
      {"cancelled", tessera::v1::JOB_STATE_CANCELLED},
      {"partial", tessera::v1::JOB_STATE_PARTIAL},
  };
  auto it = states->find(absl::AsciiStrToLower(text));
  if (it == states->end()) {
    return UsageError(
        "--state",
        absl::StrCat("expected queued|running|succeeded|failed|cancelled|partial, got \"",
                     text, "\""));
  }
  return it->second;
}

// The scheduler accepts 1..100 attempts per shard.
constexpr int32_t kMaxAttempts = 100;
// And priorities in -1000..1000.
constexpr int32_t kMaxPriority = 1000;

}  // namespace

absl::Status UsageError(absl::string_view flag, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", message));
}

absl::Status BuildSubmit(const FlagValues& flags, Command& cmd) {
  auto get = [&](absl::string_view name) -> std::optional<std::string> {
    auto it = flags.find(name);
    if (it == flags.end()) return std::nullopt;
    return it->second;
  };
  tessera::v1::JobSpec& spec = cmd.spec;
  auto task = get("task");
  if (!task || task->empty()) {
    return UsageError("--task", "required (the handler to run, e.g. --task primes)");
  }
  spec.set_task(*task);
  auto range = get("range");
  auto shards = get("shards");
  auto shard_size = get("shard-size");
  auto items_file = get("items-file");
  auto batch_size = get("batch-size");
  if (items_file) {
    // An items job: the items are cut by --batch-size, not by a range.
    for (const char* other : {"range", "shards", "shard-size"}) {
      if (get(other)) {
        return UsageError(
            absl::StrCat("--", other),
            "not allowed with --items-file (items are cut by --batch-size)");
      }
    }
    if (items_file->empty()) {
      return UsageError("--items-file", "must not be empty (a path, or - for stdin)");
    }
    if (!batch_size) {
      return UsageError(
          "--batch-size",
          "required with --items-file (items per shard, e.g. --batch-size 100)");
    }
    TESSERA_ASSIGN_OR_RETURN(int32_t n,
                             ParseInt<int32_t>("--batch-size", *batch_size, 1));
    spec.mutable_items()->set_batch_size(n);
    cmd.items_file = *items_file;
  } else {
    if (batch_size) {
      return UsageError(
          "--batch-size",
          "only with --items-file (a range is cut by --shards or --shard-size)");
    }
    if (!range) {
      return UsageError(
          "--range",
          "required (START:END, e.g. --range 0:1000000), or --items-file PATH");
    }
    TESSERA_RETURN_IF_ERROR(ParseRange(*range, *spec.mutable_range()));
    if (shards && shard_size) {
      return UsageError("--shards", "give either --shards or --shard-size, not both");
    }
    if (!shards && !shard_size) {
      return UsageError("--shards", "one of --shards N or --shard-size N is required");
    }
    if (shards) {
      TESSERA_ASSIGN_OR_RETURN(int64_t n, ParseInt<int64_t>("--shards", *shards, 1));
      spec.mutable_range()->set_shard_count(n);
    } else {
      TESSERA_ASSIGN_OR_RETURN(int64_t n,
                               ParseInt<int64_t>("--shard-size", *shard_size, 1));
      spec.mutable_range()->set_shard_size(n);
    }
  }
  if (auto name = get("name")) spec.set_name(*name);
  if (auto params = get("params")) {
    TESSERA_RETURN_IF_ERROR(ParseParams(*params, *spec.mutable_params()));
  }
  auto [begin, end] = flags.equal_range("aggregate");
  for (auto it = begin; it != end; ++it) {
    TESSERA_RETURN_IF_ERROR(ParseAggregate(it->second, *spec.mutable_aggregate()));
  }
  if (auto reducer = get("default-reducer")) {
    if (reducer->empty()) return UsageError("--default-reducer", "must not be empty");
    spec.mutable_aggregate()->set_default_reducer(*reducer);
  }
  if (auto max_parallel = get("max-parallel")) {
    TESSERA_ASSIGN_OR_RETURN(int32_t n,
                             ParseInt<int32_t>("--max-parallel", *max_parallel, 0));
    spec.set_max_parallel(n);
  }
  if (auto max_attempts = get("max-attempts")) {
    TESSERA_ASSIGN_OR_RETURN(int32_t n,
                             ParseInt<int32_t>("--max-attempts", *max_attempts, 1));
    if (n > kMaxAttempts) {
      return UsageError("--max-attempts",
                        absl::StrCat("at most ", kMaxAttempts, " (got ", n, ")"));
    }
    spec.mutable_retry()->set_max_attempts(n);
  }
  if (auto backoff = get("backoff")) {
    TESSERA_RETURN_IF_ERROR(
        ParseDurationFlag("--backoff", *backoff, /*allow_zero=*/true,
                          *spec.mutable_retry()->mutable_initial_backoff()));
  }
  if (auto max_backoff = get("max-backoff")) {
    TESSERA_RETURN_IF_ERROR(ParseDurationFlag(
        "--max-backoff", *max_backoff,
        /*allow_zero=*/true, *spec.mutable_retry()->mutable_max_backoff()));
    if (spec.retry().has_initial_backoff() &&
        DurationFromProto(spec.retry().max_backoff()) <
            DurationFromProto(spec.retry().initial_backoff())) {
      return UsageError("--max-backoff",
                        absl::StrCat("must be at least --backoff (got ", *max_backoff,
                                     " < ", *get("backoff"), ")"));
    }
  }
  if (auto timeout = get("shard-timeout")) {
    TESSERA_RETURN_IF_ERROR(ParseDurationFlag("--shard-timeout", *timeout,
                                              /*allow_zero=*/false,
                                              *spec.mutable_shard_timeout()));
  }
  if (auto max_failed = get("max-failed-shards")) {
    TESSERA_ASSIGN_OR_RETURN(int64_t n,
                             ParseInt<int64_t>("--max-failed-shards", *max_failed, 0));
    spec.mutable_failure_policy()->set_max_failed_shards(n);
  }
  TESSERA_ASSIGN_OR_RETURN(auto idempotency_key, NonEmpty(flags, "idempotency-key"));
  if (idempotency_key) spec.set_idempotency_key(*idempotency_key);
  TESSERA_ASSIGN_OR_RETURN(auto concurrency_key, NonEmpty(flags, "concurrency-key"));
  if (concurrency_key) spec.set_concurrency_key(*concurrency_key);
  if (auto limit = get("concurrency-limit")) {
    if (!concurrency_key) {
      return UsageError("--concurrency-limit", "only with --concurrency-key");
    }
    TESSERA_ASSIGN_OR_RETURN(int32_t n,
                             ParseInt<int32_t>("--concurrency-limit", *limit, 1));
    spec.set_concurrency_limit(n);
  }
  TESSERA_ASSIGN_OR_RETURN(auto queue, NonEmpty(flags, "queue"));
  if (queue) spec.set_queue(*queue);
  if (auto priority = get("priority")) {
    TESSERA_ASSIGN_OR_RETURN(int32_t n,
                             ParseInt<int32_t>("--priority", *priority, -kMaxPriority));
    if (n > kMaxPriority) {
      return UsageError("--priority",
                        absl::StrCat("at most ", kMaxPriority, " (got ", n, ")"));
    }
    spec.set_priority(n);
  }
  if (auto rate = get("rate-limit")) {
    TESSERA_ASSIGN_OR_RETURN(double r, ParseRateLimit(*rate));
    spec.set_rate_limit(r);
  }
  TESSERA_RETURN_IF_ERROR(ParseLabels(flags, *spec.mutable_labels()));
  cmd.wait = flags.count("wait") > 0;
  return absl::OkStatus();
}

absl::Status BuildUpdate(const FlagValues& flags, Command& cmd) {
  tessera::v1::UpdateJobRequest& request = cmd.update;
  request.set_job_id(cmd.job_id);
  if (auto it = flags.find("max-parallel"); it != flags.end()) {
    TESSERA_ASSIGN_OR_RETURN(int32_t n,
                             ParseInt<int32_t>("--max-parallel", it->second, 0));
    request.mutable_update()->set_max_parallel(n);
    request.mutable_update_mask()->add_paths("max_parallel");
  }
  if (auto it = flags.find("rate-limit"); it != flags.end()) {
    TESSERA_ASSIGN_OR_RETURN(double r, ParseRateLimit(it->second));
    request.mutable_update()->set_rate_limit(r);
    request.mutable_update_mask()->add_paths("rate_limit");
  }
  if (request.update_mask().paths().empty()) {
    return absl::InvalidArgumentError(
        "update: nothing to change (give --max-parallel N and/or --rate-limit R)");
  }
  return absl::OkStatus();
}

absl::Status BuildList(const FlagValues& flags, Command& cmd) {
  if (auto it = flags.find("state"); it != flags.end()) {
    TESSERA_ASSIGN_OR_RETURN(JobState state, ParseState(it->second));
    cmd.list.set_state(state);
  }
  if (auto it = flags.find("page-size"); it != flags.end()) {
    TESSERA_ASSIGN_OR_RETURN(int32_t n, ParseInt<int32_t>("--page-size", it->second, 0));
    if (n > 1000)
      return UsageError("--page-size", absl::StrCat("at most 1000 (got ", n, ")"));
    cmd.list.set_page_size(n);
  }
  if (auto it = flags.find("page-token"); it != flags.end()) {
    cmd.list.set_page_token(it->second);
  }
  TESSERA_ASSIGN_OR_RETURN(auto queue, NonEmpty(flags, "queue"));
  if (queue) cmd.list.set_queue(*queue);
  TESSERA_RETURN_IF_ERROR(ParseLabels(flags, *cmd.list.mutable_labels()));
  return absl::OkStatus();
}

absl::Status ParseRange(absl::string_view text, tessera::v1::RangeInput& range) {
  // Numbers never contain ':', so the first colon separates negative bounds too.
  size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return UsageError(
        "--range", absl::StrCat("expected START:END (e.g. 0:1000), got \"", text, "\""));
  }
  absl::string_view start_text = text.substr(0, colon);
  absl::string_view end_text = text.substr(colon + 1);
  int64_t start, end;
  if (!absl::SimpleAtoi(start_text, &start)) {
    return UsageError(
        "--range",
        absl::StrCat("START \"", start_text, "\" is not an integer (in \"", text, "\")"));
  }
  if (!absl::SimpleAtoi(end_text, &end)) {
    return UsageError(
        "--range",
        absl::StrCat("END \"", end_text, "\" is not an integer (in \"", text, "\")"));
  }
  if (end <= start) {
    return UsageError(
        "--range", absl::StrCat("END must be greater than START (got ", start, ":", end,
                                "; the range is [START, END))"));
  }
  range.set_start(start);
  range.set_end(end);
  return absl::OkStatus();
}

absl::Status ParseItems(absl::string_view text, tessera::v1::ItemsInput& items) {
  // The whole text as one JSON document first: an array is the item list.
  if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(text), "[") &&
      JsonSyntaxError(text).empty()) {
    google::protobuf::ListValue list;
    if (absl::Status status = JsonToMessage(text, list); !status.ok()) {
      return UsageError("--items-file", status.message());
    }
    if (list.values().empty()) {
      return UsageError("--items-file", "the JSON array has no items");
    }
    for (auto& item : *list.mutable_values()) *items.add_items() = std::move(item);
    return absl::OkStatus();
  }
  // Otherwise JSON lines: one item per non-blank line.
  int line_number = 0;
  int64_t count = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (std::string why = JsonSyntaxError(line); !why.empty()) {
      return UsageError(
          "--items-file",
          absl::StrCat("line ", line_number, " is not valid JSON (", why,
                       "); expected a JSON array or one JSON value per line"));
    }
    if (absl::Status status = JsonToMessage(line, *items.add_items()); !status.ok()) {
      return UsageError("--items-file",
                        absl::StrCat("line ", line_number, ": ", status.message()));
    }
    ++count;
  }
  if (count == 0) {
    return UsageError("--items-file",
                      "no items (expected a JSON array or one JSON value per line)");
  }
  return absl::OkStatus();
}

absl::Status ParseDurationFlag(absl::string_view flag, absl::string_view text,
                               bool allow_zero, google::protobuf::Duration& out) {
  std::optional<absl::Duration> parsed = ParseFiniteDuration(text);
  if (!parsed) {
    return UsageError(
        flag,
        absl::StrCat("expected a duration like 500ms, 2s or 1m, got \"", text, "\""));
  }
  const absl::Duration d = *parsed;
  if (d < absl::ZeroDuration() || (!allow_zero && d == absl::ZeroDuration())) {
    return UsageError(
        flag, absl::StrCat("must be ", allow_zero ? ">= 0" : "> 0", " (got ", text, ")"));
  }
  // Protobuf Durations stop at 10000 years; nobody means more than a year.
  if (d > absl::Hours(24 * 366)) {
    return UsageError(flag, absl::StrCat("at most a year (got ", text, ")"));
  }
  DurationToProto(d, &out);
  return absl::OkStatus();
}

}  // namespace tessera::cli
