// SchedulerConnection over gRPC: a fresh channel per session, TLS, a bearer
// token, keepalive.
#ifndef TESSERA_EXECUTOR_SERVICE_GRPC_SCHEDULER_CONNECTION_H_
#define TESSERA_EXECUTOR_SERVICE_GRPC_SCHEDULER_CONNECTION_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "executor/service/scheduler_connection.h"
#include "shared/tls.h"

namespace tessera::executor {

struct GrpcConnectionOptions {
  // How long one attempt waits for the channel to connect.
  absl::Duration connect_timeout = absl::Seconds(5);
  // HTTP/2 keepalive ping interval and answer timeout (ExecutorConfig::keepalive).
  absl::Duration keepalive = absl::Seconds(5);
  // TLS to the scheduler (empty ca_file: plaintext) and an optional client
  // certificate (mTLS); the files are read again for every session.
  ClientTlsOptions tls;
  // File holding the bearer token sent on the stream (role executor); read
  // again for every session, so a rotated Secret takes effect on reconnect.
  std::string auth_token_file;
};

// Thread-compatible (one Open at a time); sessions as SchedulerSession says.
class GrpcSchedulerConnection : public SchedulerConnection {
 public:
  explicit GrpcSchedulerConnection(GrpcConnectionOptions options)
      : options_(std::move(options)) {}

  absl::StatusOr<std::unique_ptr<SchedulerSession>> Open(
      const std::string& address) override;

 private:
  const GrpcConnectionOptions options_;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_GRPC_SCHEDULER_CONNECTION_H_
