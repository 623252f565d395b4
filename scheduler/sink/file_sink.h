// Writes results to <dir>/<job-id>.json (version 1) or <job-id>.v<N>.json:
// temp file, fsync, rename, fsync of the directory, so a crash leaves either
// no file or the whole file. A file already there with other bytes is never
// replaced: Stage refuses with FAILED_PRECONDITION. The directory fsync is Sync's: one
// covers every rename before it. The temp files are made ahead of need (Prepare: empty
// ".spare-*" files, also found again after a restart): creating a file can cost a
// millisecond on a busy disk, filling one that exists much less.
// Errors: ENOSPC and EDQUOT are RESOURCE_EXHAUSTED; EIO, EROFS and other
// errors that may pass are UNAVAILABLE (retried, result_sink.h); the rest
// are INTERNAL.
#ifndef TESSERA_SCHEDULER_SINK_FILE_SINK_H_
#define TESSERA_SCHEDULER_SINK_FILE_SINK_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "scheduler/sink/result_sink.h"

namespace tessera::scheduler {

class FileSink : public ResultSink {
 public:
  // Creates `dir` (and parents) if needed.
  static absl::StatusOr<std::unique_ptr<FileSink>> Create(const std::string& dir);

  // Stage: the temp file, written and fsynced; Publish: rename; Sync: fsync of
  // the directory when something was renamed since the last one.
  absl::StatusOr<StagedResult> Stage(const std::string& job_id, int32_t version,
                                     const std::string& bytes) override;
  absl::StatusOr<PersistedResult> Publish(const StagedResult& staged) override;
  absl::Status Sync() override;
  // A rename on a local file system (ext4, xfs, btrfs, tmpfs, overlay, f2fs,
  // zfs); not on a network one (NFS, SMB, FUSE, ...), where a rename may hang.
  bool PublishesQuickly() const override { return local_; }
  // Whether statfs's f_type names a local file system (see PublishesQuickly).
  static bool IsLocalFileSystem(int64_t statfs_type);
  void Prepare() override;
  absl::StatusOr<std::string> Read(const std::string& location) override;
  absl::StatusOr<int64_t> Size(const std::string& location) override;
  absl::Status Delete(const std::string& location) override;
  int64_t writes() const override { return writes_.load(); }

 private:
  explicit FileSink(std::string dir) : dir_(std::move(dir)) {}
  absl::Status CheckLocation(const std::string& location) const;
  // A spare file to fill, or "" when none is left.
  std::string TakeSpare();

  std::string dir_;
  bool local_ = false;
  std::atomic<int64_t> writes_{0};
  // Publish calls so far, and how many of them the last directory fsync covered.
  std::atomic<int64_t> published_{0};
  absl::Mutex sync_mu_;  // one directory fsync at a time
  int64_t synced_ ABSL_GUARDED_BY(sync_mu_) = 0;
  absl::Mutex mu_;
  std::vector<std::string> spares_ ABSL_GUARDED_BY(mu_);
  int creating_ ABSL_GUARDED_BY(mu_) = 0;  // spares being made by Prepare
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SINK_FILE_SINK_H_
