// Where a job's final result goes. Implementations write atomically: a reader
// sees the whole result or nothing.
//
// Errors: the code of a Stage or Publish error tells the runtime what to do
// next, whatever the sink (file, object storage, ...):
// - UNAVAILABLE (an I/O error, a timeout, a 5xx, throttling) and
//   RESOURCE_EXHAUSTED (a full disk or quota): may pass (SinkErrorMayPass).
//   The runtime writes the same bytes again with backoff (Stage, then
//   Publish) until they are in, without failing the job; meanwhile new work
//   is refused with that code and health says NOT_SERVING. So a write that
//   fails this way must leave nothing a reader could see, or exactly these
//   bytes (the next Stage finds them and writes nothing again).
// - anything else (a bad job id, permission denied, a 4xx): permanent. The
//   job fails with the error.
// A Sync error, whatever its code, holds back the store commits that wait for
// it (jobs marked done), which are retried with it like a failed commit.
#ifndef TESSERA_SCHEDULER_SINK_RESULT_SINK_H_
#define TESSERA_SCHEDULER_SINK_RESULT_SINK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "prometheus/metric_family.h"

namespace tessera::scheduler {

struct PersistedResult {
  std::string location;  // e.g. a file path
  std::string sha256;    // hex digest of the bytes written
};

// A result written durably where no reader looks yet (see Stage).
struct StagedResult {
  PersistedResult result;  // where it goes once published
  std::string staged_at;   // empty: the sink already holds these bytes there
  // The bytes, for a sink that can only write them on Publish (object
  // storage has no place out of readers' sight); empty otherwise.
  std::string payload;
};

// Whether `id` can name a result: 1-128 letters, digits, '-' or '_' (nothing
// that could leave the sink's directory or prefix).
bool ValidJobId(const std::string& id);
// "<job-id>.json" for version 1, "<job-id>.v<N>.json" after that.
std::string ResultName(const std::string& job_id, int32_t version);
// FAILED_PRECONDITION: `location` already holds a result with `found_sha256`,
// not the `want_sha256` being written, and is left as it is.
absl::Status DifferentResultError(const std::string& location,
                                  const std::string& found_sha256,
                                  const std::string& want_sha256);
// Whether a sink's error may pass (see above): the write is retried.
inline bool SinkErrorMayPass(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kResourceExhausted;
}

// Thread-safe.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  // Writes version `version` of a job's result. Idempotent: when the sink
  // already holds exactly these bytes (a restart after the write but before
  // the job was marked done), nothing is written again.
  absl::StatusOr<PersistedResult> Write(const std::string& job_id, int32_t version,
                                        const std::string& bytes) {
    absl::StatusOr<StagedResult> staged = Stage(job_id, version, bytes);
    if (!staged.ok()) return staged.status();
    absl::StatusOr<PersistedResult> published = Publish(*staged);
    if (!published.ok()) return published.status();
    if (absl::Status s = Sync(); !s.ok()) return s;
    return published;
  }
  // Write in three steps, so that the slow ones can overlap other work:
  // Stage makes the bytes durable out of readers' sight (while the store
  // commits); Publish puts them in place, atomically: readers see all of them
  // from now on, and a crash of this process keeps them; Sync makes every
  // result published so far survive a power cut too (one Sync covers many
  // Publish calls). A staged result that is never published is left behind
  // for the operator (a temp file) and never read.
  virtual absl::StatusOr<StagedResult> Stage(const std::string& job_id, int32_t version,
                                             const std::string& bytes) = 0;
  virtual absl::StatusOr<PersistedResult> Publish(const StagedResult& staged) = 0;
  virtual absl::Status Sync() { return absl::OkStatus(); }
  // Publish is quick and never waits (e.g. a local rename): the runtime may
  // run it on the store writer's threads, right after the commit it waits
  // for, instead of waking a persist worker for it.
  virtual bool PublishesQuickly() const { return false; }
  // Slow groundwork that makes later writes faster, done off their path (the
  // runtime calls it between writes). Optional.
  virtual void Prepare() {}
  // Reads a published result back. A result that is missing is DATA_LOSS; a
  // location that is not the sink's is INTERNAL.
  virtual absl::StatusOr<std::string> Read(const std::string& location) = 0;
  // The size in bytes of a published result, without reading it.
  virtual absl::StatusOr<int64_t> Size(const std::string& location) = 0;
  // Deletes a published result (--delete-results-with-jobs, when its job
  // retires); one already gone is OK. A location that is not the sink's is
  // INTERNAL.
  virtual absl::Status Delete(const std::string& location) = 0;
  // The scheduler is stopping: a Stage or Publish that waits (a sink that
  // retries a store that is down) gives up at once with UNAVAILABLE, and so
  // does every later one. The job then stays "finalizing" in the store, and
  // the next start writes its result. Optional: a sink that never waits long
  // has nothing to give up.
  virtual void Cancel() {}
  // Results actually written by this process (for metrics and tests).
  virtual int64_t writes() const = 0;
  // The sink's own metrics (e.g. request latency and retries), if any.
  virtual std::vector<prometheus::MetricFamily> CollectMetrics() { return {}; }
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SINK_RESULT_SINK_H_
