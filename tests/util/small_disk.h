// Test helper: a small tmpfs (a few MB) mounted on a directory the test made,
// so that a disk really fills up: files get ENOSPC, SQLite SQLITE_FULL. Needs
// root (CAP_SYS_ADMIN); where mounting is not allowed, Mount says why and the
// test skips. Unmounted (lazily, if still busy) when destroyed.
#ifndef TESSERA_TESTS_UTIL_SMALL_DISK_H_
#define TESSERA_TESTS_UTIL_SMALL_DISK_H_

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

namespace tessera::testing {

class SmallDisk {
 public:
  // Mounts a tmpfs of `bytes` on `dir` (which must exist and be the test's
  // own), or returns nullptr with the reason in `*why`.
  static std::unique_ptr<SmallDisk> Mount(const std::string& dir, int64_t bytes,
                                          std::string* why) {
    const std::string options = absl::StrCat("size=", bytes, ",mode=0755");
    if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) !=
        0) {
      *why = absl::StrCat("cannot mount a ", bytes, "-byte tmpfs on ", dir, ": ",
                          std::strerror(errno),
                          " (the test needs root, or CAP_SYS_ADMIN, to fill a disk)");
      return nullptr;
    }
    return std::unique_ptr<SmallDisk>(new SmallDisk(dir));
  }
  ~SmallDisk() {
    Free();
    if (::umount2(dir_.c_str(), 0) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  const std::string& path() const { return dir_; }

  // Fills what is left with one file, page by page, until the disk says
  // ENOSPC. Returns the bytes written.
  int64_t Fill() {
    const int fd =
        ::open(filler().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    static const char kPage[4096] = {};
    int64_t written = 0;
    while (true) {
      const ssize_t n = ::write(fd, kPage, sizeof(kPage));
      if (n <= 0) break;
      written += n;
    }
    ::close(fd);
    return written;
  }
  // Removes what Fill wrote.
  void Free() { ::unlink(filler().c_str()); }
  int64_t free_bytes() const {
    struct statvfs st;
    if (::statvfs(dir_.c_str(), &st) != 0) return -1;
    return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  }

 private:
  explicit SmallDisk(std::string dir) : dir_(std::move(dir)) {}
  std::string filler() const { return dir_ + "/.filler"; }

  std::string dir_;
};

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_UTIL_SMALL_DISK_H_
