// ExecutorService: one bidirectional stream per executor (callback API).
#ifndef TESSERA_SCHEDULER_SERVICE_EXECUTOR_SERVICE_H_
#define TESSERA_SCHEDULER_SERVICE_EXECUTOR_SERVICE_H_

#include "scheduler/service/runtime.h"
#include "tessera/v1/executor.grpc.pb.h"

namespace tessera::scheduler {

// Thread-safe; borrows the runtime, which must outlive the server.
class ExecutorServiceImpl : public v1::ExecutorService::CallbackService {
 public:
  explicit ExecutorServiceImpl(Runtime* runtime) : runtime_(runtime) {}
  grpc::ServerBidiReactor<v1::ExecutorMessage, v1::SchedulerMessage>* Connect(
      grpc::CallbackServerContext* context) override;

 private:
  Runtime* runtime_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_EXECUTOR_SERVICE_H_
