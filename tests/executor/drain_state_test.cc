// DrainState: the drain's steps for every combination that matters, with
// explicit times.
#include "executor/core/drain_state.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tessera::executor {
namespace {

using Step = DrainState::Step;

const absl::Time kT0 = absl::FromUnixSeconds(1000);
constexpr absl::Duration kTimeout = absl::Seconds(30);

TEST(DrainStateTest, NothingHappensUntilADrainIsAsked) {
  DrainState drain(kTimeout);
  EXPECT_FALSE(drain.requested());
  EXPECT_EQ(drain.OnStream(kT0, false, true, true), Step::kNone);
  EXPECT_FALSE(drain.OverWhileDisconnected(kT0 + absl::Hours(1), true, true));
}

struct StepCase {
  std::string name;
  absl::Duration since_ask;
  bool announced;
  bool idle;
  bool acked;
  Step want;
};

TEST(DrainStateTest, StepsOnALiveStream) {
  const std::vector<StepCase> cases = {
      {"first: announce", absl::ZeroDuration(), false, false, false, Step::kAnnounce},
      {"announce even when idle", absl::ZeroDuration(), false, true, true,
       Step::kAnnounce},
      {"idle and acked: close", absl::Seconds(1), true, true, true, Step::kClose},
      {"shards running: wait", absl::Seconds(1), true, false, true, Step::kWait},
      {"results unacked: wait", absl::Seconds(29), true, true, false, Step::kWait},
      {"deadline, unacked: close anyway", kTimeout, true, true, false, Step::kClose},
      {"deadline, running: cancel", kTimeout, true, false, true, Step::kCancelAndClose},
      {"past it, running: cancel", absl::Hours(1), true, false, false,
       Step::kCancelAndClose},
  };
  for (const StepCase& c : cases) {
    SCOPED_TRACE(c.name);
    DrainState drain(kTimeout);
    EXPECT_EQ(drain.Ask(kT0), DrainState::Request::kStarted);
    EXPECT_EQ(drain.OnStream(kT0 + c.since_ask, c.announced, c.idle, c.acked), c.want);
  }
}

TEST(DrainStateTest, ASecondAskMovesTheDeadlineToNow) {
  DrainState drain(kTimeout);
  drain.Ask(kT0);
  EXPECT_EQ(drain.deadline(), kT0 + kTimeout);
  EXPECT_EQ(drain.OnStream(kT0 + absl::Seconds(2), true, false, true), Step::kWait);
  EXPECT_EQ(drain.Ask(kT0 + absl::Seconds(2)), DrainState::Request::kCutShort);
  EXPECT_EQ(drain.deadline(), kT0 + absl::Seconds(2));
  EXPECT_EQ(drain.OnStream(kT0 + absl::Seconds(2), true, false, true),
            Step::kCancelAndClose);
}

TEST(DrainStateTest, AsksAfterCompletionAreIgnored) {
  DrainState drain(kTimeout);
  drain.Ask(kT0);
  drain.Complete();
  EXPECT_TRUE(drain.complete());
  EXPECT_EQ(drain.Ask(kT0 + absl::Seconds(1)), DrainState::Request::kIgnored);
  EXPECT_EQ(drain.deadline(), kT0 + kTimeout);
}

TEST(DrainStateTest, WhileDisconnectedStopsWhenNothingIsOwedOrAtTheDeadline) {
  DrainState drain(kTimeout);
  drain.Ask(kT0);
  EXPECT_TRUE(drain.OverWhileDisconnected(kT0, /*idle=*/true, /*settled=*/true));
  EXPECT_FALSE(drain.OverWhileDisconnected(kT0, true, false)) << "results to deliver";
  EXPECT_FALSE(drain.OverWhileDisconnected(kT0, false, true)) << "shards running";
  EXPECT_TRUE(drain.OverWhileDisconnected(kT0 + kTimeout, false, false));
}

}  // namespace
}  // namespace tessera::executor
