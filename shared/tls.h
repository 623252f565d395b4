// TLS credentials for Tessera's gRPC server and clients, from PEM files.
//
// The server's certificate, key and client CA are watched: a rotated file (a
// Kubernetes Secret update, a cert-manager renewal) is used for the next
// handshake without a restart. Clients read their files each time they make a
// channel, so a reconnect picks up a renewed client certificate.
#ifndef TESSERA_SHARED_TLS_H_
#define TESSERA_SHARED_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tessera {

struct ServerTlsOptions {
  std::string cert_file;       // PEM certificate chain; empty: no TLS
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CA bundle; set: client certificates are
                               // requested and, when sent, verified against it
  absl::Duration refresh = absl::Seconds(60);  // how often the files are re-read
};

// Checks that the files parse and the key matches the certificate (an error
// names the flag and file), then builds credentials that watch the files.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options);

struct ClientTlsOptions {
  std::string ca_file;    // PEM CA bundle to verify the server; empty: no TLS
  std::string cert_file;  // optional client certificate (mTLS)
  std::string key_file;
};

// Insecure credentials when `ca_file` is empty, else TLS with the files read
// now. `flag_prefix` ("--tls-") names the flags in errors.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientTlsOptions& options, absl::string_view flag_prefix = "--tls-");

// A whole small file (a token, a PEM file); the error names `what` and the path.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          absl::string_view what);

// A bearer token from a file or a value, trimmed of surrounding whitespace;
// empty in, empty out. The error never contains the token.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          absl::string_view flag);

// True for 127.0.0.0/8, ::1, "localhost" and unix: addresses (host:port or
// [v6]:port; a missing host means every interface).
bool IsLoopbackListenAddress(absl::string_view address);

}  // namespace tessera

#endif  // TESSERA_SHARED_TLS_H_
