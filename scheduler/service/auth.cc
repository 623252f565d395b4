#include "scheduler/service/auth.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "shared/logging.h"
#include "shared/sha256.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;

constexpr absl::string_view kBearer = "bearer ";

absl::StatusOr<Role> RoleFromName(absl::string_view name) {
  if (name == "reader") return Role::kReader;
  if (name == "submitter") return Role::kSubmitter;
  if (name == "executor") return Role::kExecutor;
  if (name == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(absl::StrCat(
      "role must be reader, submitter, executor or admin (got \"", name, "\")"));
}

bool IsHex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isxdigit(static_cast<unsigned char>(c));
         });
}

// Size, mtime and inode: a replaced file (a rotated Kubernetes Secret swaps a
// symlink) or a rewritten one looks different.
std::string FileStamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return absl::StrCat(st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec);
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kSubmitter:
      return "submitter";
    case Role::kExecutor:
      return "executor";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::Status Authorize(const Identity& who, Permission permission,
                       absl::string_view method, std::optional<absl::string_view> queue) {
  if (who.role == Role::kAdmin || permission == Permission::kAny) return absl::OkStatus();
  auto denied = [&](absl::string_view needed) {
    return absl::PermissionDeniedError(absl::StrCat(
        method, " needs ", needed, "; \"", who.name, "\" has role ", RoleName(who.role)));
  };
  switch (permission) {
    case Permission::kRead:
      if (who.role == Role::kReader || who.role == Role::kSubmitter) {
        return absl::OkStatus();
      }
      return denied("role reader, submitter or admin");
    case Permission::kExecute:
      if (who.role == Role::kExecutor) return absl::OkStatus();
      return denied("role executor or admin (or an executor client certificate)");
    case Permission::kSubmit:
      if (who.role != Role::kSubmitter) return denied("role submitter or admin");
      if (queue.has_value() && !who.queues.empty() &&
          std::find(who.queues.begin(), who.queues.end(), *queue) == who.queues.end()) {
        return absl::PermissionDeniedError(absl::StrCat(method, " on queue \"", *queue,
                                                        "\" needs a submitter token for "
                                                        "that queue; \"",
                                                        who.name, "\" may use queues ",
                                                        absl::StrJoin(who.queues, ", ")));
      }
      return absl::OkStatus();
    case Permission::kAny:
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, TokenEntry>> ParseTokensFile(
    absl::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("tokens file: not a JSON object");
  }
  for (const auto& [key, _] : doc.items()) {
    if (key != "tokens") {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens file: unknown field \"", key, "\" (only \"tokens\")"));
    }
  }
  if (!doc.contains("tokens") || !doc["tokens"].is_array()) {
    return absl::InvalidArgumentError("tokens file: \"tokens\" must be an array");
  }
  std::map<std::string, TokenEntry> out;
  std::set<std::string> names;
  int i = 0;
  for (const json& t : doc["tokens"]) {
    const std::string where = absl::StrCat("tokens file: tokens[", i++, "]");
    if (!t.is_object()) return absl::InvalidArgumentError(where + " must be an object");
    TokenEntry e;
    std::string sha;
    for (const auto& [key, v] : t.items()) {
      if (key == "name" && v.is_string()) {
        e.name = v.get<std::string>();
      } else if (key == "sha256" && v.is_string()) {
        sha = absl::AsciiStrToLower(v.get<std::string>());
      } else if (key == "role" && v.is_string()) {
        absl::StatusOr<Role> role = RoleFromName(v.get<std::string>());
        if (!role.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, " (", e.name, "): ", role.status().message()));
        }
        e.role = *role;
      } else if (key == "queues" && v.is_array()) {
        for (const json& q : v) {
          if (!q.is_string() || q.get<std::string>().empty()) {
            return absl::InvalidArgumentError(where + ".queues must hold queue names");
          }
          e.queues.push_back(q.get<std::string>());
        }
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": unknown or mistyped field \"", key,
                         "\" (fields: name, sha256, role, queues)"));
      }
    }
    if (e.name.empty()) return absl::InvalidArgumentError(where + ".name is required");
    if (!t.contains("role"))
      return absl::InvalidArgumentError(where + ".role is required");
    if (!IsHex64(sha)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " (", e.name,
                       ").sha256 must be the 64 hex digits of the token's SHA-256 "
                       "(e.g. printf %s \"$TOKEN\" | sha256sum)"));
    }
    if (!e.queues.empty() && e.role != Role::kSubmitter) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " (", e.name, ").queues applies to role submitter only"));
    }
    if (!names.insert(e.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": name \"", e.name, "\" is used twice"));
    }
    if (!out.emplace(sha, std::move(e)).second) {
      return absl::InvalidArgumentError(where + ": the same token hash is listed twice");
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(
    const AuthOptions& options, const Clock* clock) {
  std::unique_ptr<Authenticator> a(new Authenticator(options, clock));
  if (a->tokens_enabled()) {
    absl::MutexLock lock(&a->mu_);
    if (absl::Status s = a->Load(); !s.ok()) return s;
    a->last_check_ = clock->Now();
  }
  return a;
}

absl::Status Authenticator::Load() {
  const std::string stamp = FileStamp(options_.tokens_file);
  std::ifstream in(options_.tokens_file);
  if (stamp.empty() || !in) {
    return absl::FailedPreconditionError(
        absl::StrCat("--auth-tokens-file ", options_.tokens_file, " cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::map<std::string, TokenEntry>> tokens = ParseTokensFile(text.str());
  if (!tokens.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth-tokens-file ", options_.tokens_file, ": ", tokens.status().message()));
  }
  tokens_ = *std::move(tokens);
  file_stamp_ = stamp;
  return absl::OkStatus();
}

void Authenticator::MaybeReload() {
  const absl::Time now = clock_->Now();
  if (now - last_check_ < options_.reload_check) return;
  last_check_ = now;
  const std::string stamp = FileStamp(options_.tokens_file);
  if (stamp.empty() || stamp == file_stamp_) return;
  if (absl::Status s = Load(); !s.ok()) {
    spdlog::error("auth: keeping the previous tokens: {}", std::string(s.message()));
    file_stamp_ = stamp;  // said once per change, not per call
    return;
  }
  spdlog::info("auth: tokens file {} re-read ({} tokens)", options_.tokens_file,
               tokens_.size());
}

bool Authenticator::Required(Permission permission) const {
  if (permission == Permission::kExecute) return tokens_enabled() || options_.client_ca;
  return tokens_enabled();
}

absl::StatusOr<Identity> Authenticator::IdentityForToken(absl::string_view token) {
  absl::MutexLock lock(&mu_);
  if (tokens_enabled()) MaybeReload();
  auto it = tokens_.find(Sha256Hex(token));
  if (it == tokens_.end()) {
    return absl::UnauthenticatedError("the bearer token is not known to this scheduler");
  }
  return Identity{it->second.name, it->second.role, it->second.queues, false};
}

absl::StatusOr<Identity> Authenticator::Authenticate(const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    const absl::string_view value(it->second.data(), it->second.size());
    if (value.size() <= kBearer.size() || !absl::StartsWithIgnoreCase(value, kBearer)) {
      return absl::UnauthenticatedError(
          "authorization metadata must be \"Bearer <token>\"");
    }
    return IdentityForToken(absl::StripAsciiWhitespace(value.substr(kBearer.size())));
  }
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (options_.client_ca && auth != nullptr && auth->IsPeerAuthenticated()) {
    std::vector<grpc::string_ref> ids = auth->GetPeerIdentity();
    if (!ids.empty()) {
      return Identity{
          std::string(ids.front().data(), ids.front().size()), Role::kExecutor, {}, true};
    }
  }
  return absl::UnauthenticatedError(
      "this call needs credentials: send metadata \"authorization: Bearer <token>\" "
      "(tessera --token, grpcurl -H) or, for an executor, a client certificate");
}

absl::StatusOr<Identity> Authenticator::Check(const grpc::ServerContextBase& ctx,
                                              Permission permission,
                                              absl::string_view method,
                                              std::optional<absl::string_view> queue) {
  // Auth off: nothing to look at on any call (no token table, no client CA).
  if (!tokens_enabled() && !options_.client_ca) {
    return Identity{"anonymous", Role::kAdmin, {}, false};
  }
  absl::StatusOr<Identity> who = Authenticate(ctx);
  if (!Required(permission)) {
    if (who.ok()) return who;
    return Identity{"anonymous", Role::kAdmin, {}, false};
  }
  if (!who.ok()) return who.status();
  if (absl::Status s = Authorize(*who, permission, method, queue); !s.ok()) return s;
  return who;
}

namespace {

class ReflectionGuard : public grpc::experimental::Interceptor {
 public:
  ReflectionGuard(grpc::experimental::ServerRpcInfo* info, Authenticator* auth)
      : info_(info), auth_(auth) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      absl::StatusOr<Identity> who =
          auth_->Check(*info_->server_context(), Permission::kAny, "server reflection");
      if (!who.ok()) {
        spdlog::warn("server reflection from {} refused: {}",
                     info_->server_context()->peer(),
                     std::string(who.status().message()));
        info_->server_context()->TryCancel();
      }
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  Authenticator* auth_;
};

class ReflectionGuardFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ReflectionGuardFactory(Authenticator* auth) : auth_(auth) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (!auth_->Required(Permission::kAny) ||
        !absl::StartsWith(info->method(), "/grpc.reflection.")) {
      return nullptr;
    }
    return new ReflectionGuard(info, auth_);
  }

 private:
  Authenticator* auth_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeReflectionGuard(Authenticator* auth) {
  return std::make_unique<ReflectionGuardFactory>(auth);
}

}  // namespace tessera::scheduler
