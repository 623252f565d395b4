// The embedded default Store: one SQLite database, <data-dir>/tessera.db, in
// WAL mode. The runtime commits many records per transaction (group commit).
// With synchronous=NORMAL (the default) a commit survives a crash of the
// scheduler process; a durable commit (the one before each sink write: one
// fsync of the WAL), Flush() (a WAL checkpoint) and synchronous=FULL (one
// fsync per commit) also survive power loss.
//
// Space: the database uses incremental auto-vacuum (a database made by an
// older scheduler is converted once, by a VACUUM at open); Compact() hands
// the pages of deleted rows back and truncates the WAL.
//
// Errors (store.h): SQLITE_FULL is RESOURCE_EXHAUSTED; busy, locked and I/O
// errors are UNAVAILABLE; a job record or shard result too big for SQLite
// (SQLITE_TOOBIG) is a RecordError naming its job.
#ifndef TESSERA_SCHEDULER_STORE_SQLITE_STORE_H_
#define TESSERA_SCHEDULER_STORE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "scheduler/store/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tessera::scheduler {

// Thread-safe (one connection behind a mutex).
class SqliteStore : public Store {
 public:
  // Opens or creates the database in `data_dir` and checks that it is a
  // Tessera store; a clear error names the file otherwise.
  // `synchronous` is "normal" or "full".
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const std::string& data_dir, const std::string& synchronous = "full");
  ~SqliteStore() override;

  using Store::Commit;
  absl::Status Commit(const StoreWrite& write, bool durable) override;
  absl::Status Flush() override;
  absl::StatusOr<StoredState> Load() override;
  absl::StatusOr<StoredState> LoadUnfinished() override;
  absl::StatusOr<std::optional<JobRecord>> LoadJob(const std::string& id) override;
  absl::StatusOr<std::vector<JobRecord>> ListFinishedJobs(const JobFilter& filter,
                                                          int64_t before,
                                                          int limit) override;
  absl::StatusOr<std::vector<StoredResult>> LoadResults(
      const std::string& job_id) override;
  absl::StatusOr<std::string> InitMeta(const std::string& key,
                                       const std::string& value_if_new) override;
  // Hands free pages back (incremental vacuum, a bounded number per call) and
  // truncates the WAL (checkpoint TRUNCATE).
  absl::Status Compact() override;
  absl::StatusOr<RowCounts> CountRows() override;
  std::string name() const override { return "sqlite"; }
  const std::string& path() const { return path_; }
  // The connection's PRAGMA synchronous now (1 NORMAL, 2 FULL), for tests.
  absl::StatusOr<int> Synchronous();
  // Records and results over `bytes` are then too big (SQLITE_LIMIT_LENGTH).
  void SetMaxRecordBytesForTesting(int bytes);

 private:
  SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The connection's last error, its code mapped as store.h says.
  absl::Status Error(const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecordTooBig(const std::string& job_id, const std::string& what,
                            size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CommitLocked(const StoreWrite& write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the rows of `job_id` that `stmt` (bound to it) selects.
  absl::Status DeleteRows(sqlite3_stmt* stmt, const std::string& job_id, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings a database written by an older scheduler to this schema.
  absl::Status Migrate(int from_version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds and fills the jobs table's summary columns (schema 3).
  absl::Status MigrateColumns() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The shard results and failed shards of the unfinished jobs in `state`.
  absl::Status LoadShardRows(StoredState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs a statement that returns no rows, then resets it.
  absl::Status Step(sqlite3_stmt* stmt, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  // Prepared once in Open: commits are hot.
  sqlite3_stmt* insert_job_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* insert_result_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* insert_failed_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* delete_job_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* delete_results_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* delete_failed_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* begin_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* commit_ ABSL_GUARDED_BY(mu_) = nullptr;
  // A durable commit on a "normal" store runs with synchronous=FULL for that
  // commit alone, so that its WAL is fsynced (one fsync instead of a
  // checkpoint's two); a "full" store always does.
  bool sync_full_always_ = false;
  const std::string path_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_STORE_SQLITE_STORE_H_
