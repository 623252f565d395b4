// Core (proto-free) types for one shard assigned to this executor and what
// became of it. Converted from/to protobuf in service/convert.cc only.
#ifndef TESSERA_EXECUTOR_CORE_ASSIGNMENT_H_
#define TESSERA_EXECUTOR_CORE_ASSIGNMENT_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace tessera::executor {

// One leased shard, as the scheduler sent it.
struct Assignment {
  std::string lease_id;
  std::string job_id;
  int64_t shard = 0;
  std::string task;
  std::string params_json;  // a JSON object as text; empty means {}
  int64_t start = 0;        // the range [start, end)
  int64_t end = 0;
  int32_t attempt = 0;
  absl::Duration timeout = absl::ZeroDuration();  // zero: no limit
  std::string items_json;  // items jobs: the batch as a JSON array; else empty
};

// How a shard ended, for the scheduler. Cancelled shards produce no outcome:
// their result is no longer wanted.
struct ShardOutcome {
  enum class Kind { kSucceeded, kFailed };

  std::string lease_id;
  std::string job_id;
  int64_t shard = 0;
  std::string task;
  Kind kind = Kind::kSucceeded;
  std::string result_json;  // kSucceeded: a JSON object as text
  std::string message;      // kFailed: a message a person can act on
  bool retryable = false;   // kFailed
  absl::Duration run_time;  // how long the handler ran
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_ASSIGNMENT_H_
