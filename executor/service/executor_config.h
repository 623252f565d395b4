// The executor's configuration, filled from flags in main.cc.
#ifndef TESSERA_EXECUTOR_SERVICE_EXECUTOR_CONFIG_H_
#define TESSERA_EXECUTOR_SERVICE_EXECUTOR_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "shared/logging.h"

namespace tessera::executor {

struct ExecutorConfig {
  std::string scheduler_address = "127.0.0.1:50051";
  std::string metrics_listen = "0.0.0.0:9091";  // empty: no metrics endpoint
  int slots = 1;
  std::string name;  // empty: DefaultExecutorName()
  absl::Duration drain_timeout = absl::Seconds(30);
  // HTTP/2 keepalive: a ping after this long, and the connection is given up
  // when its answer takes longer than the same again, so a scheduler that
  // stops answering (paused, partitioned) is left within about twice this.
  absl::Duration keepalive = absl::Seconds(5);
  std::vector<std::string> queues = {"default"};
  LogConfig log;

  // InvalidArgument naming the flag at fault.
  absl::Status Validate() const;
};

// "<hostname>-<pid>".
std::string DefaultExecutorName();

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_EXECUTOR_CONFIG_H_
