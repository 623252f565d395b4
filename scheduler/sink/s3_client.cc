#include "scheduler/sink/s3_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "shared/sha256.h"

namespace tessera::scheduler {
namespace {

std::once_flag curl_init_once;

struct Transfer {
  absl::string_view body;  // what is left to send
  S3Response* response;
  const std::atomic<bool>* cancelled;
};

size_t ReadBody(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = std::min(size * n, t->body.size());
  std::memcpy(buffer, t->body.data(), len);
  t->body.remove_prefix(len);
  return len;
}

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  static_cast<Transfer*>(user)->response->body.append(data, size * n);
  return size * n;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Transfer*>(user)->response;
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    r->headers.clear();  // a new response (after a 100 Continue)
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    r->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

int Progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(user)->cancelled->load() ? 1 : 0;
}

std::string XmlUnescape(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"&lt;", "<"},
                                 {"&gt;", ">"},
                                 {"&quot;", "\""},
                                 {"&apos;", "'"},
                                 {"&#39;", "'"},
                                 {"&amp;", "&"}});
}

}  // namespace

std::string S3UriEncode(absl::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      // SigV4 wants upper-case hex digits in percent-encoding.
      absl::StrAppend(&out, "%",
                      absl::AsciiStrToUpper(absl::BytesToHexString(
                          absl::string_view(reinterpret_cast<char*>(&c), 1))));
    }
  }
  return out;
}

std::string XmlElement(absl::string_view xml, absl::string_view tag) {
  const std::string open = absl::StrCat("<", tag, ">");
  const std::string close = absl::StrCat("</", tag, ">");
  const size_t start = xml.find(open);
  if (start == absl::string_view::npos) return "";
  const size_t end = xml.find(close, start + open.size());
  if (end == absl::string_view::npos) return "";
  return XmlUnescape(xml.substr(start + open.size(), end - start - open.size()));
}

std::string S3Response::Describe() const {
  std::string out = absl::StrCat(status);
  if (!error_code.empty()) absl::StrAppend(&out, " ", error_code);
  if (!error_message.empty()) absl::StrAppend(&out, ": ", error_message);
  return out;
}

std::string S3Response::Header(const std::string& lowercase_name) const {
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? "" : it->second;
}

absl::StatusOr<std::unique_ptr<S3Client>> S3Client::Create(
    S3ClientOptions options, std::unique_ptr<CredentialsSource> credentials) {
  if (!options.endpoint.empty() && !absl::StartsWith(options.endpoint, "http://") &&
      !absl::StartsWith(options.endpoint, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 endpoint must be http://HOST[:PORT] or https://…, got \"",
                     options.endpoint, "\""));
  }
  while (absl::EndsWith(options.endpoint, "/")) options.endpoint.pop_back();
  CURLcode init = CURLE_OK;
  std::call_once(curl_init_once,
                 [&init] { init = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (init != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("libcurl initialisation failed: ", curl_easy_strerror(init)));
  }
  return std::unique_ptr<S3Client>(
      new S3Client(std::move(options), std::move(credentials)));
}

S3Client::~S3Client() {
  absl::MutexLock lock(&mu_);
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

std::string S3Client::Location(const std::string& key) const {
  return absl::StrCat("s3://", options_.bucket, "/", key);
}

std::string S3Client::Url(const S3Request& request) const {
  std::string url =
      options_.endpoint.empty()
          ? absl::StrCat("https://", options_.bucket, ".s3.", options_.region,
                         ".amazonaws.com/", S3UriEncode(request.key, true))
          : absl::StrCat(options_.endpoint, "/", options_.bucket, "/",
                         S3UriEncode(request.key, true));
  // std::map iterates in byte order: the canonical order SigV4 wants, which
  // libcurl 7.88 does not establish itself.
  std::vector<std::string> params;
  for (const auto& [name, value] : request.query) {
    params.push_back(
        absl::StrCat(S3UriEncode(name, false), "=", S3UriEncode(value, false)));
  }
  if (!params.empty()) absl::StrAppend(&url, "?", absl::StrJoin(params, "&"));
  return url;
}

void* S3Client::TakeHandle() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      curl_easy_reset(static_cast<CURL*>(h));  // keeps its open connections
      return h;
    }
  }
  return curl_easy_init();
}

void S3Client::ReturnHandle(void* handle) {
  absl::MutexLock lock(&mu_);
  idle_.push_back(handle);
}

absl::StatusOr<S3Response> S3Client::Send(const S3Request& request) {
  if (cancelled_.load() && !request.ignore_cancel) {
    return absl::CancelledError("S3 requests were cancelled");
  }
  absl::StatusOr<S3Credentials> creds = credentials_->Get();
  if (!creds.ok()) return creds.status();
  CURL* curl = static_cast<CURL*>(TakeHandle());
  if (curl == nullptr) return absl::InternalError("libcurl: cannot make a handle");

  S3Response response;
  static const std::atomic<bool> kNever{false};
  Transfer transfer{request.body, &response,
                    request.ignore_cancel ? &kNever : &cancelled_};
  const std::string url = Url(request);
  const std::string sigv4 = absl::StrCat("aws:amz:", options_.region, ":s3");
  // Every header here is signed (see the file comment). Not even a removal
  // such as "Expect:" may go here: libcurl 7.88 signs it although it sends
  // no such header, and the store then rejects the signature.
  curl_slist* headers = nullptr;
  auto add = [&headers](const std::string& h) {
    headers = curl_slist_append(headers, h.c_str());
  };
  add(absl::StrCat("x-amz-content-sha256: ", Sha256Hex(request.body)));
  if (!creds->session_token.empty()) {
    add(absl::StrCat("x-amz-security-token: ", creds->session_token));
  }
  for (const auto& [name, value] : request.headers) add(absl::StrCat(name, ": ", value));

  const long timeout_s =
      std::max<long>(1, static_cast<long>(absl::ToInt64Seconds(options_.timeout)));
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(curl, CURLOPT_USERNAME, creds->access_key_id.c_str());
  curl_easy_setopt(curl, CURLOPT_PASSWORD, creds->secret_access_key.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
  // Slower than 1 byte/s for the timeout: a stopped or hung server.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, timeout_s);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, Progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  } else if (request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
                     request.body.empty() ? "" : request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    // A failed connection is not worth keeping.
    curl_easy_cleanup(curl);
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      return absl::CancelledError("S3 requests were cancelled");
    }
    return absl::UnavailableError(absl::StrCat(request.method, " ", Location(request.key),
                                               ": ", curl_easy_strerror(rc)));
  }
  ReturnHandle(curl);
  response.status = static_cast<int>(status);
  // S3 may also answer a POST (CompleteMultipartUpload) with 200 and an
  // error body; an object's own bytes are never read as an error.
  if (response.status >= 300 ||
      (request.method == "POST" && absl::StrContains(response.body, "<Error>"))) {
    response.error_code = XmlElement(response.body, "Code");
    response.error_message = XmlElement(response.body, "Message");
  }
  return response;
}

}  // namespace tessera::scheduler
