#include "shared/version.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace tessera {

std::string VersionLine() {
  return absl::StrCat("tessera ", Version(), " (commit ", Commit(), ")");
}

std::string VersionTag() {
  if (std::strcmp(Commit(), "unknown") == 0) return Version();
  return absl::StrCat(Version(), "+", Commit());
}

}  // namespace tessera
