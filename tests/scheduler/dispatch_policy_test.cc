// The dispatch policy on its own, table by table: each row builds the
// entries it needs and says what the policy decides; nothing is dispatched.
#include "scheduler/core/dispatch_policy.h"

#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tessera::scheduler {
namespace {

const absl::Time kNow = absl::UnixEpoch() + absl::Hours(1);

CoreConfig Config() {
  CoreConfig c;
  c.prefetch = 1;
  c.max_prefetch = 256;
  c.prefetch_window = absl::Milliseconds(2);
  c.fold_window = 4;
  return c;
}

// A queued job of `shards` shards of task "t" in queue "default".
std::unique_ptr<CoreJob> Job(const std::string& id, int64_t shards = 10) {
  auto j = std::make_unique<CoreJob>();
  j->record.id = id;
  j->record.spec.task = "t";
  j->record.spec.queue = "default";
  j->shards = JobShards(*RangePartition::Create({0, shards, 1, 0}, 1000), {});
  return j;
}

CoreExecutor Executor(int32_t slots, int held = 0) {
  CoreExecutor e;
  e.hello.slots = slots;
  e.tasks = {"t"};
  e.queues = {"default"};
  for (int i = 0; i < held; ++i) e.leases.insert("lease" + std::to_string(i));
  return e;
}

TEST(DispatchPolicyTest, HasWorkFollowsEveryRuleThatHoldsAJobBack) {
  struct Row {
    std::string name;
    std::function<void(CoreJob&)> setup;
    bool want;
  };
  const std::vector<Row> rows = {
      {"a fresh queued job", [](CoreJob&) {}, true},
      {"a finished job", [](CoreJob& j) { j.record.state = JobState::kSucceeded; },
       false},
      {"a job whose result is being persisted", [](CoreJob& j) { j.persisting = true; },
       false},
      {"a restored job inside its re-attach grace",
       [](CoreJob& j) { j.hold_until = kNow + absl::Seconds(1); }, false},
      {"a restored job past its grace", [](CoreJob& j) { j.hold_until = kNow; }, true},
      {"max_parallel reached",
       [](CoreJob& j) {
         j.record.spec.max_parallel = 1;
         j.shards.Run(j.shards.TakeNext(kNow).shard, "l0");
       },
       false},
      {"below max_parallel",
       [](CoreJob& j) {
         j.record.spec.max_parallel = 2;
         j.shards.Run(j.shards.TakeNext(kNow).shard, "l0");
       },
       true},
      {"a rate limit with its bucket empty",
       [](CoreJob& j) {
         j.record.spec.rate_limit = 1;
         j.tokens = 0;
         j.tokens_at = kNow;
       },
       false},
      {"a rate limit whose bucket refilled",
       [](CoreJob& j) {
         j.record.spec.rate_limit = 1;
         j.tokens = 0;
         j.tokens_at = kNow - absl::Seconds(1);
       },
       true},
      {"every shard handed out",
       [](CoreJob& j) {
         for (int i = 0; i < 10; ++i) j.shards.TakeNext(kNow);
       },
       false},
      {"a full fold window",
       [](CoreJob& j) {
         for (int i = 0; i < 4; ++i) j.shards.TakeNext(kNow);
       },
       false},
      {"a full fold window with a retry due",
       [](CoreJob& j) {
         for (int i = 0; i < 4; ++i) j.shards.TakeNext(kNow);
         j.shards.RetryAt(2, 1, kNow);
       },
       true},
      {"a full fold window with a retry in backoff",
       [](CoreJob& j) {
         for (int i = 0; i < 4; ++i) j.shards.TakeNext(kNow);
         j.shards.RetryAt(2, 1, kNow + absl::Seconds(1));
       },
       false},
  };
  const DispatchPolicy policy(Config());
  for (const Row& row : rows) {
    std::unique_ptr<CoreJob> j = Job("j1");
    row.setup(*j);
    const std::vector<CoreJob*> active = {j.get()};
    EXPECT_EQ(policy.HasWork(*j, active, kNow), row.want) << row.name;
  }
}

TEST(DispatchPolicyTest, AConcurrencyKeyBlocksBehindRunningAndEarlierQueuedJobs) {
  struct Row {
    std::string name;
    JobState first_state;  // the job submitted before
    std::string first_key;
    int32_t limit;
    bool blocked;
  };
  const std::vector<Row> rows = {
      {"an earlier queued job with the key", JobState::kQueued, "k", 1, true},
      {"an earlier running job with the key", JobState::kRunning, "k", 1, true},
      {"room for two", JobState::kRunning, "k", 2, false},
      {"another key", JobState::kRunning, "other", 1, false},
  };
  const DispatchPolicy policy(Config());
  for (const Row& row : rows) {
    std::unique_ptr<CoreJob> first = Job("first");
    first->record.state = row.first_state;
    first->record.spec.concurrency_key = row.first_key;
    std::unique_ptr<CoreJob> second = Job("second");
    second->record.spec.concurrency_key = "k";
    second->record.spec.concurrency_limit = row.limit;
    const std::vector<CoreJob*> active = {first.get(), second.get()};
    const CoreJob* blocker = policy.BlockedBy(*second, active);
    EXPECT_EQ(blocker != nullptr, row.blocked) << row.name;
    if (row.blocked) EXPECT_EQ(blocker, first.get()) << row.name;
    EXPECT_EQ(policy.HasWork(*second, active, kNow), !row.blocked) << row.name;
  }
  // A running job is never held back by a queued one behind it.
  std::unique_ptr<CoreJob> running = Job("running");
  running->record.state = JobState::kRunning;
  running->record.spec.concurrency_key = "k";
  std::unique_ptr<CoreJob> queued = Job("queued");
  queued->record.spec.concurrency_key = "k";
  EXPECT_EQ(policy.BlockedBy(*running, {running.get(), queued.get()}), nullptr);
}

TEST(DispatchPolicyTest, TheRateBucketHoldsATenthOfASecondAndRefillsAtTheRate) {
  struct Row {
    double rate;
    double tokens;
    absl::Duration since;  // absl::InfiniteDuration(): never drawn from
    double want;
  };
  const std::vector<Row> rows = {
      {0, 0, absl::ZeroDuration(), std::numeric_limits<double>::infinity()},
      {5, 0, absl::InfiniteDuration(), 1},     // burst: at least one shard
      {100, 0, absl::InfiniteDuration(), 10},  // burst: a tenth of a second
      {100, 0, absl::Milliseconds(50), 5},
      {100, 2, absl::Seconds(10), 10},  // capped at the burst
      {4, 0.5, absl::Milliseconds(125), 1},
  };
  const DispatchPolicy policy(Config());
  for (const Row& row : rows) {
    std::unique_ptr<CoreJob> j = Job("j1");
    j->record.spec.rate_limit = row.rate;
    j->tokens = row.tokens;
    j->tokens_at =
        row.since == absl::InfiniteDuration() ? absl::InfinitePast() : kNow - row.since;
    EXPECT_DOUBLE_EQ(policy.TokensAt(*j, kNow), row.want)
        << row.rate << "/s, " << row.tokens << " tokens, " << row.since;
  }
}

TEST(DispatchPolicyTest, PrefetchKeepsSlotsBusyForTheWindowWithinItsBounds) {
  struct Row {
    double run_seconds;
    int32_t slots;
    int64_t want;
  };
  const std::vector<Row> rows = {
      {0, 2, 1},         // no run time yet: the configured prefetch
      {100e-6, 2, 40},   // 2 slots x 2 ms / 100 us
      {100e-6, 8, 160},  // more slots, more ahead
      {1e-6, 2, 256},    // capped at max_prefetch
      {10, 2, 1},        // long shards: never below the prefetch
  };
  const DispatchPolicy policy(Config());
  for (const Row& row : rows) {
    EXPECT_EQ(policy.Prefetch(row.run_seconds, row.slots), row.want)
        << row.run_seconds << " s, " << row.slots << " slots";
  }
}

TEST(DispatchPolicyTest, WantsMoreFillsFreeSlotsAndRefillsLongQueuesInBatches) {
  struct Row {
    std::string name;
    int held;
    int64_t prefetch;
    bool refilling;
    DispatchPolicy::Want want;
  };
  // Two slots throughout.
  const std::vector<Row> rows = {
      {"a free slot", 0, 1, false, {true, true}},
      {"full with the minimal prefetch", 3, 1, false, {false, false}},
      {"the minimal prefetch tops up one by one", 2, 1, false, {true, true}},
      {"a long queue not yet half run down", 30, 40, false, {false, false}},
      {"a long queue half run down", 22, 40, false, {true, true}},
      {"a refill goes all the way", 30, 40, true, {true, true}},
      {"a refill stops when full", 42, 40, true, {false, false}},
  };
  const DispatchPolicy policy(Config());
  for (const Row& row : rows) {
    CoreExecutor e = Executor(2, row.held);
    e.refilling = row.refilling;
    const DispatchPolicy::Want got = policy.WantsMore(e, row.prefetch);
    EXPECT_EQ(got.more, row.want.more) << row.name;
    EXPECT_EQ(got.refilling, row.want.refilling) << row.name;
  }
}

TEST(DispatchPolicyTest, NextJobForPicksTheHighestPriorityThenTakesTurns) {
  struct Row {
    std::string name;
    std::vector<int32_t> priorities;  // of jobs j0, j1, ... in submission order
    std::vector<std::string> queues;  // "" = "default"
    size_t cursor;
    std::optional<size_t> want;
  };
  const std::vector<Row> rows = {
      {"one job", {0}, {""}, 0, 0},
      {"equal priorities from the cursor", {0, 0, 0}, {"", "", ""}, 1, 1},
      {"equal priorities wrap around", {0, 0, 0}, {"", "", ""}, 5, 2},
      {"the highest priority wins wherever the cursor is", {0, 5, 0}, {"", "", ""}, 2, 1},
      {"a queue the executor does not serve", {9, 0}, {"gpu", ""}, 0, 1},
      {"nothing it serves", {0}, {"gpu"}, 0, std::nullopt},
  };
  const DispatchPolicy policy(Config());
  const CoreExecutor e = Executor(2);
  for (const Row& row : rows) {
    std::vector<std::unique_ptr<CoreJob>> jobs;
    std::vector<CoreJob*> active;
    for (size_t i = 0; i < row.priorities.size(); ++i) {
      jobs.push_back(Job("j" + std::to_string(i)));
      jobs.back()->record.spec.priority = row.priorities[i];
      if (!row.queues[i].empty()) jobs.back()->record.spec.queue = row.queues[i];
      active.push_back(jobs.back().get());
    }
    std::optional<DispatchPolicy::Pick> pick =
        policy.NextJobFor(e, active, row.cursor, kNow);
    ASSERT_EQ(pick.has_value(), row.want.has_value()) << row.name;
    if (!pick.has_value()) continue;
    EXPECT_EQ(pick->index, *row.want) << row.name;
    EXPECT_EQ(pick->cursor, *row.want + 1) << row.name;
  }
}

TEST(DispatchPolicyTest, NextJobForSkipsJobsOfTasksTheExecutorDoesNotRun) {
  const DispatchPolicy policy(Config());
  std::unique_ptr<CoreJob> other = Job("other");
  other->record.spec.task = "render";
  std::unique_ptr<CoreJob> mine = Job("mine");
  std::optional<DispatchPolicy::Pick> pick =
      policy.NextJobFor(Executor(1), {other.get(), mine.get()}, 0, kNow);
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->index, 1u);
}

TEST(DispatchPolicyTest, ShortestRunSecondsIgnoresJobsWithoutARunTime) {
  std::unique_ptr<CoreJob> a = Job("a");
  std::unique_ptr<CoreJob> b = Job("b");
  std::unique_ptr<CoreJob> c = Job("c");
  EXPECT_EQ(DispatchPolicy::ShortestRunSeconds({a.get(), b.get()}), 0);
  b->run_seconds = 0.5;
  c->run_seconds = 0.25;
  EXPECT_EQ(DispatchPolicy::ShortestRunSeconds({a.get(), b.get(), c.get()}), 0.25);
}

}  // namespace
}  // namespace tessera::scheduler
