// JobService: the public API (callback API; unary calls plus WatchJob).
#ifndef TESSERA_SCHEDULER_SERVICE_JOB_SERVICE_H_
#define TESSERA_SCHEDULER_SERVICE_JOB_SERVICE_H_

#include <atomic>

#include "scheduler/service/auth.h"
#include "scheduler/service/runtime.h"
#include "tessera/v1/jobs.grpc.pb.h"

namespace tessera::scheduler {

// Thread-safe; borrows the runtime and the authenticator, which must outlive
// the server. Every call is checked against the caller's role (and, for a
// queue-scoped submitter, the job's queue) before it touches anything;
// changes are logged with the caller's name (audit).
class JobServiceImpl : public v1::JobService::CallbackService {
 public:
  // At most `max_watchers` WatchJob streams at once; more are RESOURCE_EXHAUSTED.
  // Results larger than `max_message_bytes` are answered without content.
  JobServiceImpl(Runtime* runtime, Authenticator* auth, int max_watchers = 1024,
                 int max_message_bytes = 64 << 20)
      : runtime_(runtime),
        auth_(auth),
        max_watchers_(max_watchers),
        max_message_bytes_(max_message_bytes) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* req,
                                      v1::Job* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* req, v1::Job* resp) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* req,
                                     v1::ListJobsResponse* resp) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* req) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* req,
                                      v1::Job* resp) override;
  grpc::ServerUnaryReactor* UpdateJob(grpc::CallbackServerContext* ctx,
                                      const v1::UpdateJobRequest* req,
                                      v1::Job* resp) override;
  grpc::ServerUnaryReactor* RetryFailedShards(grpc::CallbackServerContext* ctx,
                                              const v1::RetryFailedShardsRequest* req,
                                              v1::Job* resp) override;
  grpc::ServerUnaryReactor* GetResult(grpc::CallbackServerContext* ctx,
                                      const v1::GetResultRequest* req,
                                      v1::GetResultResponse* resp) override;
  grpc::ServerUnaryReactor* ListExecutors(grpc::CallbackServerContext* ctx,
                                          const v1::ListExecutorsRequest* req,
                                          v1::ListExecutorsResponse* resp) override;
  grpc::ServerUnaryReactor* GetQueueStats(grpc::CallbackServerContext* ctx,
                                          const v1::GetQueueStatsRequest* req,
                                          v1::GetQueueStatsResponse* resp) override;

 private:
  // The caller of a change to an existing job, checked against that job's
  // queue; NOT_FOUND only once the caller may submit at all.
  absl::StatusOr<Identity> JobChanger(grpc::CallbackServerContext* ctx,
                                      const std::string& job_id,
                                      absl::string_view method);

  Runtime* runtime_;
  Authenticator* auth_;
  const int max_watchers_;
  std::atomic<int> watchers_{0};  // WatchJob streams open now
  const int max_message_bytes_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_JOB_SERVICE_H_
