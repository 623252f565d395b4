// A shard's result as an executor reports it, in the core's terms.
#ifndef TESSERA_SCHEDULER_SERVICE_EXECUTOR_RESULT_H_
#define TESSERA_SCHEDULER_SERVICE_EXECUTOR_RESULT_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace tessera::scheduler {

struct ExecutorResult {
  std::string lease_id;
  std::string job_id;  // with shard: the shard when the lease is unknown
  int64_t shard = 0;
  std::string result_json;
  absl::Duration run_time = absl::ZeroDuration();  // how long the task ran
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_EXECUTOR_RESULT_H_
