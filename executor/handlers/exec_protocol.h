// The stdout side of the exec shard protocol (docs/tasks.md): one JSON object
// per line, {"progress": {...}}, {"result": {...}} or {"error": "...", ...}.
#ifndef TESSERA_EXECUTOR_HANDLERS_EXEC_PROTOCOL_H_
#define TESSERA_EXECUTOR_HANDLERS_EXEC_PROTOCOL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tessera::executor {

struct ExecLine {
  enum class Kind { kBlank, kProgress, kResult, kError };
  Kind kind = Kind::kBlank;
  int64_t done = 0;       // kProgress
  int64_t total = -1;     // kProgress; -1 when the line gave none
  nlohmann::json result;  // kResult: an object
  std::string error;      // kError
  bool retryable = true;  // kError
};

// InvalidArgument with a message that quotes the line (cut to ~200 bytes)
// when it is not one of the forms above.
absl::StatusOr<ExecLine> ParseExecLine(absl::string_view line);

// `text` as a quoted JSON string, cut to `max_bytes` (with "..." when cut).
std::string QuoteForMessage(absl::string_view text, size_t max_bytes = 200);

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_HANDLERS_EXEC_PROTOCOL_H_
