#include "scheduler/store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "scheduler/store/data_dir_lock.h"

namespace tessera::scheduler {
namespace {

// 2: failed_shards; incremental auto-vacuum.
// 3: jobs.queue, created, ended, idem_key and the indexes by (state, seq) and
//    (queue, seq): finished jobs are listed and summarised without decoding.
constexpr int kSchemaVersion = 3;

// Free pages handed back per Compact() (4 KiB each): bounds its time; pages
// not handed back are reused by later writes anyway.
constexpr int kVacuumPagesPerCompact = 8192;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  state INTEGER NOT NULL,
  record TEXT NOT NULL,
  queue TEXT NOT NULL DEFAULT 'default',
  created INTEGER,
  ended INTEGER,
  idem_key TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS jobs_by_seq ON jobs (seq);
CREATE TABLE IF NOT EXISTS results (
  job_id TEXT NOT NULL,
  shard INTEGER NOT NULL,
  result TEXT NOT NULL,
  PRIMARY KEY (job_id, shard)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failed_shards (
  job_id TEXT NOT NULL,
  shard INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  bound_start INTEGER NOT NULL,
  bound_end INTEGER NOT NULL,
  error TEXT NOT NULL,
  PRIMARY KEY (job_id, shard)) WITHOUT ROWID;
)sql";

// After Migrate: an older jobs table has these columns only from then on.
// jobs_by_state covers a finished job's summary: a start reads the index
// alone (about 100 bytes a job), never the records.
constexpr char kIndexes[] = R"sql(
CREATE INDEX IF NOT EXISTS jobs_by_state
  ON jobs (state, seq, queue, created, ended, idem_key, id);
CREATE INDEX IF NOT EXISTS jobs_by_queue ON jobs (queue, seq);
)sql";

// Finished states are the numbers from kSucceeded up (types.h: append only).
static_assert(static_cast<int>(JobState::kSucceeded) == 2 &&
              static_cast<int>(JobState::kPartial) == 5);
constexpr char kFinished[] = "state >= 2";

// Times as stored in the columns: Unix nanoseconds, NULL for "not yet".
void BindTime(sqlite3_stmt* q, int i, absl::Time t) {
  if (t == absl::InfinitePast()) {
    sqlite3_bind_null(q, i);
  } else {
    sqlite3_bind_int64(q, i, absl::ToUnixNanos(t));
  }
}
absl::Time ColumnTime(sqlite3_stmt* q, int i) {
  if (sqlite3_column_type(q, i) == SQLITE_NULL) return absl::InfinitePast();
  return absl::FromUnixNanos(sqlite3_column_int64(q, i));
}
std::string ColumnText(sqlite3_stmt* q, int i) {
  const char* text = reinterpret_cast<const char*>(sqlite3_column_text(q, i));
  return text ? text : "";
}

// Finalizes a statement on every path.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

// What the caller should do next (store.h): SQLITE_FULL is a full disk;
// busy, locked and I/O errors may pass; the rest needs an operator.
absl::StatusCode ErrorCode(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_INTERRUPT:
    case SQLITE_CANTOPEN:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const std::string& data_dir, const std::string& synchronous) {
  if (synchronous != "normal" && synchronous != "full") {
    return absl::InvalidArgumentError(
        absl::StrCat("--store-sync must be normal or full (got \"", synchronous, "\")"));
  }
  if (absl::Status s = EnsureDataDir(data_dir); !s.ok()) return s;
  const std::string path = (std::filesystem::path(data_dir) / "tessera.db").string();
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      // Every call is made under mu_: SQLite's own connection mutex is not needed.
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::FailedPreconditionError(
        absl::StrCat("store ", path, ": cannot open: ", msg));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, path));
  store->sync_full_always_ = synchronous == "full";
  sqlite3_busy_timeout(db, 5000);
  absl::MutexLock lock(&store->mu_);
  const std::string sync = absl::StrCat("PRAGMA synchronous=", synchronous);
  // auto_vacuum first: it takes effect only in a database with no tables yet
  // (Migrate converts an older one).
  for (const char* sql : {"PRAGMA auto_vacuum=INCREMENTAL", "PRAGMA journal_mode=WAL",
                          sync.c_str(), kSchema}) {
    if (absl::Status s = store->Exec(sql); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          s.message(), " (is ", path, " a Tessera store? move it away to start afresh)"));
    }
  }
  // The schema version: written once, checked on every start.
  Stmt get(db, "SELECT value FROM meta WHERE key = 'schema_version'");
  if (!get.ok()) return store->Error("read schema version");
  if (sqlite3_step(get.get()) == SQLITE_ROW) {
    const int version = sqlite3_column_int(get.get(), 0);
    if (version > kSchemaVersion || version < 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("store ", path, " has schema version ", version,
                       "; this scheduler reads versions 1 to ", kSchemaVersion));
    }
    sqlite3_reset(get.get());
    if (version < kSchemaVersion) {
      if (absl::Status s = store->Migrate(version); !s.ok()) return s;
    }
  } else {
    if (absl::Status s =
            store->Exec(absl::StrCat("INSERT INTO meta VALUES ('schema_version', '",
                                     kSchemaVersion, "')")
                            .c_str());
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = store->Exec(kIndexes); !s.ok()) return s;
  // A job saved again is updated in place: its seq never changes, so the seq
  // index is not touched and the commit usually writes one page for it, where a
  // REPLACE (delete and insert: the row and both index entries) writes three
  // (WAL writes per single-shard job: 29 -> 15).
  if (sqlite3_prepare_v2(
          db,
          "INSERT INTO jobs (id, seq, state, record, queue, created, ended, "
          "idem_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (id) DO UPDATE "
          "SET state = excluded.state, record = excluded.record, "
          "ended = excluded.ended",
          -1, &store->insert_job_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "INSERT OR IGNORE INTO results (job_id, shard, result) VALUES "
                         "(?, ?, ?)",
                         -1, &store->insert_result_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "INSERT OR REPLACE INTO failed_shards "
                         "(job_id, shard, attempts, bound_start, bound_end, error) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         -1, &store->insert_failed_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "DELETE FROM jobs WHERE id = ?", -1, &store->delete_job_,
                         nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "DELETE FROM results WHERE job_id = ?", -1,
                         &store->delete_results_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "DELETE FROM failed_shards WHERE job_id = ?", -1,
                         &store->delete_failed_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &store->begin_, nullptr) !=
          SQLITE_OK ||
      sqlite3_prepare_v2(db, "COMMIT", -1, &store->commit_, nullptr) != SQLITE_OK) {
    return store->Error("prepare");
  }
  return store;
}

SqliteStore::~SqliteStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_finalize(insert_job_);
  sqlite3_finalize(insert_result_);
  sqlite3_finalize(insert_failed_);
  sqlite3_finalize(delete_job_);
  sqlite3_finalize(delete_results_);
  sqlite3_finalize(delete_failed_);
  sqlite3_finalize(begin_);
  sqlite3_finalize(commit_);
  sqlite3_close(db_);
}

absl::Status SqliteStore::Migrate(int from_version) {
  // 2 -> 3: the summary columns, filled once from the records.
  if (from_version < 3) {
    if (absl::Status s = MigrateColumns(); !s.ok()) return s;
  }
  // 1 -> 2: the failed_shards table is made by the schema above; the
  // database is rebuilt once with incremental auto-vacuum, so that the space
  // of retired jobs can be handed back.
  int auto_vacuum = 0;
  {
    Stmt q(db_, "PRAGMA auto_vacuum");
    if (!q.ok() || sqlite3_step(q.get()) != SQLITE_ROW) return Error("read auto_vacuum");
    auto_vacuum = sqlite3_column_int(q.get(), 0);
  }
  if (auto_vacuum != 2) {
    if (absl::Status s = Exec("PRAGMA auto_vacuum=INCREMENTAL"); !s.ok()) return s;
    if (absl::Status s = Exec("VACUUM"); !s.ok()) return s;
  }
  (void)from_version;
  return Exec(absl::StrCat("UPDATE meta SET value = '", kSchemaVersion,
                           "' WHERE key = 'schema_version'")
                  .c_str());
}

absl::Status SqliteStore::MigrateColumns() {
  bool has_queue = false;
  {
    Stmt q(db_, "PRAGMA table_info(jobs)");
    if (!q.ok()) return Error("read the jobs table's columns");
    while (sqlite3_step(q.get()) == SQLITE_ROW)
      has_queue |= ColumnText(q.get(), 1) == "queue";
  }
  if (!has_queue) {
    for (const char* sql :
         {"ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",
          "ALTER TABLE jobs ADD COLUMN created INTEGER",
          "ALTER TABLE jobs ADD COLUMN ended INTEGER",
          "ALTER TABLE jobs ADD COLUMN idem_key TEXT NOT NULL DEFAULT ''"}) {
      if (absl::Status s = Exec(sql); !s.ok()) return s;
    }
  }
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  absl::Status status = absl::OkStatus();
  {
    Stmt read(db_, "SELECT record FROM jobs");
    Stmt write(db_,
               "UPDATE jobs SET queue = ?, created = ?, ended = ?, idem_key = ? "
               "WHERE id = ?");
    if (!read.ok() || !write.ok()) status = Error("migrate jobs");
    int rc = SQLITE_ROW;
    while (status.ok() && (rc = sqlite3_step(read.get())) == SQLITE_ROW) {
      absl::StatusOr<JobRecord> r = DecodeJobRecord(ColumnText(read.get(), 0));
      if (!r.ok()) continue;  // Load reports it, as before
      sqlite3_bind_text(write.get(), 1, r->spec.queue.c_str(), -1, SQLITE_TRANSIENT);
      BindTime(write.get(), 2, r->created);
      BindTime(write.get(), 3, r->ended);
      sqlite3_bind_text(write.get(), 4, r->spec.idempotency_key.c_str(), -1,
                        SQLITE_TRANSIENT);
      sqlite3_bind_text(write.get(), 5, r->id.c_str(), -1, SQLITE_TRANSIENT);
      status = Step(write.get(), "migrate job");
    }
    if (status.ok() && rc != SQLITE_DONE) status = Error("migrate jobs");
  }
  if (!status.ok()) {
    (void)Exec("ROLLBACK");
    return status;
  }
  return Exec("COMMIT");
}

absl::Status SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  if (const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err); rc != SQLITE_OK) {
    absl::Status s = absl::Status(
        ErrorCode(rc),
        absl::StrCat("store ", path_, ": ", err ? err : sqlite3_errmsg(db_)));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

void SqliteStore::SetMaxRecordBytesForTesting(int bytes) {
  absl::MutexLock lock(&mu_);
  sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, bytes);
}

absl::StatusOr<int> SqliteStore::Synchronous() {
  absl::MutexLock lock(&mu_);
  Stmt q(db_, "PRAGMA synchronous");
  if (!q.ok() || sqlite3_step(q.get()) != SQLITE_ROW) return Error("read synchronous");
  return sqlite3_column_int(q.get(), 0);
}

absl::Status SqliteStore::Step(sqlite3_stmt* stmt, const char* what) {
  const int rc = sqlite3_step(stmt);
  absl::Status s = rc == SQLITE_DONE ? absl::OkStatus() : Error(what);
  sqlite3_reset(stmt);
  return s;
}

absl::StatusOr<std::string> SqliteStore::InitMeta(const std::string& key,
                                                  const std::string& value_if_new) {
  absl::MutexLock lock(&mu_);
  {
    Stmt put(db_, "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)");
    if (!put.ok()) return Error("write meta " + key);
    sqlite3_bind_text(put.get(), 1, key.data(), static_cast<int>(key.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(put.get(), 2, value_if_new.data(),
                      static_cast<int>(value_if_new.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(put.get()) != SQLITE_DONE) return Error("write meta " + key);
  }
  Stmt get(db_, "SELECT value FROM meta WHERE key = ?");
  if (!get.ok()) return Error("read meta " + key);
  sqlite3_bind_text(get.get(), 1, key.data(), static_cast<int>(key.size()),
                    SQLITE_TRANSIENT);
  if (sqlite3_step(get.get()) != SQLITE_ROW) return Error("read meta " + key);
  const char* text = reinterpret_cast<const char*>(sqlite3_column_text(get.get(), 0));
  return std::string(text ? text : "");
}

absl::Status SqliteStore::Error(const std::string& what) {
  return absl::Status(
      ErrorCode(sqlite3_errcode(db_)),
      absl::StrCat("store ", path_, ": ", what, ": ", sqlite3_errmsg(db_)));
}

absl::Status SqliteStore::RecordTooBig(const std::string& job_id, const std::string& what,
                                       size_t bytes) {
  return RecordError(absl::StatusCode::kInvalidArgument, job_id,
                     absl::StrCat("store ", path_, ": ", what, " is ", bytes,
                                  " bytes, more than the store takes (",
                                  sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, -1), ")"));
}

absl::Status SqliteStore::Commit(const StoreWrite& write, bool durable) {
  absl::MutexLock lock(&mu_);
  const bool raise_sync = durable && !sync_full_always_;
  // Not prepared statements: a pragma takes effect when it is compiled, so
  // it is compiled (and run) each time.
  if (raise_sync) {
    if (absl::Status s = Exec("PRAGMA synchronous=FULL"); !s.ok()) return s;
  }
  absl::Status committed = CommitLocked(write);
  if (raise_sync) {
    if (absl::Status s = Exec("PRAGMA synchronous=NORMAL"); !s.ok() && committed.ok()) {
      return s;
    }
  }
  return committed;
}

absl::Status SqliteStore::DeleteRows(sqlite3_stmt* stmt, const std::string& job_id,
                                     const char* what) {
  sqlite3_bind_text(stmt, 1, job_id.data(), static_cast<int>(job_id.size()),
                    SQLITE_STATIC);
  return Step(stmt, what);
}

absl::Status SqliteStore::CommitLocked(const StoreWrite& w) {
  if (absl::Status s = Step(begin_, "begin"); !s.ok()) return s;
  absl::Status status = absl::OkStatus();
  {
    sqlite3_stmt* job = insert_job_;
    sqlite3_stmt* res = insert_result_;
    for (size_t i = 0; status.ok() && i < w.jobs.size(); ++i) {
      const JobRecord& r = *w.jobs[i];
      const std::string text = EncodeJobRecord(r);
      // SQLITE_STATIC: the strings outlive the step, no copy is needed.
      sqlite3_bind_text(job, 1, r.id.data(), static_cast<int>(r.id.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(job, 2, r.seq);
      sqlite3_bind_int(job, 3, static_cast<int>(r.state));
      sqlite3_bind_text(job, 5, r.spec.queue.data(),
                        static_cast<int>(r.spec.queue.size()), SQLITE_STATIC);
      BindTime(job, 6, r.created);
      BindTime(job, 7, r.ended);
      sqlite3_bind_text(job, 8, r.spec.idempotency_key.data(),
                        static_cast<int>(r.spec.idempotency_key.size()), SQLITE_STATIC);
      int rc = sqlite3_bind_text64(job, 4, text.data(), text.size(), SQLITE_STATIC,
                                   SQLITE_UTF8);
      if (rc == SQLITE_OK) rc = sqlite3_step(job);
      // Too big is this record's fault alone: the runtime fails its job only.
      if (rc == SQLITE_TOOBIG) {
        status = RecordTooBig(r.id, "the record of job " + r.id, text.size());
      } else if (rc != SQLITE_DONE) {
        status = Error("write job " + r.id);
      }
      sqlite3_reset(job);
    }
    for (size_t i = 0; status.ok() && i < w.results.size(); ++i) {
      const SaveResultOp& r = *w.results[i];
      sqlite3_bind_text(res, 1, r.job_id.data(), static_cast<int>(r.job_id.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(res, 2, r.shard);
      int rc = sqlite3_bind_text64(res, 3, r.result_json.data(), r.result_json.size(),
                                   SQLITE_STATIC, SQLITE_UTF8);
      if (rc == SQLITE_OK) rc = sqlite3_step(res);
      if (rc == SQLITE_TOOBIG) {
        status = RecordTooBig(
            r.job_id, absl::StrCat("the result of job ", r.job_id, " shard ", r.shard),
            r.result_json.size());
      } else if (rc != SQLITE_DONE) {
        status =
            Error(absl::StrCat("write result of job ", r.job_id, " shard ", r.shard));
      }
      sqlite3_reset(res);
    }
    for (size_t i = 0; status.ok() && i < w.failed.size(); ++i) {
      const SaveFailedShardOp& f = *w.failed[i];
      sqlite3_stmt* q = insert_failed_;
      sqlite3_bind_text(q, 1, f.job_id.data(), static_cast<int>(f.job_id.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(q, 2, f.shard.shard);
      sqlite3_bind_int(q, 3, f.shard.attempts);
      sqlite3_bind_int64(q, 4, f.shard.bounds.start);
      sqlite3_bind_int64(q, 5, f.shard.bounds.end);
      int rc = sqlite3_bind_text64(q, 6, f.shard.last_error.data(),
                                   f.shard.last_error.size(), SQLITE_STATIC, SQLITE_UTF8);
      if (rc == SQLITE_OK) rc = sqlite3_step(q);
      if (rc == SQLITE_TOOBIG) {
        status = RecordTooBig(
            f.job_id,
            absl::StrCat("the error of job ", f.job_id, " shard ", f.shard.shard),
            f.shard.last_error.size());
      } else if (rc != SQLITE_DONE) {
        status = Error(absl::StrCat("write failed shard of job ", f.job_id, " shard ",
                                    f.shard.shard));
      }
      sqlite3_reset(q);
    }
    // What the records imply (store.h), after the rows above.
    for (size_t i = 0; status.ok() && i < w.jobs.size(); ++i) {
      const JobRecord& r = *w.jobs[i];
      if (r.state == JobState::kSucceeded) {
        status = DeleteRows(delete_results_, r.id, "compact results");
      }
      if (status.ok() && IsTerminal(r.state)) {
        status = DeleteRows(delete_failed_, r.id, "compact failed shards");
      }
    }
    for (size_t i = 0; status.ok() && i < w.retired.size(); ++i) {
      const std::string& id = w.retired[i];
      status = DeleteRows(delete_job_, id, "retire job");
      if (status.ok()) status = DeleteRows(delete_results_, id, "retire results");
      if (status.ok()) status = DeleteRows(delete_failed_, id, "retire failed shards");
    }
  }
  if (!status.ok()) {
    (void)Exec("ROLLBACK");
    return status;
  }
  absl::Status committed = Step(commit_, "commit");
  if (!committed.ok() && !sqlite3_get_autocommit(db_)) (void)Exec("ROLLBACK");
  return committed;
}

absl::Status SqliteStore::Compact() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s =
          Exec(absl::StrCat("PRAGMA incremental_vacuum(", kVacuumPagesPerCompact, ")")
                   .c_str());
      !s.ok()) {
    return s;
  }
  // TRUNCATE: the WAL file goes back to zero bytes (it only ever grows
  // otherwise, to its largest batch).
  if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                nullptr) != SQLITE_OK) {
    return Error("checkpoint");
  }
  return absl::OkStatus();
}

absl::StatusOr<Store::RowCounts> SqliteStore::CountRows() {
  absl::MutexLock lock(&mu_);
  RowCounts n;
  for (auto [sql, out] :
       {std::pair<const char*, int64_t*>{"SELECT COUNT(*) FROM jobs", &n.jobs},
        {"SELECT COUNT(*) FROM results", &n.results},
        {"SELECT COUNT(*) FROM failed_shards", &n.failed}}) {
    Stmt q(db_, sql);
    if (!q.ok() || sqlite3_step(q.get()) != SQLITE_ROW) return Error("count rows");
    *out = sqlite3_column_int64(q.get(), 0);
  }
  return n;
}

absl::Status SqliteStore::Flush() {
  absl::MutexLock lock(&mu_);
  // A checkpoint syncs the WAL first, then copies it into the database.
  if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                nullptr) != SQLITE_OK) {
    return Error("checkpoint");
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredState> SqliteStore::Load() {
  absl::MutexLock lock(&mu_);
  StoredState state;
  {
    Stmt q(db_, "SELECT record FROM jobs ORDER BY seq");
    if (!q.ok()) return Error("read jobs");
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      const char* text = reinterpret_cast<const char*>(sqlite3_column_text(q.get(), 0));
      auto r = DecodeJobRecord(text ? text : "");
      if (!r.ok()) {
        return absl::DataLossError(
            absl::StrCat("store ", path_, ": ", r.status().message()));
      }
      state.jobs.push_back(*std::move(r));
    }
    if (rc != SQLITE_DONE) return Error("read jobs");
  }
  if (absl::Status s = LoadShardRows(state); !s.ok()) return s;
  return state;
}

absl::Status SqliteStore::LoadShardRows(StoredState& state) {
  Stmt q(db_, "SELECT shard, result FROM results WHERE job_id = ? ORDER BY shard");
  if (!q.ok()) return Error("read results");
  for (const JobRecord& r : state.jobs) {
    if (IsTerminal(r.state)) continue;
    auto& out = state.results[r.id];
    sqlite3_bind_text(q.get(), 1, r.id.data(), static_cast<int>(r.id.size()),
                      SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      const char* text = reinterpret_cast<const char*>(sqlite3_column_text(q.get(), 1));
      out.push_back({sqlite3_column_int64(q.get(), 0), text ? text : ""});
    }
    if (rc != SQLITE_DONE) return Error("read results of job " + r.id);
    sqlite3_reset(q.get());
  }
  Stmt f(db_,
         "SELECT shard, attempts, bound_start, bound_end, error FROM failed_shards "
         "WHERE job_id = ? "
         "ORDER BY shard");
  if (!f.ok()) return Error("read failed shards");
  for (const JobRecord& r : state.jobs) {
    if (IsTerminal(r.state)) continue;
    sqlite3_bind_text(f.get(), 1, r.id.data(), static_cast<int>(r.id.size()),
                      SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(f.get())) == SQLITE_ROW) {
      FailedShard fs;
      fs.shard = sqlite3_column_int64(f.get(), 0);
      fs.attempts = sqlite3_column_int(f.get(), 1);
      fs.bounds.start = sqlite3_column_int64(f.get(), 2);
      fs.bounds.end = sqlite3_column_int64(f.get(), 3);
      const char* text = reinterpret_cast<const char*>(sqlite3_column_text(f.get(), 4));
      fs.last_error = text ? text : "";
      state.failed[r.id].push_back(std::move(fs));
    }
    if (rc != SQLITE_DONE) return Error("read failed shards of job " + r.id);
    sqlite3_reset(f.get());
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredState> SqliteStore::LoadUnfinished() {
  absl::MutexLock lock(&mu_);
  StoredState state;
  {
    Stmt q(db_,
           "SELECT record FROM jobs INDEXED BY jobs_by_state WHERE state < 2 "
           "ORDER BY seq");
    if (!q.ok()) return Error("read unfinished jobs");
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      auto r = DecodeJobRecord(ColumnText(q.get(), 0));
      if (!r.ok()) {
        return absl::DataLossError(
            absl::StrCat("store ", path_, ": ", r.status().message()));
      }
      state.jobs.push_back(*std::move(r));
    }
    if (rc != SQLITE_DONE) return Error("read unfinished jobs");
    std::sort(state.jobs.begin(), state.jobs.end(),
              [](const JobRecord& a, const JobRecord& b) { return a.seq < b.seq; });
  }
  {
    Stmt q(db_, absl::StrCat("SELECT id, seq, state, queue, created, ended, idem_key "
                             "FROM jobs INDEXED BY jobs_by_state WHERE ",
                             kFinished)
                    .c_str());
    if (!q.ok()) return Error("read finished jobs");
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      FinishedJob f;
      f.id = ColumnText(q.get(), 0);
      f.seq = sqlite3_column_int64(q.get(), 1);
      f.state = static_cast<JobState>(sqlite3_column_int(q.get(), 2));
      f.queue = ColumnText(q.get(), 3);
      f.created = ColumnTime(q.get(), 4);
      f.ended = ColumnTime(q.get(), 5);
      f.idempotency_key = ColumnText(q.get(), 6);
      state.finished.push_back(std::move(f));
    }
    if (rc != SQLITE_DONE) return Error("read finished jobs");
    std::sort(state.finished.begin(), state.finished.end(),
              [](const FinishedJob& a, const FinishedJob& b) { return a.seq < b.seq; });
  }
  {
    Stmt q(db_, "SELECT MAX(seq) FROM jobs");
    if (!q.ok() || sqlite3_step(q.get()) != SQLITE_ROW) return Error("read jobs");
    state.max_seq = sqlite3_column_int64(q.get(), 0);
  }
  if (absl::Status s = LoadShardRows(state); !s.ok()) return s;
  return state;
}

absl::StatusOr<std::optional<JobRecord>> SqliteStore::LoadJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Stmt q(db_, "SELECT record FROM jobs WHERE id = ?");
  if (!q.ok()) return Error("read job " + id);
  sqlite3_bind_text(q.get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(q.get());
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return Error("read job " + id);
  auto r = DecodeJobRecord(ColumnText(q.get(), 0));
  if (!r.ok()) {
    return absl::DataLossError(
        absl::StrCat("store ", path_, ": job ", id, ": ", r.status().message()));
  }
  return std::optional<JobRecord>(*std::move(r));
}

absl::StatusOr<std::vector<JobRecord>> SqliteStore::ListFinishedJobs(
    const JobFilter& filter, int64_t before, int limit) {
  absl::MutexLock lock(&mu_);
  std::vector<JobRecord> out;
  if (limit <= 0) return out;
  if (filter.state.has_value() && !IsTerminal(*filter.state)) return out;
  // The index that makes the page O(limit): the state's, the queue's, or
  // creation order (unfinished jobs, few, are skipped on the way).
  std::string sql = "SELECT seq, record FROM jobs ";
  if (!filter.queue.empty()) {
    sql += "INDEXED BY jobs_by_queue WHERE queue = ?1 AND ";
  } else if (filter.state.has_value()) {
    sql += "INDEXED BY jobs_by_state WHERE ";
  } else {
    sql += "INDEXED BY jobs_by_seq WHERE ";
  }
  sql += filter.state.has_value() ? "state = ?2" : kFinished;
  sql += " AND seq <= ?3 ORDER BY seq DESC LIMIT ?4";
  Stmt q(db_, sql.c_str());
  if (!q.ok()) return Error("list jobs");
  // Labels are matched on the records: read in chunks until the page is full.
  const int chunk = filter.labels.empty() ? limit : std::max(limit, 256);
  int64_t cursor = before < 0 ? std::numeric_limits<int64_t>::max() : before;
  while (static_cast<int>(out.size()) < limit) {
    sqlite3_reset(q.get());
    if (!filter.queue.empty()) {
      sqlite3_bind_text(q.get(), 1, filter.queue.data(),
                        static_cast<int>(filter.queue.size()), SQLITE_STATIC);
    }
    if (filter.state.has_value()) {
      sqlite3_bind_int(q.get(), 2, static_cast<int>(*filter.state));
    }
    sqlite3_bind_int64(q.get(), 3, cursor);
    sqlite3_bind_int(q.get(), 4, chunk);
    int rows = 0;
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      ++rows;
      cursor = sqlite3_column_int64(q.get(), 0) - 1;
      if (static_cast<int>(out.size()) >= limit) continue;
      auto r = DecodeJobRecord(ColumnText(q.get(), 1));
      if (!r.ok()) {
        return absl::DataLossError(
            absl::StrCat("store ", path_, ": ", r.status().message()));
      }
      if (MatchesFilter(filter, r->state, r->spec)) out.push_back(*std::move(r));
    }
    if (rc != SQLITE_DONE) return Error("list jobs");
    if (rows < chunk) break;  // nothing older
  }
  return out;
}

absl::StatusOr<std::vector<StoredResult>> SqliteStore::LoadResults(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Stmt q(db_, "SELECT shard, result FROM results WHERE job_id = ? ORDER BY shard");
  if (!q.ok()) return Error("read results");
  sqlite3_bind_text(q.get(), 1, job_id.data(), static_cast<int>(job_id.size()),
                    SQLITE_TRANSIENT);
  std::vector<StoredResult> out;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    const char* text = reinterpret_cast<const char*>(sqlite3_column_text(q.get(), 1));
    out.push_back({sqlite3_column_int64(q.get(), 0), text ? text : ""});
  }
  if (rc != SQLITE_DONE) return Error("read results of job " + job_id);
  return out;
}

}  // namespace tessera::scheduler
