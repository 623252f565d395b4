// The job record's text: written directly (EncodeJobRecord), it must be what
// nlohmann's dump of the same record as a json tree gives, and read back
// (DecodeJobRecord) into the same record.
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/core/fold.h"
#include "scheduler/store/store.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;

// The record as a json tree, field by field, for nlohmann to dump.
json TimeTree(absl::Time t) {
  if (t == absl::InfinitePast()) return nullptr;
  return absl::ToUnixNanos(t);
}

json RecordTree(const JobRecord& r) {
  const JobSpec& s = r.spec;
  json fields = json::object();
  for (const auto& [path, red] : s.aggregate.fields) fields[path] = ReducerName(red);
  json spec = {
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
  return {
      {"id", r.id},
      {"seq", r.seq},
      {"spec", spec},
      {"state", static_cast<int>(r.state)},
      {"created", TimeTree(r.created)},
      {"started", TimeTree(r.started)},
      {"ended", TimeTree(r.ended)},
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
}

std::string TreeText(const JobRecord& r) {
  return RecordTree(r).dump(-1, ' ', false, json::error_handler_t::replace);
}

JobRecord Small() {
  JobRecord r;
  r.id = "c7648e93d913960b";
  r.seq = 12345;
  r.spec.task = "noop";
  r.spec.range = {0, 1, 1, 0};
  r.state = JobState::kRunning;
  r.created = absl::FromUnixNanos(1796453998335408445);
  r.finalizing = true;
  r.final_bytes = R"({"count":1})";
  return r;
}

JobRecord Full() {
  JobRecord r = Small();
  r.state = JobState::kFailed;
  r.started = absl::FromUnixNanos(-5);
  r.ended = absl::FromUnixNanos(1796453998335408999);
  // Quotes, backslashes, control characters, multibyte and invalid UTF-8.
  r.message = "shard \"3\" failed:\n\ttab \\ back \x01 \xc3\xa9t\xc3\xa9 \xff\xfe end";
  r.errors = {{3, {30, 40}, "exec-1", "boom \"x\""}, {4, {40, 50}, "", "\x80"}};
  r.failed = {{7, {70, 80}, 3, "timed out\r\n"}};
  // Printable ASCII but for one character to escape.
  r.location = "C:\\results\\c7648e93d913960b.json";
  r.sha256 = "quote\"only";
  r.result_version = 2;
  r.shards_succeeded = 9;
  r.items_done = 90;
  r.final_bytes = "";
  r.finalizing = false;
  JobSpec& s = r.spec;
  s.name = "nightly \"run\" \xe2\x9c\x93";
  s.task = "exec";
  s.params = json::parse(
      R"({"argv":["sh","-c","echo \"hi\""],"n":1.5,"deep":{"a":[null,true]}})");
  s.range = {-100, 1LL << 40, 7, 3};
  s.aggregate.default_reducer = Reducer::kSum;
  s.aggregate.fields = {{"stats.count", Reducer::kSum}, {"a\"b", Reducer::kConcat}};
  s.max_parallel = 8;
  s.retry.max_attempts = 5;
  s.retry.initial_backoff = absl::Milliseconds(250);
  s.retry.max_backoff = absl::Minutes(2);
  s.retry.multiplier = 1.1;
  s.retry.jitter = 0.0;
  s.shard_timeout = absl::Seconds(30);
  s.max_failed_shards = 4;
  s.has_items = true;
  s.items = ItemList({json("a"), json(2), json::parse(R"({"k":"v\u0000"})")});
  s.batch_size = 2;
  s.idempotency_key = "key-\x7f";
  s.concurrency_key = "tenant/1";
  s.concurrency_limit = 3;
  s.queue = "gpu";
  s.priority = -2;
  s.rate_limit = 12.75;
  s.labels = {{"team", "data"}, {"z\"", "\xc3\x28"}};
  return r;
}

TEST(RecordCodecTest, TheTextIsWhatNlohmannsDumpOfTheRecordGives) {
  EXPECT_EQ(EncodeJobRecord(Small()), TreeText(Small()));
  EXPECT_EQ(EncodeJobRecord(Full()), TreeText(Full()));
  EXPECT_EQ(EncodeJobRecord(JobRecord{}), TreeText(JobRecord{}));
}

TEST(RecordCodecTest, ARecordReadsBackAsItWasWritten) {
  for (const JobRecord& r : {Small(), Full(), JobRecord{}}) {
    absl::StatusOr<JobRecord> back = DecodeJobRecord(EncodeJobRecord(r));
    ASSERT_TRUE(back.ok()) << back.status();
    // Invalid UTF-8 was replaced: compare the texts, which hold every field.
    EXPECT_EQ(EncodeJobRecord(*back), EncodeJobRecord(r));
    EXPECT_EQ(back->id, r.id);
    EXPECT_EQ(back->spec.params, r.spec.params);
    EXPECT_EQ(back->spec.items, r.spec.items);
    EXPECT_EQ(back->created, r.created);
  }
}

}  // namespace
}  // namespace tessera::scheduler
