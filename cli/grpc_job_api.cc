#include "cli/grpc_job_api.h"

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "shared/grpc_util.h"
#include "shared/tls.h"

namespace tessera::cli {

namespace v1 = tessera::v1;

absl::StatusOr<std::unique_ptr<GrpcJobApi>> GrpcJobApi::Connect(
    const ConnectOptions& options, absl::Duration unary_deadline) {
  ClientTlsOptions tls;
  tls.ca_file = options.tls_ca;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeChannelCredentials(tls);
  if (!creds.ok()) return creds.status();
  // Replicas (a comma-separated --scheduler): the one whose health says
  // SERVING leads (followers are NOT_SERVING); else the first, whose error
  // (a follower's UNAVAILABLE names the leader) the caller then sees.
  const std::vector<std::string> addresses =
      absl::StrSplit(options.address, ',', absl::SkipEmpty());
  std::shared_ptr<grpc::Channel> chosen;
  for (const std::string& address : addresses) {
    std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(address, *creds);
    if (addresses.size() == 1) {
      chosen = channel;
      break;
    }
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    grpc::health::v1::HealthCheckResponse resp;
    if (health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok() &&
        resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      chosen = channel;
      break;
    }
  }
  if (chosen == nullptr) {
    chosen =
        grpc::CreateChannel(addresses.empty() ? options.address : addresses[0], *creds);
  }
  return std::make_unique<GrpcJobApi>(std::move(chosen), unary_deadline, options.token);
}

GrpcJobApi::GrpcJobApi(std::shared_ptr<grpc::Channel> channel,
                       absl::Duration unary_deadline, std::string token)
    : stub_(v1::JobService::NewStub(std::move(channel))),
      unary_deadline_(unary_deadline),
      token_(std::move(token)) {}

std::unique_ptr<grpc::ClientContext> GrpcJobApi::NewContext(bool unary) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (unary) context->set_deadline(absl::ToChronoTime(absl::Now() + unary_deadline_));
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  return context;
}

// One unary call with its own context and deadline; the status converted.
template <typename Request, typename Response>
absl::StatusOr<Response> GrpcJobApi::CallUnary(
    grpc::Status (v1::JobService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                 Response*),
    const Request& request) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(/*unary=*/true);
  Response response;
  grpc::Status status = ((*stub_).*method)(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::Job> GrpcJobApi::SubmitJob(const v1::JobSpec& spec) {
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  return CallUnary(&v1::JobService::Stub::SubmitJob, request);
}

absl::StatusOr<v1::Job> GrpcJobApi::GetJob(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  return CallUnary(&v1::JobService::Stub::GetJob, request);
}

absl::StatusOr<v1::ListJobsResponse> GrpcJobApi::ListJobs(
    const v1::ListJobsRequest& request) {
  return CallUnary(&v1::JobService::Stub::ListJobs, request);
}

absl::StatusOr<v1::Job> GrpcJobApi::CancelJob(const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  return CallUnary(&v1::JobService::Stub::CancelJob, request);
}

absl::StatusOr<v1::Job> GrpcJobApi::RetryFailedShards(const std::string& job_id) {
  v1::RetryFailedShardsRequest request;
  request.set_job_id(job_id);
  return CallUnary(&v1::JobService::Stub::RetryFailedShards, request);
}

absl::StatusOr<v1::Job> GrpcJobApi::UpdateJob(const v1::UpdateJobRequest& request) {
  return CallUnary(&v1::JobService::Stub::UpdateJob, request);
}

absl::StatusOr<v1::GetResultResponse> GrpcJobApi::GetResult(const std::string& job_id) {
  v1::GetResultRequest request;
  request.set_job_id(job_id);
  return CallUnary(&v1::JobService::Stub::GetResult, request);
}

absl::StatusOr<v1::ListExecutorsResponse> GrpcJobApi::ListExecutors() {
  v1::ListExecutorsRequest request;
  return CallUnary(&v1::JobService::Stub::ListExecutors, request);
}

absl::StatusOr<v1::GetQueueStatsResponse> GrpcJobApi::GetQueueStats() {
  v1::GetQueueStatsRequest request;
  return CallUnary(&v1::JobService::Stub::GetQueueStats, request);
}

absl::Status GrpcJobApi::WatchJob(
    const std::string& job_id, const std::function<void(const v1::JobEvent&)>& on_event) {
  std::unique_ptr<grpc::ClientContext> context = NewContext(/*unary=*/false);
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
      stub_->WatchJob(context.get(), request);
  v1::JobEvent event;
  while (reader->Read(&event)) on_event(event);
  return FromGrpcStatus(reader->Finish());
}

}  // namespace tessera::cli
