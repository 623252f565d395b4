// Lets users spell flags with dashes (--data-dir) as well as Abseil's
// underscores (--data_dir): rewrites the name part of each "--flag[=value]"
// argument in place before absl::ParseCommandLine. Call from main() only.
#ifndef TESSERA_SHARED_FLAG_NAMES_H_
#define TESSERA_SHARED_FLAG_NAMES_H_

#include <cstring>

namespace tessera {

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

}  // namespace tessera

#endif  // TESSERA_SHARED_FLAG_NAMES_H_
