#include <vector>

#include "absl/time/clock.h"
#include "executor/handlers/handler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared/clock.h"
#include "tests/util/status_matchers.h"

namespace tessera::executor {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class HandlersTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(RegisterBuiltinHandlers(registry_), IsOk()); }

  absl::StatusOr<nlohmann::json> Run(const std::string& task, int64_t start, int64_t end,
                                     nlohmann::json params = nlohmann::json::object()) {
    CancelToken cancel;
    return RunWith(task, start, end, std::move(params), cancel);
  }

  absl::StatusOr<nlohmann::json> RunWith(const std::string& task, int64_t start,
                                         int64_t end, nlohmann::json params,
                                         const CancelToken& cancel) {
    Handler* handler = registry_.Find(task);
    if (handler == nullptr) return absl::NotFoundError(task);
    ShardTask t;
    t.job_id = "job1";
    t.start = start;
    t.end = end;
    t.params = std::move(params);
    NullProgressReporter progress;
    return handler->Run(t, progress, cancel);
  }

  int64_t Primes(int64_t start, int64_t end) {
    absl::StatusOr<nlohmann::json> r = Run("primes", start, end);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->at("primes").get<int64_t>() : -1;
  }

  HandlerRegistry registry_;
};

TEST_F(HandlersTest, RegistryListsBuiltinsSortedAndRefusesDuplicates) {
  EXPECT_THAT(registry_.Names(), ElementsAre("noop", "primes", "sleep", "square"));
  EXPECT_EQ(registry_.Find("nope"), nullptr);
  EXPECT_THAT(RegisterBuiltinHandlers(registry_),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(HandlersTest, NoopReturnsTheNumberOfItems) {
  absl::StatusOr<nlohmann::json> r = Run("noop", 10, 25);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, (nlohmann::json{{"items", 15}}));
}

TEST_F(HandlersTest, PrimesCountsKnownRanges) {
  EXPECT_EQ(Primes(0, 100), 25);
  EXPECT_EQ(Primes(0, 1'000'000), 78498);
  EXPECT_EQ(Primes(0, 10'000'000), 664579);
  EXPECT_EQ(Primes(2, 3), 1);
  EXPECT_EQ(Primes(3, 4), 1);
  EXPECT_EQ(Primes(4, 5), 0);
  EXPECT_EQ(Primes(0, 2), 0) << "0 and 1 are not prime";
  EXPECT_EQ(Primes(97, 98), 1);
  EXPECT_EQ(Primes(1'000'000'000, 1'000'001'000), 49);
}

TEST_F(HandlersTest, PrimesOfPiecesSumToTheWhole) {
  int64_t sum = 0;
  const int64_t end = 1'000'000;
  for (int64_t start = 0; start < end; start += 77'777) {
    sum += Primes(start, std::min(start + 77'777, end));
  }
  EXPECT_EQ(sum, 78498);
  // Tiny pieces around small numbers too.
  sum = 0;
  for (int64_t i = -5; i < 1000; i += 3) sum += Primes(i, i + 3);
  EXPECT_EQ(sum, 168);  // [-5, 1000)
}

TEST_F(HandlersTest, PrimesTreatsNegativeNumbersAsNotPrime) {
  EXPECT_EQ(Primes(-100, 0), 0);
  EXPECT_EQ(Primes(-100, 100), 25);
  EXPECT_EQ(Primes(-5, -1), 0);
}

TEST_F(HandlersTest, PrimesOfTenMillionInSixtyFourShardsIsFast) {
  const int64_t end = 10'000'000;
  const int shards = 64;
  const absl::Time start = absl::Now();
  int64_t sum = 0;
  for (int i = 0; i < shards; ++i)
    sum += Primes(end * i / shards, end * (i + 1) / shards);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(sum, 664579);
  EXPECT_LT(took, absl::Seconds(2)) << "single thread, any build type";
}

TEST_F(HandlersTest, PrimesRefusesAnEndBeyondItsLimit) {
  absl::StatusOr<nlohmann::json> r = Run("primes", 0, 1'000'000'000'000'000);
  EXPECT_THAT(r,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("end must be <=")));
}

TEST_F(HandlersTest, SleepSleepsMsPerItemAndCountsItems) {
  const absl::Time start = absl::Now();
  absl::StatusOr<nlohmann::json> r = Run("sleep", 0, 5, {{"ms", 20}});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, (nlohmann::json{{"items", 5}}));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
}

TEST_F(HandlersTest, SleepDefaultsToOneMillisecondPerItemAndAcceptsZero) {
  EXPECT_THAT(Run("sleep", 0, 3), IsOk());
  EXPECT_THAT(Run("sleep", 0, 1000, {{"ms", 0}}), IsOk());
  EXPECT_THAT(Run("sleep", 0, 4, {{"ms", 0.5}}), IsOk());
}

TEST_F(HandlersTest, SleepRejectsABadMsNamingTheParam) {
  for (const nlohmann::json& bad :
       {nlohmann::json("x"), nlohmann::json(-1), nlohmann::json(nullptr),
        nlohmann::json::array({1}), nlohmann::json(true)}) {
    absl::StatusOr<nlohmann::json> r = Run("sleep", 0, 1, {{"ms", bad}});
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("params.ms must be a number >= 0")))
        << bad;
    EXPECT_TRUE(IsPermanentError(r.status()));
  }
  EXPECT_EQ(Run("sleep", 0, 1, {{"ms", "x"}}).status().message(),
            "params.ms must be a number >= 0 (got \"x\")");
}

// Cancels the shard at its first progress report: the handler is running.
class CancellingReporter : public ProgressReporter {
 public:
  explicit CancellingReporter(CancelToken& cancel) : cancel_(cancel) {}
  void Report(int64_t, int64_t) override { cancel_.Cancel(); }

 private:
  CancelToken& cancel_;
};

TEST_F(HandlersTest, CancelStopsSleepEarly) {
  ShardTask t;
  t.start = 0;
  t.end = 100;
  t.params = {{"ms", 100}};
  CancelToken cancel;
  CancellingReporter progress(cancel);
  const absl::Time start = MonoNow();
  absl::StatusOr<nlohmann::json> r = registry_.Find("sleep")->Run(t, progress, cancel);
  const absl::Duration took = MonoNow() - start;
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_LT(took, absl::Seconds(2)) << "the full sleep would take 10 s";
}

TEST_F(HandlersTest, CancelStopsPrimesBetweenSegments) {
  CancelToken cancel;
  cancel.Cancel();
  absl::StatusOr<nlohmann::json> r =
      RunWith("primes", 0, 10'000'000, nlohmann::json::object(), cancel);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kCancelled));
}

class RecordingReporter : public ProgressReporter {
 public:
  void Report(int64_t done, int64_t total) override { reports.push_back({done, total}); }
  std::vector<std::pair<int64_t, int64_t>> reports;
};

TEST_F(HandlersTest, PrimesReportsMonotonicProgressUpToTheTotal) {
  ShardTask t;
  t.start = 100;
  t.end = 1'000'100;
  RecordingReporter progress;
  CancelToken cancel;
  ASSERT_THAT(registry_.Find("primes")->Run(t, progress, cancel), IsOk());
  ASSERT_FALSE(progress.reports.empty());
  int64_t last = 0;
  for (const auto& [done, total] : progress.reports) {
    EXPECT_EQ(total, 1'000'000);
    EXPECT_GT(done, last);
    last = done;
  }
  EXPECT_EQ(last, 1'000'000);
}

}  // namespace
}  // namespace tessera::executor
