// Conversions at the gRPC edge: absl::Status <-> grpc::Status (codes share
// numbers, carried over one to one), and server builder options we always want.
#ifndef TESSERA_SHARED_GRPC_UTIL_H_
#define TESSERA_SHARED_GRPC_UTIL_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace tessera {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// Port reuse off, so that a second server on a busy port fails instead of
// silently sharing it; HTTP/2 keepalive both ways (a silent peer is noticed).
void ApplyServerDefaults(grpc::ServerBuilder& builder);

}  // namespace tessera

#endif  // TESSERA_SHARED_GRPC_UTIL_H_
