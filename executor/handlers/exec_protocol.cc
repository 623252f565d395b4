#include "executor/handlers/exec_protocol.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "shared/json_limits.h"

namespace tessera::executor {
namespace {

using json = nlohmann::json;

absl::Status Bad(absl::string_view line, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(why, ": ", QuoteForMessage(line)));
}

bool NonNegativeInt(const json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(v.get<uint64_t>());
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = v.get<int64_t>();
    return true;
  }
  return false;
}

}  // namespace

std::string QuoteForMessage(absl::string_view text, size_t max_bytes) {
  std::string cut(text.substr(0, max_bytes));
  // Replace invalid UTF-8 rather than fail on it: this is for people to read.
  std::string quoted = json(cut).dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > max_bytes) absl::StrAppend(&quoted, "...");
  return quoted;
}

absl::StatusOr<ExecLine> ParseExecLine(absl::string_view line) {
  ExecLine out;
  const absl::string_view trimmed = absl::StripAsciiWhitespace(line);
  if (trimmed.empty()) return out;
  // Bounded before parsing: a deeply nested value would overflow the stack
  // when it is copied or sent on.
  if (JsonTextDepth(trimmed, kDefaultMaxJsonDepth) > kDefaultMaxJsonDepth) {
    return Bad(line, absl::StrCat("line nests deeper than ", kDefaultMaxJsonDepth,
                                  " levels (the limit)"));
  }
  json j = json::parse(trimmed.begin(), trimmed.end(), nullptr, false);
  if (j.is_discarded()) return Bad(line, "line is not JSON");
  if (!j.is_object()) return Bad(line, "line is not a JSON object");
  if (auto it = j.find("progress"); it != j.end()) {
    if (j.size() != 1) return Bad(line, "a progress line has only the key \"progress\"");
    if (!it->is_object()) return Bad(line, "\"progress\" must be an object");
    auto done = it->find("done");
    if (done == it->end() || !NonNegativeInt(*done, &out.done)) {
      return Bad(line, "progress.done must be an integer >= 0");
    }
    if (auto total = it->find("total"); total != it->end()) {
      if (!NonNegativeInt(*total, &out.total)) {
        return Bad(line, "progress.total must be an integer >= 0");
      }
    }
    out.kind = ExecLine::Kind::kProgress;
    return out;
  }
  if (auto it = j.find("result"); it != j.end()) {
    if (j.size() != 1) return Bad(line, "a result line has only the key \"result\"");
    if (!it->is_object()) return Bad(line, "\"result\" must be a JSON object");
    out.kind = ExecLine::Kind::kResult;
    out.result = std::move(*it);
    return out;
  }
  if (auto it = j.find("error"); it != j.end()) {
    if (!it->is_string()) return Bad(line, "\"error\" must be a string");
    out.error = it->get<std::string>();
    for (const auto& [key, v] : j.items()) {
      if (key == "error") continue;
      if (key != "retryable" || !v.is_boolean()) {
        return Bad(line,
                   "an error line has \"error\" and optionally \"retryable\": bool");
      }
      out.retryable = v.get<bool>();
    }
    out.kind = ExecLine::Kind::kError;
    return out;
  }
  return Bad(line, "line has none of \"progress\", \"result\", \"error\"");
}

}  // namespace tessera::executor
