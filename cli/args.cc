#include "cli/args.h"

#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "shared/status_macros.h"

namespace tessera::cli {
namespace {

using tessera::v1::JobState;

absl::Status UsageError(absl::string_view flag, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", message));
}

struct FlagSpec {
  bool takes_value;
  bool repeatable;
};

const std::map<std::string, FlagSpec, std::less<>>& CommandFlags() {
  static const auto* flags = new std::map<std::string, FlagSpec, std::less<>>{
      {"task", {true, false}},          {"range", {true, false}},
      {"shards", {true, false}},        {"shard-size", {true, false}},
      {"name", {true, false}},          {"params", {true, false}},
      {"aggregate", {true, true}},      {"default-reducer", {true, false}},
      {"max-parallel", {true, false}},  {"wait", {false, false}},
      {"state", {true, false}},         {"page-size", {true, false}},
      {"page-token", {true, false}},    {"max-attempts", {true, false}},
      {"backoff", {true, false}},       {"max-backoff", {true, false}},
      {"shard-timeout", {true, false}}, {"max-failed-shards", {true, false}},
  };
  return *flags;
}

struct CommandInfo {
  CommandKind kind;
  int positionals;  // JOB_ID count
  std::set<std::string, std::less<>> flags;
};

const std::map<std::string, CommandInfo, std::less<>>& Commands() {
  static const auto* commands = new std::map<std::string, CommandInfo, std::less<>>{
      {"submit",
       {CommandKind::kSubmit,
        0,
        {"task", "range", "shards", "shard-size", "name", "params", "aggregate",
         "default-reducer", "max-parallel", "max-attempts", "backoff", "max-backoff",
         "shard-timeout", "max-failed-shards", "wait"}}},
      {"get", {CommandKind::kGet, 1, {}}},
      {"watch", {CommandKind::kWatch, 1, {}}},
      {"result", {CommandKind::kResult, 1, {}}},
      {"list", {CommandKind::kList, 0, {"state", "page-size", "page-token"}}},
      {"cancel", {CommandKind::kCancel, 1, {}}},
      {"retry", {CommandKind::kRetry, 1, {"wait"}}},
      {"executors", {CommandKind::kExecutors, 0, {}}},
      {"queue", {CommandKind::kQueue, 0, {}}},
      {"help", {CommandKind::kHelp, 0, {}}},
  };
  return *commands;
}

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

absl::Status ParseParams(absl::string_view text, google::protobuf::Struct& params) {
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // Drop the "[json.exception.parse_error.101] " tag; keep where and why.
    absl::string_view what = e.what();
    if (size_t tag_end = what.find("] "); tag_end != absl::string_view::npos) {
      what.remove_prefix(tag_end + 2);
    }
    return UsageError("--params", absl::StrCat("not valid JSON (", what, ")"));
  }
  if (!parsed.is_object()) {
    return UsageError(
        "--params",
        absl::StrCat("must be a JSON object like {\"ms\": 5}, got ", parsed.type_name()));
  }
  auto status = google::protobuf::util::JsonStringToMessage(std::string(text), &params);
  if (!status.ok()) {
    return UsageError("--params", absl::StrCat("cannot convert to a protobuf Struct (",
                                               status.ToString(), ")"));
  }
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

absl::Duration ToAbsl(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

using FlagValues = std::multimap<std::string, std::string, std::less<>>;

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
  if (!range)
    return UsageError("--range", "required (START:END, e.g. --range 0:1000000)");
  TESSERA_RETURN_IF_ERROR(ParseRange(*range, *spec.mutable_range()));
  auto shards = get("shards");
  auto shard_size = get("shard-size");
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
        ToAbsl(spec.retry().max_backoff()) < ToAbsl(spec.retry().initial_backoff())) {
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
  cmd.wait = flags.count("wait") > 0;
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
  return absl::OkStatus();
}

}  // namespace

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

absl::Status ParseDurationFlag(absl::string_view flag, absl::string_view text,
                               bool allow_zero, google::protobuf::Duration& out) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration() ||
      d == -absl::InfiniteDuration()) {
    return UsageError(
        flag,
        absl::StrCat("expected a duration like 500ms, 2s or 1m, got \"", text, "\""));
  }
  if (d < absl::ZeroDuration() || (!allow_zero && d == absl::ZeroDuration())) {
    return UsageError(
        flag, absl::StrCat("must be ", allow_zero ? ">= 0" : "> 0", " (got ", text, ")"));
  }
  // Protobuf Durations stop at 10000 years; nobody means more than a year.
  if (d > absl::Hours(24 * 366)) {
    return UsageError(flag, absl::StrCat("at most a year (got ", text, ")"));
  }
  const int64_t seconds = absl::ToInt64Seconds(d);
  out.set_seconds(seconds);
  out.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(seconds))));
  return absl::OkStatus();
}

std::string ResolveSchedulerAddress(absl::string_view flag, const char* env) {
  if (!flag.empty()) return std::string(flag);
  if (env != nullptr && env[0] != '\0') return env;
  return kDefaultSchedulerAddress;
}

absl::StatusOr<Command> ParseArgs(const std::vector<std::string>& args) {
  Command cmd;
  bool help = false;
  bool scheduler_given = false;
  std::optional<std::string> command_name;
  std::vector<std::string> positionals;
  FlagValues flags;

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "-") || arg == "-") {
      if (!command_name) {
        command_name = arg;
      } else {
        positionals.push_back(arg);
      }
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return UsageError(arg, "unknown flag (flags are spelled --name)");
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const std::string flag = "--" + name;
    if (name == "json") {
      if (value) return UsageError(flag, "takes no value");
      cmd.json = true;
      continue;
    }
    bool is_scheduler = name == "scheduler";
    auto spec = CommandFlags().find(name);
    if (!is_scheduler && spec == CommandFlags().end()) {
      return UsageError(flag, "unknown flag (see tessera --help)");
    }
    bool takes_value = is_scheduler || spec->second.takes_value;
    if (!takes_value) {
      if (value) return UsageError(flag, "takes no value");
      value = "";
    } else if (!value) {
      if (i + 1 >= args.size()) return UsageError(flag, "missing value");
      value = args[++i];
    }
    if (is_scheduler) {
      if (scheduler_given) return UsageError(flag, "given more than once");
      if (value->empty()) return UsageError(flag, "must not be empty");
      scheduler_given = true;
      cmd.scheduler = *value;
      continue;
    }
    if (!spec->second.repeatable && flags.count(name) > 0) {
      return UsageError(flag, "given more than once");
    }
    flags.emplace(name, *value);
  }

  if (help) {
    cmd.kind = CommandKind::kHelp;
    return cmd;
  }
  if (!command_name) {
    return absl::InvalidArgumentError("no command given (see tessera --help)");
  }
  auto info = Commands().find(*command_name);
  if (info == Commands().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command \"", *command_name, "\" (see tessera --help)"));
  }
  cmd.kind = info->second.kind;
  for (const auto& [name, value] : flags) {
    if (info->second.flags.count(name) == 0) {
      return UsageError("--" + name,
                        absl::StrCat("not a flag of \"", *command_name, "\""));
    }
  }
  if (cmd.kind == CommandKind::kHelp) return cmd;
  if (static_cast<int>(positionals.size()) != info->second.positionals) {
    if (info->second.positionals == 1 && positionals.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          *command_name, ": JOB_ID is required (tessera ", *command_name, " JOB_ID)"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(*command_name, ": unexpected argument \"",
                     positionals[info->second.positionals], "\""));
  }
  if (info->second.positionals == 1) {
    cmd.job_id = positionals[0];
    if (cmd.job_id.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(*command_name, ": JOB_ID is empty"));
    }
  }
  if (cmd.kind == CommandKind::kSubmit) TESSERA_RETURN_IF_ERROR(BuildSubmit(flags, cmd));
  if (cmd.kind == CommandKind::kRetry) cmd.wait = flags.count("wait") > 0;
  if (cmd.kind == CommandKind::kList) TESSERA_RETURN_IF_ERROR(BuildList(flags, cmd));
  return cmd;
}

}  // namespace tessera::cli
