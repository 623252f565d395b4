// Fuzz target: the fold of shard results (scheduler/core/fold.h), alone and
// through the core.
//
// Input: text lines. The first is the aggregate spec as a JSON object,
// {"default": "<reducer>", "fields": {"<path>": "<reducer>", ...}}; each
// further line that parses as a JSON object is the result of the next shard.
//
// Beyond "no crash", the README's promise: results are folded in shard order,
// so the folded bytes never depend on the order shards finish in. The core
// gets the results in shard order, reversed and shuffled; each time the job
// must end exactly as Folder says for shard order: the same result bytes
// (less `_metadata`), or failed with the same aggregate error.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scheduler/core/fold.h"
#include "scheduler/core/scheduler_core.h"
#include "shared/json_limits.h"
#include "tests/fuzz/fuzz_util.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
constexpr size_t kMaxShards = 64;

bool ParseAggregate(const json& j, AggregateSpec* spec) {
  if (!j.is_object()) return false;
  if (auto it = j.find("default"); it != j.end()) {
    if (!it->is_string()) return false;
    absl::StatusOr<Reducer> r = ParseReducer(it->get<std::string>());
    if (!r.ok()) return false;
    spec->default_reducer = *r;
  }
  if (auto it = j.find("fields"); it != j.end()) {
    if (!it->is_object()) return false;
    for (const auto& [path, name] : it->items()) {
      if (!name.is_string()) return false;
      absl::StatusOr<Reducer> r = ParseReducer(name.get<std::string>());
      if (!r.ok()) return false;
      spec->fields[path] = *r;
    }
  }
  return true;
}

// A job of `n` shards, one per result, with `aggregate`.
JobSpec FoldJob(const AggregateSpec& aggregate, int64_t n) {
  JobSpec spec;
  spec.task = "t";
  spec.range = {0, n, 1, 0};
  spec.aggregate = aggregate;
  spec.retry.max_attempts = 1;
  return spec;
}

// What the core must end with: the folded value, or the fold's error.
struct Expected {
  bool ok = true;
  json value;
  std::string error;
};

Expected FoldInShardOrder(const AggregateSpec& spec, const std::vector<json>& results) {
  Folder folder(spec);
  for (size_t i = 0; i < results.size(); ++i) {
    absl::Status s = folder.Add(static_cast<int64_t>(i), results[i]);
    if (!s.ok()) return {false, json(), absl::StrCat("aggregate: ", s.message())};
  }
  return {true, folder.value(), ""};
}

// Runs a job of one shard per result through the core, handing the results
// back in `order`, and checks the end against `expected` (if any).
void RunCore(const AggregateSpec& aggregate, const std::vector<std::string>& texts,
             const std::vector<size_t>& order, const std::optional<Expected>& expected,
             const std::string& input) {
  const auto n = static_cast<int64_t>(texts.size());
  CoreConfig config;
  SchedulerCore core(config);
  const JobSpec spec = FoldJob(aggregate, n);
  Actions submitted;
  TESSERA_FUZZ_CHECK(core.Submit(spec, "job1", kT0, submitted).ok(), input);

  ExecutorHello hello;
  hello.executor_id = "e1";
  hello.name = "e1";
  hello.tasks = {"t"};
  hello.slots = static_cast<int32_t>(n);
  Actions connected;
  ExecutorConn conn = core.Connect(hello, kT0, connected);
  TESSERA_FUZZ_CHECK(static_cast<int64_t>(connected.assigns.size()) == n, input);
  std::vector<std::string> lease_of(texts.size());
  for (const AssignAction& a : connected.assigns) {
    lease_of[a.assignment.shard] = a.assignment.lease_id;
  }

  const PersistAction* persisted = nullptr;
  std::vector<Actions> outs(order.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t shard = order[k];
    core.Result(conn, lease_of[shard], "job1", static_cast<int64_t>(shard), texts[shard],
                kT0, outs[k]);
    for (const DurableOp& op : outs[k].durable) {
      if (const auto* p = std::get_if<PersistAction>(&op)) {
        TESSERA_FUZZ_CHECK(persisted == nullptr, input);  // written once
        persisted = p;
      }
    }
  }

  absl::StatusOr<JobView> job = core.GetJob("job1", kT0);
  TESSERA_FUZZ_CHECK(job.ok(), input);
  if (!expected.has_value()) return;
  if (!expected->ok) {
    TESSERA_FUZZ_CHECK(
        persisted == nullptr && job->state == JobState::kFailed &&
            job->message == expected->error,
        absl::StrCat(input, "\nexpected error: ", expected->error,
                     "\ngot: ", JobStateName(job->state), " ", job->message));
    return;
  }
  TESSERA_FUZZ_CHECK(persisted != nullptr,
                     absl::StrCat(input, "\nno result; job ", JobStateName(job->state),
                                  " ", job->message));
  const json written = json::parse(persisted->bytes, nullptr, false);
  TESSERA_FUZZ_CHECK(written.is_object() && written.contains("_metadata"),
                     persisted->bytes);
  json want = expected->value;
  want["_metadata"] = written["_metadata"];
  const std::string want_bytes = want.dump(2) + "\n";
  TESSERA_FUZZ_CHECK(
      persisted->bytes == want_bytes,
      absl::StrCat(input, "\nexpected:\n", want_bytes, "\ngot:\n", persisted->bytes));
}

}  // namespace
}  // namespace tessera::scheduler

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera::scheduler;  // NOLINT(build/namespaces): a fuzz entry point
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<absl::string_view> lines = absl::StrSplit(input, '\n');
  AggregateSpec aggregate;
  if (!ParseAggregate(json::parse(lines[0], nullptr, false), &aggregate)) return 0;
  // Submit refuses what ValidateSpec refuses (field paths like "a." or "").
  if (!ValidateSpec(FoldJob(aggregate, 1)).ok()) return 0;

  // A result nested deeper than the core's limit fails its attempt (and the
  // job) before Folder sees it; Folder alone would copy it unchecked. Such an
  // input only goes through the core, in shard order, without the property.
  const int max_depth = CoreConfig().max_json_depth;
  bool deep = false;
  std::vector<std::string> texts;
  std::vector<json> results;
  for (size_t i = 1; i < lines.size() && texts.size() < kMaxShards; ++i) {
    if (tessera::JsonTextDepth(lines[i], max_depth) > max_depth) {
      deep = true;
      texts.emplace_back(lines[i]);
      continue;
    }
    json r = json::parse(lines[i], nullptr, false);
    if (!r.is_object()) continue;
    texts.emplace_back(lines[i]);
    results.push_back(std::move(r));
  }
  if (texts.empty()) return 0;

  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  if (deep) {
    RunCore(aggregate, texts, order, std::nullopt, input);
    return 0;
  }
  const Expected expected = FoldInShardOrder(aggregate, results);
  RunCore(aggregate, texts, order, expected, input);
  std::reverse(order.begin(), order.end());
  RunCore(aggregate, texts, order, expected, input);
  std::mt19937_64 rng(std::hash<std::string>()(input));
  std::shuffle(order.begin(), order.end(), rng);
  RunCore(aggregate, texts, order, expected, input);
  return 0;
}
