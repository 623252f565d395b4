// Process-wide logging setup on top of spdlog. Log lines carry job, shard and
// executor ids as "key=value" fields (or JSON fields with --log-format=json).
#ifndef TESSERA_SHARED_LOGGING_H_
#define TESSERA_SHARED_LOGGING_H_

#include <string>

#include "absl/status/status.h"
#include "spdlog/spdlog.h"

namespace tessera {

struct LogConfig {
  std::string format = "text";  // "text" or "json"
  std::string level = "info";   // trace, debug, info, warn, error
  absl::Status Validate() const;
};

// Installs the default logger (stderr). Call once from main().
absl::Status InitLogging(const LogConfig& config, const std::string& component);

}  // namespace tessera

#endif  // TESSERA_SHARED_LOGGING_H_
