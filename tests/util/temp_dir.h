// A test's own temporary directory: made under the system temp dir (mkdtemp,
// "<prefix>-XXXXXX") and removed, with everything in it, when the TempDir is
// destroyed, so that a test, passing or failing, leaves nothing in /tmp.
// Whoever starts processes or opens stores in it must stop them first: declare
// the TempDir before the members that use it (members are destroyed in
// reverse order), or stop them in TearDown.
//
// TESSERA_KEEP_TEST_DIRS=1 keeps the directories for debugging; each kept one
// is named on stderr.
#ifndef TESSERA_TESTS_UTIL_TEMP_DIR_H_
#define TESSERA_TESTS_UTIL_TEMP_DIR_H_

#include <string>

namespace tessera::testing {

class TempDir {
 public:
  // Makes the directory; aborts the test program if it cannot.
  explicit TempDir(const std::string& prefix);
  ~TempDir();  // removes it, unless TESSERA_KEEP_TEST_DIRS=1
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // Whether TESSERA_KEEP_TEST_DIRS=1 asks to keep test directories.
  static bool KeepRequested();

 private:
  void Remove();

  std::string path_;  // empty once moved from
};

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_UTIL_TEMP_DIR_H_
