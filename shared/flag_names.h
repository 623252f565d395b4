// Start-up helpers for the services' main(): flag spelling, --help scope,
// --version and release-only mutex settings. Call from main() only.
#ifndef TESSERA_SHARED_FLAG_NAMES_H_
#define TESSERA_SHARED_FLAG_NAMES_H_

#include <cstring>
#include <string>

#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "shared/version.h"

namespace tessera {

// Lets users spell flags with dashes (--data-dir) as well as Abseil's
// underscores (--data_dir): rewrites the name part of each "--flag[=value]"
// argument in place before absl::ParseCommandLine.
inline void AcceptDashedFlagNames(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* a = argv[i];
    if (std::strcmp(a, "--") == 0) break;  // the rest are positional
    if (a[0] != '-' || a[1] != '-') continue;
    for (char* p = a + 2; *p != '\0' && *p != '='; ++p) {
      if (*p == '-') *p = '_';
    }
  }
}

// Common start-up of a service's main(): the usage message, --help listing
// the flags defined in the file ending with `main_file` (Abseil would look
// for <program>.cc), --version printing VersionLine() (Abseil's own names the
// program and the build type), dashed flag names, and — in release builds — no Abseil
// lock-order graph, which costs on every nested lock (debug builds and tests
// keep it).
inline void PrepareMain(int argc, char** argv, const std::string& usage_message,
                        const std::string& main_file) {
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  absl::SetProgramUsageMessage(usage_message);
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [main_file](absl::string_view file) {
    return absl::EndsWith(file, main_file);
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = [] { return VersionLine() + "\n"; };
  absl::SetFlagsUsageConfig(usage);
  AcceptDashedFlagNames(argc, argv);
}

}  // namespace tessera

#endif  // TESSERA_SHARED_FLAG_NAMES_H_
