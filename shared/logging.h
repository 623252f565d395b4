// Process-wide logging setup on top of spdlog. Messages carry job, shard and
// executor ids as "key=value" tokens ("job=7f3a shard=12 ..."); with
// --log-format=json each line is one JSON object and those tokens also become
// fields of their own, so that log queries can filter on them.
#ifndef TESSERA_SHARED_LOGGING_H_
#define TESSERA_SHARED_LOGGING_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace tessera {

struct LogConfig {
  std::string format = "text";  // "text" or "json"
  std::string level = "info";   // trace, debug, info, warn, error
  absl::Status Validate() const;
};

// Installs the default logger (stderr). Call once from main(). `service` is
// "scheduler" or "executor".
absl::Status InitLogging(const LogConfig& config, const std::string& service);

// One JSON log line (no trailing newline):
//   {"time":"2026-01-02T03:04:05.678Z","level":"info","service":"scheduler",
//    "msg":"job=7f3a submitted ...","job":"7f3a"}
// The first job=, shard=, executor= and lease= tokens of `msg` become string
// fields (trailing ",;:" dropped). Invalid UTF-8 is replaced, never fatal.
std::string FormatJsonLogLine(absl::Time time, absl::string_view level,
                              absl::string_view service, absl::string_view msg);

}  // namespace tessera

#endif  // TESSERA_SHARED_LOGGING_H_
