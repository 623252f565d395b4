// proto <-> core conversions for the executor, in one place.
#ifndef TESSERA_EXECUTOR_SERVICE_CONVERT_H_
#define TESSERA_EXECUTOR_SERVICE_CONVERT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "executor/core/assignment.h"
#include "tessera/v1/executor.pb.h"

namespace tessera::executor {

struct HelloInfo {
  std::string executor_id;
  std::string name;
  std::vector<std::string> tasks;
  int slots = 0;
  std::string version;
  std::vector<Assignment> held;  // shards still running from an earlier stream
  std::vector<std::string> queues;
};

Assignment FromProto(const v1::Assignment& proto);

v1::ExecutorMessage HelloMessage(const HelloInfo& hello);
v1::ExecutorMessage HeartbeatMessage();
// Successful outcomes only.
v1::ExecutorMessage ResultBatchMessage(const std::vector<ShardOutcome>& results);
v1::ExecutorMessage ProgressMessage(const std::string& lease_id, int64_t done,
                                    int64_t total);
// ShardResult or ShardFailure, by outcome kind.
v1::ExecutorMessage OutcomeMessage(const ShardOutcome& outcome);
v1::ExecutorMessage ReleaseMessage(const std::vector<std::string>& lease_ids);
v1::ExecutorMessage DrainingMessage();

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_CONVERT_H_
