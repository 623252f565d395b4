// The PostgreSQL store's SQL: the schema migrations, the statements it prepares on
// every connection, and what a SQLSTATE tells the caller to do next (store.h). Plain
// data and one pure function; postgres_store.cc runs them.
#ifndef TESSERA_SCHEDULER_STORE_POSTGRES_STORE_SQL_H_
#define TESSERA_SCHEDULER_STORE_POSTGRES_STORE_SQL_H_

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace tessera::scheduler::postgres_sql {

// Schema migrations, in order; the store's version is the last one applied.
// A new version is appended here, never edited in place.
struct Migration {
  int version;
  const char* sql;
};
absl::Span<const Migration> Migrations();
// The version of the last migration: the schema this binary reads and writes.
int LatestVersion();

// Serializes schema changes between schedulers starting at once.
inline constexpr char kMigrationLock[] =
    "SELECT pg_advisory_xact_lock(7310595133623644465)";

// Every statement the store runs with parameters, prepared on each
// connection. Records and results are BYTEA, sent and read in binary: the
// store keeps the exact bytes, whatever they are.
enum StatementId {
  kUpsertJob,
  kInsertResult,
  kLoadJobs,
  kLoadResults,
  kPutMeta,
  kGetMeta,
  kTouchMeta,
  kUpsertFailed,
  kLoadFailed,
  kDeleteJob,
  kDeleteResults,
  kDeleteFailed,
  kCountRows,
  kLoadUnfinished,
  kLoadFinished,
  kMaxSeq,
  kLoadJob,
  kListFinished,
  kListFinishedByState,
  kListFinishedByQueue,
  kListFinishedByQueueState,
};
struct Statement {
  const char* name;
  const char* sql;
};
// Indexed by StatementId.
absl::Span<const Statement> Statements();

// What the caller should do next (store.h), by SQLSTATE; null or empty (no reply)
// is UNAVAILABLE.
absl::StatusCode CodeOfSqlState(const char* state);

}  // namespace tessera::scheduler::postgres_sql

#endif  // TESSERA_SCHEDULER_STORE_POSTGRES_STORE_SQL_H_
