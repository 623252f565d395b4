// Durations as people write them ("500ms", "2s", "10m", "1m30s"): the one
// reader the CLI's flags and the executor's task config share. The services'
// own flags are absl flags of type absl::Duration, which read the same syntax.
// Header-only, Abseil only (the handlers may use it).
#ifndef TESSERA_SHARED_DURATION_H_
#define TESSERA_SHARED_DURATION_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tessera {

// `text` in absl::ParseDuration's syntax, or nullopt when it is not one or is
// infinite ("inf", "-inf"): nobody means forever where a bound is asked for.
inline std::optional<absl::Duration> ParseFiniteDuration(absl::string_view text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration() ||
      d == -absl::InfiniteDuration()) {
    return std::nullopt;
  }
  return d;
}

}  // namespace tessera

#endif  // TESSERA_SHARED_DURATION_H_
