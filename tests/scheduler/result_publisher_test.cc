// The result publisher against a recording sink, its commits settled by hand:
// stage at once, publish only after the commit (on the commit's thread when
// the sink publishes quickly), never when abandoned, and the recent results
// kept.
#include "scheduler/service/result_publisher.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "scheduler/sink/result_sink.h"
#include "scheduler/store/memory_store.h"
#include "shared/sha256.h"
#include "tests/scheduler/wait_until.h"

namespace tessera::scheduler {
namespace {

// Journals what it is asked to do; keeps nothing.
class JournalSink : public ResultSink {
 public:
  // `quick`: it says it publishes quickly.
  explicit JournalSink(bool quick) : quick_(quick) {}
  absl::StatusOr<StagedResult> Stage(const std::string& job_id, int32_t version,
                                     const std::string& bytes) override {
    const std::string location = absl::StrCat("mem:", job_id, ".v", version);
    Add("stage " + location);
    return StagedResult{{location, Sha256Hex(bytes)}, location};
  }
  absl::StatusOr<PersistedResult> Publish(const StagedResult& staged) override {
    Add("publish " + staged.result.location);
    absl::MutexLock lock(&mu_);
    if (failing_publishes_ > 0) {
      --failing_publishes_;
      return absl::UnavailableError("disk I/O error");
    }
    return staged.result;
  }
  bool PublishesQuickly() const override { return quick_; }
  absl::Status Sync() override {
    Add("sync");
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Read(const std::string& location) override {
    return absl::NotFoundError(location);
  }
  absl::StatusOr<int64_t> Size(const std::string& location) override {
    return absl::NotFoundError(location);
  }
  absl::Status Delete(const std::string&) override { return absl::OkStatus(); }
  int64_t writes() const override { return 0; }

  void Add(std::string event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  void FailPublishes(int n) {
    absl::MutexLock lock(&mu_);
    failing_publishes_ = n;
  }

 private:
  const bool quick_;
  absl::Mutex mu_;
  int failing_publishes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

class ResultPublisherTest : public ::testing::Test {
 protected:
  explicit ResultPublisherTest(bool quick_sink = false) : sink_(quick_sink) {}
  void SetUp() override { publisher_.Start(); }
  void TearDown() override {
    publisher_.Stop();
    writer_.Stop();
    writer_.Join();
    publisher_.Join();
  }
  size_t Count(const std::string& event) {
    size_t n = 0;
    for (const std::string& e : sink_.events()) n += e == event;
    return n;
  }

  RealClock clock_;
  MemoryStore store_;
  FaultState faults_{absl::Seconds(5)};
  JournalSink sink_;
  // Not started: the test settles the commits itself.
  DurableWriter writer_{&clock_, &store_, &faults_, nullptr, {}};
  ResultPublisher publisher_{
      &clock_,
      &sink_,
      &writer_,
      &faults_,
      nullptr,
      [this](const PersistAction& p, const absl::StatusOr<PersistedResult>& written) {
        sink_.Add(absl::StrCat("written ", p.job_id, written.ok() ? "" : " failed"));
      }};
};

// A sink that publishes quickly (a rename): a result staged before its
// commit is settled is published by the commit's callback.
class QuickResultPublisherTest : public ResultPublisherTest {
 protected:
  QuickResultPublisherTest() : ResultPublisherTest(/*quick_sink=*/true) {}
};

TEST_F(ResultPublisherTest, StagesAtOnceAndPublishesOnlyOnceTheCommitIsDurable) {
  DurableWriter::Callback commit = publisher_.Begin({"j1", 1, R"({"n":1})"});
  ASSERT_TRUE(WaitUntil([&] { return Count("stage mem:j1.v1") == 1; }));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(Count("publish mem:j1.v1"), 0u) << "published before the commit";
  commit(DurableWriter::Outcome{});
  // Once the owner is told, the worker syncs the sink itself, so that the
  // "done" record's commit seldom waits for that (SyncBeforeCommit).
  ASSERT_TRUE(WaitUntil([&] { return Count("sync") == 1; }));
  const std::vector<std::string> expected = {"stage mem:j1.v1", "publish mem:j1.v1",
                                             "written j1", "sync"};
  EXPECT_EQ(sink_.events(), expected);
}

TEST_F(ResultPublisherTest, AnAbandonedOrRefusedResultIsNeverPublished) {
  DurableWriter::Callback abandoned = publisher_.Begin({"j1", 1, "{}"});
  DurableWriter::Callback refused = publisher_.Begin({"j2", 1, "{}"});
  ASSERT_TRUE(WaitUntil([&] { return sink_.events().size() == 2; }));
  abandoned({absl::UnavailableError("stopping"), false, true});
  refused({absl::InvalidArgumentError("too big"), true, false});
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Count("publish mem:j1.v1") + Count("publish mem:j2.v1"), 0u);
  EXPECT_EQ(Count("written j1") + Count("written j2"), 0u);
  EXPECT_EQ(Count("sync"), 0u) << "nothing was published";
  EXPECT_EQ(publisher_.Recent("j1", 1), std::nullopt);
}

TEST_F(ResultPublisherTest, KeepsTheBytesOfTheVersionItWroteLately) {
  publisher_.Begin({"j1", 2, R"({"n":2})"})(DurableWriter::Outcome{});
  ASSERT_TRUE(WaitUntil([&] { return Count("written j1") == 1; }));
  EXPECT_EQ(publisher_.Recent("j1", 2), std::optional<std::string>(R"({"n":2})"));
  EXPECT_EQ(publisher_.Recent("j1", 1), std::nullopt);
  EXPECT_EQ(publisher_.Recent("j9", 1), std::nullopt);
}

TEST_F(ResultPublisherTest, SyncsTheSinkBeforeACommitThatNamesAResultOnly) {
  JobRecord done;
  done.id = "j1";
  done.location = "mem:j1.v1";
  JobRecord running;
  running.id = "j2";
  StoreWrite write;
  write.jobs = {&running};
  ASSERT_TRUE(publisher_.SyncBeforeCommit(write).ok());
  EXPECT_EQ(Count("sync"), 0u);
  write.jobs.push_back(&done);
  ASSERT_TRUE(publisher_.SyncBeforeCommit(write).ok());
  EXPECT_EQ(Count("sync"), 1u);
}

TEST_F(ResultPublisherTest, TakesNothingOnceTheWriterHasStopped) {
  writer_.Start();
  writer_.Stop();
  writer_.Join();
  publisher_.Begin({"j1", 1, "{}"})(DurableWriter::Outcome{});
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(sink_.events().empty());
}

TEST_F(QuickResultPublisherTest, TheCommitsCallbackPublishesAResultStagedBeforeIt) {
  DurableWriter::Callback commit = publisher_.Begin({"j1", 1, R"({"n":1})"});
  ASSERT_TRUE(WaitUntil([&] { return Count("stage mem:j1.v1") == 1; }));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(Count("publish mem:j1.v1"), 0u) << "published before the commit";
  commit(DurableWriter::Outcome{});
  // Published, and the owner told, before the callback returned (a worker
  // may be syncing already).
  std::vector<std::string> events = sink_.events();
  events.resize(std::min<size_t>(events.size(), 3));
  const std::vector<std::string> by_the_callback = {"stage mem:j1.v1",
                                                    "publish mem:j1.v1", "written j1"};
  EXPECT_EQ(events, by_the_callback);
  // A worker syncs the sink afterwards.
  ASSERT_TRUE(WaitUntil([&] { return Count("sync") == 1; }));
  EXPECT_EQ(publisher_.Recent("j1", 1), std::optional<std::string>(R"({"n":1})"));
}

TEST_F(QuickResultPublisherTest, AParkedResultWhoseCommitIsAbandonedIsNeverPublished) {
  DurableWriter::Callback abandoned = publisher_.Begin({"j1", 1, "{}"});
  ASSERT_TRUE(WaitUntil([&] { return Count("stage mem:j1.v1") == 1; }));
  absl::SleepFor(absl::Milliseconds(50));
  abandoned({absl::UnavailableError("stopping"), false, true});
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Count("publish mem:j1.v1"), 0u);
  EXPECT_EQ(Count("written j1"), 0u);
  EXPECT_EQ(Count("sync"), 0u);
}

TEST_F(QuickResultPublisherTest, APublicationThatFailsAfterTheCommitIsRetriedByAWorker) {
  sink_.FailPublishes(1);
  DurableWriter::Callback commit = publisher_.Begin({"j1", 1, "{}"});
  ASSERT_TRUE(WaitUntil([&] { return Count("stage mem:j1.v1") == 1; }));
  absl::SleepFor(absl::Milliseconds(50));
  commit(DurableWriter::Outcome{});
  EXPECT_EQ(Count("written j1"), 0u) << "the failure was reported, not retried";
  // Staged and published again after the backoff, once.
  ASSERT_TRUE(WaitUntil([&] { return Count("written j1") == 1; }));
  EXPECT_EQ(Count("stage mem:j1.v1"), 2u);
  EXPECT_EQ(Count("publish mem:j1.v1"), 2u);
  EXPECT_TRUE(faults_.Refusal(/*new_work=*/true).ok()) << "the sink's error passed";
}

}  // namespace
}  // namespace tessera::scheduler
