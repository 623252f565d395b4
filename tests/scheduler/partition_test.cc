#include "scheduler/core/partition.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

RangePartition Make(int64_t start, int64_t end, int64_t size, int64_t count,
                    int64_t max_shards = 10'000'000) {
  auto p = RangePartition::Create({start, end, size, count}, max_shards);
  EXPECT_THAT(p, IsOk());
  return *p;
}

// Shards must tile the range: contiguous, non-empty, in order.
void ExpectTiles(const RangePartition& p) {
  int64_t at = p.spec().start;
  for (int64_t i = 0; i < p.num_shards(); ++i) {
    ShardBounds b = p.Bounds(i);
    ASSERT_EQ(b.start, at) << "shard " << i;
    ASSERT_GT(b.end, b.start) << "shard " << i;
    at = b.end;
  }
  EXPECT_EQ(at, p.spec().end);
}

TEST(RangePartitionTest, OneShardCoversTheWholeRange) {
  RangePartition p = Make(5, 17, 0, 1);
  ASSERT_EQ(p.num_shards(), 1);
  EXPECT_EQ(p.Bounds(0), (ShardBounds{5, 17}));
  EXPECT_EQ(p.TotalItems(), 12);
}

TEST(RangePartitionTest, ShardSizeLeavesTheRemainderToTheLastShard) {
  RangePartition p = Make(0, 10, 3, 0);
  ASSERT_EQ(p.num_shards(), 4);
  EXPECT_EQ(p.Bounds(0), (ShardBounds{0, 3}));
  EXPECT_EQ(p.Bounds(3), (ShardBounds{9, 10}));
  EXPECT_EQ(p.Items(3), 1);
  ExpectTiles(p);
}

TEST(RangePartitionTest, ShardCountSpreadsSizesWithinOne) {
  RangePartition p = Make(0, 10'000'000, 0, 64);
  ASSERT_EQ(p.num_shards(), 64);
  ExpectTiles(p);
  int64_t lo = kMax, hi = 0;
  for (int64_t i = 0; i < 64; ++i) {
    lo = std::min(lo, p.Items(i));
    hi = std::max(hi, p.Items(i));
  }
  EXPECT_LE(hi - lo, 1);
}

TEST(RangePartitionTest, ShardCountLargerThanRangeIsCappedAtOneNumberPerShard) {
  RangePartition p = Make(-3, 2, 0, 100);
  EXPECT_EQ(p.num_shards(), 5);
  ExpectTiles(p);
}

TEST(RangePartitionTest, HugeRangesDoNotOverflow) {
  RangePartition p = Make(kMin, kMax, 0, 1'000'000);
  EXPECT_EQ(p.num_shards(), 1'000'000);
  EXPECT_EQ(p.Bounds(0).start, kMin);
  EXPECT_EQ(p.Bounds(999'999).end, kMax);
  EXPECT_EQ(p.TotalItems(), kMax);  // saturated
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{499'999}, int64_t{999'998}}) {
    EXPECT_EQ(p.Bounds(i).end, p.Bounds(i + 1).start);
  }
  RangePartition q = Make(kMin, kMax, kMax, 0);
  // 2^64 - 1 numbers in shards of 2^63 - 1: two full shards and one of 1.
  EXPECT_EQ(q.num_shards(), 3);
  EXPECT_EQ(q.Bounds(2), (ShardBounds{kMax - 1, kMax}));
}

TEST(RangePartitionTest, MillionShardsCostNothingUpFront) {
  RangePartition p = Make(0, 1'000'000'000, 1'000, 0);
  EXPECT_EQ(p.num_shards(), 1'000'000);
  EXPECT_EQ(p.Bounds(999'999), (ShardBounds{999'999'000, 1'000'000'000}));
  EXPECT_EQ(sizeof(p), sizeof(RangeSpec) + sizeof(int64_t));
}

TEST(RangePartitionTest, RejectsEmptyOrBackwardRanges) {
  auto p = RangePartition::Create({5, 5, 1, 0}, 100);
  ASSERT_THAT(p,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.range.end")));
  EXPECT_THAT(RangePartition::Create({5, 4, 1, 0}, 100), Not(IsOk()));
}

TEST(RangePartitionTest, RejectsZeroNegativeOrBothShardSettings) {
  auto none = RangePartition::Create({0, 10, 0, 0}, 100);
  EXPECT_THAT(none, StatusIs(absl::StatusCode::kInvalidArgument));
  auto neg = RangePartition::Create({0, 10, -1, 0}, 100);
  EXPECT_NE(neg.status().message().find("spec.range.shard_size"), std::string::npos);
  auto negc = RangePartition::Create({0, 10, 0, -4}, 100);
  EXPECT_NE(negc.status().message().find("spec.range.shard_count"), std::string::npos);
  auto both = RangePartition::Create({0, 10, 2, 2}, 100);
  EXPECT_THAT(both, StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RangePartitionTest, RejectsMoreShardsThanTheLimit) {
  auto p = RangePartition::Create({0, 1'000, 1, 0}, 999);
  ASSERT_THAT(p, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit of 999")));
  EXPECT_THAT(RangePartition::Create({0, 1'000, 1, 0}, 1'000), IsOk());
}

}  // namespace
}  // namespace tessera::scheduler
