// One scheduler per data directory: an exclusive flock(2) on
// <data-dir>/LOCK, held while the scheduler runs; the file says who holds it
// ("<pid> <hostname>"). Two schedulers on one
// store would both dispatch its jobs and both write their results; the
// second is refused at start instead. The kernel drops the lock when the
// holder exits, even by SIGKILL, so a crash leaves nothing stale behind.
#ifndef TESSERA_SCHEDULER_STORE_DATA_DIR_LOCK_H_
#define TESSERA_SCHEDULER_STORE_DATA_DIR_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tessera::scheduler {

// Creates `data_dir` (and its parents) if need be; FailedPrecondition naming
// it if it cannot be made.
absl::Status EnsureDataDir(const std::string& data_dir);

class DataDirLock {
 public:
  // Creates `data_dir` if need be and takes its lock. FailedPrecondition
  // (naming the directory and the holder's pid and host) if another process
  // holds it.
  static absl::StatusOr<std::unique_ptr<DataDirLock>> Acquire(
      const std::string& data_dir);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  const int fd_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_STORE_DATA_DIR_LOCK_H_
