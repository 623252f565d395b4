// Helpers shared by the libFuzzer targets in tests/fuzz (see README "Fuzzing").
#ifndef TESSERA_TESTS_FUZZ_FUZZ_UTIL_H_
#define TESSERA_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tessera::fuzz {

// Nesting the harnesses feed to the code under test. Deeper JSON overflows
// the stack in nlohmann::json's recursive copy, dump and comparison until the
// depth limits of issue 16 (item 1, --max-json-depth, at most 1000) are in
// place; the harnesses skip such inputs so that a bounded run finds other
// things. The deep inputs wait in tests/fuzz/pending/ and are replayed with
// TESSERA_FUZZ_DEEP_JSON set (ctest label "pending"), which turns the skip off.
inline constexpr int kMaxNesting = 1000;

inline bool DeepJsonAllowed() {
  static const bool allowed = std::getenv("TESSERA_FUZZ_DEEP_JSON") != nullptr;
  return allowed;
}

// The deepest nesting of '[' and '{' outside JSON strings: an upper bound of
// the depth of any JSON value parsed from `text`.
inline int MaxNesting(absl::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// Whether the harness skips `input` (see kMaxNesting).
inline bool SkipDeepJson(absl::string_view input) {
  return !DeepJsonAllowed() && MaxNesting(input) > kMaxNesting;
}

// What a proto3 string field must hold (gRPC refuses to send anything else).
inline bool IsUtf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

[[noreturn]] inline void CheckFailed(const char* condition, const char* file, int line,
                                     const std::string& detail) {
  std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n%s\n", file, line, condition,
               detail.c_str());
  std::abort();  // libFuzzer saves the input as crash-<sha1>
}

}  // namespace tessera::fuzz

// A property of the code under test; `detail` (a std::string expression) is
// printed when it does not hold.
#define TESSERA_FUZZ_CHECK(condition, detail)                                 \
  do {                                                                        \
    if (!(condition)) {                                                       \
      ::tessera::fuzz::CheckFailed(#condition, __FILE__, __LINE__, (detail)); \
    }                                                                         \
  } while (false)

#endif  // TESSERA_TESTS_FUZZ_FUZZ_UTIL_H_
