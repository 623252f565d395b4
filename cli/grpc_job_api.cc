#include "cli/grpc_job_api.h"

#include "absl/time/clock.h"
#include "shared/grpc_util.h"

namespace tessera::cli {

namespace v1 = tessera::v1;

std::unique_ptr<GrpcJobApi> GrpcJobApi::Connect(const std::string& address,
                                                absl::Duration unary_deadline) {
  return std::make_unique<GrpcJobApi>(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), unary_deadline);
}

GrpcJobApi::GrpcJobApi(std::shared_ptr<grpc::Channel> channel,
                       absl::Duration unary_deadline)
    : stub_(v1::JobService::NewStub(std::move(channel))),
      unary_deadline_(unary_deadline) {}

namespace {

template <typename Request, typename Response>
using UnaryMethod = grpc::Status (v1::JobService::Stub::*)(grpc::ClientContext*,
                                                           const Request&, Response*);

// One unary call with its own context and deadline; the status converted.
template <typename Request, typename Response>
absl::StatusOr<Response> CallUnary(v1::JobService::Stub& stub,
                                   UnaryMethod<Request, Response> method,
                                   const Request& request, absl::Duration deadline) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  Response response;
  grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace

absl::StatusOr<v1::Job> GrpcJobApi::SubmitJob(const v1::JobSpec& spec) {
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  return CallUnary(*stub_, &v1::JobService::Stub::SubmitJob, request, unary_deadline_);
}

absl::StatusOr<v1::Job> GrpcJobApi::GetJob(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  return CallUnary(*stub_, &v1::JobService::Stub::GetJob, request, unary_deadline_);
}

absl::StatusOr<v1::ListJobsResponse> GrpcJobApi::ListJobs(
    const v1::ListJobsRequest& request) {
  return CallUnary(*stub_, &v1::JobService::Stub::ListJobs, request, unary_deadline_);
}

absl::StatusOr<v1::Job> GrpcJobApi::CancelJob(const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  return CallUnary(*stub_, &v1::JobService::Stub::CancelJob, request, unary_deadline_);
}

absl::StatusOr<v1::Job> GrpcJobApi::RetryFailedShards(const std::string& job_id) {
  v1::RetryFailedShardsRequest request;
  request.set_job_id(job_id);
  return CallUnary(*stub_, &v1::JobService::Stub::RetryFailedShards, request,
                   unary_deadline_);
}

absl::StatusOr<v1::Job> GrpcJobApi::UpdateJob(const v1::UpdateJobRequest& request) {
  return CallUnary(*stub_, &v1::JobService::Stub::UpdateJob, request, unary_deadline_);
}

absl::StatusOr<v1::GetResultResponse> GrpcJobApi::GetResult(const std::string& job_id) {
  v1::GetResultRequest request;
  request.set_job_id(job_id);
  return CallUnary(*stub_, &v1::JobService::Stub::GetResult, request, unary_deadline_);
}

absl::StatusOr<v1::ListExecutorsResponse> GrpcJobApi::ListExecutors() {
  v1::ListExecutorsRequest request;
  return CallUnary(*stub_, &v1::JobService::Stub::ListExecutors, request,
                   unary_deadline_);
}

absl::StatusOr<v1::GetQueueStatsResponse> GrpcJobApi::GetQueueStats() {
  v1::GetQueueStatsRequest request;
  return CallUnary(*stub_, &v1::JobService::Stub::GetQueueStats, request,
                   unary_deadline_);
}

absl::Status GrpcJobApi::WatchJob(
    const std::string& job_id, const std::function<void(const v1::JobEvent&)>& on_event) {
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
      stub_->WatchJob(&context, request);
  v1::JobEvent event;
  while (reader->Read(&event)) on_event(event);
  return FromGrpcStatus(reader->Finish());
}

}  // namespace tessera::cli
