// Helpers shared by the libFuzzer targets in tests/fuzz (see README "Fuzzing").
#ifndef TESSERA_TESTS_FUZZ_FUZZ_UTIL_H_
#define TESSERA_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "shared/json_limits.h"

namespace tessera::fuzz {

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
