// The version of this build: the project's VERSION (CMakeLists.txt) and the
// git commit the sources were built from, read at build time by
// shared/version.cmake ("unknown" outside a git checkout, unless the build
// passes -DTESSERA_COMMIT=...). Thread-safe; the values never change.
#ifndef TESSERA_SHARED_VERSION_H_
#define TESSERA_SHARED_VERSION_H_

#include <string>

namespace tessera {

// "0.1.0".
const char* Version();
// The short commit hash, with "-dirty" when tracked files differed from it at
// build time; "unknown" when it could not be read.
const char* Commit();
// "tessera 0.1.0 (commit abc1234)": what every binary prints for --version.
std::string VersionLine();
// "0.1.0+abc1234" (semver build metadata; just "0.1.0" when the commit is
// unknown): what an executor reports in Hello and ListExecutors shows.
std::string VersionTag();

}  // namespace tessera

#endif  // TESSERA_SHARED_VERSION_H_
