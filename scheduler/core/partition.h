// Splits a numeric range [start, end) into shards computed on demand: a job of
// 10^6 shards costs no memory per shard.
#ifndef TESSERA_SCHEDULER_CORE_PARTITION_H_
#define TESSERA_SCHEDULER_CORE_PARTITION_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace tessera::scheduler {

struct RangeSpec {
  int64_t start = 0;
  int64_t end = 0;
  int64_t shard_size = 0;  // exactly one of shard_size and shard_count is > 0
  int64_t shard_count = 0;
};

struct ShardBounds {
  int64_t start = 0;
  int64_t end = 0;
  bool operator==(const ShardBounds& o) const { return start == o.start && end == o.end; }
};

// Immutable and cheap to copy. Thread-compatible.
class RangePartition {
 public:
  // Validates `spec` (field names in errors are those of the public API) and
  // refuses more than `max_shards` shards.
  static absl::StatusOr<RangePartition> Create(const RangeSpec& spec, int64_t max_shards);

  RangePartition() = default;
  int64_t num_shards() const { return num_shards_; }
  // Requires 0 <= index < num_shards().
  ShardBounds Bounds(int64_t index) const;
  // Numbers in the shard; saturates at INT64_MAX for the widest ranges.
  int64_t Items(int64_t index) const;
  // Numbers in the whole range, saturated like Items.
  int64_t TotalItems() const;
  const RangeSpec& spec() const { return spec_; }

 private:
  RangeSpec spec_;
  int64_t num_shards_ = 0;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_PARTITION_H_
