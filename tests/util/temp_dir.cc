#include "tests/util/temp_dir.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include "tests/util/process.h"

namespace tessera::testing {

TempDir::TempDir(const std::string& prefix) : path_(MakeTempDir(prefix)) {}

TempDir::~TempDir() { Remove(); }

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::exchange(other.path_, "");
  }
  return *this;
}

bool TempDir::KeepRequested() {
  const char* v = std::getenv("TESSERA_KEEP_TEST_DIRS");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

void TempDir::Remove() {
  if (path_.empty()) return;
  const std::string path = std::exchange(path_, "");
  if (KeepRequested()) {
    std::fprintf(stderr, "TESSERA_KEEP_TEST_DIRS=1: kept %s\n", path.c_str());
    return;
  }
  // A process that was just killed may leave a child (a task's) that still
  // writes there for a moment: try again before giving up.
  std::error_code ec;
  for (int attempt = 0; attempt < 3; ++attempt) {
    ec.clear();
    std::filesystem::remove_all(path, ec);
    if (!ec) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "cannot remove the temp dir %s: %s\n", path.c_str(),
               ec.message().c_str());
}

}  // namespace tessera::testing
