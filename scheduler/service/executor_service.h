// ExecutorService: one bidirectional stream per executor (callback API).
#ifndef TESSERA_SCHEDULER_SERVICE_EXECUTOR_SERVICE_H_
#define TESSERA_SCHEDULER_SERVICE_EXECUTOR_SERVICE_H_

#include "scheduler/service/auth.h"
#include "scheduler/service/runtime.h"
#include "tessera/v1/executor.grpc.pb.h"

namespace tessera::scheduler {

// Thread-safe; borrows the runtime and the authenticator, which must outlive
// the server. A stream needs role executor (or admin) or a verified client
// certificate when auth is on; its identity is bound to its executor id.
class ExecutorServiceImpl : public v1::ExecutorService::CallbackService {
 public:
  ExecutorServiceImpl(Runtime* runtime, Authenticator* auth)
      : runtime_(runtime), auth_(auth) {}
  grpc::ServerBidiReactor<v1::ExecutorMessage, v1::SchedulerMessage>* Connect(
      grpc::CallbackServerContext* context) override;

 private:
  Runtime* runtime_;
  Authenticator* auth_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_EXECUTOR_SERVICE_H_
