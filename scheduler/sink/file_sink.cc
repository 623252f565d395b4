#include "scheduler/sink/file_sink.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "shared/ids.h"
#include "shared/sha256.h"
#include "spdlog/spdlog.h"

namespace tessera::scheduler {
namespace {

// Spare files kept ready for results.
constexpr int kSpares = 8;
constexpr char kSparePrefix[] = ".spare-";

// The code says what the runtime does next (result_sink.h): a full disk or
// quota and errors that may pass are retried with the same bytes; the rest
// fail the job.
absl::Status Errno(const std::string& what) {
  const int err = errno;
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case EIO:
    case EAGAIN:
    case EBUSY:
    case EINTR:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EROFS:  // e.g. remounted read-only after an error, until an operator acts
    case ETIMEDOUT:
    case ESTALE:
      code = absl::StatusCode::kUnavailable;
      break;
    default:
      break;
  }
  return absl::Status(code, absl::StrCat(what, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileSink>> FileSink::Create(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("result directory ", dir, ": ", ec.message()));
  }
  std::unique_ptr<FileSink> sink(
      new FileSink(std::filesystem::absolute(dir).lexically_normal().string()));
  struct statfs fs {};
  sink->local_ = ::statfs(sink->dir_.c_str(), &fs) == 0 && IsLocalFileSystem(fs.f_type);
  {
    // Spares left by an earlier run are used first (whatever they hold is
    // truncated when one is filled).
    absl::MutexLock lock(&sink->mu_);
    for (const auto& e : std::filesystem::directory_iterator(sink->dir_, ec)) {
      if (absl::StartsWith(e.path().filename().string(), kSparePrefix)) {
        sink->spares_.push_back(e.path().string());
      }
    }
  }
  sink->Prepare();
  return sink;
}

bool FileSink::IsLocalFileSystem(int64_t statfs_type) {
  constexpr int64_t kZfsMagic = 0x2fc12fc1;  // not in linux/magic.h
  switch (statfs_type) {
    case EXT4_SUPER_MAGIC:  // also ext2 and ext3
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case OVERLAYFS_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC:
    case kZfsMagic:
      return true;
    default:
      return false;
  }
}

void FileSink::Prepare() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (static_cast<int>(spares_.size()) + creating_ >= kSpares) return;
      ++creating_;
    }
    // No fsync: a spare that a crash takes away is simply not found again; the
    // directory fsync after a result's rename covers the entry it is renamed from.
    const std::string path = absl::StrCat(dir_, "/", kSparePrefix, RandomHexId(8));
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
    absl::MutexLock lock(&mu_);
    --creating_;
    if (fd < 0) {
      spdlog::warn("result directory {}: cannot make a spare file: {}", dir_,
                   std::strerror(errno));
      return;
    }
    spares_.push_back(path);
  }
}

std::string FileSink::TakeSpare() {
  absl::MutexLock lock(&mu_);
  if (spares_.empty()) return "";
  std::string path = std::move(spares_.back());
  spares_.pop_back();
  return path;
}

absl::StatusOr<StagedResult> FileSink::Stage(const std::string& job_id, int32_t version,
                                             const std::string& bytes) {
  if (!ValidJobId(job_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid job id \"", job_id, "\""));
  }
  const std::string final_path = absl::StrCat(dir_, "/", ResultName(job_id, version));
  const std::string sha = Sha256Hex(bytes);
  if (absl::StatusOr<std::string> existing = Read(final_path); existing.ok()) {
    const std::string existing_sha = Sha256Hex(*existing);
    if (existing_sha == sha) return StagedResult{{final_path, sha}, ""};  // a restart
    // Two different answers for one job: never overwrite one with the other.
    return DifferentResultError(final_path, existing_sha, sha);
  }
  std::string tmp_path = TakeSpare();
  int fd = tmp_path.empty()
               ? -1
               : ::open(tmp_path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    tmp_path = absl::StrCat(dir_, "/.", job_id, ".json.tmp-", RandomHexId(4));
    fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  }
  if (fd < 0) return Errno(absl::StrCat("open ", tmp_path));
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno(absl::StrCat("write ", tmp_path));
      ::close(fd);
      ::unlink(tmp_path.c_str());
      return s;
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = Errno(absl::StrCat("fsync ", tmp_path));
    ::close(fd);
    ::unlink(tmp_path.c_str());
    return s;
  }
  ::close(fd);
  return StagedResult{{final_path, sha}, tmp_path};
}

absl::StatusOr<PersistedResult> FileSink::Publish(const StagedResult& staged) {
  // Found in place after a restart: its directory entry may predate a crash
  // and not yet be durable, so the next Sync covers it too.
  if (staged.staged_at.empty()) {
    published_.fetch_add(1);
    return staged.result;
  }
  const std::string& final_path = staged.result.location;
  if (!absl::StartsWith(final_path, dir_ + "/") ||
      !absl::StartsWith(staged.staged_at, dir_ + "/.")) {
    return absl::InvalidArgumentError(
        absl::StrCat("staged result ", staged.staged_at, " is not one of ", dir_));
  }
  if (::rename(staged.staged_at.c_str(), final_path.c_str()) != 0) {
    absl::Status s = Errno(absl::StrCat("rename to ", final_path));
    ::unlink(staged.staged_at.c_str());
    return s;
  }
  writes_.fetch_add(1);
  published_.fetch_add(1);
  return staged.result;
}

absl::Status FileSink::Sync() {
  absl::MutexLock lock(&sync_mu_);
  const int64_t published = published_.load();
  if (published == synced_) return absl::OkStatus();
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Errno(absl::StrCat("open directory ", dir_));
  const bool ok = ::fsync(dfd) == 0;
  absl::Status s = ok ? absl::OkStatus() : Errno(absl::StrCat("fsync directory ", dir_));
  ::close(dfd);
  if (ok) synced_ = published;
  return s;
}

absl::Status FileSink::CheckLocation(const std::string& location) const {
  // The scheduler's records and its disk disagree.
  if (absl::StartsWith(location, dir_ + "/")) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("result location ", location, " is outside ", dir_));
}

absl::StatusOr<int64_t> FileSink::Size(const std::string& location) {
  if (absl::Status s = CheckLocation(location); !s.ok()) return s;
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(location, ec);
  if (ec) {
    return absl::DataLossError(
        absl::StrCat("result file ", location, ": ", ec.message()));
  }
  return static_cast<int64_t>(size);
}

absl::Status FileSink::Delete(const std::string& location) {
  if (absl::Status s = CheckLocation(location); !s.ok()) return s;
  std::error_code ec;
  std::filesystem::remove(location, ec);  // false, no error: already gone
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("result file ", location, ": delete: ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FileSink::Read(const std::string& location) {
  if (absl::Status s = CheckLocation(location); !s.ok()) return s;
  std::ifstream in(location, std::ios::binary);
  if (!in) {
    return absl::DataLossError(absl::StrCat("result file ", location, " is missing"));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace tessera::scheduler
