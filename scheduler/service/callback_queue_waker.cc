#include "scheduler/service/callback_queue_waker.h"

#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"

namespace tessera::scheduler {

CallbackQueueWaker::CallbackQueueWaker(grpc::Server* server, absl::Duration period)
    : server_(server), period_(period) {
  thread_ = std::thread([this] { Loop(); });
}

CallbackQueueWaker::~CallbackQueueWaker() { Stop(); }

void CallbackQueueWaker::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

int64_t CallbackQueueWaker::wakes() const {
  absl::MutexLock lock(&mu_);
  return wakes_;
}

void CallbackQueueWaker::Loop() {
  // In-process: no socket, no poller wake-up of its own; the client's
  // callback is one more event on the same queue.
  std::unique_ptr<grpc::health::v1::Health::Stub> stub =
      grpc::health::v1::Health::NewStub(
          server_->InProcessChannel(grpc::ChannelArguments()));
  while (true) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    bool answered = false;
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (AwaitFor(&mu_, stop_cv_, stop, period_)) return;  // monotonic
    }
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    stub->async()->Check(&ctx, &request, &response, [this, &answered](grpc::Status) {
      absl::MutexLock lock(&mu_);
      answered = true;
      ++wakes_;
    });
    // One check in flight at most, and none outlives this frame.
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&answered));
  }
}

}  // namespace tessera::scheduler
