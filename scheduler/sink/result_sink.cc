#include "scheduler/sink/result_sink.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tessera::scheduler {

bool ValidJobId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

std::string ResultName(const std::string& job_id, int32_t version) {
  return version <= 1 ? absl::StrCat(job_id, ".json")
                      : absl::StrCat(job_id, ".v", version, ".json");
}

absl::Status DifferentResultError(const std::string& location,
                                  const std::string& found_sha256,
                                  const std::string& want_sha256) {
  return absl::FailedPreconditionError(
      absl::StrCat(location, " already holds a different result (sha256 ", found_sha256,
                   "; this result's is ", want_sha256, "); it is not overwritten"));
}

}  // namespace tessera::scheduler
