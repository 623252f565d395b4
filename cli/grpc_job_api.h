// JobApi over a gRPC channel. Unary calls carry a deadline; WatchJob does not.
// Thread-compatible: one call at a time is what the CLI needs.
#ifndef TESSERA_CLI_GRPC_JOB_API_H_
#define TESSERA_CLI_GRPC_JOB_API_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/job_api.h"
#include "tessera/v1/jobs.grpc.pb.h"

namespace tessera::cli {

class GrpcJobApi : public JobApi {
 public:
  // A channel to options.address (host:port): TLS verified against
  // options.tls_ca when set, else plaintext; every call carries
  // options.token as a bearer token when set. Errors name the bad file.
  static absl::StatusOr<std::unique_ptr<GrpcJobApi>> Connect(
      const ConnectOptions& options, absl::Duration unary_deadline);

  GrpcJobApi(std::shared_ptr<grpc::Channel> channel, absl::Duration unary_deadline,
             std::string token = "");

  absl::StatusOr<tessera::v1::Job> SubmitJob(const tessera::v1::JobSpec& spec) override;
  absl::StatusOr<tessera::v1::Job> GetJob(const std::string& job_id) override;
  absl::StatusOr<tessera::v1::ListJobsResponse> ListJobs(
      const tessera::v1::ListJobsRequest& request) override;
  absl::StatusOr<tessera::v1::Job> CancelJob(const std::string& job_id) override;
  absl::StatusOr<tessera::v1::Job> RetryFailedShards(const std::string& job_id) override;
  absl::StatusOr<tessera::v1::Job> UpdateJob(
      const tessera::v1::UpdateJobRequest& request) override;
  absl::StatusOr<tessera::v1::GetResultResponse> GetResult(
      const std::string& job_id) override;
  absl::StatusOr<tessera::v1::ListExecutorsResponse> ListExecutors() override;
  absl::StatusOr<tessera::v1::GetQueueStatsResponse> GetQueueStats() override;
  absl::Status WatchJob(
      const std::string& job_id,
      const std::function<void(const tessera::v1::JobEvent&)>& on_event) override;

 private:
  // A context with the deadline (unary calls) and the token.
  std::unique_ptr<grpc::ClientContext> NewContext(bool unary) const;
  template <typename Request, typename Response>
  absl::StatusOr<Response> CallUnary(
      grpc::Status (tessera::v1::JobService::Stub::*method)(grpc::ClientContext*,
                                                            const Request&, Response*),
      const Request& request);

  std::unique_ptr<tessera::v1::JobService::Stub> stub_;
  absl::Duration unary_deadline_;
  std::string token_;
};

}  // namespace tessera::cli

#endif  // TESSERA_CLI_GRPC_JOB_API_H_
