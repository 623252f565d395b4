// The Store on PostgreSQL (--store=postgres): the store for production and,
// later, for two scheduler replicas with one leader (issue 21). Talks to the
// server through Debian's libpq, one connection behind a mutex.
//
// Durability: a commit is durable when COMMIT returns, as long as the session
// runs with synchronous_commit=on, which the store sets itself for every
// commit with sync "full" (the default) and for every durable commit and
// Flush() with "normal" (which otherwise commits with synchronous_commit=off:
// a commit then survives a crash of the scheduler, and the server's WAL keeps
// the order, so a durable commit also makes every earlier one durable).
//
// Errors (store.h): a lost connection, a server shutting down or starting, a
// serialization failure or deadlock, a read-only server and a cancelled
// statement are UNAVAILABLE, and the next call reconnects; disk full (SQLSTATE
// 53100) is RESOURCE_EXHAUSTED; a job record or shard result too big for one
// field (PostgreSQL takes up to 1 GB) is a RecordError naming its job.
//
// The schema is created and migrated at Open, under an advisory lock (two
// schedulers starting at once migrate once), and its version is kept in
// tessera_meta ('schema_version'). A newer schema than this binary reads is
// refused. Tables: tessera_meta, tessera_jobs, tessera_results (schema 1),
// tessera_failed_shards (schema 2), tessera_leader (schema 3); schema 4 adds a
// finished job's summary columns to tessera_jobs (queue, created, ended,
// idem_key) and the indexes by (state, seq) (covering the summary, so a start
// decodes no finished record) and (queue, seq) that page ListJobs in O(page).
// Deletions a StoreWrite implies (a
// SUCCEEDED job's results, a finished job's failed shards, every row of a
// retired job) happen in the transaction of the record that implies them.
//
// The connection string (libpq conninfo or URI) may carry a password; every
// message the store makes shows it redacted (RedactConninfo) and never names
// the password itself.
#ifndef TESSERA_SCHEDULER_STORE_POSTGRES_STORE_H_
#define TESSERA_SCHEDULER_STORE_POSTGRES_STORE_H_

#include <memory>
#include <string>
#include <type_traits>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/store/postgres_conninfo.h"
#include "scheduler/store/store.h"

struct pg_conn;
struct pg_result;

namespace tessera::scheduler {

struct PostgresOptions {
  // libpq conninfo ("host=… dbname=…") or URI ("postgresql://user@host/db").
  std::string url;
  // Used when the URL has none (libpq also reads PGPASSWORD and ~/.pgpass).
  std::string password;
  // "full": every commit waits for the server's WAL flush; "normal": only
  // durable commits and Flush() do.
  std::string sync = "full";
  // Seconds to wait for a connection (libpq connect_timeout) unless the URL says.
  int connect_timeout_seconds = 5;
  // The server ends a session idle this long inside a transaction (a paused
  // scheduler), releasing its locks; under leader election, the lease TTL.
  absl::Duration idle_in_transaction_timeout = absl::Seconds(5);
};

// Thread-safe (one connection behind a mutex).
class PostgresStore : public Store {
 public:
  // Connects, then creates or migrates the schema. A server that cannot be
  // reached is UNAVAILABLE; a refused login or a schema newer than this binary
  // FAILED_PRECONDITION.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(
      const PostgresOptions& options);
  ~PostgresStore() override;

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
  // Not fenced: it changes nothing once a value is kept, so a deposed leader
  // cannot change what the leader reads.
  absl::StatusOr<std::string> InitMeta(const std::string& key,
                                       const std::string& value_if_new) override;
  // A no-op: PostgreSQL's autovacuum gives the space of deleted rows back to
  // the table in the background, and a VACUUM from here would only compete
  // with it (and VACUUM FULL locks the tables). See the .cc.
  absl::Status Compact() override;
  absl::StatusOr<RowCounts> CountRows() override;
  std::string name() const override { return "postgres"; }

  // The fence (for leader election): a statement run first in every
  // transaction that changes state (Commit, Flush), returning one row with one
  // boolean. Unless it is true the transaction is rolled back and the call
  // fails with ABORTED ("fenced"). Empty (the default): no check. `epoch` is
  // written with every job record (tessera_jobs.epoch), so the finalizing
  // record names the leader epoch whose fenced commit wrote it.
  void SetFenceSql(std::string sql, int64_t epoch = 0);

  // Schema migrations this Open applied (0 when the schema was current).
  int migrations_applied() const { return migrations_applied_; }
  static int SchemaVersion();
  // The URL with its password hidden, for messages.
  const std::string& redacted_url() const { return redacted_url_; }
  // Records and results over `bytes` are then too big.
  void SetMaxRecordBytesForTesting(size_t bytes);

 private:
  struct Param {
    const char* data;
    int length;  // ignored for text
    bool binary;
  };
  using Rows = std::unique_ptr<pg_result, void (*)(pg_result*)>;

  explicit PostgresStore(const PostgresOptions& options);
  absl::Status PrepareLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs prepared statement `statement` (postgres_store.cc: kStatements),
  // results in binary; an error is mapped by Check.
  absl::StatusOr<Rows> RunLocked(int statement, const std::vector<Param>& params,
                                 const std::string& what, const std::string& job_id = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecordTooBig(const std::string& job_id, const std::string& what,
                            size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Connects (again) if there is no healthy connection, and prepares the statements.
  absl::Status EnsureConnectedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MigrateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs simple SQL (no parameters) that returns no rows.
  absl::Status ExecLocked(const char* sql, const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The status of `res` (consumed), mapped as store.h says; a broken
  // connection is dropped so that the next call reconnects.
  absl::Status Check(pg_result* res, int want, const std::string& what,
                     const std::string& job_id = "") ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CommitLocked(const StoreWrite& write, bool durable)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the rows of `job_id` with statement `statement`.
  absl::Status DeleteRowsLocked(int statement, const std::string& job_id,
                                const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FenceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Inserts shard results pipelined (libpq pipeline mode): one round trip per
  // 256 rows instead of one per row. Errors map as RunLocked maps them.
  absl::Status InsertResultsLocked(const std::vector<const SaveResultOp*>& results)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<StoredResult>> LoadResultsLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The shard results and failed shards of the unfinished jobs in `state`.
  absl::Status LoadShardRowsLocked(StoredState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Decodes the record in column `col` of row `row`.
  absl::StatusOr<JobRecord> DecodeLocked(pg_result* rows, int row, int col)
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void RollbackLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` (returning absl::Status or absl::StatusOr) between `begin_sql`
  // and COMMIT; when anything fails, COMMIT included, rolls back and returns the
  // error. `begin` and `commit` name the two steps in messages. A lambda body
  // calls mu_.AssertHeld(): the analysis does not follow the lock into it.
  template <typename Body>
  std::invoke_result_t<Body&> TransactionLocked(const char* begin_sql,
                                                const std::string& begin,
                                                const std::string& commit, Body body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `text` with the password (when known) replaced.
  std::string ScrubLocked(std::string text) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const PostgresOptions options_;
  const std::string redacted_url_;
  int migrations_applied_ = 0;
  absl::Mutex mu_;
  pg_conn* conn_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool schema_ready_ ABSL_GUARDED_BY(mu_) = false;
  std::string password_seen_ ABSL_GUARDED_BY(mu_);
  std::string fence_sql_ ABSL_GUARDED_BY(mu_);
  int64_t fence_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  size_t max_record_bytes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_STORE_POSTGRES_STORE_H_
