// What a handler sees of a shard, and how it reports progress.
#ifndef TESSERA_EXECUTOR_CORE_SHARD_TASK_H_
#define TESSERA_EXECUTOR_CORE_SHARD_TASK_H_

#include <cstdint>
#include <string>

#include "nlohmann/json.hpp"

namespace tessera::executor {

struct ShardTask {
  std::string job_id;
  int64_t shard = 0;
  int64_t start = 0;  // the range [start, end); end >= start
  int64_t end = 0;
  nlohmann::json params = nlohmann::json::object();  // always an object
  int32_t attempt = 0;
  // Items jobs: the batch (start/end are then item indexes); empty otherwise.
  bool has_items = false;
  nlohmann::json items = nlohmann::json::array();
};

// Handlers call Report as often as they like; the implementation throttles
// what goes on the wire. Used from the handler's thread only.
class ProgressReporter {
 public:
  virtual ~ProgressReporter() = default;
  virtual void Report(int64_t done, int64_t total) = 0;
};

// Drops every report (tests, tools).
class NullProgressReporter : public ProgressReporter {
 public:
  void Report(int64_t, int64_t) override {}
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_CORE_SHARD_TASK_H_
