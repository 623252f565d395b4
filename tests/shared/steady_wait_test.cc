#include "shared/steady_wait.h"

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shared/clock.h"

namespace tessera {
namespace {

TEST(MonoNowTest, StartsNearTheWallClockAndNeverGoesBack) {
  const absl::Time first = MonoNow();
  EXPECT_LT(absl::AbsDuration(first - absl::Now()), absl::Seconds(1));
  absl::Time last = first;
  for (int i = 0; i < 1000; ++i) {
    const absl::Time t = MonoNow();
    ASSERT_GE(t, last);
    last = t;
  }
}

TEST(FakeClockTest, StepWallMovesTheWallClockAlone) {
  FakeClock clock;
  const absl::Time start = clock.Now();
  clock.StepWall(absl::Hours(-1));
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.WallNow(), start - absl::Hours(1));
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), start + absl::Seconds(5));
  EXPECT_EQ(clock.WallNow(), start - absl::Hours(1) + absl::Seconds(5));
}

TEST(SteadyCondVarTest, TimesOutAfterItsTimeoutAndNotBefore) {
  absl::Mutex mu;
  SteadyCondVar cv;
  bool flag = false;
  absl::MutexLock lock(&mu);
  const absl::Time start = MonoNow();
  EXPECT_FALSE(AwaitFor(
      &mu, cv, [&] { return flag; }, absl::Milliseconds(50)));
  const absl::Duration took = MonoNow() - start;
  EXPECT_GE(took, absl::Milliseconds(50));
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_FALSE(cv.WaitWithDeadline(&mu, MonoNow() - absl::Seconds(1)));  // already past
}

TEST(SteadyCondVarTest, ASignalEndsTheWaitAtOnce) {
  absl::Mutex mu;
  SteadyCondVar cv;
  bool flag = false;
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(20));
    absl::MutexLock lock(&mu);
    flag = true;
    cv.Signal();
  });
  {
    absl::MutexLock lock(&mu);
    const absl::Time start = MonoNow();
    EXPECT_TRUE(AwaitFor(
        &mu, cv, [&] { return flag; }, absl::Seconds(30)));
    EXPECT_LT(MonoNow() - start, absl::Seconds(10));
  }
  setter.join();
}

TEST(SteadyNotificationTest, WaitsUntilNotifiedOrTheTimeout) {
  SteadyNotification n;
  EXPECT_FALSE(n.HasBeenNotified());
  EXPECT_FALSE(n.WaitForNotificationWithTimeout(absl::Milliseconds(10)));
  std::thread notifier([&] { n.Notify(); });
  EXPECT_TRUE(n.WaitForNotificationWithTimeout(absl::Seconds(30)));
  notifier.join();
  EXPECT_TRUE(n.HasBeenNotified());
}

}  // namespace
}  // namespace tessera
