#include "scheduler/store/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "scheduler/store/postgres_store_sql.h"
#include "shared/status_macros.h"

namespace tessera::scheduler {
namespace {

namespace sql = postgres_sql;  // the statements, by StatementId
using postgres_sql::CodeOfSqlState;
using postgres_sql::LatestVersion;
using postgres_sql::Migration;
using postgres_sql::Migrations;
using postgres_sql::Statement;
using postgres_sql::Statements;

// Load's one snapshot for the jobs and their rows.
constexpr char kBeginSnapshot[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

// Largest field PostgreSQL stores (1 GB), less room for its header.
constexpr size_t kMaxFieldBytes = (size_t{1} << 30) - 64;

int64_t ReadBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<int64_t>(v);
}

int32_t ReadBigEndian32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<int32_t>(v);
}

std::string Field(const PGresult* res, int row, int col) {
  return std::string(PQgetvalue(res, row, col), PQgetlength(res, row, col));
}

using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

}  // namespace

PostgresStore::PostgresStore(const PostgresOptions& options)
    : options_(options),
      redacted_url_(RedactConninfo(options.url)),
      max_record_bytes_(kMaxFieldBytes) {}

int PostgresStore::SchemaVersion() { return LatestVersion(); }

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    const PostgresOptions& options) {
  if (options.sync != "normal" && options.sync != "full") {
    return absl::InvalidArgumentError(
        absl::StrCat("--store-sync must be normal or full (got \"", options.sync, "\")"));
  }
  if (options.url.empty()) {
    return absl::InvalidArgumentError("--store=postgres needs --postgres-url");
  }
  std::unique_ptr<PostgresStore> store(new PostgresStore(options));
  absl::MutexLock lock(&store->mu_);
  if (absl::Status s = store->EnsureConnectedLocked(); !s.ok()) return s;
  if (absl::Status s = store->MigrateLocked(); !s.ok()) return s;
  return store;
}

PostgresStore::~PostgresStore() {
  absl::MutexLock lock(&mu_);
  if (conn_ != nullptr) PQfinish(conn_);
}

void PostgresStore::SetFenceSql(std::string sql, int64_t epoch) {
  absl::MutexLock lock(&mu_);
  fence_sql_ = std::move(sql);
  fence_epoch_ = epoch;
}

void PostgresStore::SetMaxRecordBytesForTesting(size_t bytes) {
  absl::MutexLock lock(&mu_);
  max_record_bytes_ = bytes;
}

std::string PostgresStore::ScrubLocked(std::string text) const {
  for (const std::string* p : {&password_seen_, &options_.password}) {
    // A very short password would blank out ordinary words; libpq never
    // repeats it in a message anyway: this is a second line of defence.
    if (p->size() >= 4) text = absl::StrReplaceAll(text, {{*p, "***"}});
  }
  return text;
}

absl::Status PostgresStore::EnsureConnectedLocked() {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  // Defaults first, the URL last: what the URL says wins (PQconnectdbParams
  // keeps the last value of a keyword). A silent server (paused, partitioned)
  // is noticed by TCP keepalives and tcp_user_timeout, not waited for forever.
  // A session left idle inside a transaction (its scheduler paused or stuck
  // mid-commit) is ended by the server, so that the row locks it holds (the
  // fence's FOR SHARE on the leader row) cannot keep a follower from taking
  // over an expired lease.
  const std::string timeout = std::to_string(options_.connect_timeout_seconds);
  const std::string session =
      absl::StrCat("-c idle_in_transaction_session_timeout=",
                   absl::ToInt64Milliseconds(options_.idle_in_transaction_timeout));
  std::vector<const char*> keys = {
      "connect_timeout",     "application_name", "keepalives",       "keepalives_idle",
      "keepalives_interval", "keepalives_count", "tcp_user_timeout", "options"};
  std::vector<const char*> values = {
      timeout.c_str(), "tessera-scheduler", "1", "10", "3", "3",
      "30000",         session.c_str()};
  if (!options_.password.empty()) {
    keys.push_back("password");
    values.push_back(options_.password.c_str());
  }
  keys.push_back("dbname");
  values.push_back(options_.url.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) {
    return absl::UnavailableError(absl::StrCat("store postgres ", redacted_url_,
                                               ": cannot connect: out of memory"));
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
    const bool refused = PQconnectionNeedsPassword(conn) ||
                         message.find("authentication failed") != std::string::npos ||
                         message.find("does not exist") != std::string::npos;
    PQfinish(conn);
    return absl::Status(
        refused ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kUnavailable,
        ScrubLocked(absl::StrCat("store postgres ", redacted_url_,
                                 ": cannot connect: ", message)));
  }
  conn_ = conn;
  if (const char* pass = PQpass(conn_); pass != nullptr) password_seen_ = pass;
  // The session's commits wait for the WAL flush with "full" whatever the
  // server's default; with "normal" only durable ones do (SET LOCAL).
  if (absl::Status s =
          ExecLocked(options_.sync == "full" ? "SET synchronous_commit = on"
                                             : "SET synchronous_commit = off",
                     "set synchronous_commit");
      !s.ok()) {
    return s;
  }
  // Statements name tables, so they are prepared once the schema is there.
  return schema_ready_ ? PrepareLocked() : absl::OkStatus();
}

absl::Status PostgresStore::PrepareLocked() {
  for (const Statement& st : Statements()) {
    Result res(PQprepare(conn_, st.name, st.sql, 0, nullptr), &PQclear);
    if (absl::Status s =
            Check(res.get(), PGRES_COMMAND_OK, absl::StrCat("prepare ", st.name));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::ExecLocked(const char* sql, const std::string& what) {
  Result res(PQexec(conn_, sql), &PQclear);
  return Check(res.get(), PGRES_COMMAND_OK, what);
}

absl::Status PostgresStore::Check(PGresult* res, int want, const std::string& what,
                                  const std::string& job_id) {
  if (res != nullptr && PQresultStatus(res) == want) return absl::OkStatus();
  const char* state =
      res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string message(res != nullptr ? PQresultErrorMessage(res) : "");
  if (message.empty()) message = PQerrorMessage(conn_);
  if (message.empty()) message = "unexpected reply";
  const bool lost = PQstatus(conn_) != CONNECTION_OK;
  absl::StatusCode code = lost ? absl::StatusCode::kUnavailable : CodeOfSqlState(state);
  if (!lost && state == nullptr && res != nullptr) code = absl::StatusCode::kInternal;
  const std::string text =
      ScrubLocked(absl::StrCat("store postgres ", redacted_url_, ": ", what, ": ",
                               absl::StripTrailingAsciiWhitespace(message),
                               state ? absl::StrCat(" (SQLSTATE ", state, ")") : ""));
  if (lost) {
    // The next call reconnects (and prepares the statements again).
    PQfinish(conn_);
    conn_ = nullptr;
  }
  if (!job_id.empty() && code == absl::StatusCode::kInvalidArgument) {
    return RecordError(code, job_id, text);
  }
  return absl::Status(code, text);
}

absl::StatusOr<PostgresStore::Rows> PostgresStore::RunLocked(
    int statement, const std::vector<Param>& params, const std::string& what,
    const std::string& job_id) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  for (const Param& p : params) {
    values.push_back(p.data);
    lengths.push_back(p.length);
    formats.push_back(p.binary ? 1 : 0);
  }
  Result res(PQexecPrepared(conn_, Statements()[statement].name,
                            static_cast<int>(params.size()), values.data(),
                            lengths.data(), formats.data(), /*resultFormat=binary*/ 1),
             &PQclear);
  const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  const int want = status == PGRES_TUPLES_OK ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
  if (absl::Status s = Check(res.get(), want, what, job_id); !s.ok()) return s;
  return Rows(res.release(), &PQclear);
}

absl::Status PostgresStore::InsertResultsLocked(
    const std::vector<const SaveResultOp*>& results) {
  // At most this many statements between two syncs: the server's replies
  // (a few bytes each) never fill the socket while this thread still sends.
  constexpr size_t kPipelineChunk = 256;
  for (size_t from = 0; from < results.size(); from += kPipelineChunk) {
    const size_t to = std::min(results.size(), from + kPipelineChunk);
    if (PQenterPipelineMode(conn_) != 1) {
      return Check(nullptr, PGRES_COMMAND_OK, "enter pipeline mode");
    }
    absl::Status status = absl::OkStatus();
    size_t sent = 0;
    for (size_t i = from; i < to; ++i) {
      const SaveResultOp& r = *results[i];
      const std::string shard = std::to_string(r.shard);
      const char* values[3] = {r.job_id.data(), shard.c_str(), r.result_json.data()};
      const int lengths[3] = {static_cast<int>(r.job_id.size()), 0,
                              static_cast<int>(r.result_json.size())};
      const int formats[3] = {1, 0, 1};
      // libpq copies the parameters into its output buffer here.
      if (PQsendQueryPrepared(conn_, Statements()[sql::kInsertResult].name, 3, values,
                              lengths, formats, /*resultFormat=binary*/ 1) != 1) {
        status = Check(nullptr, PGRES_COMMAND_OK, "write results");
        break;
      }
      ++sent;
    }
    bool synced = false;
    if (status.ok()) {
      synced = PQpipelineSync(conn_) == 1;
      if (!synced) status = Check(nullptr, PGRES_COMMAND_OK, "write results (sync)");
    }
    // One result per statement sent (each followed by a null), then the sync.
    // After an error the rest come back PGRES_PIPELINE_ABORTED.
    for (size_t i = 0; status.ok() && conn_ != nullptr && i < sent; ++i) {
      const SaveResultOp& r = *results[from + i];
      Result res(PQgetResult(conn_), &PQclear);
      while (PGresult* end = PQgetResult(conn_)) PQclear(end);
      if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
        status = Check(res.get(), PGRES_COMMAND_OK,
                       absl::StrCat("write result of job ", r.job_id, " shard ", r.shard),
                       r.job_id);
      }
    }
    if (conn_ != nullptr) {
      // What is left (after an error), up to and including the sync. Without
      // a sync there is no end to wait for: the connection is dropped below.
      if (synced) {
        for (size_t nulls = 0; nulls < 2 * kPipelineChunk + 2;) {
          Result res(PQgetResult(conn_), &PQclear);
          if (!res) {
            ++nulls;  // the null after a statement's result
            continue;
          }
          if (PQresultStatus(res.get()) == PGRES_PIPELINE_SYNC) break;
          if (PQstatus(conn_) != CONNECTION_OK) break;
        }
      }
      if (!synced || PQexitPipelineMode(conn_) != 1) {
        // Never leave a connection in an unknown state: the next call reconnects.
        PQfinish(conn_);
        conn_ = nullptr;
        if (status.ok()) {
          status = absl::UnavailableError(absl::StrCat(
              "store postgres ", redacted_url_, ": write results: pipeline not drained"));
        }
      }
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

template <typename Body>
std::invoke_result_t<Body&> PostgresStore::TransactionLocked(const char* begin_sql,
                                                             const std::string& begin,
                                                             const std::string& commit,
                                                             Body body) {
  using Outcome = std::invoke_result_t<Body&>;
  TESSERA_RETURN_IF_ERROR(ExecLocked(begin_sql, begin));
  Outcome result = body();
  if (result.ok()) {
    if (absl::Status s = ExecLocked("COMMIT", commit); !s.ok()) result = Outcome(s);
  }
  if (!result.ok()) RollbackLocked();
  return result;
}

absl::Status PostgresStore::MigrateLocked() {
  absl::Status s = TransactionLocked("BEGIN", "begin migration", "commit migration", [&] {
    // The caller holds mu_; the analysis does not follow it into a lambda.
    mu_.AssertHeld();
    Result lock(PQexec(conn_, postgres_sql::kMigrationLock), &PQclear);
    TESSERA_RETURN_IF_ERROR(Check(lock.get(), PGRES_TUPLES_OK, "lock the schema"));
    // No NOTICE on stderr for a table that is there already.
    TESSERA_RETURN_IF_ERROR(
        ExecLocked("SET LOCAL client_min_messages = warning", "quiet migration"));
    TESSERA_RETURN_IF_ERROR(ExecLocked(
        "CREATE TABLE IF NOT EXISTS tessera_meta (key TEXT PRIMARY KEY, value BYTEA NOT "
        "NULL)",
        "create tessera_meta"));
    Result got(PQexec(conn_,
                      "SELECT convert_from(value, 'UTF8') FROM tessera_meta WHERE key = "
                      "'schema_version'"),
               &PQclear);
    TESSERA_RETURN_IF_ERROR(Check(got.get(), PGRES_TUPLES_OK, "read the schema version"));
    int version = 0;
    if (PQntuples(got.get()) > 0 && !absl::SimpleAtoi(Field(got.get(), 0, 0), &version)) {
      return absl::FailedPreconditionError(
          absl::StrCat("store postgres ", redacted_url_, ": schema version \"",
                       Field(got.get(), 0, 0), "\" is not a number"));
    }
    if (version > LatestVersion()) {
      return absl::FailedPreconditionError(
          absl::StrCat("store postgres ", redacted_url_, " has schema version ", version,
                       "; this scheduler reads version ", LatestVersion(),
                       " (run a newer scheduler)"));
    }
    for (const Migration& m : Migrations()) {
      if (m.version <= version) continue;
      if (absl::Status s =
              ExecLocked(m.sql, absl::StrCat("migrate to schema version ", m.version));
          !s.ok()) {
        return absl::Status(
            s.code(), absl::StrCat(s.message(), " (is this database a Tessera store?)"));
      }
      ++migrations_applied_;
      version = m.version;
    }
    const std::string put = absl::StrCat(
        "INSERT INTO tessera_meta (key, value) VALUES ('schema_version', convert_to('",
        version, "', 'UTF8')) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    return ExecLocked(put.c_str(), "write the schema version");
  });
  if (!s.ok()) return s;
  schema_ready_ = true;
  return PrepareLocked();
}

void PostgresStore::RollbackLocked() {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) return;
  if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
  Result res(PQexec(conn_, "ROLLBACK"), &PQclear);
}

absl::Status PostgresStore::FenceLocked() {
  if (fence_sql_.empty()) return absl::OkStatus();
  Result res(PQexec(conn_, fence_sql_.c_str()), &PQclear);
  TESSERA_RETURN_IF_ERROR(Check(res.get(), PGRES_TUPLES_OK, "fence check"));
  if (PQntuples(res.get()) != 1 || PQnfields(res.get()) != 1 ||
      std::string(PQgetvalue(res.get(), 0, 0)) != "t") {
    return absl::AbortedError(absl::StrCat(
        "store postgres ", redacted_url_,
        ": fenced: the fence check refused this transaction; nothing was committed"));
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::Commit(const StoreWrite& write, bool durable) {
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  // A COMMIT whose reply is lost may or may not have happened: the runtime
  // retries the batch, which is idempotent (upserts, first result wins,
  // deletions of what is gone delete nothing).
  return TransactionLocked("BEGIN", "begin", "commit", [&] {
    // The caller holds mu_; the analysis does not follow it into a lambda.
    mu_.AssertHeld();
    return CommitLocked(write, durable);
  });
}

absl::Status PostgresStore::RecordTooBig(const std::string& job_id,
                                         const std::string& what, size_t bytes) {
  return RecordError(
      absl::StatusCode::kInvalidArgument, job_id,
      absl::StrCat("store postgres ", redacted_url_, ": ", what, " is ", bytes,
                   " bytes, more than the store takes (", max_record_bytes_, ")"));
}

absl::Status PostgresStore::DeleteRowsLocked(int statement, const std::string& job_id,
                                             const std::string& what) {
  return RunLocked(statement, {{job_id.data(), static_cast<int>(job_id.size()), true}},
                   what + " of job " + job_id)
      .status();
}

absl::Status PostgresStore::CommitLocked(const StoreWrite& w, bool durable) {
  if (durable && options_.sync != "full") {
    TESSERA_RETURN_IF_ERROR(
        ExecLocked("SET LOCAL synchronous_commit = on", "set synchronous_commit"));
  }
  TESSERA_RETURN_IF_ERROR(FenceLocked());
  for (const JobRecord* r : w.jobs) {
    const std::string text = EncodeJobRecord(*r);
    if (text.size() > max_record_bytes_) {
      return RecordTooBig(r->id, "the record of job " + r->id, text.size());
    }
    const std::string seq = std::to_string(r->seq);
    // Summary columns: times in Unix nanoseconds, NULL for "not yet".
    const std::string created = r->created == absl::InfinitePast()
                                    ? ""
                                    : std::to_string(absl::ToUnixNanos(r->created));
    const std::string ended = r->ended == absl::InfinitePast()
                                  ? ""
                                  : std::to_string(absl::ToUnixNanos(r->ended));
    const std::string state = std::to_string(static_cast<int>(r->state));
    const std::string epoch = std::to_string(fence_epoch_);
    TESSERA_RETURN_IF_ERROR(
        RunLocked(sql::kUpsertJob,
                  {{r->id.data(), static_cast<int>(r->id.size()), true},
                   {seq.c_str(), 0, false},
                   {state.c_str(), 0, false},
                   {text.data(), static_cast<int>(text.size()), true},
                   {epoch.c_str(), 0, false},
                   {r->spec.queue.data(), static_cast<int>(r->spec.queue.size()), true},
                   {created.empty() ? nullptr : created.c_str(), 0, false},
                   {ended.empty() ? nullptr : ended.c_str(), 0, false},
                   {r->spec.idempotency_key.data(),
                    static_cast<int>(r->spec.idempotency_key.size()), true}},
                  "write job " + r->id, r->id)
            .status());
  }
  for (const SaveResultOp* r : w.results) {
    if (r->result_json.size() > max_record_bytes_) {
      return RecordTooBig(
          r->job_id, absl::StrCat("the result of job ", r->job_id, " shard ", r->shard),
          r->result_json.size());
    }
  }
  TESSERA_RETURN_IF_ERROR(InsertResultsLocked(w.results));
  for (const SaveFailedShardOp* f : w.failed) {
    const FailedShard& fs = f->shard;
    if (fs.last_error.size() > max_record_bytes_) {
      return RecordTooBig(
          f->job_id, absl::StrCat("the error of job ", f->job_id, " shard ", fs.shard),
          fs.last_error.size());
    }
    const std::string shard = std::to_string(fs.shard);
    const std::string attempts = std::to_string(fs.attempts);
    const std::string start = std::to_string(fs.bounds.start);
    const std::string end = std::to_string(fs.bounds.end);
    TESSERA_RETURN_IF_ERROR(
        RunLocked(
            sql::kUpsertFailed,
            {{f->job_id.data(), static_cast<int>(f->job_id.size()), true},
             {shard.c_str(), 0, false},
             {attempts.c_str(), 0, false},
             {start.c_str(), 0, false},
             {end.c_str(), 0, false},
             {fs.last_error.data(), static_cast<int>(fs.last_error.size()), true}},
            absl::StrCat("write failed shard of job ", f->job_id, " shard ", fs.shard),
            f->job_id)
            .status());
  }
  // What the records imply (store.h), after the rows above, in this transaction.
  for (const JobRecord* r : w.jobs) {
    if (r->state == JobState::kSucceeded) {
      TESSERA_RETURN_IF_ERROR(
          DeleteRowsLocked(sql::kDeleteResults, r->id, "compact results"));
    }
    if (IsTerminal(r->state)) {
      TESSERA_RETURN_IF_ERROR(
          DeleteRowsLocked(sql::kDeleteFailed, r->id, "compact failed shards"));
    }
  }
  for (const std::string& id : w.retired) {
    TESSERA_RETURN_IF_ERROR(DeleteRowsLocked(sql::kDeleteJob, id, "retire"));
    TESSERA_RETURN_IF_ERROR(DeleteRowsLocked(sql::kDeleteResults, id, "retire results"));
    TESSERA_RETURN_IF_ERROR(
        DeleteRowsLocked(sql::kDeleteFailed, id, "retire failed shards"));
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::Flush() {
  // With "full" every commit was durable when it returned.
  if (options_.sync == "full") return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  // A write committed synchronously flushes the WAL up to it, and so every
  // earlier (asynchronous) commit.
  return TransactionLocked("BEGIN", "begin", "commit flush", [&]() -> absl::Status {
    // The caller holds mu_; the analysis does not follow it into a lambda.
    mu_.AssertHeld();
    TESSERA_RETURN_IF_ERROR(
        ExecLocked("SET LOCAL synchronous_commit = on", "set synchronous_commit"));
    TESSERA_RETURN_IF_ERROR(FenceLocked());
    return RunLocked(sql::kTouchMeta, {}, "flush").status();
  });
}

absl::StatusOr<StoredState> PostgresStore::Load() {
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  // One snapshot for the jobs and their results.
  return TransactionLocked(
      kBeginSnapshot, "begin load", "end load", [&]() -> absl::StatusOr<StoredState> {
        // The caller holds mu_; the analysis does not follow it into a lambda.
        mu_.AssertHeld();
        StoredState state;
        TESSERA_ASSIGN_OR_RETURN(Rows rows, RunLocked(sql::kLoadJobs, {}, "read jobs"));
        for (int i = 0; i < PQntuples(rows.get()); ++i) {
          TESSERA_ASSIGN_OR_RETURN(JobRecord r, DecodeLocked(rows.get(), i, 0));
          state.jobs.push_back(std::move(r));
        }
        TESSERA_RETURN_IF_ERROR(LoadShardRowsLocked(state));
        return state;
      });
}

absl::StatusOr<StoredState> PostgresStore::LoadUnfinished() {
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  // One snapshot for the jobs, the summaries and the unfinished jobs' rows.
  return TransactionLocked(
      kBeginSnapshot, "begin load", "end load", [&]() -> absl::StatusOr<StoredState> {
        mu_.AssertHeld();
        StoredState state;
        {
          TESSERA_ASSIGN_OR_RETURN(
              Rows rows, RunLocked(sql::kLoadUnfinished, {}, "read unfinished jobs"));
          for (int i = 0; i < PQntuples(rows.get()); ++i) {
            TESSERA_ASSIGN_OR_RETURN(JobRecord r, DecodeLocked(rows.get(), i, 0));
            state.jobs.push_back(std::move(r));
          }
        }
        {
          TESSERA_ASSIGN_OR_RETURN(
              Rows rows, RunLocked(sql::kLoadFinished, {}, "read finished jobs"));
          state.finished.reserve(PQntuples(rows.get()));
          for (int i = 0; i < PQntuples(rows.get()); ++i) {
            PGresult* res = rows.get();
            if (PQgetlength(res, i, 1) != 8 || PQgetlength(res, i, 2) != 4 ||
                (!PQgetisnull(res, i, 4) && PQgetlength(res, i, 4) != 8) ||
                (!PQgetisnull(res, i, 5) && PQgetlength(res, i, 5) != 8)) {
              return absl::DataLossError(
                  absl::StrCat("store postgres ", redacted_url_,
                               ": a finished job's row is malformed"));
            }
            FinishedJob f;
            f.id = Field(res, i, 0);
            f.seq = ReadBigEndian64(PQgetvalue(res, i, 1));
            f.state = static_cast<JobState>(ReadBigEndian32(PQgetvalue(res, i, 2)));
            f.queue = Field(res, i, 3);
            if (!PQgetisnull(res, i, 4)) {
              f.created = absl::FromUnixNanos(ReadBigEndian64(PQgetvalue(res, i, 4)));
            }
            if (!PQgetisnull(res, i, 5)) {
              f.ended = absl::FromUnixNanos(ReadBigEndian64(PQgetvalue(res, i, 5)));
            }
            f.idempotency_key = Field(res, i, 6);
            state.finished.push_back(std::move(f));
          }
        }
        {
          TESSERA_ASSIGN_OR_RETURN(Rows rows, RunLocked(sql::kMaxSeq, {}, "read jobs"));
          if (PQntuples(rows.get()) != 1 || PQgetlength(rows.get(), 0, 0) != 8) {
            return absl::InternalError(absl::StrCat("store postgres ", redacted_url_,
                                                    ": read jobs: unexpected reply"));
          }
          state.max_seq = ReadBigEndian64(PQgetvalue(rows.get(), 0, 0));
        }
        TESSERA_RETURN_IF_ERROR(LoadShardRowsLocked(state));
        return state;
      });
}

absl::StatusOr<JobRecord> PostgresStore::DecodeLocked(PGresult* rows, int row, int col) {
  auto r = DecodeJobRecord(Field(rows, row, col));
  if (!r.ok()) {
    return absl::DataLossError(
        absl::StrCat("store postgres ", redacted_url_, ": ", r.status().message()));
  }
  return r;
}

absl::StatusOr<std::optional<JobRecord>> PostgresStore::LoadJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  TESSERA_ASSIGN_OR_RETURN(
      Rows rows,
      RunLocked(sql::kLoadJob, {{id.data(), static_cast<int>(id.size()), true}},
                "read job " + id));
  if (PQntuples(rows.get()) == 0) return std::nullopt;
  TESSERA_ASSIGN_OR_RETURN(JobRecord r, DecodeLocked(rows.get(), 0, 0));
  return std::optional<JobRecord>(std::move(r));
}

absl::StatusOr<std::vector<JobRecord>> PostgresStore::ListFinishedJobs(
    const JobFilter& filter, int64_t before, int limit) {
  std::vector<JobRecord> out;
  if (limit <= 0) return out;
  if (filter.state.has_value() && !IsTerminal(*filter.state)) return out;
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  // The index that makes the page O(limit): the state's, the queue's, or
  // submission order (the few unfinished jobs are skipped on the way).
  const bool by_queue = !filter.queue.empty();
  const int statement =
      by_queue
          ? (filter.state ? sql::kListFinishedByQueueState : sql::kListFinishedByQueue)
          : (filter.state ? sql::kListFinishedByState : sql::kListFinished);
  const std::string state =
      filter.state ? std::to_string(static_cast<int>(*filter.state)) : "";
  // Labels are matched on the records: read in chunks until the page is full.
  const int chunk = filter.labels.empty() ? limit : std::max(limit, 256);
  const std::string chunk_text = std::to_string(chunk);
  int64_t cursor = before < 0 ? std::numeric_limits<int64_t>::max() : before;
  while (static_cast<int>(out.size()) < limit) {
    const std::string cursor_text = std::to_string(cursor);
    std::vector<Param> params = {{cursor_text.c_str(), 0, false},
                                 {chunk_text.c_str(), 0, false}};
    if (by_queue) {
      params.push_back(
          {filter.queue.data(), static_cast<int>(filter.queue.size()), true});
    }
    if (filter.state) params.push_back({state.c_str(), 0, false});
    TESSERA_ASSIGN_OR_RETURN(Rows rows, RunLocked(statement, params, "list jobs"));
    const int n = PQntuples(rows.get());
    for (int i = 0; i < n; ++i) {
      if (PQgetlength(rows.get(), i, 0) != 8) {
        return absl::InternalError(absl::StrCat("store postgres ", redacted_url_,
                                                ": list jobs: unexpected reply"));
      }
      cursor = ReadBigEndian64(PQgetvalue(rows.get(), i, 0)) - 1;
      if (static_cast<int>(out.size()) >= limit) continue;
      TESSERA_ASSIGN_OR_RETURN(JobRecord r, DecodeLocked(rows.get(), i, 1));
      if (MatchesFilter(filter, r.state, r.spec)) out.push_back(std::move(r));
    }
    if (n < chunk) break;  // nothing older
  }
  return out;
}

absl::Status PostgresStore::LoadShardRowsLocked(StoredState& state) {
  for (const JobRecord& r : state.jobs) {
    if (IsTerminal(r.state)) continue;
    TESSERA_ASSIGN_OR_RETURN(state.results[r.id], LoadResultsLocked(r.id));
    TESSERA_ASSIGN_OR_RETURN(
        Rows f,
        RunLocked(sql::kLoadFailed, {{r.id.data(), static_cast<int>(r.id.size()), true}},
                  "read failed shards of job " + r.id));
    for (int i = 0; i < PQntuples(f.get()); ++i) {
      if (PQgetlength(f.get(), i, 0) != 8 || PQgetlength(f.get(), i, 1) != 4 ||
          PQgetlength(f.get(), i, 2) != 8 || PQgetlength(f.get(), i, 3) != 8) {
        return absl::DataLossError(absl::StrCat("store postgres ", redacted_url_,
                                                ": a failed shard of job ", r.id,
                                                " has a malformed row"));
      }
      FailedShard fs;
      fs.shard = ReadBigEndian64(PQgetvalue(f.get(), i, 0));
      fs.attempts = ReadBigEndian32(PQgetvalue(f.get(), i, 1));
      fs.bounds.start = ReadBigEndian64(PQgetvalue(f.get(), i, 2));
      fs.bounds.end = ReadBigEndian64(PQgetvalue(f.get(), i, 3));
      fs.last_error = Field(f.get(), i, 4);
      state.failed[r.id].push_back(std::move(fs));
    }
  }
  return absl::OkStatus();
}

// PostgreSQL hands the space of deleted rows back on its own: autovacuum
// (on by default, also on managed services) marks it free for new rows of the
// same table, which is what SQLite's incremental vacuum does for us. A plain
// VACUUM here would only race autovacuum for the same work on the leader's
// connection, and VACUUM FULL (giving space to the file system) takes an
// exclusive lock on the table for its whole run: that is an operator's call,
// not a periodic one.
absl::Status PostgresStore::Compact() { return absl::OkStatus(); }

absl::StatusOr<Store::RowCounts> PostgresStore::CountRows() {
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  TESSERA_ASSIGN_OR_RETURN(Rows rows, RunLocked(sql::kCountRows, {}, "count rows"));
  if (PQntuples(rows.get()) != 1 || PQgetlength(rows.get(), 0, 0) != 8 ||
      PQgetlength(rows.get(), 0, 1) != 8 || PQgetlength(rows.get(), 0, 2) != 8) {
    return absl::InternalError(
        absl::StrCat("store postgres ", redacted_url_, ": count rows: unexpected reply"));
  }
  RowCounts n;
  n.jobs = ReadBigEndian64(PQgetvalue(rows.get(), 0, 0));
  n.results = ReadBigEndian64(PQgetvalue(rows.get(), 0, 1));
  n.failed = ReadBigEndian64(PQgetvalue(rows.get(), 0, 2));
  return n;
}

absl::StatusOr<std::vector<StoredResult>> PostgresStore::LoadResultsLocked(
    const std::string& job_id) {
  TESSERA_ASSIGN_OR_RETURN(
      Rows rows, RunLocked(sql::kLoadResults,
                           {{job_id.data(), static_cast<int>(job_id.size()), true}},
                           "read results of job " + job_id));
  std::vector<StoredResult> out;
  out.reserve(PQntuples(rows.get()));
  for (int i = 0; i < PQntuples(rows.get()); ++i) {
    if (PQgetlength(rows.get(), i, 0) != 8) {
      return absl::DataLossError(absl::StrCat("store postgres ", redacted_url_,
                                              ": a shard number of job ", job_id,
                                              " is not a bigint"));
    }
    out.push_back(
        {ReadBigEndian64(PQgetvalue(rows.get(), i, 0)), Field(rows.get(), i, 1)});
  }
  return out;
}

absl::StatusOr<std::vector<StoredResult>> PostgresStore::LoadResults(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  return LoadResultsLocked(job_id);
}

absl::StatusOr<std::string> PostgresStore::InitMeta(const std::string& key,
                                                    const std::string& value_if_new) {
  absl::MutexLock lock(&mu_);
  TESSERA_RETURN_IF_ERROR(EnsureConnectedLocked());
  const Param k{key.data(), static_cast<int>(key.size()), true};
  // Durable before it is used, whatever the sync setting.
  absl::Status s = TransactionLocked("BEGIN", "begin", "commit meta " + key, [&] {
    // The caller holds mu_; the analysis does not follow it into a lambda.
    mu_.AssertHeld();
    TESSERA_RETURN_IF_ERROR(
        ExecLocked("SET LOCAL synchronous_commit = on", "set synchronous_commit"));
    return RunLocked(
               sql::kPutMeta,
               {k, {value_if_new.data(), static_cast<int>(value_if_new.size()), true}},
               "write meta " + key)
        .status();
  });
  if (!s.ok()) return s;
  TESSERA_ASSIGN_OR_RETURN(Rows rows, RunLocked(sql::kGetMeta, {k}, "read meta " + key));
  if (PQntuples(rows.get()) != 1) {
    return absl::InternalError(
        absl::StrCat("store postgres ", redacted_url_, ": meta ", key, " is missing"));
  }
  return Field(rows.get(), 0, 0);
}

}  // namespace tessera::scheduler
