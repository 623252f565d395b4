// What the core says about a job, on its own: the result document, the view
// and the wait messages.
#include "scheduler/core/job_report.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;
using ::tessera::testing::IsOk;

const absl::Time kNow = absl::UnixEpoch() + absl::Hours(1);

std::unique_ptr<CoreJob> Job(const std::string& id) {
  auto j = std::make_unique<CoreJob>();
  j->record.id = id;
  j->record.spec.name = "squares";
  j->record.spec.task = "square";
  j->record.spec.queue = "default";
  j->record.spec.range = {0, 30, 10, 0};
  j->record.created = absl::UnixEpoch();
  j->record.started = absl::UnixEpoch() + absl::Seconds(1);
  j->created_mono = kNow;
  j->shards = JobShards(*RangePartition::Create(j->record.spec.range, 100), {});
  return j;
}

TEST(JobReportTest, TheResultDocumentIsTheFoldPlusMetadata) {
  std::unique_ptr<CoreJob> j = Job("j1");
  j->shards.Accept(0, json{{"sum", 1}});
  j->shards.Accept(2, json{{"sum", 2}});
  j->shards.Fail(1, 3, "boom");
  ASSERT_THAT(j->shards.FoldPrefix(), IsOk());
  j->assignments = 5;
  j->executors_used = {"w1", "w2"};
  const std::string bytes = ResultDocument(*j, absl::UnixEpoch() + absl::Seconds(9));
  ASSERT_EQ(bytes.back(), '\n');
  const json doc = json::parse(bytes);
  EXPECT_EQ(doc["sum"], 3);
  const json& m = doc["_metadata"];
  EXPECT_EQ(m["job_id"], "j1");
  EXPECT_EQ(m["range"], (json{{"start", 0}, {"end", 30}, {"shard_size", 10}}));
  EXPECT_EQ(m["shards"], (json{{"total", 3}, {"succeeded", 2}, {"failed", 1}}));
  EXPECT_EQ(m["failed_shards"][0]["error"], "boom");
  EXPECT_EQ(m["attempts"], 5);
  EXPECT_EQ(m["executors"], (json{"w1", "w2"}));
  EXPECT_EQ(m["result_version"], 1);
  EXPECT_EQ(m["finished_at"], "1970-01-01T00:00:09+00:00");
}

TEST(JobReportTest, AQueuedJobSaysWhatItWaitsFor) {
  const CoreConfig config;
  const DispatchPolicy policy(config);
  std::unique_ptr<CoreJob> blocker = Job("first");
  blocker->record.spec.concurrency_key = "k";
  std::unique_ptr<CoreJob> j = Job("j1");
  std::vector<CoreJob*> active = {blocker.get(), j.get()};
  std::map<std::string, std::unique_ptr<CoreExecutor>> executors;
  std::set<std::string> known;
  const WaitFacts facts{config, policy, active, executors, known};

  EXPECT_EQ(WaitReason(*j, facts, kNow),
            "waiting for an executor that runs task \"square\"");
  EXPECT_NE(WaitReason(*j, facts, kNow + config.unknown_task_grace)
                .find("no executor has advertised task \"square\""),
            std::string::npos);
  auto e = std::make_unique<CoreExecutor>();
  e->tasks = {"square"};
  e->queues = {"default"};
  executors["e1"] = std::move(e);
  EXPECT_EQ(WaitReason(*j, facts, kNow),
            "waiting for a free executor slot in queue \"default\"");
  j->record.spec.concurrency_key = "k";
  j->record.spec.concurrency_limit = 1;
  EXPECT_NE(WaitReason(*j, facts, kNow).find("waiting for job first"), std::string::npos);
  j->hold_until = kNow + absl::Seconds(1);
  EXPECT_EQ(WaitReason(*j, facts, kNow),
            "waiting for executors to re-attach after a scheduler restart");
  j->record.state = JobState::kFailed;
  j->record.message = "boom";
  EXPECT_EQ(WaitReason(*j, facts, kNow), "boom");
}

TEST(JobReportTest, TheViewCountsShardsAndProgressOfRunningLeases) {
  std::unique_ptr<CoreJob> j = Job("j1");
  j->record.state = JobState::kRunning;
  CoreExecutor e;
  LeaseTable leases(absl::Seconds(5));
  j->shards.Accept(j->shards.TakeNext(kNow).shard, json::object());
  leases.Add("l1", *j, j->shards.TakeNext(kNow).shard, e, 1, kNow);
  leases.at("l1").progress = 4;
  const JobView v = ViewOf(*j, leases, "running");
  EXPECT_EQ(v.shards.total, 3);
  EXPECT_EQ(v.shards.succeeded, 1);
  EXPECT_EQ(v.shards.running, 1);
  EXPECT_EQ(v.shards.pending, 1);
  EXPECT_EQ(v.items_total, 30);
  EXPECT_EQ(v.items_done, 14);
  EXPECT_EQ(v.message, "running");
}

TEST(JobReportTest, AFinishedRecordWithoutItsItemCountDerivesIt) {
  JobRecord r;
  r.id = "j1";
  r.spec.range = {0, 30, 10, 0};
  r.state = JobState::kPartial;
  r.items_done = -1;
  r.shards_succeeded = 2;
  r.failed = {{1, {10, 20}, 3, "boom"}};
  const JobView v = FinishedView(r);
  EXPECT_EQ(v.shards.total, 3);
  EXPECT_EQ(v.items_done, 20);
  EXPECT_EQ(v.shards.failed, 1);
}

}  // namespace
}  // namespace tessera::scheduler
