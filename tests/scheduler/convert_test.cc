// proto <-> core conversion at both ends of the API: every field of a spec survives
// proto -> core -> proto and core -> proto -> core, the views reach their protos whole,
// an assignment and a hello cross from one service's types to the other's unchanged,
// and bad input is refused with INVALID_ARGUMENT naming the field.
#include "executor/service/convert.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>

#include "scheduler/service/convert.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Equal protos, or the fields that differ.
::testing::AssertionResult SameProto(const google::protobuf::Message& want,
                                     const google::protobuf::Message& got) {
  std::string diff;
  MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  if (d.Compare(want, got)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff;
}

template <typename Proto>
Proto Parse(const std::string& text) {
  Proto p;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &p)) << text;
  return p;
}

// Every field of a range spec set to something other than its default.
v1::JobSpec FullRangeSpec() {
  return Parse<v1::JobSpec>(R"pb(
    name: "promo codes"
    task: "promo"
    params {
      fields {
        key: "amounts"
        value {
          list_value {
            values { number_value: 1 }
            values { number_value: 5 }
          }
        }
      }
      fields {
        key: "site"
        value { string_value: "shop" }
      }
      fields {
        key: "opts"
        value {
          struct_value {
            fields {
              key: "dry"
              value { bool_value: true }
            }
          }
        }
      }
    }
    range { start: -5 end: 1000 shard_size: 7 shard_count: 0 }
    aggregate {
      default_reducer: "merge"
      fields { key: "codes" value: "concat" }
      fields { key: "stats.count" value: "sum" }
    }
    max_parallel: 4
    retry {
      max_attempts: 5
      initial_backoff { seconds: 30 }
      max_backoff { seconds: 120 nanos: 500000000 }
      multiplier: 3
      jitter: 0.5
    }
    shard_timeout { seconds: 600 nanos: 250000000 }
    failure_policy { max_failed_shards: 9 }
    idempotency_key: "import-42"
    concurrency_key: "imports"
    concurrency_limit: 2
    queue: "slow"
    priority: -12
    rate_limit: 2.5
    labels { key: "team" value: "growth" }
    labels { key: "env" value: "prod" }
  )pb");
}

TEST(ConvertSpecTest, EveryFieldOfARangeSpecSurvivesProtoToCoreToProto) {
  const v1::JobSpec proto = FullRangeSpec();
  absl::StatusOr<JobSpec> spec = SpecFromProto(proto);
  ASSERT_THAT(spec, IsOk());
  v1::JobSpec back;
  SpecToProto(*spec, &back);
  EXPECT_TRUE(SameProto(proto, back));
}

TEST(ConvertSpecTest, EveryFieldOfARangeSpecSurvivesCoreToProtoToCore) {
  JobSpec spec;
  spec.name = "n";
  spec.task = "primes";
  spec.params = {{"limit", 10}, {"tags", {"a", "b"}}};
  spec.range = {.start = 10, .end = 20, .shard_size = 0, .shard_count = 3};
  spec.aggregate.default_reducer = Reducer::kSum;
  spec.aggregate.fields = {
      {"first", Reducer::kFirst}, {"lo", Reducer::kMin}, {"hi", Reducer::kMax}};
  spec.max_parallel = 8;
  spec.retry = {.max_attempts = 7,
                .initial_backoff = absl::Milliseconds(250),
                .max_backoff = absl::Seconds(90),
                .multiplier = 1.5,
                .jitter = 0};
  spec.shard_timeout = absl::Minutes(5);
  spec.max_failed_shards = 3;
  spec.idempotency_key = "k";
  spec.concurrency_key = "c";
  spec.concurrency_limit = 4;
  spec.queue = "gpu";
  spec.priority = 1000;
  spec.rate_limit = 0.25;
  spec.labels = {{"a", "1"}};

  v1::JobSpec proto;
  SpecToProto(spec, &proto);
  absl::StatusOr<JobSpec> back = SpecFromProto(proto);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->name, spec.name);
  EXPECT_EQ(back->task, spec.task);
  EXPECT_EQ(back->params, spec.params);
  EXPECT_EQ(back->range.start, 10);
  EXPECT_EQ(back->range.end, 20);
  EXPECT_EQ(back->range.shard_size, 0);
  EXPECT_EQ(back->range.shard_count, 3);
  EXPECT_EQ(back->aggregate.default_reducer, Reducer::kSum);
  EXPECT_EQ(back->aggregate.fields, spec.aggregate.fields);
  EXPECT_EQ(back->max_parallel, 8);
  EXPECT_EQ(back->retry.max_attempts, 7);
  EXPECT_EQ(back->retry.initial_backoff, absl::Milliseconds(250));
  EXPECT_EQ(back->retry.max_backoff, absl::Seconds(90));
  EXPECT_EQ(back->retry.multiplier, 1.5);
  EXPECT_EQ(back->retry.jitter, 0);
  EXPECT_EQ(back->shard_timeout, absl::Minutes(5));
  EXPECT_EQ(back->max_failed_shards, 3);
  EXPECT_EQ(back->idempotency_key, "k");
  EXPECT_EQ(back->concurrency_key, "c");
  EXPECT_EQ(back->concurrency_limit, 4);
  EXPECT_EQ(back->queue, "gpu");
  EXPECT_EQ(back->priority, 1000);
  EXPECT_EQ(back->rate_limit, 0.25);
  EXPECT_EQ(back->labels, spec.labels);
  EXPECT_FALSE(back->has_items);
}

TEST(ConvertSpecTest, AnItemsSpecKeepsItsItemsAndEchoesOnlyTheirCount) {
  const v1::JobSpec proto = Parse<v1::JobSpec>(R"pb(
    task: "market"
    items {
      batch_size: 2
      items { number_value: 1 }
      items { string_value: "two" }
      items {
        struct_value {
          fields {
            key: "id"
            value { number_value: 3 }
          }
        }
      }
      items { list_value { values { bool_value: false } } }
      items { null_value: NULL_VALUE }
    }
  )pb");
  absl::StatusOr<JobSpec> spec = SpecFromProto(proto);
  ASSERT_THAT(spec, IsOk());
  EXPECT_TRUE(spec->has_items);
  EXPECT_EQ(spec->batch_size, 2);
  EXPECT_THAT(spec->items.values(),
              ElementsAre(nlohmann::json(1.0), nlohmann::json("two"),
                          nlohmann::json({{"id", 3.0}}), nlohmann::json::array({false}),
                          nlohmann::json(nullptr)));
  v1::JobSpec back;
  SpecToProto(*spec, &back);
  EXPECT_TRUE(back.has_items());
  EXPECT_FALSE(back.has_range());
  EXPECT_EQ(back.items().batch_size(), 2);
  EXPECT_EQ(back.items().item_count(), 5);
  EXPECT_EQ(back.items().items_size(), 0);
}

TEST(ConvertSpecTest, UnsetFieldsTakeTheDocumentedDefaults) {
  absl::StatusOr<JobSpec> spec = SpecFromProto(
      Parse<v1::JobSpec>(R"pb(task: "noop"
                              range { end: 10 shard_size: 1 }
                              retry { initial_backoff { seconds: 90 } })pb"));
  ASSERT_THAT(spec, IsOk());
  const JobSpec defaults;
  EXPECT_EQ(spec->queue, "default");
  EXPECT_EQ(spec->concurrency_limit, 1);
  EXPECT_EQ(spec->retry.max_attempts, defaults.retry.max_attempts);
  EXPECT_EQ(spec->retry.multiplier, defaults.retry.multiplier);
  EXPECT_EQ(spec->retry.jitter, defaults.retry.jitter);
  // A first backoff above the default cap raises the cap with it.
  EXPECT_EQ(spec->retry.initial_backoff, absl::Seconds(90));
  EXPECT_EQ(spec->retry.max_backoff, absl::Seconds(90));
  EXPECT_EQ(spec->shard_timeout, absl::ZeroDuration());
  EXPECT_EQ(spec->aggregate.default_reducer, Reducer::kAuto);
  EXPECT_TRUE(spec->params.is_object());
}

TEST(ConvertSpecTest, BadInputIsInvalidArgumentNamingTheField) {
  EXPECT_THAT(
      SpecFromProto(Parse<v1::JobSpec>(R"pb(task: "noop")pb")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec needs an input")));
  EXPECT_THAT(SpecFromProto(Parse<v1::JobSpec>(
                  R"pb(task: "noop"
                       range { end: 1 shard_size: 1 }
                       aggregate { default_reducer: "average" })pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("spec.aggregate.default_reducer")));
  EXPECT_THAT(SpecFromProto(Parse<v1::JobSpec>(
                  R"pb(task: "noop"
                       range { end: 1 shard_size: 1 }
                       aggregate { fields { key: "n" value: "median" } })pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("spec.aggregate.fields[\"n\"]")));
}

TEST(ConvertStateTest, EveryStateSurvivesCoreToProtoToCore) {
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                     JobState::kFailed, JobState::kCancelled, JobState::kPartial}) {
    const v1::JobState proto = StateToProto(s);
    EXPECT_NE(proto, v1::JOB_STATE_UNSPECIFIED) << JobStateName(s);
    EXPECT_THAT(StateFromProto(proto), tessera::testing::IsOkAndHolds(s))
        << JobStateName(s);
  }
  EXPECT_THAT(StateFromProto(v1::JOB_STATE_UNSPECIFIED),
              tessera::testing::IsOkAndHolds(std::optional<JobState>()));
  EXPECT_THAT(StateFromProto(static_cast<v1::JobState>(99)),
              StatusIs(absl::StatusCode::kInvalidArgument, "state: unknown value 99"));
}

TEST(ConvertViewTest, EveryFieldOfAJobViewReachesTheProto) {
  JobView v;
  v.id = "7f3a";
  v.spec.task = "noop";
  v.spec.range = {.start = 0, .end = 10, .shard_size = 5};
  v.state = JobState::kPartial;
  v.shards = {.total = 9, .pending = 1, .running = 2, .succeeded = 3, .failed = 3};
  v.items_done = 40;
  v.items_total = 50;
  v.create_time = absl::FromUnixNanos(1'700'000'000'123'456'789);
  v.start_time = absl::FromUnixSeconds(1'700'000'001);
  v.end_time = absl::FromUnixSeconds(1'700'000'002);
  v.message = "2 shards failed";
  v.errors = {{.shard = 4, .bounds = {20, 25}, .executor = "ex-1", .message = "boom"}};
  v.result_location = "file:///r/7f3a.json";
  v.result_sha256 = "abc";
  v.result_version = 2;
  v.failed_shards = {
      {.shard = 4, .bounds = {20, 25}, .attempts = 3, .last_error = "boom"}};

  v1::Job proto;
  JobToProto(v, &proto);
  v1::JobSpec spec;
  SpecToProto(v.spec, &spec);
  v1::Job want = Parse<v1::Job>(R"pb(
    id: "7f3a"
    state: JOB_STATE_PARTIAL
    shards { total: 9 pending: 1 running: 2 succeeded: 3 failed: 3 }
    items_done: 40
    items_total: 50
    create_time { seconds: 1700000000 nanos: 123456789 }
    start_time { seconds: 1700000001 }
    end_time { seconds: 1700000002 }
    message: "2 shards failed"
    errors { shard: 4 start: 20 end: 25 executor: "ex-1" message: "boom" }
    result_location: "file:///r/7f3a.json"
    result_sha256: "abc"
    result_version: 2
    failed_shards { shard: 4 start: 20 end: 25 attempts: 3 last_error: "boom" }
  )pb");
  *want.mutable_spec() = spec;
  EXPECT_TRUE(SameProto(want, proto));
}

TEST(ConvertViewTest, AJobNotStartedHasNoStartOrEndTime) {
  JobView v;
  v.create_time = absl::FromUnixSeconds(5);
  v1::Job proto;
  JobToProto(v, &proto);
  EXPECT_TRUE(proto.has_create_time());
  EXPECT_FALSE(proto.has_start_time());
  EXPECT_FALSE(proto.has_end_time());
}

TEST(ConvertViewTest, EveryFieldOfAnExecutorViewAndQueueStatsReachesTheProto) {
  ExecutorView e;
  e.id = "ex-1";
  e.name = "pod-a";
  e.tasks = {"noop", "primes"};
  e.slots = 4;
  e.assigned = 3;
  e.version = "0.1.0";
  e.draining = true;
  e.connect_time = absl::FromUnixSeconds(100);
  e.last_seen = absl::FromUnixMillis(101'500);
  e.shards_completed = 17;
  e.queues = {"default", "slow"};
  v1::Executor proto;
  ExecutorToProto(e, &proto);
  EXPECT_TRUE(SameProto(Parse<v1::Executor>(R"pb(
                          id: "ex-1"
                          name: "pod-a"
                          tasks: [ "noop", "primes" ]
                          slots: 4
                          assigned: 3
                          version: "0.1.0"
                          draining: true
                          connect_time { seconds: 100 }
                          last_seen_time { seconds: 101 nanos: 500000000 }
                          shards_completed: 17
                          queues: [ "default", "slow" ]
                        )pb"),
                        proto));

  QueueStats q{.jobs_queued = 1,
               .jobs_running = 2,
               .shards_pending = 3,
               .shards_running = 4,
               .executors = 5,
               .slots_total = 6,
               .slots_busy = 7};
  v1::GetQueueStatsResponse qp;
  QueueStatsToProto(q, &qp);
  EXPECT_TRUE(SameProto(Parse<v1::GetQueueStatsResponse>(
                            R"pb(jobs_queued: 1
                                 jobs_running: 2
                                 shards_pending: 3
                                 shards_running: 4
                                 executors: 5
                                 slots_total: 6
                                 slots_busy: 7)pb"),
                        qp));
}

// The executor protocol: what one service writes, the other reads back whole.

TEST(ConvertProtocolTest, AnAssignmentReachesTheExecutorWithEveryField) {
  Assignment a;
  a.lease_id = "L1";
  a.job_id = "J1";
  a.shard = 12;
  a.task = "primes";
  a.params_json = R"({"limit":3})";
  a.bounds = {120, 130};
  a.attempt = 2;
  a.timeout = absl::Milliseconds(1500);
  a.items_json = "[1,2]";
  v1::Assignment proto;
  AssignmentToProto(a, &proto);
  const executor::Assignment got = executor::FromProto(proto);
  EXPECT_EQ(got.lease_id, "L1");
  EXPECT_EQ(got.job_id, "J1");
  EXPECT_EQ(got.shard, 12);
  EXPECT_EQ(got.task, "primes");
  EXPECT_EQ(got.params_json, a.params_json);
  EXPECT_EQ(got.start, 120);
  EXPECT_EQ(got.end, 130);
  EXPECT_EQ(got.attempt, 2);
  EXPECT_EQ(got.timeout, absl::Milliseconds(1500));
  EXPECT_EQ(got.items_json, "[1,2]");
  EXPECT_GE(ApproxBytes(proto), a.params_json.size() + a.items_json.size());
}

TEST(ConvertProtocolTest, AHelloReachesTheSchedulerWithEveryField) {
  executor::HelloInfo info;
  info.executor_id = "ex-9";
  info.name = "pod-9";
  info.tasks = {"sleep", "exec"};
  info.slots = 16;
  info.version = "1.2.3";
  executor::Assignment held;
  held.lease_id = "L7";
  held.job_id = "J7";
  held.shard = 70;
  held.attempt = 3;
  info.held = {held};
  info.queues = {"slow"};
  const v1::ExecutorMessage msg = executor::HelloMessage(info);
  ASSERT_TRUE(msg.has_hello());
  const ExecutorHello got = HelloFromProto(msg.hello());
  EXPECT_EQ(got.executor_id, "ex-9");
  EXPECT_EQ(got.name, "pod-9");
  EXPECT_THAT(got.tasks, ElementsAre("sleep", "exec"));
  EXPECT_EQ(got.slots, 16);
  EXPECT_EQ(got.version, "1.2.3");
  ASSERT_EQ(got.held.size(), 1u);
  EXPECT_EQ(got.held[0].lease_id, "L7");
  EXPECT_EQ(got.held[0].job_id, "J7");
  EXPECT_EQ(got.held[0].shard, 70);
  EXPECT_EQ(got.held[0].attempt, 3);
  EXPECT_THAT(got.queues, ElementsAre("slow"));
  EXPECT_TRUE(got.identity.empty());  // set by the service from credentials only
}

TEST(ConvertProtocolTest, AHelloWithoutANameIsNamedByItsId) {
  executor::HelloInfo info;
  info.executor_id = "ex-1";
  EXPECT_EQ(HelloFromProto(executor::HelloMessage(info).hello()).name, "ex-1");
}

TEST(ConvertProtocolTest, TheExecutorsOutcomesCarryEveryField) {
  executor::ShardOutcome ok;
  ok.lease_id = "L1";
  ok.job_id = "J1";
  ok.shard = 3;
  ok.result_json = R"({"n":1})";
  ok.run_time = absl::Microseconds(2500);
  const v1::ShardResult result = Parse<v1::ShardResult>(R"pb(lease_id: "L1"
                                                             result_json: "{\"n\":1}"
                                                             job_id: "J1"
                                                             shard: 3
                                                             run_micros: 2500)pb");
  v1::ExecutorMessage one;
  *one.mutable_result() = result;
  EXPECT_TRUE(SameProto(one, executor::OutcomeMessage(ok)));
  v1::ExecutorMessage batch;
  *batch.mutable_result_batch()->add_results() = result;
  *batch.mutable_result_batch()->add_results() = result;
  EXPECT_TRUE(SameProto(batch, executor::ResultBatchMessage({ok, ok})));

  executor::ShardOutcome failed;
  failed.kind = executor::ShardOutcome::Kind::kFailed;
  failed.lease_id = "L2";
  failed.message = "exit 3";
  failed.retryable = true;
  EXPECT_TRUE(SameProto(Parse<v1::ExecutorMessage>(R"pb(failure {
                                                          lease_id: "L2"
                                                          message: "exit 3"
                                                          retryable: true
                                                        })pb"),
                        executor::OutcomeMessage(failed)));
  EXPECT_TRUE(SameProto(
      Parse<v1::ExecutorMessage>(R"pb(progress { lease_id: "L3" done: 4 total: 9 })pb"),
      executor::ProgressMessage("L3", 4, 9)));
  EXPECT_TRUE(
      SameProto(Parse<v1::ExecutorMessage>(R"pb(release { lease_ids: [ "a", "b" ] })pb"),
                executor::ReleaseMessage({"a", "b"})));
  EXPECT_TRUE(executor::HeartbeatMessage().has_heartbeat());
  EXPECT_TRUE(executor::DrainingMessage().has_draining());
}

// JsonToStruct (the end event's and GetResult's result) gives what protobuf's
// own JSON parser gives, on every kind of value.
TEST(ConvertJsonTest, JsonToStructMatchesProtobufsOwnParser) {
  const std::vector<std::string> docs = {
      R"({})",
      R"({"n": 1, "neg": -7, "big": 18446744073709551615, "f": 2.5e-3, "zero": 0})",
      R"({"s": "caf\u00e9 \"quoted\" \\ \n", "empty": "", "t": true, "f": false, "z": null})",
      R"({"list": [1, "two", [3, [4]], {"five": 5}, null, true, []], "obj": {"a": {"b": {}}}})",
      R"({"_metadata": {"attempts": 1, "job_id": "f846049d34b49214", "shards": 1},
          "items": 1, "values": [0.1, 1e300, -1e-300]})",
  };
  for (const std::string& doc : docs) {
    google::protobuf::Struct want;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(doc, &want).ok()) << doc;
    google::protobuf::Struct got;
    JsonToStruct(nlohmann::json::parse(doc), &got);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want))
        << doc << "\ngot:\n"
        << got.DebugString() << "want:\n"
        << want.DebugString();
  }
}

TEST(ConvertJsonTest, JsonToStructLeavesTheStructEmptyForANonObject) {
  google::protobuf::Struct out;
  JsonToStruct(nlohmann::json::parse("[1, 2]"), &out);
  EXPECT_EQ(out.fields_size(), 0);
  google::protobuf::Value v;
  JsonToValue(nlohmann::json::parse("[1, 2]"), &v);
  ASSERT_TRUE(v.has_list_value());
  EXPECT_EQ(v.list_value().values_size(), 2);
  EXPECT_EQ(v.list_value().values(1).number_value(), 2);
}

}  // namespace
}  // namespace tessera::scheduler
