// The store writer against a scripted store: group commit, linger, retry
// keeping the batch, callbacks in order after their records (and off the
// writer's thread when the next batch is due), records refused
// for good, and giving up at the store timeout when stopping.
#include "scheduler/service/durable_writer.h"

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "scheduler/store/memory_store.h"
#include "shared/steady_wait.h"
#include "tests/scheduler/wait_until.h"

namespace tessera::scheduler {
namespace {

// Records each commit as the shards it held; fails or blocks when told to.
class ScriptedStore : public MemoryStore {
 public:
  using Store::Commit;
  absl::Status Commit(const StoreWrite& write, bool durable) override {
    absl::MutexLock lock(&mu_);
    ++attempts_;
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &held_));
    if (fail_next_ > 0 || fail_always_) {
      --fail_next_;
      return absl::UnavailableError("disk I/O error");
    }
    std::vector<std::string> shards;
    for (const JobRecord* j : write.jobs) {
      if (refuse_record_ && refuse_record_(*j)) {
        return RecordError(absl::StatusCode::kInvalidArgument, j->id, "too big");
      }
      shards.push_back(absl::StrCat("job ", j->id, j->finalizing ? " finalizing" : ""));
    }
    for (const SaveResultOp* r : write.results) {
      shards.push_back(absl::StrCat(r->job_id, "/", r->shard));
      if (r->job_id == refused_job_) {
        return RecordError(absl::StatusCode::kInvalidArgument, r->job_id, "too big");
      }
    }
    commits_.push_back(std::move(shards));
    durable_.push_back(durable);
    return absl::OkStatus();
  }
  absl::Status Flush() override {
    absl::MutexLock lock(&mu_);
    commits_.push_back({"flush"});
    return absl::OkStatus();
  }
  void FailNext(int n) {
    absl::MutexLock lock(&mu_);
    fail_next_ = n;
  }
  void FailAlways() {
    absl::MutexLock lock(&mu_);
    fail_always_ = true;
  }
  void Hold(bool held) {
    absl::MutexLock lock(&mu_);
    held_ = held;
  }
  void RefuseJob(const std::string& job_id) {
    absl::MutexLock lock(&mu_);
    refused_job_ = job_id;
  }
  // Job records for which `refuse` is true are refused for good.
  void RefuseRecords(std::function<bool(const JobRecord&)> refuse) {
    absl::MutexLock lock(&mu_);
    refuse_record_ = std::move(refuse);
  }
  std::vector<std::vector<std::string>> commits() {
    absl::MutexLock lock(&mu_);
    return commits_;
  }
  int attempts() {
    absl::MutexLock lock(&mu_);
    return attempts_;
  }

 private:
  absl::Mutex mu_;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  bool fail_always_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  std::string refused_job_ ABSL_GUARDED_BY(mu_);
  std::function<bool(const JobRecord&)> refuse_record_ ABSL_GUARDED_BY(mu_);
  int attempts_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::vector<std::string>> commits_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> durable_ ABSL_GUARDED_BY(mu_);
};

// What the callbacks saw, in order.
class Events {
 public:
  DurableWriter::Callback Record(std::string name) {
    return [this, name](const DurableWriter::Outcome& o) {
      absl::MutexLock lock(&mu_);
      events_.push_back(o.abandoned     ? name + " abandoned"
                        : o.status.ok() ? name
                                        : name + " refused");
      cv_.SignalAll();
    };
  }
  void Add(std::string event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
    cv_.SignalAll();
  }
  // Waits (a few seconds at most) for `n` events.
  std::vector<std::string> Wait(size_t n) {
    absl::MutexLock lock(&mu_);
    AwaitFor(
        &mu_, cv_,
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= n; },
        absl::Seconds(5));
    return events_;
  }

 private:
  absl::Mutex mu_;
  SteadyCondVar cv_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

DurableWriter::Entry Result(const std::string& job_id, int64_t shard) {
  return SaveResultOp{job_id, shard, "{}"};
}

class DurableWriterTest : public ::testing::Test {
 protected:
  DurableWriter::Hooks Hooks() {
    DurableWriter::Hooks hooks;
    hooks.refused = [this](const std::string& job_id, const absl::Status&) {
      events_.Add("refused " + job_id);
    };
    hooks.committed = [this](DurableWriter::Batch& batch,
                             const DurableWriter::Refusals&) {
      events_.Add(absl::StrCat("committed ", batch.size()));
    };
    return hooks;
  }

  // With a long linger, `add_a` queues a/0, which must wait until b/0,
  // urgent, joins it: both then go in one commit.
  void ExpectAWaitUntilSomethingUrgentJoins(
      const std::function<void(DurableWriter&)>& add_a) {
    DurableWriter writer(&clock_, &store_, &faults_, nullptr, Hooks());
    writer.SetLinger(absl::Seconds(30));
    writer.Start();
    add_a(writer);
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_TRUE(store_.commits().empty()) << "did not wait";
    writer.Add(Result("b", 0), /*urgent=*/true);
    ASSERT_TRUE(WaitUntil([&] { return store_.commits().size() == 1; }));
    const std::vector<std::string> both = {"a/0", "b/0"};
    EXPECT_EQ(store_.commits()[0], both);
    writer.Stop();
    writer.Join();
  }

  RealClock clock_;
  ScriptedStore store_;
  FaultState faults_{absl::Seconds(5)};
  Events events_;
};

TEST_F(DurableWriterTest, CommitsWhatQueuedWhileACommitRanAsOneBatch) {
  DurableWriter writer(&clock_, &store_, &faults_, nullptr, Hooks());
  writer.Start();
  store_.Hold(true);
  writer.Add(Result("a", 0), /*urgent=*/true);
  ASSERT_TRUE(WaitUntil([&] { return store_.attempts() == 1; }));
  writer.Add(Result("b", 0), true);
  writer.Add(Result("b", 1), true);
  writer.Add(DurableWriter::AfterCommit{"b", events_.Record("b")}, true);
  store_.Hold(false);
  EXPECT_EQ(events_.Wait(3).back(), "committed 3");
  const std::vector<std::vector<std::string>> expected = {{"a/0"}, {"b/0", "b/1"}};
  EXPECT_EQ(store_.commits(), expected);
  writer.Stop();
  writer.Join();
}

TEST_F(DurableWriterTest, TheNextDueBatchCommitsWhileTheCallbacksBeforeItRunInOrder) {
  DurableWriter writer(&clock_, &store_, &faults_, nullptr, Hooks());
  writer.Start();
  store_.Hold(true);
  // A's callback waits (5 s at most) for B's commit: B must not wait for it.
  writer.Add({Result("a", 0),
              DurableWriter::AfterCommit{
                  "a",
                  [&](const DurableWriter::Outcome&) {
                    const bool b_first =
                        WaitUntil([&] { return store_.commits().size() == 2; });
                    events_.Add(b_first ? "a after b's commit" : "a before b's commit");
                  }}},
             /*urgent=*/true);
  ASSERT_TRUE(WaitUntil([&] { return store_.attempts() == 1; }));
  writer.Add({Result("b", 0), DurableWriter::AfterCommit{"b", events_.Record("b")}},
             /*urgent=*/true);
  store_.Hold(false);
  const std::vector<std::string> expected = {"a after b's commit", "committed 2", "b",
                                             "committed 2"};
  EXPECT_EQ(events_.Wait(4), expected);
  writer.Stop();
  writer.Join();
}

TEST_F(DurableWriterTest, ALingeringBatchWaitsUntilSomethingUrgentJoinsIt) {
  ExpectAWaitUntilSomethingUrgentJoins(
      [](DurableWriter& w) { w.Add(Result("a", 0), /*urgent=*/false); });
}

TEST_F(DurableWriterTest, AnUrgentEntryThatMayWaitCommitsWithTheNextUrgentOne) {
  ExpectAWaitUntilSomethingUrgentJoins([](DurableWriter& w) {
    w.Add({Result("a", 0)}, /*urgent=*/true, /*durable=*/false,
          /*may_wait=*/absl::Seconds(20));
  });
}

TEST_F(DurableWriterTest, AnUrgentEntryThatMayWaitCommitsAloneWhenItsWaitIsOver) {
  DurableWriter writer(&clock_, &store_, &faults_, nullptr, Hooks());
  writer.SetLinger(absl::Seconds(30));
  writer.Start();
  // A lingering entry first: the shorter wait that joins it still counts.
  writer.Add(Result("a", 0), /*urgent=*/false);
  absl::SleepFor(absl::Milliseconds(50));
  const absl::Time added = absl::Now();
  writer.Add({Result("b", 0), DurableWriter::AfterCommit{"b", events_.Record("b")}},
             /*urgent=*/true, /*durable=*/false, /*may_wait=*/absl::Milliseconds(300));
  const std::vector<std::string> events = events_.Wait(1);
  ASSERT_FALSE(events.empty()) << "not committed";
  EXPECT_EQ(events.front(), "b");
  const absl::Duration waited = absl::Now() - added;
  EXPECT_GE(waited, absl::Milliseconds(250));
  EXPECT_LT(waited, absl::Seconds(5)) << "waited for the linger";
  const std::vector<std::vector<std::string>> expected = {{"a/0", "b/0"}};
  EXPECT_EQ(store_.commits(), expected);
  writer.Stop();
  writer.Join();
}

TEST_F(DurableWriterTest, AFailedCommitIsRetriedWithTheSameBatchAndCallbacksWaitForIt) {
  DurableWriter writer(&clock_, &store_, &faults_, nullptr, Hooks());
  store_.FailNext(2);
  writer.Start();
  writer.Add({Result("a", 0), DurableWriter::AfterCommit{"a", events_.Record("first")},
              Result("a", 1), DurableWriter::AfterCommit{"a", events_.Record("second")}},
             /*urgent=*/true);
  const std::vector<std::string> expected = {"first", "second", "committed 4"};
  EXPECT_EQ(events_.Wait(3), expected);
  EXPECT_EQ(store_.attempts(), 3);
  const std::vector<std::vector<std::string>> commits = {{"a/0", "a/1"}};
  EXPECT_EQ(store_.commits(), commits);
  EXPECT_TRUE(faults_.StoreError().ok());
  writer.Stop();
  writer.Join();
}

TEST_F(DurableWriterTest, ARefusedJobIsLeftOutReportedAndItsCallbacksAreTold) {
  DurableWriter writer(&clock_, &store_, &faults_, nullptr, Hooks());
  store_.RefuseJob("bad");
  writer.Start();
  writer.Add({Result("bad", 0), Result("good", 0),
              DurableWriter::AfterCommit{"bad", events_.Record("bad")},
              DurableWriter::AfterCommit{"good", events_.Record("good")}},
             /*urgent=*/true);
  const std::vector<std::string> expected = {"refused bad", "bad refused", "good",
                                             "committed 4"};
  EXPECT_EQ(events_.Wait(4), expected);
  const std::vector<std::vector<std::string>> commits = {{"good/0"}};
  EXPECT_EQ(store_.commits(), commits);
  writer.Stop();
  writer.Join();
}

TEST_F(DurableWriterTest, AJobsRefusedEndLeavesItsSubmitInTheSameBatchCommitted) {
  // A submit and its job's end in one batch (a job that ended while its
  // submit waited): the end's record can never be stored, the submission's
  // can, and stands.
  store_.RefuseRecords([](const JobRecord& r) { return r.finalizing; });
  DurableWriter writer(&clock_, &store_, &faults_, nullptr, Hooks());
  writer.Start();
  store_.Hold(true);
  writer.Add(Result("a", 0), /*urgent=*/true);
  ASSERT_TRUE(WaitUntil([&] { return store_.attempts() == 1; }));
  JobRecord submitted;
  submitted.id = "x";
  JobRecord ending = submitted;
  ending.finalizing = true;
  std::string reply, publish;
  writer.Add({SaveJobOp(submitted),
              DurableWriter::AfterCommit{"x",
                                         [&](const DurableWriter::Outcome& o) {
                                           reply = o.whole ? "refused" : "answered";
                                         }},
              SaveJobOp(ending), Result("x", 0),
              DurableWriter::AfterCommit{"x",
                                         [&](const DurableWriter::Outcome& o) {
                                           publish = o.status.ok() ? "publish" : "not";
                                         }}},
             /*urgent=*/true);
  store_.Hold(false);
  const std::vector<std::string> events = events_.Wait(3);
  const std::vector<std::string> expected = {"committed 1", "refused x", "committed 5"};
  EXPECT_EQ(events, expected);
  const std::vector<std::vector<std::string>> commits = {{"a/0"}, {"job x"}};
  EXPECT_EQ(store_.commits(), commits);
  EXPECT_EQ(reply, "answered");
  EXPECT_EQ(publish, "not");
  writer.Stop();
  writer.Join();
}

TEST_F(DurableWriterTest, StopWaitsForHoldsAndCommitsWhatTheyQueue) {
  DurableWriter writer(&clock_, &store_, &faults_, nullptr, Hooks());
  writer.Start();
  ASSERT_TRUE(writer.Hold());
  writer.Stop();
  std::thread join([&] { writer.Join(); });
  absl::SleepFor(absl::Milliseconds(100));
  writer.Add(Result("late", 0), /*urgent=*/true);
  writer.Release();
  join.join();
  const std::vector<std::vector<std::string>> commits = {{"late/0"}};
  EXPECT_EQ(store_.commits(), commits);
  EXPECT_FALSE(writer.Hold()) << "a stopped writer takes no holds";
  writer.Add(DurableWriter::AfterCommit{"", events_.Record("after stop")}, true);
  EXPECT_EQ(events_.Wait(1).back(), "after stop abandoned");
}

TEST_F(DurableWriterTest, StopGivesUpOnAFailingStoreOnceTheStoreTimeoutHasPassed) {
  FakeClock clock;
  DurableWriter writer(&clock, &store_, &faults_, nullptr, Hooks());
  writer.SetStoreTimeout(absl::Seconds(5));
  store_.FailAlways();
  writer.Start();
  writer.Add({Result("a", 0), DurableWriter::AfterCommit{"a", events_.Record("a")}},
             /*urgent=*/true);
  ASSERT_TRUE(WaitUntil([&] { return store_.attempts() >= 1; }));
  writer.BeginShutdown();
  writer.Stop();
  std::atomic<bool> joined = false;
  std::thread join([&] {
    writer.Join();
    joined = true;
  });
  // On the injected clock: it keeps retrying until the timeout has passed.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(joined);
  clock.Advance(absl::Seconds(5));
  join.join();
  EXPECT_EQ(events_.Wait(1), std::vector<std::string>{"a abandoned"});
  EXPECT_TRUE(store_.commits().empty());
}

}  // namespace
}  // namespace tessera::scheduler
