#include "shared/tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tessera {
namespace {

constexpr size_t kMaxSmallFile = 1 << 20;

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioDeleter> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::StatusOr<std::unique_ptr<X509, X509Deleter>> ParseCert(const std::string& pem,
                                                             absl::string_view what) {
  auto bio = MemBio(pem);
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")"));
  }
  return cert;
}

// The certificate and key files of one side, checked to parse and to match.
absl::Status CheckKeyPair(const std::string& cert_file, const std::string& key_file,
                          absl::string_view flag_prefix) {
  const std::string cert_what = absl::StrCat(flag_prefix, "cert ", cert_file);
  const std::string key_what = absl::StrCat(flag_prefix, "key ", key_file);
  absl::StatusOr<std::string> cert_pem = ReadSmallFile(cert_file, cert_what);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadSmallFile(key_file, key_what);
  if (!key_pem.ok()) return key_pem.status();
  auto cert = ParseCert(*cert_pem, cert_what);
  if (!cert.ok()) return cert.status();
  auto bio = MemBio(*key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_what, " holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_what, " is not the key of ", cert_what));
  }
  return absl::OkStatus();
}

unsigned int RefreshSeconds(absl::Duration d) {
  return static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(d)));
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat(what, " cannot be read"));
  std::string out;
  out.resize(kMaxSmallFile + 1);
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<size_t>(in.gcount()));
  if (out.size() > kMaxSmallFile) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is larger than 1 MiB"));
  }
  return out;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          absl::string_view flag) {
  if (path.empty()) return std::string();
  absl::StatusOr<std::string> text = ReadSmallFile(path, absl::StrCat(flag, " ", path));
  if (!text.ok()) return text.status();
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is empty"));
  }
  if (std::any_of(token.begin(), token.end(),
                  [](unsigned char c) { return c < 0x21 || c > 0x7e; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", path, " must hold one token of printable characters, no spaces"));
  }
  return token;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& o) {
  if (o.cert_file.empty() && o.key_file.empty()) {
    if (!o.client_ca_file.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (o.cert_file.empty() || o.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  if (absl::Status s = CheckKeyPair(o.cert_file, o.key_file, "--tls-"); !s.ok()) return s;
  if (!o.client_ca_file.empty()) {
    const std::string what = absl::StrCat("--tls-client-ca ", o.client_ca_file);
    absl::StatusOr<std::string> ca = ReadSmallFile(o.client_ca_file, what);
    if (!ca.ok()) return ca.status();
    if (auto cert = ParseCert(*ca, what); !cert.ok()) return cert.status();
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      o.key_file, o.cert_file, o.client_ca_file, RefreshSeconds(o.refresh));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!o.client_ca_file.empty()) {
    options.watch_root_certs();
    // Requested, and verified when sent: people and tools use tokens, not
    // certificates; the executor service itself insists on an identity.
    options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientTlsOptions& o, absl::string_view flag_prefix) {
  if (o.ca_file.empty()) {
    if (!o.cert_file.empty() || !o.key_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag_prefix, "cert and ", flag_prefix, "key need ", flag_prefix, "ca"));
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  const std::string ca_what = absl::StrCat(flag_prefix, "ca ", o.ca_file);
  absl::StatusOr<std::string> ca = ReadSmallFile(o.ca_file, ca_what);
  if (!ca.ok()) return ca.status();
  if (auto cert = ParseCert(*ca, ca_what); !cert.ok()) return cert.status();
  ssl.pem_root_certs = *std::move(ca);
  if (!o.cert_file.empty() || !o.key_file.empty()) {
    if (o.cert_file.empty() || o.key_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag_prefix, "cert and ", flag_prefix, "key must be given together"));
    }
    if (absl::Status s = CheckKeyPair(o.cert_file, o.key_file, flag_prefix); !s.ok()) {
      return s;
    }
    ssl.pem_cert_chain = *ReadSmallFile(o.cert_file, o.cert_file);
    ssl.pem_private_key = *ReadSmallFile(o.key_file, o.key_file);
  }
  return grpc::SslCredentials(ssl);
}

bool IsLoopbackListenAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix:") || absl::StartsWith(address, "unix-abstract:")) {
    return true;
  }
  std::string host;
  if (absl::StartsWith(address, "[")) {
    const size_t end = address.find(']');
    if (end == absl::string_view::npos) return false;
    host = std::string(address.substr(1, end - 1));
  } else {
    const size_t colon = address.rfind(':');
    host = std::string(colon == absl::string_view::npos ? address
                                                        : address.substr(0, colon));
  }
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

}  // namespace tessera
