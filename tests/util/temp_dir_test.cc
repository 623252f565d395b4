#include "tests/util/temp_dir.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace tessera::testing {
namespace {

namespace fs = std::filesystem;

// Sets TESSERA_KEEP_TEST_DIRS for one scope, and restores what was there.
class KeepDirs {
 public:
  explicit KeepDirs(const char* value) {
    if (const char* old = std::getenv("TESSERA_KEEP_TEST_DIRS")) old_ = old;
    if (value == nullptr) {
      unsetenv("TESSERA_KEEP_TEST_DIRS");
    } else {
      setenv("TESSERA_KEEP_TEST_DIRS", value, 1);
    }
  }
  ~KeepDirs() {
    if (old_) {
      setenv("TESSERA_KEEP_TEST_DIRS", old_->c_str(), 1);
    } else {
      unsetenv("TESSERA_KEEP_TEST_DIRS");
    }
  }

 private:
  std::optional<std::string> old_;
};

TEST(TempDirTest, MakesADirWithThePrefixUnderTheTempDirAndRemovesItWithItsContents) {
  KeepDirs keep(nullptr);
  std::string path;
  {
    TempDir dir("tessera-tempdir-test");
    path = dir.path();
    EXPECT_EQ(fs::path(path).parent_path(), fs::temp_directory_path());
    EXPECT_EQ(fs::path(path).filename().string().rfind("tessera-tempdir-test-", 0), 0u)
        << path;
    ASSERT_TRUE(fs::is_directory(path));
    fs::create_directories(path + "/a/b");
    std::ofstream(path + "/a/b/file") << "x";
  }
  EXPECT_FALSE(fs::exists(path)) << path;
}

TEST(TempDirTest, TwoDirsWithOnePrefixDiffer) {
  TempDir a("tessera-tempdir-test");
  TempDir b("tessera-tempdir-test");
  EXPECT_NE(a.path(), b.path());
}

TEST(TempDirTest, AMovedDirIsRemovedOnceByItsNewOwner) {
  KeepDirs keep(nullptr);
  std::string path;
  {
    std::optional<TempDir> owner;
    {
      TempDir dir("tessera-tempdir-test");
      path = dir.path();
      owner.emplace(std::move(dir));
    }
    EXPECT_TRUE(fs::is_directory(path));
    EXPECT_EQ(owner->path(), path);
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(TempDirTest, KeepTestDirsLeavesTheDir) {
  std::string path;
  {
    KeepDirs keep("1");
    TempDir dir("tessera-tempdir-test");
    path = dir.path();
  }
  EXPECT_TRUE(fs::is_directory(path));
  fs::remove_all(path);
}

}  // namespace
}  // namespace tessera::testing
