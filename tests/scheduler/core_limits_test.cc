// Hostile or oversized JSON against the core: refused before anything copies,
// folds or dumps it; the attempt fails (not retried) or the spec is refused,
// with a message naming the limit; stored rows that cannot be read fail their
// job instead of the start.
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/scheduler_core.h"
#include "shared/json_limits.h"
#include "tests/scheduler/core_fixture.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Nested(int depth) {
  return "{\"items\":" + std::string(depth, '[') + std::string(depth, ']') + "}";
}

TEST(JsonTextDepthTest, CountsNestingOutsideStringsOnly) {
  EXPECT_EQ(JsonTextDepth("1", 64), 0);
  EXPECT_EQ(JsonTextDepth("{\"a\":[1,{\"b\":2}]}", 64), 3);
  EXPECT_EQ(JsonTextDepth("{\"a\":\"[[[[{{{\"}", 64), 1);
  EXPECT_EQ(JsonTextDepth("{\"a\\\"[[[\":1}", 64), 1);  // an escaped quote
  EXPECT_EQ(JsonTextDepth("[[]][[[]]]", 64), 3);
  // Stops once past the limit: a huge document costs only the prefix.
  EXPECT_EQ(JsonTextDepth(std::string(1'000'000, '['), 64), 65);
}

TEST(JsonValueDepthTest, MeasuresAParsedValueWithoutRecursion) {
  EXPECT_EQ(JsonValueDepth(json(1), 64), 0);
  EXPECT_EQ(JsonValueDepth(json::parse("{\"a\":[1,{\"b\":[]}]}"), 64), 4);
  json deep = json::array();
  for (int i = 0; i < 200; ++i) deep = json::array({deep});
  EXPECT_EQ(JsonValueDepth(deep, 64), 65);
}

TEST_F(SchedulerCoreTest, AResultNestedTooDeepFailsItsAttemptWithoutARetry) {
  JobSpec spec = RangeJob(10, 1);
  spec.retry.max_attempts = 3;
  Submit(spec);
  Connect(Hello("e1", 1));
  AssignAction a = PopAssign();
  Actions out;
  core_.Result(a.conn, a.assignment.lease_id, "job1", 0, Nested(100'000), now_, out);
  Take(out);
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kFailed);
  ASSERT_FALSE(v.errors.empty());
  EXPECT_NE(v.errors[0].message.find("result nests deeper than 64 levels"),
            std::string::npos)
      << v.errors[0].message;
  EXPECT_TRUE(saved_results_.empty());  // nothing of it reaches the store
  EXPECT_EQ(acks_.size(), 1u);          // the executor may forget it
  EXPECT_TRUE(assigns_.empty());        // not retried
}

TEST_F(SchedulerCoreTest, AResultOverTheSizeLimitFailsItsAttempt) {
  CoreConfig c = Config();
  c.max_result_bytes = 100;
  SchedulerCore core(c);
  Actions out;
  ASSERT_THAT(core.Submit(RangeJob(10, 1), "job1", now_, out), IsOk());
  ExecutorConn e = core.Connect(Hello("e1", 1), now_, out);
  ASSERT_EQ(out.assigns.size(), 1u);
  const Assignment a = out.assigns[0].assignment;
  Actions result;
  core.Result(e, a.lease_id, "job1", 0, json{{"pad", std::string(200, 'x')}}.dump(), now_,
              result);
  auto v = core.GetJob("job1", now_);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->state, JobState::kFailed);
  ASSERT_FALSE(v->errors.empty());
  EXPECT_NE(v->errors[0].message.find("the limit is 100 (--max-result-bytes)"),
            std::string::npos)
      << v->errors[0].message;
}

TEST_F(SchedulerCoreTest, AFoldedResultOverItsLimitFailsTheJobAndPersistsNothing) {
  CoreConfig c = Config();
  c.max_folded_result_bytes = 300;
  SchedulerCore core(c);
  Actions out;
  JobSpec spec = RangeJob(4, 4);
  spec.aggregate.default_reducer = Reducer::kConcat;
  ASSERT_THAT(core.Submit(spec, "job1", now_, out), IsOk());
  ExecutorConn e = core.Connect(Hello("e1", 4), now_, out);
  ASSERT_EQ(out.assigns.size(), 4u);
  std::vector<AssignAction> assigns = out.assigns;
  Actions results;
  for (const AssignAction& a : assigns) {
    core.Result(e, a.assignment.lease_id, "job1", a.assignment.shard,
                json{{"text", std::string(100, 'x')}}.dump(), now_, results);
  }
  auto v = core.GetJob("job1", now_);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->state, JobState::kFailed);
  EXPECT_NE(v->message.find("the limit is 300 (--max-folded-result-bytes)"),
            std::string::npos)
      << v->message;
  for (const DurableOp& op : results.durable) {
    EXPECT_FALSE(std::holds_alternative<PersistAction>(op));
  }
}

TEST_F(SchedulerCoreTest, ParamsOverTheDepthOrSizeLimitAreRefusedNamingTheField) {
  JobSpec deep = RangeJob(10, 1);
  json p = json::object();
  for (int i = 0; i < 70; ++i) p = json{{"a", p}};
  deep.params = p;
  Actions a;
  auto r = core_.Submit(deep, "j1", now_, a);
  EXPECT_THAT(
      r,
      StatusIs(absl::StatusCode::kInvalidArgument,
               "spec.params nests deeper than 64 levels (the limit, --max-json-depth)"));
  JobSpec big = RangeJob(10, 1);
  big.params = json{{"blob", std::string(70 << 10, 'x')}};
  r = core_.Submit(big, "j2", now_, a);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("the limit is 65536 (--max-params-bytes)")));
  EXPECT_TRUE(a.durable.empty());
  EXPECT_THAT(core_.GetJob("j1", now_), Not(IsOk()));
}

TEST_F(SchedulerCoreTest, AnItemNestedTooDeepIsRefusedNamingIt) {
  JobSpec spec;
  spec.task = "noop";
  spec.has_items = true;
  spec.batch_size = 1;
  json deep = json::array();
  for (int i = 0; i < 80; ++i) deep = json::array({deep});
  spec.items = ItemList({json(1), deep});
  Actions a;
  auto r = core_.Submit(spec, "j1", now_, a);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("spec.items.items[1] nests deeper than 64")));
}

TEST_F(SchedulerCoreTest, AStoredResultThatCannotBeReadFailsItsJobAtRestart) {
  Submit(RangeJob(20, 2));
  ASSERT_FALSE(saved_jobs_.empty());
  std::map<std::string, std::vector<StoredResult>> results;
  results["job1"].push_back({0, Nested(100'000)});
  SchedulerCore restarted(Config());
  Actions out;
  restarted.Restore({saved_jobs_.back()}, results, now_, out);
  auto v = restarted.GetJob("job1", now_);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->state, JobState::kFailed);
  EXPECT_NE(v->message.find("the stored result of shard 0 cannot be read back"),
            std::string::npos)
      << v->message;
  // Its end is saved, so the next start does not meet the row again as live work.
  bool saved_failed = false;
  for (const DurableOp& op : out.durable) {
    if (const auto* s = std::get_if<SaveJobOp>(&op)) {
      saved_failed = saved_failed || s->record().state == JobState::kFailed;
    }
  }
  EXPECT_TRUE(saved_failed);
}

TEST_F(SchedulerCoreTest,
       RetryFailedShardsRefusesAndChangesNothingWhenAStoredResultIsBad) {
  JobSpec spec = RangeJob(20, 2);
  spec.max_failed_shards = 1;  // continue: ends PARTIAL
  Submit(spec);
  Connect(Hello("e1", 2));
  ASSERT_EQ(assigns_.size(), 2u);
  std::vector<AssignAction> all = assigns_;
  assigns_.clear();
  Succeed(all[0], json{{"items", 10}});
  Fail(all[1], /*retryable=*/false);
  ASSERT_EQ(persists_.size(), 1u);
  Actions persisted;
  core_.Persisted("job1", "/results/job1.json", "sha", now_, persisted);
  ASSERT_EQ(Get("job1").state, JobState::kPartial);
  Actions out;
  auto r = core_.RetryFailedShards("job1", {{0, Nested(100'000)}}, now_, out);
  EXPECT_THAT(
      r, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("shard 0 cannot be read back")));
  EXPECT_TRUE(out.durable.empty());
  JobView v = Get("job1");
  EXPECT_EQ(v.state, JobState::kPartial);
  EXPECT_EQ(v.shards.failed, 1);
}

TEST_F(SchedulerCoreTest, DispatchPausesWhileResultsWaitBehindASlowShardAndSaysWhy) {
  CoreConfig c = Config();
  c.fold_window = 3;
  SchedulerCore core(c);
  Actions out;
  ASSERT_THAT(core.Submit(RangeJob(10, 10), "job1", now_, out), IsOk());
  ExecutorConn e = core.Connect(Hello("e1", 10), now_, out);
  ASSERT_EQ(out.assigns.size(), 3u);  // shards 0, 1, 2: the window
  std::map<int64_t, Assignment> by_shard;
  for (const AssignAction& a : out.assigns) by_shard[a.assignment.shard] = a.assignment;
  auto finish = [&](int64_t shard, Actions& o) {
    core.Result(e, by_shard.at(shard).lease_id, "job1", shard, json{{"items", 1}}.dump(),
                now_, o);
  };
  Actions fast;
  finish(1, fast);
  finish(2, fast);
  EXPECT_TRUE(fast.assigns.empty());  // shard 0 is slow: nothing more goes out
  auto v = core.GetJob("job1", now_);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->message,
            "dispatch paused: 2 results wait to be folded in order behind shard 0 (at "
            "most 3 shards ahead, --fold-window)");
  Actions slow;
  finish(0, slow);
  ASSERT_EQ(slow.assigns.size(), 3u);  // folded up to 3: shards 3, 4, 5
  EXPECT_EQ(slow.assigns[0].assignment.shard, 3);
  v = core.GetJob("job1", now_);
  EXPECT_EQ(v->message, "");
}

TEST_F(SchedulerCoreTest, ARetryOfTheShardThatHoldsTheFoldBackIsStillDispatched) {
  CoreConfig c = Config();
  c.fold_window = 2;
  SchedulerCore core(c);
  Actions out;
  JobSpec spec = RangeJob(4, 4);
  spec.retry.max_attempts = 3;
  ASSERT_THAT(core.Submit(spec, "job1", now_, out), IsOk());
  ExecutorConn e = core.Connect(Hello("e1", 4), now_, out);
  ASSERT_EQ(out.assigns.size(), 2u);
  std::vector<AssignAction> first = out.assigns;
  Actions a;
  core.Result(e, first[1].assignment.lease_id, "job1", 1, json{{"items", 1}}.dump(), now_,
              a);
  core.Failure(e, first[0].assignment.lease_id, "flaky", /*retryable=*/true, now_, a);
  ASSERT_EQ(a.assigns.size(), 1u);  // shard 0 again, though the window is full
  EXPECT_EQ(a.assigns[0].assignment.shard, 0);
  EXPECT_EQ(a.assigns[0].assignment.attempt, 2);
}

TEST_F(SchedulerCoreTest, AResultWithAMadeUpLeaseIdIsRefusedEvenForAnUnleasedShard) {
  Submit(RangeJob(30, 3));
  ExecutorConn e1 = Connect(Hello("e1", 1));  // holds shards 0 and 1; shard 2 waits
  ASSERT_EQ(assigns_.size(), 2u);
  ExecutorConn e2 = Connect(Hello("e2", 1, {}));  // runs no task of this job
  Actions out;
  core_.Result(e2, "forged", "job1", 2, json{{"items", 1000000}}.dump(), now_, out);
  Take(out);
  EXPECT_EQ(core_.counters().results_rejected_unknown_lease, 1);
  ASSERT_EQ(out.rejected.size(), 1u);
  EXPECT_EQ(out.rejected[0].reason, "unknown_lease");
  EXPECT_EQ(Get("job1").shards.succeeded, 0);
  EXPECT_TRUE(saved_results_.empty());
  (void)e1;
}

TEST_F(SchedulerCoreTest, AHelloClaimingAShardThatWasNeverLeasedGetsItRefused) {
  Submit(RangeJob(20, 2));
  ExecutorHello h = Hello("e1", 0);
  h.held.push_back({"made-up", "job1", 0, 1});
  Connect(h);
  EXPECT_EQ(core_.counters().results_rejected_unknown_lease, 1);
  ASSERT_EQ(cancels_.size(), 1u);
  EXPECT_EQ(cancels_[0].lease_id, "made-up");
  for (const AssignAction& a : assigns_) EXPECT_NE(a.assignment.lease_id, "made-up");
}

}  // namespace
}  // namespace tessera::scheduler
