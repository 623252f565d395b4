// Keeps gRPC's callback threads awake while the scheduler is idle.
//
// gRPC 1.51 runs the callback API's reactors (all of JobService and
// ExecutorService) on a process-wide completion queue served by two
// "nexting" threads, unless its poller runs in the background, which Linux's
// default poller (epoll1) does not. A nexting thread that sees no event for
// 1 s sleeps 100 ms before it polls again; when both sleep, a call arriving
// meanwhile waits for them. A client sending its next call about 1 s after
// the previous one ended (and again 2.1 s, 3.2 s, ... after) saw it stall up
// to 100 ms. A cheap in-process health check every `period` (well under 1 s)
// puts an event on that queue, so that the thread that saw the latest one
// is always polling.
//
// Thread-safe. Owns its thread; borrows the server, which must outlive it
// (destroy or Stop it before shutting the server down).
#ifndef TESSERA_SCHEDULER_SERVICE_CALLBACK_QUEUE_WAKER_H_
#define TESSERA_SCHEDULER_SERVICE_CALLBACK_QUEUE_WAKER_H_

#include <grpcpp/server.h>

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shared/steady_wait.h"

namespace tessera::scheduler {

class CallbackQueueWaker {
 public:
  // Starts the thread; the first check goes out after `period`.
  CallbackQueueWaker(grpc::Server* server, absl::Duration period);
  ~CallbackQueueWaker();
  // Returns once no check is in flight and none will be sent.
  void Stop();
  // Checks answered so far (for tests).
  int64_t wakes() const;

 private:
  void Loop();

  grpc::Server* server_;
  const absl::Duration period_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  SteadyCondVar stop_cv_;  // signalled when stopping_ is set
  int64_t wakes_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_CALLBACK_QUEUE_WAKER_H_
