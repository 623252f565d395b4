#include "executor/service/grpc_scheduler_connection.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "shared/grpc_util.h"
#include "tessera/v1/executor.grpc.pb.h"

namespace tessera::executor {
namespace {

// Assign messages of items jobs can be large (the scheduler's limit is its
// --max-message-bytes, 64 MiB by default); gRPC's own default is 4 MiB.
constexpr int kMaxReceiveBytes = 64 << 20;

// A fresh channel per connection attempt, with its own subchannel: a shared
// subchannel stuck in its reconnect backoff kept failing new streams for
// seconds after the scheduler came up.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const GrpcConnectionOptions& o) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  // A scheduler that stops answering (paused, its host gone, a partition)
  // ends the stream within about two keepalives, so the executor reconnects
  // (and finds the new leader) instead of waiting on a dead connection.
  const int keepalive_ms = static_cast<int>(absl::ToInt64Milliseconds(o.keepalive));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeChannelCredentials(o.tls);
  if (!creds.ok()) return creds.status();
  return grpc::CreateCustomChannel(address, *creds, args);
}

// Waits until `channel` is READY; false as soon as a connect attempt fails
// (the client's backoff decides when to try again) or after `timeout` (on
// gRPC's monotonic clock, so a wall-clock step changes nothing).
bool ConnectChannel(grpc::Channel& channel, absl::Duration timeout) {
  const gpr_timespec deadline = gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC),
      gpr_time_from_millis(absl::ToInt64Milliseconds(timeout), GPR_TIMESPAN));
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      return false;
    }
    if (!channel.WaitForStateChange(state, deadline)) return false;
    state = channel.GetState(/*try_to_connect=*/true);
  }
  return true;
}

class GrpcSchedulerSession : public SchedulerSession {
 public:
  GrpcSchedulerSession(std::shared_ptr<grpc::Channel> channel, const std::string& token)
      : stub_(v1::ExecutorService::NewStub(channel)) {
    if (!token.empty()) ctx_.AddMetadata("authorization", "Bearer " + token);
    stream_ = stub_->Connect(&ctx_);
  }

  bool Write(const v1::ExecutorMessage& msg) override { return stream_->Write(msg); }
  bool Read(v1::SchedulerMessage* msg) override { return stream_->Read(msg); }
  void CloseWrites() override { stream_->WritesDone(); }
  void Cancel() override { ctx_.TryCancel(); }
  absl::Status Finish() override { return FromGrpcStatus(stream_->Finish()); }

 private:
  std::unique_ptr<v1::ExecutorService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ExecutorMessage, v1::SchedulerMessage>>
      stream_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SchedulerSession>> GrpcSchedulerConnection::Open(
    const std::string& address) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(address, options_);
  if (!channel.ok()) return channel.status();
  absl::StatusOr<std::string> token =
      ReadTokenFile(options_.auth_token_file, "--auth-token-file");
  if (!token.ok()) return token.status();
  if (!ConnectChannel(**channel, options_.connect_timeout)) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", address,
        options_.tls.ca_file.empty() ? ""
                                     : " (TLS: check --tls-ca and the server's name)"));
  }
  return std::make_unique<GrpcSchedulerSession>(*std::move(channel), *token);
}

}  // namespace tessera::executor
