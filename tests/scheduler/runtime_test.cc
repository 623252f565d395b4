// The runtime (lock, store writer, persist workers) with a recording store and
// sink, and a hand-driven executor stream: no gRPC server, no disk.
#include "scheduler/service/runtime.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "scheduler/store/memory_store.h"

namespace tessera::scheduler {
namespace {

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
  absl::Status Commit(const std::vector<const JobRecord*>& jobs,
                      const std::vector<const SaveResultOp*>& results,
                      bool durable) override {
    for (const JobRecord* j : jobs) {
      if (!j->location.empty()) journal_->Add("commit done " + j->id);
      if (j->finalizing) journal_->Add("commit finalizing " + j->id);
    }
    (void)results;
    (void)durable;
    return MemoryStore::Commit(jobs, results, durable);
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
    return StagedResult{{location, "sha-" + job_id}, location};
  }
  absl::StatusOr<PersistedResult> Publish(const StagedResult& staged) override {
    absl::MutexLock lock(&mu_);
    published_[staged.result.location] = staged_[staged.staged_at];
    ++writes_;
    unsynced_ = true;
    journal_->Add("publish " + staged.result.location);
    return staged.result;
  }
  absl::Status Sync() override {
    absl::MutexLock lock(&mu_);
    if (unsynced_) journal_->Add("sync");
    unsynced_ = false;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Read(const std::string& location) override {
    absl::MutexLock lock(&mu_);
    auto it = published_.find(location);
    if (it == published_.end()) return absl::NotFoundError(location);
    return it->second;
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
};

// Collects what the runtime sends to one executor.
class FakeStream : public ExecutorStream {
 public:
  void Send(v1::SchedulerMessage message) override {
    absl::MutexLock lock(&mu_);
    for (const v1::Assignment& a : message.assign().assignments()) assigned_.push_back(a);
  }
  void Close(const std::string&) override {}
  // Waits (a few seconds at most) for `n` assignments.
  std::vector<v1::Assignment> WaitAssigned(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return assigned_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(5));
    return assigned_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::Assignment> assigned_ ABSL_GUARDED_BY(mu_);
};

// Finishes `runtime`'s single-shard noop job `id` on `conn` and waits for it
// to succeed.
absl::StatusOr<JobView> RunToEnd(Runtime& runtime, const ExecutorConn& conn,
                                 FakeStream& stream, size_t nth) {
  const std::vector<v1::Assignment> got = stream.WaitAssigned(nth);
  if (got.size() < nth) return absl::DeadlineExceededError("no assignment");
  const v1::Assignment& a = got[nth - 1];
  v1::ExecutorMessage m;
  v1::ShardResult* r = m.mutable_result_batch()->add_results();
  r->set_lease_id(a.lease_id());
  r->set_job_id(a.job_id());
  r->set_shard(a.shard());
  r->set_result_json(R"({"items":1})");
  runtime.OnMessage(conn, m);
  for (int i = 0; i < 500; ++i) {
    absl::StatusOr<JobView> job = runtime.GetJob(a.job_id());
    if (!job.ok() || job->state == JobState::kSucceeded) return job;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError("job did not succeed");
}

TEST(RuntimeTest, CommitsAJobsEndOnlyAfterTheSinkHasSyncedItsResult) {
  Journal journal;
  RecordingStore store(&journal);
  RecordingSink sink(&journal);
  RealClock clock;
  Runtime runtime(CoreConfig{}, &clock, &store, &sink);
  ASSERT_TRUE(runtime.Recover().ok());
  runtime.Start();
  FakeStream stream;
  ExecutorHello hello;
  hello.executor_id = "e1";
  hello.name = "e1";
  hello.tasks = {"noop"};
  hello.slots = 1;
  const ExecutorConn conn = runtime.Connect(hello, &stream);

  std::vector<std::string> ids;
  for (int n = 1; n <= 3; ++n) {
    JobSpec spec;
    spec.task = "noop";
    spec.range = {0, 1, 0, 1};
    absl::Notification submitted;
    std::string id;
    runtime.Submit(spec, [&](absl::StatusOr<JobView> job) {
      ASSERT_TRUE(job.ok()) << job.status();
      id = job->id;
      submitted.Notify();
    });
    submitted.WaitForNotification();
    absl::StatusOr<JobView> done = RunToEnd(runtime, conn, stream, n);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(done->result_location, absl::StrCat("mem:", id, ".v1"));
    ids.push_back(id);
  }
  runtime.Disconnect(conn);
  runtime.Stop();

  // For each job: finalizing committed, then published, then a sync, then the
  // commit that records it done. (The end itself may reach watchers earlier.)
  for (const std::string& id : ids) {
    const int finalizing = journal.Find("commit finalizing " + id);
    const int published = journal.Find(absl::StrCat("publish mem:", id, ".v1"));
    const int done = journal.Find("commit done " + id);
    ASSERT_GE(finalizing, 0) << id;
    ASSERT_GT(published, finalizing) << id;
    ASSERT_GT(done, published) << id;
    bool synced = false;
    const std::vector<std::string> events = journal.events();
    for (int i = published + 1; i < done; ++i) synced = synced || events[i] == "sync";
    EXPECT_TRUE(synced) << id << ": its end was committed before a sync";
  }
  EXPECT_EQ(sink.writes(), 3);
}

}  // namespace
}  // namespace tessera::scheduler
