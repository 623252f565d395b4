// Who may call the scheduler: bearer tokens with roles (read from a file of
// token hashes, re-read when it changes) and, with mTLS, the verified client
// certificate of an executor.
//
// The policy (roles, queues, what each call needs) is plain data and pure
// functions; the one gRPC-aware piece, Authenticator::Authenticate, reads a
// call's metadata and TLS peer.
#ifndef TESSERA_SCHEDULER_SERVICE_AUTH_H_
#define TESSERA_SCHEDULER_SERVICE_AUTH_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shared/clock.h"

namespace tessera::scheduler {

enum class Role { kReader, kSubmitter, kExecutor, kAdmin };

absl::string_view RoleName(Role role);

// The caller of one call, as its credentials say.
struct Identity {
  std::string name;
  Role role = Role::kReader;
  // Submitter only: the queues it may submit to and act on; empty: all.
  std::vector<std::string> queues;
  bool from_certificate = false;  // a verified mTLS client certificate
};

// What a call needs.
enum class Permission {
  kRead,     // GetJob, ListJobs, WatchJob, GetResult, ListExecutors, GetQueueStats
  kSubmit,   // SubmitJob, CancelJob, UpdateJob, RetryFailedShards (queue-scoped)
  kExecute,  // ExecutorService.Connect
  kAny,      // any valid identity (server reflection)
};

// OK when `who` may do `method` (named in the error) needing `permission`;
// `queue` is the job's queue for kSubmit (nullopt: the role alone is checked,
// before the queue is known). PERMISSION_DENIED names what is needed.
absl::Status Authorize(const Identity& who, Permission permission,
                       absl::string_view method,
                       std::optional<absl::string_view> queue = std::nullopt);

struct TokenEntry {
  std::string name;
  Role role = Role::kReader;
  std::vector<std::string> queues;
};

// The parsed tokens file, keyed by the lowercase hex SHA-256 of each token:
// {"tokens":[{"name":"ci","sha256":"<64 hex>","role":"submitter",
//             "queues":["default"]}]}
// Errors name the entry and field; they never contain a token.
absl::StatusOr<std::map<std::string, TokenEntry>> ParseTokensFile(absl::string_view json);

struct AuthOptions {
  std::string tokens_file;  // empty: no tokens (JobService is open)
  bool client_ca = false;   // mTLS: executors may present a certificate
  absl::Duration reload_check = absl::Seconds(1);  // how often the file is stat'ed
};

// Thread-safe. Borrows the clock.
class Authenticator {
 public:
  // Reads the tokens file once (an unreadable or invalid file is an error).
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(const AuthOptions& options,
                                                               const Clock* clock);

  bool tokens_enabled() const { return !options_.tokens_file.empty(); }
  // Whether calls needing `permission` need credentials at all.
  bool Required(Permission permission) const;

  // The identity of the token in `authorization` metadata (`Bearer <token>`),
  // else of the verified client certificate. UNAUTHENTICATED when neither is
  // there or the token is unknown.
  absl::StatusOr<Identity> Authenticate(const grpc::ServerContextBase& ctx);

  // Authenticate + Authorize when credentials are required; when they are
  // not, the caller is "anonymous" (or its certificate's name) and allowed.
  absl::StatusOr<Identity> Check(const grpc::ServerContextBase& ctx,
                                 Permission permission, absl::string_view method,
                                 std::optional<absl::string_view> queue = std::nullopt);

  // The identity a bearer token stands for (the file re-read first if it
  // changed); UNAUTHENTICATED for an unknown token.
  absl::StatusOr<Identity> IdentityForToken(absl::string_view token);

 private:
  Authenticator(AuthOptions options, const Clock* clock)
      : options_(std::move(options)), clock_(clock) {}
  // Re-reads the file when its size, mtime or inode changed; a bad new file
  // is logged and the old tokens stay.
  void MaybeReload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Load() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AuthOptions options_;
  const Clock* clock_;
  absl::Mutex mu_;
  std::map<std::string, TokenEntry> tokens_ ABSL_GUARDED_BY(mu_);
  std::string file_stamp_ ABSL_GUARDED_BY(mu_);
  absl::Time last_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Server reflection (registered by gRPC's plugin, outside our services) needs
// any valid identity when tokens are on. gRPC's server interceptors cannot
// answer a call themselves, so a refused reflection stream is cancelled
// (the client sees CANCELLED) and the reason is logged. Borrows `auth`.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeReflectionGuard(Authenticator* auth);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_AUTH_H_
