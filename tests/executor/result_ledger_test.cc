// ResultLedger: what is kept until acked, what is re-sent, and when
// backpressure starts and ends, with explicit times.
#include "executor/core/result_ledger.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::executor {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Change = ResultLedger::Backpressure::Change;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

ShardOutcome Result(const std::string& lease, std::string json = "{}") {
  ShardOutcome o;
  o.lease_id = lease;
  o.result_json = std::move(json);
  return o;
}

ShardOutcome Failure(const std::string& lease) {
  ShardOutcome o = Result(lease);
  o.kind = ShardOutcome::Kind::kFailed;
  return o;
}

std::vector<std::string> Leases(const std::vector<ShardOutcome>& outcomes) {
  std::vector<std::string> out;
  for (const ShardOutcome& o : outcomes) out.push_back(o.lease_id);
  return out;
}

TEST(ResultLedgerTest, KeepsResultsUntilAckedAndListsThemForResending) {
  ResultLedger ledger(1000, 10);
  ledger.Keep(Result("b"), kT0);
  ledger.Keep(Result("a"), kT0);
  ledger.Keep(Result("a"), kT0);  // the same lease again replaces it
  EXPECT_EQ(ledger.unacked(), 2u);
  EXPECT_FALSE(ledger.settled());
  EXPECT_THAT(Leases(ledger.Unacked()), ElementsAre("a", "b"));
  EXPECT_EQ(ledger.Unacked().size(), 2u) << "listing them keeps them";

  const ResultLedger::Backpressure b = ledger.Ack({"a", "unknown"}, kT0);
  EXPECT_EQ(b.unacked, 1u);
  EXPECT_EQ(b.change, Change::kNone);
  EXPECT_THAT(Leases(ledger.Unacked()), ElementsAre("b"));
  ledger.Ack({"b"}, kT0);
  EXPECT_TRUE(ledger.settled());
}

// Each row: results kept (+) or acked (-) one at a time, and the change the
// last step reports, with max_unacked 4 (backpressure from 4, off at 2).
struct BackpressureCase {
  std::string name;
  int keep;
  int ack;
  Change change;
  bool on;
};

TEST(ResultLedgerTest, BackpressureStartsAtTheCapAndEndsAtHalfOfIt) {
  const std::vector<BackpressureCase> cases = {
      {"below the cap", 3, 0, Change::kNone, false},
      {"at the cap", 4, 0, Change::kStarted, true},
      {"past the cap", 5, 0, Change::kNone, true},
      {"one ack above half", 4, 1, Change::kNone, true},
      {"acks down to half", 4, 2, Change::kEnded, false},
      {"below half", 4, 3, Change::kNone, false},
  };
  for (const BackpressureCase& c : cases) {
    SCOPED_TRACE(c.name);
    ResultLedger ledger(4, 10);
    ResultLedger::Backpressure last;
    for (int i = 0; i < c.keep; ++i) {
      last = ledger.Keep(Result("r" + std::to_string(i)), kT0 + absl::Seconds(i));
    }
    for (int i = 0; i < c.ack; ++i) {
      last = ledger.Ack({"r" + std::to_string(i)}, kT0 + absl::Seconds(10 + i));
    }
    EXPECT_EQ(last.change, c.change);
    EXPECT_EQ(last.unacked, static_cast<size_t>(c.keep - c.ack));
    EXPECT_EQ(last.resume_at, 2u);
    EXPECT_EQ(ledger.backpressure(), c.on);
  }
}

TEST(ResultLedgerTest, DefaultCapIsAThousandResumingAtFiveHundred) {
  ResultLedger ledger(1000, 10);
  ResultLedger::Backpressure b;
  for (int i = 0; i < 1000; ++i) b = ledger.Keep(Result("r" + std::to_string(i)), kT0);
  EXPECT_EQ(b.change, Change::kStarted);
  EXPECT_EQ(b.resume_at, 500u);
  std::vector<std::string> acks;
  for (int i = 0; i < 499; ++i) acks.push_back("r" + std::to_string(i));
  EXPECT_EQ(ledger.Ack(acks, kT0).change, Change::kNone);  // 501 left
  EXPECT_EQ(ledger.Ack({"r499"}, kT0).change, Change::kEnded);
}

TEST(ResultLedgerTest, ReportsHowLongBackpressureLasted) {
  ResultLedger ledger(1, 10);
  EXPECT_EQ(ledger.Keep(Result("a"), kT0).change, Change::kStarted);
  const ResultLedger::Backpressure b = ledger.Ack({"a"}, kT0 + absl::Seconds(7));
  EXPECT_EQ(b.change, Change::kEnded);
  EXPECT_EQ(b.lasted, absl::Seconds(7));
}

TEST(ResultLedgerTest, ACapOfZeroCountsAsOne) {
  ResultLedger ledger(0, 10);
  EXPECT_EQ(ledger.Keep(Result("a"), kT0).change, Change::kStarted);
  EXPECT_EQ(ledger.Ack({"a"}, kT0).change, Change::kEnded);
}

TEST(ResultLedgerTest, KeepsUnsentFailuresBoundedAndPutsBackWhatWasNotSent) {
  ResultLedger ledger(1000, 2);
  EXPECT_EQ(ledger.KeepUnsent(Failure("f1")), 0u);
  EXPECT_EQ(ledger.KeepUnsent(Failure("f2")), 0u);
  EXPECT_EQ(ledger.KeepUnsent(Failure("f3")), 1u) << "the oldest is dropped";
  EXPECT_FALSE(ledger.settled());
  std::vector<ShardOutcome> taken = ledger.TakeUnsent();
  EXPECT_THAT(Leases(taken), ElementsAre("f2", "f3"));
  EXPECT_TRUE(ledger.settled());
  ledger.KeepUnsent(Failure("f4"));
  ledger.PutBackUnsent({taken[1]});
  EXPECT_THAT(Leases(ledger.TakeUnsent()), ElementsAre("f3", "f4"));
}

TEST(ResultLedgerTest, TakesBatchesOfAtMostMaxBytesAndAtLeastOneResult) {
  ResultLedger ledger(1000, 10);
  EXPECT_TRUE(ledger.Queue(Result("a", std::string(6, 'x'))));
  EXPECT_FALSE(ledger.Queue(Result("b", std::string(4, 'x'))));
  ledger.Queue(Result("c", std::string(20, 'x')));
  ledger.Queue(Result("d", std::string(1, 'x')));
  EXPECT_THAT(Leases(ledger.TakeBatch(10)), ElementsAre("a", "b"));
  EXPECT_THAT(Leases(ledger.TakeBatch(10)), ElementsAre("c")) << "bigger than a batch";
  EXPECT_FALSE(ledger.outbox_empty());
  EXPECT_THAT(Leases(ledger.TakeBatch(10)), ElementsAre("d"));
  EXPECT_TRUE(ledger.outbox_empty());
  EXPECT_THAT(ledger.TakeBatch(10), IsEmpty());
}

}  // namespace
}  // namespace tessera::executor
