// The SchedulerCore test fixture: a core with a fake "now", the actions it
// returns collected into lists the tests inspect, and helpers that play
// executors. Shared by the core's test files.
#ifndef TESSERA_TESTS_SCHEDULER_CORE_FIXTURE_H_
#define TESSERA_TESTS_SCHEDULER_CORE_FIXTURE_H_

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/core/scheduler_core.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {

using json = nlohmann::json;

inline const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

inline JobSpec RangeJob(int64_t end, int64_t shards, const std::string& task = "noop") {
  JobSpec s;
  s.name = "test";
  s.task = task;
  s.range = {0, end, 0, shards};
  s.retry.initial_backoff = absl::ZeroDuration();  // tests that need one set it
  s.retry.max_backoff = absl::ZeroDuration();
  return s;
}

inline ExecutorHello Hello(const std::string& id, int slots,
                           std::vector<std::string> tasks = {"noop", "primes"}) {
  return {id, id + "-name", std::move(tasks), slots, "test"};
}

class SchedulerCoreTest : public ::testing::Test {
 protected:
  SchedulerCoreTest() : core_(Config()) {}

  static CoreConfig Config() {
    CoreConfig c;
    c.prefetch = 1;
    c.reattach_grace = absl::Seconds(5);
    c.heartbeat_interval = absl::Seconds(1);
    c.heartbeat_timeout = absl::Seconds(5);
    c.unknown_task_grace = absl::Seconds(30);
    return c;
  }

  std::string Submit(const JobSpec& spec, const std::string& id = "job1") {
    Actions a;
    auto job = core_.Submit(spec, id, now_, a);
    EXPECT_THAT(job, ::tessera::testing::IsOk());
    Take(a);
    return id;
  }

  ExecutorConn Connect(const ExecutorHello& h) {
    Actions a;
    ExecutorConn c = core_.Connect(h, now_, a);
    Take(a);
    return c;
  }

  // Collects actions into the pending lists the tests inspect.
  void Take(Actions& a) {
    for (auto& x : a.assigns) assigns_.push_back(std::move(x));
    for (auto& x : a.cancels) cancels_.push_back(std::move(x));
    for (auto& x : a.closes) closes_.push_back(std::move(x));
    for (auto& op : a.durable) {
      if (auto* p = std::get_if<PersistAction>(&op)) persists_.push_back(*p);
      if (auto* r = std::get_if<SaveResultOp>(&op)) saved_results_.push_back(*r);
      if (auto* j = std::get_if<SaveJobOp>(&op)) saved_jobs_.push_back(j->record());
      if (auto* k = std::get_if<AckOp>(&op)) acks_.push_back(*k);
      if (auto* f = std::get_if<SaveFailedShardOp>(&op)) saved_failed_.push_back(*f);
      if (auto* r = std::get_if<RetireJobOp>(&op)) retired_.push_back(*r);
    }
  }

  int AssignedTo(const std::string& executor) const {
    return static_cast<int>(std::count_if(
        assigns_.begin(), assigns_.end(),
        [&](const AssignAction& a) { return a.conn.executor_id == executor; }));
  }

  AssignAction PopAssign() {
    EXPECT_FALSE(assigns_.empty());
    AssignAction a = assigns_.front();
    assigns_.erase(assigns_.begin());
    return a;
  }

  // `run_time`: as the executor reports it (zero: not reported).
  void Succeed(const AssignAction& a, const json& result,
               absl::Duration run_time = absl::ZeroDuration()) {
    Actions out;
    core_.Result(a.conn, a.assignment.lease_id, a.assignment.job_id, a.assignment.shard,
                 result.dump(), now_, out, run_time);
    Take(out);
  }

  void Fail(const AssignAction& a, bool retryable, const std::string& msg = "boom") {
    Actions out;
    core_.Failure(a.conn, a.assignment.lease_id, msg, retryable, now_, out);
    Take(out);
  }

  // Runs every assignment to success with {"items": n} until none is left.
  void RunAll() {
    while (!assigns_.empty()) {
      AssignAction a = PopAssign();
      Succeed(a, json{{"items", a.assignment.bounds.end - a.assignment.bounds.start}});
    }
  }

  // Succeeds every assignment given out so far with {"items": 1}, then moves
  // time on by `step`: `conns` heartbeat and the core ticks. Returns how many
  // it succeeded.
  int SucceedAllThenTick(const std::vector<ExecutorConn>& conns, absl::Duration step) {
    std::vector<AssignAction> batch;
    batch.swap(assigns_);
    for (const AssignAction& a : batch) Succeed(a, json{{"items", 1}});
    now_ += step;
    for (const ExecutorConn& c : conns) core_.Heartbeat(c, now_);
    TickAt(now_);
    return static_cast<int>(batch.size());
  }

  // Moves time to `t` and runs the core's tick.
  void TickAt(absl::Time t) {
    now_ = t;
    Actions out;
    core_.Tick(now_, out);
    Take(out);
  }

  JobView Get(const std::string& id) {
    auto j = core_.GetJob(id, now_);
    EXPECT_THAT(j, ::tessera::testing::IsOk());
    return *j;
  }

  absl::Time now_ = kT0;
  SchedulerCore core_;
  std::vector<AssignAction> assigns_;
  std::vector<CancelAction> cancels_;
  std::vector<PersistAction> persists_;
  std::vector<CloseAction> closes_;
  std::vector<SaveResultOp> saved_results_;
  std::vector<JobRecord> saved_jobs_;
  std::vector<AckOp> acks_;
  std::vector<SaveFailedShardOp> saved_failed_;
  std::vector<RetireJobOp> retired_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_TESTS_SCHEDULER_CORE_FIXTURE_H_
