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
  // LoadUnfinished only (Load leaves them empty: its `jobs` has every
  // record): the finished jobs, in submission order, as summaries read from
  // indexed columns (no record is decoded), and the highest submission
  // number ever stored (0: none).
  std::vector<FinishedJob> finished;
  int64_t max_seq = 0;
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

// Thread-safe: the runtime's store writer is the only caller of Commit and
// Flush, while reader threads call LoadJob, ListFinishedJobs and LoadResults
// (GetJob, ListJobs, GetResult of finished jobs) at the same time.
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
  // Everything: every record, finished or not (tests, tools, old callers).
  virtual absl::StatusOr<StoredState> Load() = 0;
  // What a starting scheduler holds in memory: the records of the unfinished
  // jobs (QUEUED, RUNNING) with their shard results and failed shards, and
  // only summaries of the finished ones (StoredState::finished). Costs
  // O(unfinished work + finished jobs' summaries); no finished record (nor
  // its item list) is decoded.
  virtual absl::StatusOr<StoredState> LoadUnfinished() = 0;
  // One job's record, or nullopt when the store has none (never stored, or
  // retired).
  virtual absl::StatusOr<std::optional<JobRecord>> LoadJob(const std::string& id) = 0;
  // Finished jobs' records (SUCCEEDED, FAILED, CANCELLED, PARTIAL), newest
  // first: those matching `filter` (whose state, when set, is a finished one)
  // with submission number <= `before` (< 0: from the newest), at most
  // `limit`. State and queue are indexed (O(limit) rows read); labels are
  // matched on the decoded records, so a label filter reads the finished
  // jobs of the page's range of submission numbers (O(scanned)).
  virtual absl::StatusOr<std::vector<JobRecord>> ListFinishedJobs(const JobFilter& filter,
                                                                  int64_t before,
                                                                  int limit) = 0;
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

// Whether `r` passes `filter`'s state, queue and labels.
inline bool MatchesFilter(const JobFilter& filter, JobState state, const JobSpec& spec) {
  if (filter.state.has_value() && state != *filter.state) return false;
  if (!filter.queue.empty() && spec.queue != filter.queue) return false;
  for (const auto& [k, v] : filter.labels) {
    auto l = spec.labels.find(k);
    if (l == spec.labels.end() || l->second != v) return false;
  }
  return true;
}

// A finished job's summary, as LoadUnfinished gives it.
inline FinishedJob SummaryOf(const JobRecord& r) {
  return FinishedJob{
      r.id, r.seq, r.state, r.spec.queue, r.created, r.ended, r.spec.idempotency_key};
}

// Encoding of a job record in the store (JSON), exposed for tests.
std::string EncodeJobRecord(const JobRecord& record);
absl::StatusOr<JobRecord> DecodeJobRecord(const std::string& text);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_STORE_STORE_H_
