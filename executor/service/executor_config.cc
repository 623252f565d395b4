#include "executor/service/executor_config.h"

#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tessera::executor {
namespace {

constexpr int kMaxSlots = 1024;

bool LooksLikeHostPort(const std::string& s) {
  const size_t colon = s.rfind(':');
  return colon != std::string::npos && colon > 0 && colon + 1 < s.size();
}

}  // namespace

absl::Status ExecutorConfig::Validate() const {
  // One address, or replicas as a comma-separated list (the leader is used).
  for (absl::string_view a : absl::StrSplit(scheduler_address, ',')) {
    if (!LooksLikeHostPort(std::string(a)) && !absl::StartsWith(a, "unix:")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--scheduler must be host:port or a comma-separated list of them "
                       "(got \"",
                       scheduler_address, "\")"));
    }
  }
  if (!metrics_listen.empty() && !LooksLikeHostPort(metrics_listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-listen must be host:port or empty (got \"", metrics_listen, "\")"));
  }
  if (slots < 1 || slots > kMaxSlots) {
    return absl::InvalidArgumentError(
        absl::StrCat("--slots must be between 1 and ", kMaxSlots, " (got ", slots, ")"));
  }
  if (name.empty()) return absl::InvalidArgumentError("--name must not be empty");
  if (queues.empty()) return absl::InvalidArgumentError("--queues must name a queue");
  for (const std::string& q : queues) {
    if (q.empty() || q.size() > 63) {
      return absl::InvalidArgumentError(
          absl::StrCat("--queues: \"", q, "\" is not a queue name (1-63 characters)"));
    }
  }
  if (keepalive < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--keepalive must be at least 1s (got ", absl::FormatDuration(keepalive), ")"));
  }
  if (drain_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--drain-timeout must be >= 0 (got ", absl::FormatDuration(drain_timeout), ")"));
  }
  return log.Validate();
}

std::string DefaultExecutorName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    return absl::StrCat("executor-", getpid());
  }
  return absl::StrCat(host, "-", getpid());
}

}  // namespace tessera::executor
