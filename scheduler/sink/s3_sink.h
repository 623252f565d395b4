// Writes results to S3-compatible object storage, each once: objects
// PREFIX/<job-id>.json (version 1) and PREFIX/<job-id>.v<N>.json, with the
// bytes' sha256 in x-amz-meta-sha256 and the job id in x-amz-meta-tessera-job-id.
//
// Written once, never overwritten:
// - Stage looks first (HEAD): the object with these bytes is already there
//   (a restart after the write) → nothing to write; other bytes → the job
//   fails with FAILED_PRECONDITION naming both digests. Stores that ignore
//   If-None-Match (some S3 look-alikes) are covered by this look, as only
//   one scheduler writes a job's result (its "finalizing" record).
// - Publish, once the finalizing record is durable, PUTs with
//   If-None-Match: * (multipart above the threshold: the condition goes on
//   CompleteMultipartUpload). A 412 is success only if a HEAD finds the same
//   sha256; otherwise the job fails as above.
// - A failed multipart upload is aborted, so that no parts are left behind.
//
// Transient failures (no answer, timeouts, 5xx, 429, SlowDown, …) are
// retried with exponential backoff for as long as it takes: the job stays
// "finalizing" and never fails for them. After an attempt whose answer was
// lost, the next one looks (HEAD) before it writes again. Permanent ones
// (403 SignatureDoesNotMatch, 404 NoSuchBucket, …) fail the job with S3's
// code and message. Cancel (the scheduler stopping) ends the waiting with
// UNAVAILABLE.
//
// Thread-safe: Stage, Publish and Read may run on several threads at once.
#ifndef TESSERA_SCHEDULER_SINK_S3_SINK_H_
#define TESSERA_SCHEDULER_SINK_S3_SINK_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "scheduler/sink/result_sink.h"
#include "scheduler/sink/s3_client.h"
#include "shared/steady_wait.h"

namespace tessera::scheduler {

struct S3SinkOptions {
  std::string endpoint;  // see S3ClientOptions; empty: AWS
  std::string region = "us-east-1";
  // Credentials: this file (AWS shared-credentials format, section
  // `profile`), or when empty the AWS_* environment variables.
  std::string credentials_file;
  std::string profile = "default";
  // Results larger than this go up in parts of `part_size` (S3 wants parts
  // of at least 5 MiB, but for the last; at most 10,000 parts: a larger
  // result gets larger parts).
  int64_t multipart_threshold = int64_t{64} << 20;
  int64_t part_size = int64_t{16} << 20;
  absl::Duration timeout = absl::Seconds(30);  // see S3ClientOptions
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  // GetResult's reads (a caller waits): tries before UNAVAILABLE.
  int read_attempts = 3;

  absl::Status Validate() const;
};

class S3Sink : public ResultSink {
 public:
  // `url` is s3://BUCKET[/PREFIX]. Reads the credentials now: fails without.
  static absl::StatusOr<std::unique_ptr<S3Sink>> Create(const std::string& url,
                                                        const S3SinkOptions& options);
  // With the given credentials instead (tests).
  static absl::StatusOr<std::unique_ptr<S3Sink>> Create(
      const std::string& url, const S3SinkOptions& options,
      std::unique_ptr<CredentialsSource> credentials);

  absl::StatusOr<StagedResult> Stage(const std::string& job_id, int32_t version,
                                     const std::string& bytes) override;
  absl::StatusOr<PersistedResult> Publish(const StagedResult& staged) override;
  absl::StatusOr<std::string> Read(const std::string& location) override;
  absl::StatusOr<int64_t> Size(const std::string& location) override;
  // DELETE of the object; S3 answers 204 whether or not it was there.
  absl::Status Delete(const std::string& location) override;
  void Cancel() override;
  int64_t writes() const override { return writes_.load(); }
  std::vector<prometheus::MetricFamily> CollectMetrics() override;

  // The object key of a job's result (tests).
  std::string Key(const std::string& job_id, int32_t version) const;
  S3Client& client() { return *client_; }

 private:
  enum class Found { kAbsent, kSame, kDifferent };
  struct Look {
    Found found = Found::kAbsent;
    std::string sha256;  // the stored object's, when found
  };
  // How Call treats an answer that is a transient failure.
  enum class Retry { kForever, kReads, kNever };

  S3Sink(std::unique_ptr<S3Client> client, std::string prefix, S3SinkOptions options);

  // Sends `request` (operation `op`, for metrics and messages), retrying
  // transient failures as `retry` says. Returns the answer (success or a
  // permanent error), UNAVAILABLE for a transient failure not retried
  // (kNever) or once retries are over, or when cancelled.
  absl::StatusOr<S3Response> Call(const std::string& op, const S3Request& request,
                                  Retry retry, const std::string& job_id);
  // What is stored at `key`, compared with `sha256`.
  absl::StatusOr<Look> LookAt(const std::string& key, const std::string& sha256,
                              const std::string& job_id);
  // One attempt at writing: OK, FAILED_PRECONDITION "exists" (a 412), a
  // permanent error, or UNAVAILABLE (transient; the caller looks, then
  // tries again).
  absl::Status PutObject(const std::string& key, const std::string& bytes,
                         const std::string& sha256, const std::string& job_id);
  absl::Status PutMultipart(const std::string& key, const std::string& bytes,
                            const std::string& sha256, const std::string& job_id);
  void AbortUpload(const std::string& key, const std::string& upload_id,
                   const std::string& job_id);
  // The status for a permanent error answer.
  absl::Status Failed(const std::string& op, const std::string& key,
                      const S3Response& r) const;
  // Waits `d` unless cancelled; false when cancelled.
  bool Backoff(absl::Duration d);
  absl::StatusOr<std::string> KeyOf(const std::string& location) const;

  std::unique_ptr<S3Client> client_;
  const std::string prefix_;  // "" or "a/b/" (ends with '/')
  const S3SinkOptions options_;
  std::atomic<int64_t> writes_{0};
  std::once_flag cancel_once_;
  SteadyNotification cancelled_;  // its timed wait is monotonic

  prometheus::Registry registry_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Counter>& retries_;
  prometheus::Family<prometheus::Counter>& failures_;
};

// Splits s3://BUCKET[/PREFIX] into the bucket and the prefix ("" or ending
// with '/'); INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<std::pair<std::string, std::string>> ParseS3Url(const std::string& url);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SINK_S3_SINK_H_
