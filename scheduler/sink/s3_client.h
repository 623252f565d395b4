// A minimal S3 client: one signed HTTP request at a time over libcurl, for the
// S3 result sink. It knows how to address a bucket (path-style on a custom
// endpoint, virtual-hosted on AWS), how to sign (libcurl's CURLOPT_AWS_SIGV4
// with the payload's SHA-256 from OpenSSL in x-amz-content-sha256) and how to
// read S3's answers; what to do with them (retries, conditions) is the sink's.
//
// What libcurl 7.88 signs, checked against its requests: every header passed
// in CURLOPT_HTTPHEADER plus Host and X-Amz-Date (not the Content-Length,
// Content-Type or Expect headers it adds itself); the payload hash it puts in
// the canonical request is the x-amz-content-sha256 header's value, which it
// does not add by itself; a header given as a removal ("Expect:") is signed
// although it is not sent; the path and query string are signed exactly as
// given, neither encoded nor sorted, and "?uploads" would be signed without
// its "=". So this client encodes the key itself, always writes the query in
// canonical form (sorted, "name=value", percent-encoded) and always sends
// x-amz-content-sha256.
//
// Thread-safe: requests may run on several threads at once (each on its own
// curl handle; idle handles, with their connections, are kept for reuse).
#ifndef TESSERA_SCHEDULER_SINK_S3_CLIENT_H_
#define TESSERA_SCHEDULER_SINK_S3_CLIENT_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/sink/s3_credentials.h"

namespace tessera::scheduler {

struct S3ClientOptions {
  // "http(s)://host[:port]" of an S3-compatible store (MinIO, Ceph RGW, …),
  // addressed path-style (endpoint/bucket/key). Empty: AWS itself,
  // https://BUCKET.s3.REGION.amazonaws.com/key.
  std::string endpoint;
  std::string region = "us-east-1";
  std::string bucket;
  // A request that makes no progress for this long (connecting, sending or
  // waiting for the answer) fails as a transient error.
  absl::Duration timeout = absl::Seconds(30);
};

struct S3Request {
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string key;     // object key, not encoded
  // Query parameters; sent (and signed) sorted and percent-encoded. An empty
  // value is sent as "name=" (e.g. {"uploads", ""}).
  std::map<std::string, std::string> query;
  std::vector<std::pair<std::string, std::string>> headers;
  absl::string_view body;  // must outlive Send
  // Sent even after Cancel (clean-up that must not be skipped, e.g. aborting
  // a multipart upload); still bounded by the timeout.
  bool ignore_cancel = false;
};

struct S3Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  // From an error body (<Error><Code>…<Message>…); empty if there is none.
  std::string error_code;
  std::string error_message;

  bool ok() const { return status >= 200 && status < 300 && error_code.empty(); }
  // "403 SignatureDoesNotMatch: The request signature …" (no secrets: only
  // the status, S3's code and its message).
  std::string Describe() const;
  std::string Header(const std::string& lowercase_name) const;
};

class S3Client {
 public:
  static absl::StatusOr<std::unique_ptr<S3Client>> Create(
      S3ClientOptions options, std::unique_ptr<CredentialsSource> credentials);
  ~S3Client();

  // Sends one request. Any HTTP answer is returned as an S3Response, errors
  // included; a request that got no answer (refused, reset, timed out) is
  // UNAVAILABLE, and CANCELLED once Cancel was called. Credentials that
  // cannot be read are FAILED_PRECONDITION.
  absl::StatusOr<S3Response> Send(const S3Request& request);

  // Ends the requests in flight and fails every later one with CANCELLED.
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // "s3://bucket/key".
  std::string Location(const std::string& key) const;
  const S3ClientOptions& options() const { return options_; }

 private:
  S3Client(S3ClientOptions options, std::unique_ptr<CredentialsSource> credentials)
      : options_(std::move(options)), credentials_(std::move(credentials)) {}
  std::string Url(const S3Request& request) const;
  void* TakeHandle();
  void ReturnHandle(void* handle);

  const S3ClientOptions options_;
  std::unique_ptr<CredentialsSource> credentials_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  std::vector<void*> idle_ ABSL_GUARDED_BY(mu_);  // CURL* handles
};

// S3's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ as %XY (uppercase);
// "/" too unless `keep_slash`.
std::string S3UriEncode(absl::string_view s, bool keep_slash);

// The text of the first <tag>…</tag> in `xml`, unescaped; empty if none.
std::string XmlElement(absl::string_view xml, absl::string_view tag);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SINK_S3_CLIENT_H_
