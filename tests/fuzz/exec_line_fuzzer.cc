// Fuzz target: an exec task's stdout (docs/tasks.md) through the line
// protocol, cut into lines as the exec handler does (a last line without a
// newline counts), stopping at the first protocol error as it does.
//
// Beyond "no crash": every message is valid UTF-8 (it travels in a proto3
// string to the scheduler); a result is an object that the executor can send
// (result.dump() is what it sends) and that reads back equal; progress is
// never negative.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "executor/handlers/exec_protocol.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tessera::executor::ExecLine;
  using tessera::fuzz::IsUtf8;
  using json = nlohmann::json;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  // Messages quote a line cut to a number of bytes that may split a character.
  const std::string quoted =
      tessera::executor::QuoteForMessage(input, size == 0 ? 0 : data[0] % 16);
  TESSERA_FUZZ_CHECK(IsUtf8(quoted), quoted);

  std::vector<absl::string_view> lines = absl::StrSplit(input, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  bool have_result = false;
  for (absl::string_view line : lines) {
    absl::StatusOr<ExecLine> parsed = tessera::executor::ParseExecLine(line);
    if (!parsed.ok()) {
      const std::string message(parsed.status().message());
      TESSERA_FUZZ_CHECK(IsUtf8(message), message);
      // The line is cut to 200 bytes, each of which may be escaped (\u0003).
      TESSERA_FUZZ_CHECK(message.size() < 6 * 200 + 200, message);
      break;
    }
    switch (parsed->kind) {
      case ExecLine::Kind::kBlank:
        break;
      case ExecLine::Kind::kProgress:
        TESSERA_FUZZ_CHECK(parsed->done >= 0 && parsed->total >= -1, std::string(line));
        break;
      case ExecLine::Kind::kResult: {
        TESSERA_FUZZ_CHECK(parsed->result.is_object(), std::string(line));
        const std::string sent = parsed->result.dump();
        TESSERA_FUZZ_CHECK(json::parse(sent, nullptr, false) == parsed->result,
                           absl::StrCat(line, "\nsent: ", sent));
        if (have_result) return 0;  // a second result line is a protocol error
        have_result = true;
        break;
      }
      case ExecLine::Kind::kError:
        TESSERA_FUZZ_CHECK(IsUtf8(parsed->error), std::string(line));
        break;
    }
  }
  return 0;
}
