// The slice of JobService the CLI calls, behind an interface so that command
// logic is tested against a fake. Errors are the RPC's status, code carried
// over one to one.
#ifndef TESSERA_CLI_JOB_API_H_
#define TESSERA_CLI_JOB_API_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::cli {

class JobApi {
 public:
  virtual ~JobApi() = default;

  virtual absl::StatusOr<tessera::v1::Job> SubmitJob(
      const tessera::v1::JobSpec& spec) = 0;
  virtual absl::StatusOr<tessera::v1::Job> GetJob(const std::string& job_id) = 0;
  virtual absl::StatusOr<tessera::v1::ListJobsResponse> ListJobs(
      const tessera::v1::ListJobsRequest& request) = 0;
  virtual absl::StatusOr<tessera::v1::Job> CancelJob(const std::string& job_id) = 0;
  // Re-runs the failed shards of a PARTIAL or FAILED job.
  virtual absl::StatusOr<tessera::v1::Job> RetryFailedShards(
      const std::string& job_id) = 0;
  // Changes the fields of request.update named by request.update_mask.
  virtual absl::StatusOr<tessera::v1::Job> UpdateJob(
      const tessera::v1::UpdateJobRequest& request) = 0;
  virtual absl::StatusOr<tessera::v1::GetResultResponse> GetResult(
      const std::string& job_id) = 0;
  virtual absl::StatusOr<tessera::v1::ListExecutorsResponse> ListExecutors() = 0;
  virtual absl::StatusOr<tessera::v1::GetQueueStatsResponse> GetQueueStats() = 0;

  // Calls `on_event` for each event, in order, until the server ends the
  // stream; returns the stream's final status. Blocks; no deadline.
  virtual absl::Status WatchJob(
      const std::string& job_id,
      const std::function<void(const tessera::v1::JobEvent&)>& on_event) = 0;
};

}  // namespace tessera::cli

#endif  // TESSERA_CLI_JOB_API_H_
