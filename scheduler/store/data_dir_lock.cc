#include "scheduler/store/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tessera::scheduler {
namespace {

// What the holder wrote into the lock file: "<pid> <host>", or "unknown".
std::string Holder(int fd) {
  char buf[300] = {};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  const std::vector<absl::string_view> words = absl::StrSplit(
      absl::string_view(buf, n > 0 ? n : 0), absl::ByAnyChar(" \n"), absl::SkipEmpty());
  int64_t pid = 0;
  if (words.empty() || !absl::SimpleAtoi(words[0], &pid) || pid <= 0) return "unknown";
  return words.size() > 1 ? absl::StrCat("pid ", pid, " on ", words[1])
                          : absl::StrCat("pid ", pid);
}

// This host's name (in Kubernetes, the pod's), or "?".
std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "?";
  return name;
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
    const std::string holder = err == EWOULDBLOCK ? Holder(fd) : "";
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("data dir ", data_dir, " is in use by another scheduler (", holder,
                       ", holding ", path, "); run one scheduler per data dir"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", data_dir, ": cannot lock ", path, ": ", std::strerror(err)));
  }
  // For the message above, and for an operator asking who holds it.
  const std::string pid = absl::StrCat(::getpid(), " ", HostName(), "\n");
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
