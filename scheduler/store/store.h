// Where the scheduler keeps what must survive a restart: job records and the
// accepted shard results of unfinished jobs.
#ifndef TESSERA_SCHEDULER_STORE_STORE_H_
#define TESSERA_SCHEDULER_STORE_STORE_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

inline constexpr char kRecordErrorPayload[] = "type.tessera.dev/store.RecordError";

struct StoredState {
  std::vector<JobRecord> jobs;  // submission order
  // Shard results of the jobs that are not finished, by job id, in shard order.
  std::map<std::string, std::vector<StoredResult>> results;
  // Failed shards of the jobs that are not finished (a finished job's record
  // lists its own), by job id, in shard order.
  std::map<std::string, std::vector<FailedShard>> failed;
};

// What one transaction writes, applied in this order: job records (of a job
// saved twice, the last), shard results, failed shards, then the deletions
// a record implies, then retired jobs.
// - A job whose record here is SUCCEEDED loses its shard results (compaction:
//   its result is persisted, and a SUCCEEDED job is never folded again).
// - A job whose record here is finished loses its failed-shard rows (the
//   finished record lists them).
// - A retired job loses every row.
struct StoreWrite {
  std::vector<const JobRecord*> jobs;
  std::vector<const SaveResultOp*> results;
  std::vector<const SaveFailedShardOp*> failed;
  std::vector<std::string> retired;
  bool empty() const {
    return jobs.empty() && results.empty() && failed.empty() && retired.empty();
  }
};

// Thread-compatible: the runtime's store writer is the only caller of Commit.
//
// Errors: what a Commit (or Flush) error means, and what the runtime does with
// it. Nothing of a failed commit may be kept.
// - UNAVAILABLE: may pass (busy, an I/O error). The runtime retries the batch
//   with backoff; after two failures in a row it reports NOT_SERVING and
//   refuses writes with UNAVAILABLE until a commit succeeds.
// - RESOURCE_EXHAUSTED: the disk (or a quota) is full. The same, but writes are
//   refused with RESOURCE_EXHAUSTED; they pass again once space returns.
// - an error made by RecordError: one job's record (or shard result) can never
//   be stored (e.g. too big). The runtime commits the batch without that job's
//   records and fails the job; the store stays in service.
// - anything else (permissions, corruption): as UNAVAILABLE, since only an
//   operator can fix it and the runtime cannot tell which record is at fault.
class Store {
 public:
  virtual ~Store() = default;
  // Commits all of it in one transaction (group commit), or nothing. For a
  // (job, shard) the first result ever committed wins; later ones are ignored.
  // With `durable`, this commit and every earlier one survive a power cut once
  // it returns, whatever the store's sync setting (the runtime asks for it
  // before writing a result to the sink).
  virtual absl::Status Commit(const StoreWrite& write, bool durable) = 0;
  absl::Status Commit(const std::vector<const JobRecord*>& jobs,
                      const std::vector<const SaveResultOp*>& results, bool durable) {
    StoreWrite w;
    w.jobs = jobs;
    w.results = results;
    return Commit(w, durable);
  }
  // Makes everything committed so far durable against power loss too (for a
  // sink write with nothing to commit before it).
  virtual absl::Status Flush() = 0;
  virtual absl::StatusOr<StoredState> Load() = 0;
  virtual absl::StatusOr<std::vector<StoredResult>> LoadResults(
      const std::string& job_id) = 0;
  // The value kept under `key` (e.g. the key that signs lease ids), storing
  // `value_if_new` durably first when there is none: the first caller's value
  // stays for the life of the store.
  virtual absl::StatusOr<std::string> InitMeta(const std::string& key,
                                               const std::string& value_if_new) = 0;
  // Gives the space of deleted rows back (e.g. SQLite's WAL checkpoint and
  // incremental vacuum); cheap enough to call every minute or so.
  virtual absl::Status Compact() { return absl::OkStatus(); }
  // Rows the store holds, for tests and the soak benchmark: job records,
  // shard results and failed shards.
  struct RowCounts {
    int64_t jobs = 0, results = 0, failed = 0;
  };
  virtual absl::StatusOr<RowCounts> CountRows() = 0;
  // "sqlite" or "memory", for logs and metrics.
  virtual std::string name() const = 0;
};

// A permanent error of one job's record: `code` and `message` as usual,
// plus the job, which RecordErrorJob reads back.
inline absl::Status RecordError(absl::StatusCode code, const std::string& job_id,
                                absl::string_view message) {
  absl::Status s(code, message);
  s.SetPayload(kRecordErrorPayload, absl::Cord(job_id));
  return s;
}
// The job whose record `s` refuses, when `s` came from RecordError.
inline std::optional<std::string> RecordErrorJob(const absl::Status& s) {
  auto job = s.GetPayload(kRecordErrorPayload);
  if (!job.has_value()) return std::nullopt;
  return std::string(*job);
}

// Encoding of a job record in the store (JSON), exposed for tests.
std::string EncodeJobRecord(const JobRecord& record);
absl::StatusOr<JobRecord> DecodeJobRecord(const std::string& text);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_STORE_STORE_H_
