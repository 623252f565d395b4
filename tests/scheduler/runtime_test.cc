// The runtime (lock, store writer, persist workers) with a recording store and
// sink, and a hand-driven executor stream: no gRPC server, no disk.
#include "scheduler/service/runtime.h"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "scheduler/sink/result_sink.h"
#include "scheduler/store/memory_store.h"
#include "shared/sha256.h"
#include "tests/scheduler/runtime_fixture.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

// What the store and the sink were asked to do, in order.
class Journal {
 public:
  void Add(std::string event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  // Index of the first event equal to `event`, or -1.
  int Find(const std::string& event) const {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < events_.size(); ++i) {
      if (events_[i] == event) return static_cast<int>(i);
    }
    return -1;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

class RecordingStore : public MemoryStore {
 public:
  explicit RecordingStore(Journal* journal) : journal_(journal) {}
  using Store::Commit;
  absl::Status Commit(const StoreWrite& write, bool durable) override {
    if (!write.results.empty()) {
      journal_->Add(absl::StrCat("commit results ", write.results.size()));
    }
    for (const JobRecord* j : write.jobs) {
      journal_->Add("commit job " + j->id);
      if (!j->location.empty()) journal_->Add("commit done " + j->id);
      if (j->finalizing) journal_->Add("commit finalizing " + j->id);
      if (j->state == JobState::kFailed) journal_->Add("commit failed " + j->id);
    }
    return MemoryStore::Commit(write, durable);
  }

 private:
  Journal* journal_;
};

// Keeps results in memory; Sync says which publishes it covered.
class RecordingSink : public ResultSink {
 public:
  explicit RecordingSink(Journal* journal) : journal_(journal) {}
  absl::StatusOr<StagedResult> Stage(const std::string& job_id, int32_t version,
                                     const std::string& bytes) override {
    absl::MutexLock lock(&mu_);
    const std::string location = absl::StrCat("mem:", job_id, ".v", version);
    staged_[location] = bytes;
    return StagedResult{{location, Sha256Hex(bytes)}, location};
  }
  absl::StatusOr<PersistedResult> Publish(const StagedResult& staged) override {
    absl::MutexLock lock(&mu_);
    if (hold_) {
      // Like a sink retrying a store that is down: only Cancel ends it.
      journal_->Add("publish held " + staged.result.location);
      mu_.Await(absl::Condition(&cancelled_));
      return absl::UnavailableError("cancelled while the store was down");
    }
    published_[staged.result.location] = staged_[staged.staged_at];
    ++writes_;
    unsynced_ = true;
    journal_->Add("publish " + staged.result.location);
    return staged.result;
  }
  absl::Status Sync() override {
    absl::MutexLock lock(&mu_);
    if (failures_left_ > 0) {
      --failures_left_;
      journal_->Add("sync failed");
      return absl::UnavailableError("results directory: input/output error");
    }
    if (unsynced_) journal_->Add("sync");
    unsynced_ = false;
    return absl::OkStatus();
  }
  void Cancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  // Publish waits until Cancel, then gives up with UNAVAILABLE.
  void HoldPublishes() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  // The next `n` syncs fail.
  void FailSyncs(int n) {
    absl::MutexLock lock(&mu_);
    failures_left_ = n;
  }
  absl::StatusOr<std::string> Read(const std::string& location) override {
    absl::MutexLock lock(&mu_);
    auto it = published_.find(location);
    if (it == published_.end()) return absl::NotFoundError(location);
    return it->second;
  }
  absl::StatusOr<int64_t> Size(const std::string& location) override {
    absl::StatusOr<std::string> bytes = Read(location);
    if (!bytes.ok()) return bytes.status();
    return static_cast<int64_t>(bytes->size());
  }
  absl::Status Delete(const std::string& location) override {
    absl::MutexLock lock(&mu_);
    published_.erase(location);
    return absl::OkStatus();
  }
  int64_t writes() const override {
    absl::MutexLock lock(&mu_);
    return writes_;
  }

 private:
  Journal* journal_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> staged_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> published_ ABSL_GUARDED_BY(mu_);
  int64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
  bool unsynced_ ABSL_GUARDED_BY(mu_) = false;
  int failures_left_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// Reports `a` done with a noop result.
void SendResult(Runtime& runtime, const ExecutorConn& conn, const Assignment& a) {
  runtime.Results(conn, {{a.lease_id, a.job_id, a.shard, R"({"items":1})"}});
}

// Finishes `runtime`'s single-shard noop job `id` on `conn` and waits for it
// to succeed.
absl::StatusOr<JobView> RunToEnd(Runtime& runtime, const ExecutorConn& conn,
                                 RecordingStream& stream, size_t nth) {
  const std::vector<Assignment> got = stream.WaitAssigned(nth);
  if (got.size() < nth) return absl::DeadlineExceededError("no assignment");
  const Assignment& a = got[nth - 1];
  SendResult(runtime, conn, a);
  for (int i = 0; i < 500; ++i) {
    absl::StatusOr<JobView> job = runtime.GetJob(a.job_id);
    if (!job.ok() || job->state == JobState::kSucceeded) return job;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError("job did not succeed");
}

// A runtime over a recording store and sink, with one connected executor.
class RuntimeTest : public ::testing::Test {
 protected:
  // How long results wait to share a commit (Runtime::SetCommitLinger).
  virtual absl::Duration Linger() const { return absl::ZeroDuration(); }

  void SetUp() override {
    ASSERT_THAT(runtime_.Recover(), IsOk());
    runtime_.SetCommitLinger(Linger());
    runtime_.Start();
    ExecutorHello hello;
    hello.executor_id = "e1";
    hello.name = "e1";
    hello.tasks = {"noop"};
    hello.slots = 1;
    conn_ = *runtime_.Connect(hello, &stream_);
  }
  void TearDown() override {
    runtime_.Disconnect(conn_);
    runtime_.Stop();
  }

  // Submits a noop job of `shards` shards of one item; returns its id.
  std::string SubmitJob(int64_t shards) {
    JobSpec spec;
    spec.task = "noop";
    spec.range = {0, shards, 0, shards};
    absl::StatusOr<JobView> job = SubmitAndWait(runtime_, spec);
    EXPECT_THAT(job, IsOk());
    return job.ok() ? job->id : "";
  }

  // Submits a single-shard noop job, runs it as the `nth` assignment and
  // returns its id once it has succeeded (or "" with a test failure).
  std::string RunJob(size_t nth) {
    const std::string id = SubmitJob(1);
    if (id.empty()) return "";
    absl::StatusOr<JobView> done = RunToEnd(runtime_, conn_, stream_, nth);
    EXPECT_THAT(done, IsOk());
    if (!done.ok()) return "";
    EXPECT_EQ(done->result_location, absl::StrCat("mem:", id, ".v1"));
    return id;
  }

  // Waits (a few seconds at most) until `event` is in the journal.
  int WaitFor(const std::string& event) {
    for (int i = 0; i < 500; ++i) {
      if (const int at = journal_.Find(event); at >= 0) return at;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return -1;
  }

  // For job `id`: finalizing committed, then published, then a successful
  // sync, then the commit that records it done.
  void ExpectSyncedBeforeDone(const std::string& id) {
    const int done = WaitFor("commit done " + id);  // the last of the four
    const int finalizing = journal_.Find("commit finalizing " + id);
    const int published = journal_.Find(absl::StrCat("publish mem:", id, ".v1"));
    ASSERT_GE(finalizing, 0) << id;
    ASSERT_GT(published, finalizing) << id;
    ASSERT_GT(done, published) << id;
    bool synced = false;
    const std::vector<std::string> events = journal_.events();
    for (int i = published + 1; i < done; ++i) synced = synced || events[i] == "sync";
    EXPECT_TRUE(synced) << id << ": its end was committed before a sync";
  }

  Journal journal_;
  RecordingStore store_{&journal_};
  RecordingSink sink_{&journal_};
  RealClock clock_;
  Runtime runtime_{CoreConfig{}, &clock_, &store_, &sink_};
  RecordingStream stream_;
  ExecutorConn conn_;
};

TEST_F(RuntimeTest, CommitsAJobsEndOnlyAfterTheSinkHasSyncedItsResult) {
  std::vector<std::string> ids;
  for (size_t n = 1; n <= 3; ++n) ids.push_back(RunJob(n));
  // The end itself may reach watchers before the sync; its record may not.
  for (const std::string& id : ids) ExpectSyncedBeforeDone(id);
  EXPECT_EQ(sink_.writes(), 3);
}

TEST_F(RuntimeTest, AFailedSyncHoldsTheJobsEndBackUntilASyncSucceeds) {
  sink_.FailSyncs(1);
  const std::string id = RunJob(1);
  ASSERT_FALSE(id.empty());
  ExpectSyncedBeforeDone(id);
  const int failed = journal_.Find("sync failed");
  ASSERT_GE(failed, 0);
  EXPECT_LT(failed, journal_.Find("commit done " + id));
  EXPECT_EQ(sink_.writes(), 1);
}

TEST_F(RuntimeTest, ASinkGivingUpAtShutdownLeavesTheJobFinalizingForTheNextStart) {
  sink_.HoldPublishes();
  const std::string id = SubmitJob(1);
  const std::vector<Assignment> got = stream_.WaitAssigned(1);
  ASSERT_EQ(got.size(), 1u);
  SendResult(runtime_, conn_, got[0]);
  ASSERT_GE(WaitFor(absl::StrCat("publish held mem:", id, ".v1")), 0);
  const absl::Time t0 = absl::Now();
  runtime_.Stop();  // cancels the sink: the held publish gives up
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  // Neither done nor failed: the store still holds the "finalizing" record
  // (and its bytes), from which a restart writes the result.
  EXPECT_GE(journal_.Find("commit finalizing " + id), 0);
  EXPECT_LT(journal_.Find("commit done " + id), 0);
  EXPECT_LT(journal_.Find("commit failed " + id), 0);
  absl::StatusOr<JobView> job = runtime_.GetJob(id);
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state, JobState::kRunning);
  EXPECT_EQ(sink_.writes(), 0);
}

TEST_F(RuntimeTest, GetResultGivesTheSizeAndNoContentAboveTheCallersLimit) {
  const std::string id = RunJob(1);
  ASSERT_FALSE(id.empty());
  absl::StatusOr<ResultBytes> small = runtime_.GetResult(id, 16);
  ASSERT_THAT(small, IsOk());
  EXPECT_TRUE(small->omitted);
  EXPECT_TRUE(small->bytes.empty());
  EXPECT_GT(small->size, 16);
  EXPECT_EQ(small->job.result_location, absl::StrCat("mem:", id, ".v1"));
  absl::StatusOr<ResultBytes> full = runtime_.GetResult(id, 1 << 20);
  ASSERT_THAT(full, IsOk());
  EXPECT_FALSE(full->omitted);
  EXPECT_EQ(full->size, static_cast<int64_t>(full->bytes.size()));
  EXPECT_EQ(full->size, small->size);
}

TEST_F(RuntimeTest, ReadResultAnswersOnAReaderThreadAndUnavailableOnceStopped) {
  const std::string id = RunJob(1);
  ASSERT_FALSE(id.empty());
  absl::Notification read;
  absl::StatusOr<ResultBytes> got;
  std::thread::id reader;
  runtime_.ReadResult(id, 1 << 20, [&](absl::StatusOr<ResultBytes> r) {
    got = std::move(r);
    reader = std::this_thread::get_id();
    read.Notify();
  });
  ASSERT_TRUE(read.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->bytes, *sink_.Read(got->job.result_location));
  EXPECT_NE(reader, std::this_thread::get_id());
  runtime_.Stop();
  absl::StatusOr<ResultBytes> late;
  runtime_.ReadResult(id, 1 << 20, [&](absl::StatusOr<ResultBytes> r) { late = r; });
  EXPECT_THAT(late, StatusIs(absl::StatusCode::kUnavailable));
}

// Results wait a long time (5 s) to share a commit, so that whatever ends the
// wait early shows.
class LingeringRuntimeTest : public RuntimeTest {
 protected:
  absl::Duration Linger() const override { return absl::Seconds(5); }
};

TEST_F(LingeringRuntimeTest, ResultsWaitToShareACommitThatAJobsEndTakesAtOnce) {
  const absl::Time start = absl::Now();
  const std::string id = SubmitJob(3);  // a submission does not wait
  ASSERT_FALSE(id.empty());
  const std::vector<Assignment> got = stream_.WaitAssigned(3);  // 1 slot + 2
  ASSERT_EQ(got.size(), 3u);
  SendResult(runtime_, conn_, got[0]);
  SendResult(runtime_, conn_, got[1]);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(journal_.Find("commit results 1"), -1) << "a result was committed alone";
  EXPECT_EQ(journal_.Find("commit results 2"), -1) << "results did not wait";
  EXPECT_TRUE(stream_.acks().empty());
  // The last result ends the job: committed at once, with the two before it.
  SendResult(runtime_, conn_, got[2]);
  EXPECT_GE(WaitFor("commit results 3"), 0);
  EXPECT_GE(journal_.Find("commit finalizing " + id), 0);
  EXPECT_GE(WaitFor(absl::StrCat("publish mem:", id, ".v1")), 0);
  // Its "done" record, once the sink has the result, waits too: its watchers
  // were told at the write, and a restart would finish it from the durable
  // "finalizing" record. It joins the next commit that is due at once.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(journal_.Find("commit done " + id), -1) << "the done record was not held";
  EXPECT_EQ(stream_.acks(), std::vector<int>{3});  // one ack message for all three
  ASSERT_FALSE(SubmitJob(1).empty());
  ExpectSyncedBeforeDone(id);
  EXPECT_LT(absl::Now() - start, absl::Seconds(4)) << "something waited out the linger";
}

// A submit waits for its job's end only as long as the test says (the
// linger alone would be much longer).
class QuickJobRuntimeTest : public LingeringRuntimeTest {
 protected:
  void SetUp() override {
    LingeringRuntimeTest::SetUp();
    runtime_.SetQuickWaitForTesting(QuickWait(), /*recent=*/absl::Seconds(30));
  }
  virtual absl::Duration QuickWait() const { return absl::Seconds(20); }

  // Submits a single-shard job without waiting for the answer, which
  // `answered` gets.
  std::string SubmitOne(absl::Notification& answered) {
    JobSpec spec;
    spec.task = "noop";
    spec.range = {0, 1, 0, 1};
    runtime_.Submit(spec, [&answered](absl::StatusOr<JobView> job) {
      EXPECT_THAT(job, IsOk());
      answered.Notify();
    });
    const std::vector<Assignment> got = stream_.WaitAssigned(++assigned_);
    return got.size() == assigned_ ? got.back().job_id : "";
  }
  // Sends the result of the last assignment.
  void Finish() { SendResult(runtime_, conn_, stream_.WaitAssigned(assigned_).back()); }

  size_t assigned_ = 0;
  // The tests' submits are answered here (after a failed check too, when
  // the runtime stops).
  absl::Notification first_, second_, third_;
};

TEST_F(QuickJobRuntimeTest, ASubmitWhoseJobIsExpectedToEndSoonCommitsWithItsEnd) {
  // The first such job: nothing known yet, its submit is committed at once.
  const std::string a = SubmitOne(first_);
  ASSERT_FALSE(a.empty());
  ASSERT_TRUE(first_.WaitForNotificationWithTimeout(absl::Seconds(5)));
  Finish();
  ASSERT_GE(WaitFor(absl::StrCat("publish mem:", a, ".v1")), 0);
  // It ended soon: the next one's submit waits for its end.
  const std::string b = SubmitOne(second_);
  ASSERT_FALSE(b.empty());
  EXPECT_FALSE(second_.WaitForNotificationWithTimeout(absl::Milliseconds(200)))
      << "the submit did not wait for its job's end";
  EXPECT_EQ(journal_.Find("commit job " + b), -1);
  Finish();
  ASSERT_TRUE(second_.WaitForNotificationWithTimeout(absl::Seconds(5)))
      << "the submit was not answered once its job ended (its wait is 20 s)";
  // One commit held both: the first record of the job in the store is its
  // "finalizing" one, the submit's record being older in the same batch.
  const std::vector<std::string> events = journal_.events();
  const auto first_b = std::find(events.begin(), events.end(), "commit job " + b);
  ASSERT_NE(first_b, events.end());
  ASSERT_NE(first_b + 1, events.end());
  EXPECT_EQ(*(first_b + 1), "commit finalizing " + b);
  ExpectSyncedBeforeDone(a);
}

class SlowJobRuntimeTest : public QuickJobRuntimeTest {
 protected:
  absl::Duration QuickWait() const override { return absl::Seconds(1); }
};

TEST_F(SlowJobRuntimeTest,
       AfterAJobThatTookLongerThanHalfTheWaitASubmitIsAnsweredAtOnce) {
  ASSERT_FALSE(SubmitOne(first_).empty());
  ASSERT_TRUE(first_.WaitForNotificationWithTimeout(absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(700));  // more than half the 1 s wait
  Finish();
  const absl::Time t0 = absl::Now();
  const std::string b = SubmitOne(second_);
  ASSERT_FALSE(b.empty());
  ASSERT_TRUE(second_.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_LT(absl::Now() - t0, absl::Milliseconds(800)) << "the submit waited";
  EXPECT_GE(journal_.Find("commit job " + b), 0);
  Finish();  // well within half the wait
  // The job that ended soon brings the wait back: this submit waits out its
  // 1 s when no end comes.
  ASSERT_GE(WaitFor(absl::StrCat("publish mem:", b, ".v1")), 0);
  const absl::Time t1 = absl::Now();
  ASSERT_FALSE(SubmitOne(third_).empty());
  ASSERT_TRUE(third_.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_GE(absl::Now() - t1, absl::Milliseconds(900));
  Finish();
}

TEST_F(LingeringRuntimeTest, ALingeringBatchIsCommittedOnceItIsLarge) {
  RecordingStream big;
  ExecutorHello hello;
  hello.executor_id = "e2";
  hello.name = "e2";
  hello.tasks = {"noop"};
  hello.slots = 400;
  const ExecutorConn conn = *runtime_.Connect(hello, &big);
  absl::Cleanup disconnect = [&] { runtime_.Disconnect(conn); };
  const absl::Time start = absl::Now();
  ASSERT_FALSE(SubmitJob(400).empty());
  const std::vector<Assignment> got = big.WaitAssigned(300);
  ASSERT_GE(got.size(), 300u);
  auto acked = [&big] {
    int n = 0;
    for (int k : big.acks()) n += k;
    return n;
  };
  // 256 results and their acks are as many items as a batch waits for.
  for (size_t i = 0; i < 256; ++i) SendResult(runtime_, conn, got[i]);
  for (int i = 0; i < 200 && acked() < 256; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(acked(), 256);
  EXPECT_LT(absl::Now() - start, absl::Seconds(4)) << "the batch waited out the linger";
  // A few more are not: they wait.
  for (size_t i = 256; i < 266; ++i) SendResult(runtime_, conn, got[i]);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(acked(), 256);
}

// Liveness runs on the clock's monotonic time: the wall clock stepping an hour
// forward, then two back, expires no lease and drops no executor, while the
// times people read follow the wall clock. Moving the monotonic time does.
TEST(RuntimeClockTest, AWallClockStepExpiresNoLeaseAndStampsFollowTheWall) {
  Journal journal;
  RecordingStore store{&journal};
  RecordingSink sink{&journal};
  FakeClock clock;
  CoreConfig config;
  config.heartbeat_timeout = absl::Seconds(10);
  config.lease_grace = absl::Seconds(5);
  Runtime runtime{config, &clock, &store, &sink};
  ASSERT_THAT(runtime.Recover(), IsOk());
  runtime.Start();
  absl::Cleanup stop = [&] { runtime.Stop(); };
  RecordingStream stream;
  ExecutorHello hello;
  hello.executor_id = "e1";
  hello.name = "e1";
  hello.tasks = {"noop"};
  hello.slots = 1;
  const ExecutorConn conn = *runtime.Connect(hello, &stream);
  absl::Cleanup disconnect = [&] { runtime.Disconnect(conn); };

  JobSpec spec;
  spec.task = "noop";
  spec.range = {0, 1, 0, 1};
  spec.shard_timeout = absl::Seconds(30);
  const absl::StatusOr<JobView> job = SubmitAndWait(runtime, spec);
  ASSERT_THAT(job, IsOk());
  const absl::Time created = job->create_time;
  EXPECT_EQ(created, clock.WallNow());
  const std::vector<Assignment> got = stream.WaitAssigned(1);
  ASSERT_EQ(got.size(), 1u);

  // The ticker runs every 100 ms on real time: give it several ticks after
  // each step.
  clock.StepWall(absl::Hours(1));
  absl::SleepFor(absl::Milliseconds(350));
  clock.StepWall(absl::Hours(-2));
  absl::SleepFor(absl::Milliseconds(350));
  absl::StatusOr<JobView> running = runtime.GetJob(job->id);
  ASSERT_THAT(running, IsOk());
  EXPECT_EQ(running->state, JobState::kRunning);
  EXPECT_EQ(running->shards.running, 1) << "the lease was lost to a wall-clock step";
  EXPECT_TRUE(running->errors.empty());
  ASSERT_EQ(runtime.ListExecutors().size(), 1u) << "the executor was dropped";
  EXPECT_EQ(runtime.ListExecutors()[0].last_seen, clock.WallNow());

  // The same lease counts: one attempt, and the end stamped on the wall clock.
  absl::StatusOr<JobView> done = RunToEnd(runtime, conn, stream, 1);
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->create_time, created);
  EXPECT_EQ(done->end_time, created - absl::Hours(1));
  EXPECT_EQ(sink.writes(), 1);

  // The control: monotonic time passing the heartbeat timeout does drop it.
  clock.Advance(config.heartbeat_timeout + absl::Seconds(1));
  for (int i = 0; i < 100 && !runtime.ListExecutors().empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(runtime.ListExecutors().empty()) << "monotonic time did not expire it";
}

}  // namespace
}  // namespace tessera::scheduler
