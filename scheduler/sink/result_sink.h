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

#include <string>

#include "absl/status/statusor.h"

namespace tessera::scheduler {

struct PersistedResult {
  std::string location;  // e.g. a file path
  std::string sha256;    // hex digest of the bytes written
};

// A result written durably where no reader looks yet (see Stage).
struct StagedResult {
  PersistedResult result;  // where it goes once published
  std::string staged_at;   // empty: the sink already holds these bytes there
};

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
  // Slow groundwork that makes later writes faster, done off their path (the
  // runtime calls it between writes). Optional.
  virtual void Prepare() {}
  virtual absl::StatusOr<std::string> Read(const std::string& location) = 0;
  // Results actually written by this process (for metrics and tests).
  virtual int64_t writes() const = 0;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SINK_RESULT_SINK_H_
