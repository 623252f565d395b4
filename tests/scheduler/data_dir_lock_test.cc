#include "scheduler/store/data_dir_lock.h"

#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;

TEST(DataDirLockTest, ASecondHolderIsRefusedWithTheDirAndTheFirstsPidUntilItLetsGo) {
  const testing::TempDir tmp("tessera-lock");
  const std::string dir = tmp.path() + "/data";  // created by the lock
  auto first = DataDirLock::Acquire(dir);
  ASSERT_THAT(first, IsOk());
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  std::ifstream lock_file(dir + "/LOCK");
  int64_t pid = 0;
  std::string holder_host;
  lock_file >> pid >> holder_host;
  EXPECT_EQ(pid, ::getpid());
  EXPECT_EQ(holder_host, host);

  auto second = DataDirLock::Acquire(dir);
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(second.status().message().find(
                absl::StrCat("data dir ", dir, " is in use by another scheduler (pid ",
                             ::getpid(), " on ", host, ", holding ", dir, "/LOCK)")),
            std::string::npos)
      << second.status();

  first->reset();
  auto third = DataDirLock::Acquire(dir);
  EXPECT_THAT(third, IsOk());
}

TEST(DataDirLockTest, ADataDirThatIsAFileIsAClearError) {
  const testing::TempDir tmp("tessera-lock");
  const std::string file = tmp.path() + "/a-file";
  std::ofstream(file) << "x";
  auto lock = DataDirLock::Acquire(file);
  EXPECT_THAT(lock, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(lock.status().message().find(file), std::string::npos) << lock.status();
}

}  // namespace
}  // namespace tessera::scheduler
