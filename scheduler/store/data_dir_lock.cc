#include "scheduler/store/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tessera::scheduler {
namespace {

// The pid the holder wrote into the lock file, or "unknown".
std::string HolderPid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  int64_t pid = 0;
  if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(buf), &pid) && pid > 0) {
    return absl::StrCat(pid);
  }
  return "unknown";
}

}  // namespace

absl::Status EnsureDataDir(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", data_dir, ": cannot create it: ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(
    const std::string& data_dir) {
  if (absl::Status s = EnsureDataDir(data_dir); !s.ok()) return s;
  const std::string path = (std::filesystem::path(data_dir) / "LOCK").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", data_dir, ": cannot open ", path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? HolderPid(fd) : "";
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("data dir ", data_dir, " is in use by another scheduler (pid ",
                       holder, ", holding ", path, "); run one scheduler per data dir"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", data_dir, ": cannot lock ", path, ": ", std::strerror(err)));
  }
  // For the message above, and for an operator asking who holds it.
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", data_dir, ": cannot write ", path, ": ", std::strerror(err)));
  }
  return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
}

DataDirLock::~DataDirLock() { ::close(fd_); }

}  // namespace tessera::scheduler
