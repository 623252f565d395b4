#include "scheduler/core/partition.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tessera::scheduler {
namespace {

using u128 = unsigned __int128;

u128 Length(const RangeSpec& s) {
  return static_cast<u128>(static_cast<__int128>(s.end) - static_cast<__int128>(s.start));
}

int64_t Saturate(u128 v) {
  constexpr auto kMax = static_cast<u128>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(v > kMax ? kMax : v);
}

}  // namespace

absl::StatusOr<RangePartition> RangePartition::Create(const RangeSpec& spec,
                                                      int64_t max_shards) {
  if (spec.end <= spec.start) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.range.end must be greater than spec.range.start (got start=", spec.start,
        ", end=", spec.end, ")"));
  }
  if (spec.shard_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.range.shard_size must be > 0 (got ", spec.shard_size, ")"));
  }
  if (spec.shard_count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.range.shard_count must be > 0 (got ", spec.shard_count, ")"));
  }
  if (spec.shard_size > 0 && spec.shard_count > 0) {
    return absl::InvalidArgumentError(
        "set only one of spec.range.shard_size and spec.range.shard_count");
  }
  if (spec.shard_size == 0 && spec.shard_count == 0) {
    return absl::InvalidArgumentError(
        "spec.range needs shard_size or shard_count (one of them > 0)");
  }
  const u128 len = Length(spec);
  u128 shards;
  if (spec.shard_count > 0) {
    shards = static_cast<u128>(spec.shard_count) < len
                 ? static_cast<u128>(spec.shard_count)
                 : len;
  } else {
    const auto size = static_cast<u128>(spec.shard_size);
    shards = (len + size - 1) / size;
  }
  if (shards > static_cast<u128>(max_shards)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.range: ", Saturate(shards), " shards exceed the limit of ", max_shards,
        " shards per job (raise spec.range.shard_size or lower spec.range.shard_count)"));
  }
  RangePartition p;
  p.spec_ = spec;
  p.num_shards_ = static_cast<int64_t>(shards);
  return p;
}

ShardBounds RangePartition::Bounds(int64_t index) const {
  const __int128 start = spec_.start;
  const u128 len = Length(spec_);
  const auto i = static_cast<u128>(index);
  if (spec_.shard_count > 0) {
    const auto n = static_cast<u128>(num_shards_);
    // floor(i * len / n) without overflow: i < n <= 2^63 and len < 2^64, so
    // the product fits in 128 bits.
    const u128 lo = i * len / n;
    const u128 hi = (i + 1) * len / n;
    return {static_cast<int64_t>(start + static_cast<__int128>(lo)),
            static_cast<int64_t>(start + static_cast<__int128>(hi))};
  }
  const auto size = static_cast<u128>(spec_.shard_size);
  const u128 lo = i * size;
  const u128 hi = lo + size < len ? lo + size : len;
  return {static_cast<int64_t>(start + static_cast<__int128>(lo)),
          static_cast<int64_t>(start + static_cast<__int128>(hi))};
}

int64_t RangePartition::Items(int64_t index) const {
  const ShardBounds b = Bounds(index);
  return Saturate(static_cast<u128>(static_cast<__int128>(b.end) - b.start));
}

int64_t RangePartition::TotalItems() const { return Saturate(Length(spec_)); }

}  // namespace tessera::scheduler
