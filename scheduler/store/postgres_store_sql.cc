#include "scheduler/store/postgres_store_sql.h"

#include <cstring>
#include <iterator>
#include <string>

namespace tessera::scheduler::postgres_sql {
namespace {

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE tessera_jobs (
  id TEXT PRIMARY KEY,
  seq BIGINT NOT NULL,
  state INTEGER NOT NULL,
  record BYTEA NOT NULL);
CREATE INDEX tessera_jobs_by_seq ON tessera_jobs (seq);
CREATE TABLE tessera_results (
  job_id TEXT NOT NULL,
  shard BIGINT NOT NULL,
  result BYTEA NOT NULL,
  PRIMARY KEY (job_id, shard));
)sql"},
    // Failed shards of unfinished jobs under the continue policy, one row each
    // (as SQLite's schema 2), instead of a re-encode of the job's record.
    {2, R"sql(
CREATE TABLE tessera_failed_shards (
  job_id TEXT NOT NULL,
  shard BIGINT NOT NULL,
  attempts INTEGER NOT NULL,
  bound_start BIGINT NOT NULL,
  bound_end BIGINT NOT NULL,
  error BYTEA NOT NULL,
  PRIMARY KEY (job_id, shard));
)sql"},
    // The leader lease of HA (postgres_leader.h): one row per election name,
    // its holder, the address clients reach it at, an epoch that grows at
    // every takeover, and when it expires on the server's clock.
    {3, R"sql(
CREATE TABLE tessera_leader (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  address TEXT NOT NULL,
  epoch BIGINT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL);
ALTER TABLE tessera_jobs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
)sql"},
    // Memory tracks live work (issue 19): a finished job's summary (queue,
    // times, idempotency key) in columns, filled once from the records, and
    // indexes that page finished jobs by state and by queue in submission
    // order; the state index covers the summary, so a start reads no record.
    {4, R"sql(
ALTER TABLE tessera_jobs
  ADD COLUMN queue TEXT NOT NULL DEFAULT 'default',
  ADD COLUMN created BIGINT,
  ADD COLUMN ended BIGINT,
  ADD COLUMN idem_key TEXT NOT NULL DEFAULT '';
UPDATE tessera_jobs SET
  queue = COALESCE(convert_from(record, 'UTF8')::jsonb #>> '{spec,queue}', 'default'),
  created = (convert_from(record, 'UTF8')::jsonb ->> 'created')::bigint,
  ended = (convert_from(record, 'UTF8')::jsonb ->> 'ended')::bigint,
  idem_key = COALESCE(convert_from(record, 'UTF8')::jsonb #>> '{spec,idempotency_key}', '');
CREATE INDEX tessera_jobs_by_state ON tessera_jobs (state, seq)
  INCLUDE (queue, created, ended, idem_key, id);
CREATE INDEX tessera_jobs_by_queue ON tessera_jobs (queue, seq);
)sql"},
};

constexpr Statement kStatements[] = {
    // A job saved again is updated in place; its seq (submission order) stays.
    {"tessera_upsert_job",
     // epoch: the leader's, whose fenced transaction wrote it (0 without HA),
     // so a finalizing record shows which leader finalized it.
     // queue, created, ended, idem_key: the finished job's summary (schema 4).
     "INSERT INTO tessera_jobs (id, seq, state, record, epoch, queue, created, ended, "
     "idem_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO "
     "UPDATE SET state = excluded.state, record = excluded.record, "
     "ended = excluded.ended, epoch = excluded.epoch"},
    // The first result for a (job, shard) wins.
    {"tessera_insert_result",
     "INSERT INTO tessera_results (job_id, shard, result) VALUES ($1, $2, $3) "
     "ON CONFLICT (job_id, shard) DO NOTHING"},
    {"tessera_load_jobs", "SELECT record FROM tessera_jobs ORDER BY seq"},
    {"tessera_load_results",
     "SELECT shard, result FROM tessera_results WHERE job_id = $1 ORDER BY shard"},
    {"tessera_put_meta",
     "INSERT INTO tessera_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO "
     "NOTHING"},
    {"tessera_get_meta", "SELECT value FROM tessera_meta WHERE key = $1"},
    // A write whose synchronous commit flushes the WAL (Flush with sync normal).
    {"tessera_touch_meta",
     "UPDATE tessera_meta SET value = value WHERE key = 'schema_version'"},
    // A shard failed again replaces its row (SQLite: INSERT OR REPLACE).
    {"tessera_upsert_failed",
     "INSERT INTO tessera_failed_shards (job_id, shard, attempts, bound_start, "
     "bound_end, error) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, shard) DO "
     "UPDATE SET attempts = excluded.attempts, bound_start = excluded.bound_start, "
     "bound_end = excluded.bound_end, error = excluded.error"},
    {"tessera_load_failed",
     "SELECT shard, attempts, bound_start, bound_end, error FROM tessera_failed_shards "
     "WHERE job_id = $1 ORDER BY shard"},
    {"tessera_delete_job", "DELETE FROM tessera_jobs WHERE id = $1"},
    {"tessera_delete_results", "DELETE FROM tessera_results WHERE job_id = $1"},
    {"tessera_delete_failed", "DELETE FROM tessera_failed_shards WHERE job_id = $1"},
    {"tessera_count_rows",
     "SELECT (SELECT COUNT(*) FROM tessera_jobs), (SELECT COUNT(*) FROM "
     "tessera_results), (SELECT COUNT(*) FROM tessera_failed_shards)"},
    // Finished states are 2 (SUCCEEDED) and up (types.h: append only).
    {"tessera_load_unfinished",
     "SELECT record FROM tessera_jobs WHERE state < 2 ORDER BY seq"},
    {"tessera_load_finished",
     "SELECT id, seq, state, queue, created, ended, idem_key FROM tessera_jobs "
     "WHERE state >= 2 ORDER BY seq"},
    {"tessera_max_seq", "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM tessera_jobs"},
    {"tessera_load_job", "SELECT record FROM tessera_jobs WHERE id = $1"},
    {"tessera_list_finished",
     "SELECT seq, record FROM tessera_jobs WHERE state >= 2 AND seq <= $1 "
     "ORDER BY seq DESC LIMIT $2"},
    {"tessera_list_finished_by_state",
     "SELECT seq, record FROM tessera_jobs WHERE state = $3 AND seq <= $1 "
     "ORDER BY seq DESC LIMIT $2"},
    {"tessera_list_finished_by_queue",
     "SELECT seq, record FROM tessera_jobs WHERE queue = $3 AND state >= 2 AND "
     "seq <= $1 ORDER BY seq DESC LIMIT $2"},
    {"tessera_list_finished_by_queue_state",
     "SELECT seq, record FROM tessera_jobs WHERE queue = $3 AND state = $4 AND "
     "seq <= $1 ORDER BY seq DESC LIMIT $2"},
};

bool StartsWith(const char* s, const char* prefix) {
  return s != nullptr && std::strncmp(s, prefix, std::strlen(prefix)) == 0;
}

}  // namespace

absl::Span<const Migration> Migrations() { return kMigrations; }

int LatestVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

absl::Span<const Statement> Statements() { return kStatements; }

absl::StatusCode CodeOfSqlState(const char* state) {
  if (state == nullptr || *state == '\0') return absl::StatusCode::kUnavailable;
  const std::string s(state);
  if (s == "53100") return absl::StatusCode::kResourceExhausted;  // disk full
  if (StartsWith(state, "08") ||                                  // connection exception
      s == "57P01" || s == "57P02" || s == "57P03" ||  // shutting down, starting
      s == "40001" || s == "40P01" ||                  // serialization, deadlock
      s == "55P03" || s == "57014" ||                  // lock not available, cancelled
      s == "25006" ||  // read-only transaction (a standby after failover)
      s == "53200" || s == "53300" || s == "53400" || s == "58030") {
    return absl::StatusCode::kUnavailable;
  }
  if (s == "54000" || s == "54001") return absl::StatusCode::kInvalidArgument;
  if (StartsWith(state, "28") || s == "3D000" || s == "42501") {
    return absl::StatusCode::kFailedPrecondition;
  }
  if (s == "XX001" || s == "XX002") return absl::StatusCode::kDataLoss;
  return absl::StatusCode::kInternal;
}

}  // namespace tessera::scheduler::postgres_sql
