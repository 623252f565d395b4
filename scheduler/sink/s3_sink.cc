#include "scheduler/sink/s3_sink.h"

#include <algorithm>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "shared/metrics.h"
#include "shared/sha256.h"
#include "spdlog/spdlog.h"

namespace tessera::scheduler {
namespace {

constexpr char kShaHeader[] = "x-amz-meta-sha256";
constexpr char kJobHeader[] = "x-amz-meta-tessera-job-id";
constexpr int64_t kMaxParts = 10000;
constexpr char kOperations[][20] = {"head",
                                    "get",
                                    "put",
                                    "create_multipart",
                                    "upload_part",
                                    "complete_multipart",
                                    "abort_multipart"};

// Answers worth another try: the store is busy, restarting or briefly wrong.
bool Transient(const S3Response& r) {
  static constexpr const char* kCodes[] = {
      "RequestTimeout",      "SlowDown",         "InternalError",
      "ServiceUnavailable",  "OperationAborted", "ConditionalRequestConflict",
      "RequestTimeTooSkewed"};
  if (r.status >= 500 || r.status == 408 || r.status == 429) return true;
  return std::any_of(std::begin(kCodes), std::end(kCodes),
                     [&](const char* c) { return r.error_code == c; });
}

bool ValidBucket(absl::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  return std::all_of(b.begin(), b.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

}  // namespace

absl::StatusOr<std::pair<std::string, std::string>> ParseS3Url(const std::string& url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "s3://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("result sink \"", url, "\" is not s3://BUCKET[/PREFIX]"));
  }
  std::pair<std::string, std::string> parts =
      absl::StrSplit(rest, absl::MaxSplits('/', 1));
  auto& [bucket, prefix] = parts;
  if (!ValidBucket(bucket)) {
    return absl::InvalidArgumentError(
        absl::StrCat("result sink \"", url, "\": bucket \"", bucket,
                     "\" is not a bucket name (3-63 characters: a-z, 0-9, '-', '.')"));
  }
  while (absl::EndsWith(prefix, "/")) prefix.pop_back();
  for (absl::string_view segment : absl::StrSplit(prefix, '/', absl::SkipEmpty())) {
    if (segment == "." || segment == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("result sink \"", url, "\": the prefix may not hold . or .."));
    }
  }
  if (absl::StrContains(prefix, "//")) {
    return absl::InvalidArgumentError(
        absl::StrCat("result sink \"", url, "\": the prefix has an empty segment"));
  }
  if (!prefix.empty()) prefix += "/";
  return parts;
}

absl::Status S3SinkOptions::Validate() const {
  if (multipart_threshold < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--s3-multipart-threshold must be at least 1 byte (got ",
                     multipart_threshold, ")"));
  }
  if (part_size < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--s3-part-size must be at least 1024 bytes (got ", part_size, ")"));
  }
  if (timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--s3-timeout must be at least 1s (got ", absl::FormatDuration(timeout), ")"));
  }
  if (region.empty()) return absl::InvalidArgumentError("--s3-region must not be empty");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<S3Sink>> S3Sink::Create(const std::string& url,
                                                       const S3SinkOptions& options) {
  absl::StatusOr<std::unique_ptr<CredentialsSource>> credentials =
      CredentialsSource::Create(options.credentials_file, options.profile);
  if (!credentials.ok()) return credentials.status();
  spdlog::info("result sink {}: credentials from {}", url, (*credentials)->Describe());
  return Create(url, options, *std::move(credentials));
}

absl::StatusOr<std::unique_ptr<S3Sink>> S3Sink::Create(
    const std::string& url, const S3SinkOptions& options,
    std::unique_ptr<CredentialsSource> credentials) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  absl::StatusOr<std::pair<std::string, std::string>> where = ParseS3Url(url);
  if (!where.ok()) return where.status();
  S3ClientOptions client_options{options.endpoint, options.region, where->first,
                                 options.timeout};
  absl::StatusOr<std::unique_ptr<S3Client>> client =
      S3Client::Create(std::move(client_options), std::move(credentials));
  if (!client.ok()) return client.status();
  return std::unique_ptr<S3Sink>(
      new S3Sink(*std::move(client), std::move(where->second), options));
}

S3Sink::S3Sink(std::unique_ptr<S3Client> client, std::string prefix,
               S3SinkOptions options)
    : client_(std::move(client)),
      prefix_(std::move(prefix)),
      options_(std::move(options)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("tessera_s3_request_duration_seconds")
                            .Help("Requests to the S3 result sink, answered or not, by "
                                  "operation (put, head, upload_part, …).")
                            .Register(registry_)),
      retries_(prometheus::BuildCounter()
                   .Name("tessera_s3_retries_total")
                   .Help("S3 requests tried again after a transient failure, by "
                         "operation.")
                   .Register(registry_)),
      failures_(prometheus::BuildCounter()
                    .Name("tessera_s3_request_failures_total")
                    .Help("S3 requests that failed, by operation and kind (transient: "
                          "retried; permanent: the job fails).")
                    .Register(registry_)) {
  for (const char* op : kOperations) {
    request_duration_.Add({{"operation", op}}, LatencyBuckets());
    retries_.Add({{"operation", op}});
  }
}

std::string S3Sink::Key(const std::string& job_id, int32_t version) const {
  return absl::StrCat(prefix_, ResultName(job_id, version));
}

absl::StatusOr<std::string> S3Sink::KeyOf(const std::string& location) const {
  absl::string_view key = location;
  const std::string mine = client_->Location(prefix_);
  if (!absl::ConsumePrefix(&key, mine) || key.empty() || absl::StrContains(key, "/")) {
    return absl::InternalError(
        absl::StrCat("result location ", location, " is outside ", mine));
  }
  return absl::StrCat(prefix_, key);
}

void S3Sink::Cancel() {
  std::call_once(cancel_once_, [this] {
    client_->Cancel();
    cancelled_.Notify();
  });
}

bool S3Sink::Backoff(absl::Duration d) {
  return !cancelled_.WaitForNotificationWithTimeout(d);
}

std::vector<prometheus::MetricFamily> S3Sink::CollectMetrics() {
  return registry_.Collect();
}

absl::Status S3Sink::Failed(const std::string& op, const std::string& key,
                            const S3Response& r) const {
  const std::string message =
      absl::StrCat("S3 ", op, " ", client_->Location(key), ": ", r.Describe());
  switch (r.status) {
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    default:
      return absl::FailedPreconditionError(message);
  }
}

absl::StatusOr<S3Response> S3Sink::Call(const std::string& op, const S3Request& request,
                                        Retry retry, const std::string& job_id) {
  absl::Duration backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    const absl::Time t0 = MonoNow();
    absl::StatusOr<S3Response> r = client_->Send(request);
    request_duration_.Add({{"operation", op}}, LatencyBuckets())
        .Observe(absl::ToDoubleSeconds(MonoNow() - t0));
    if (r.ok() && !Transient(*r)) {
      if (!r->ok() && r->status != 404 && r->status != 412) {
        failures_.Add({{"operation", op}, {"kind", "permanent"}}).Increment();
      }
      return r;
    }
    if (absl::IsCancelled(r.status()) || cancelled_.HasBeenNotified()) {
      return absl::UnavailableError(
          absl::StrCat("S3 ", op, " ", client_->Location(request.key),
                       ": given up, the scheduler is stopping"));
    }
    failures_.Add({{"operation", op}, {"kind", "transient"}}).Increment();
    // No answer (UNAVAILABLE), unreadable credentials (FAILED_PRECONDITION,
    // e.g. a Secret being rotated) or a transient answer.
    const std::string why =
        r.ok() ? absl::StrCat("S3 ", op, " ", client_->Location(request.key), ": ",
                              r->Describe())
               : std::string(r.status().message());
    if (retry == Retry::kNever ||
        (retry == Retry::kReads && attempt >= options_.read_attempts)) {
      return absl::UnavailableError(why);
    }
    spdlog::warn("job={} {} (attempt {}); retrying in {}", job_id, why, attempt,
                 absl::FormatDuration(backoff));
    retries_.Add({{"operation", op}}).Increment();
    if (!Backoff(backoff)) continue;  // cancelled: the next Send says so
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::StatusOr<S3Sink::Look> S3Sink::LookAt(const std::string& key,
                                            const std::string& sha256,
                                            const std::string& job_id) {
  S3Request head{"HEAD", key};
  absl::StatusOr<S3Response> r = Call("head", head, Retry::kForever, job_id);
  if (!r.ok()) return r.status();
  if (r->status == 404) return Look{Found::kAbsent, ""};
  if (!r->ok()) {
    // A HEAD answer has no body: ask again with GET to learn S3's error code
    // and message (e.g. SignatureDoesNotMatch) for the job's error.
    S3Request get{"GET", key};
    absl::StatusOr<S3Response> again = Call("get", get, Retry::kForever, job_id);
    if (!again.ok()) return again.status();
    return Failed("HEAD", key, again->ok() ? *r : *again);
  }
  std::string stored = r->Header(kShaHeader);
  if (stored.empty()) {
    // Not written by Tessera (no digest in its metadata): compare the bytes.
    S3Request get{"GET", key};
    absl::StatusOr<S3Response> body = Call("get", get, Retry::kForever, job_id);
    if (!body.ok()) return body.status();
    if (body->status == 404) return Look{Found::kAbsent, ""};
    if (!body->ok()) return Failed("GET", key, *body);
    stored = Sha256Hex(body->body);
  }
  return Look{stored == sha256 ? Found::kSame : Found::kDifferent, stored};
}

absl::StatusOr<StagedResult> S3Sink::Stage(const std::string& job_id, int32_t version,
                                           const std::string& bytes) {
  if (!ValidJobId(job_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid job id \"", job_id, "\""));
  }
  const std::string key = Key(job_id, version);
  const std::string location = client_->Location(key);
  const std::string sha = Sha256Hex(bytes);
  absl::StatusOr<Look> look = LookAt(key, sha, job_id);
  if (!look.ok()) return look.status();
  switch (look->found) {
    case Found::kSame:
      return StagedResult{{location, sha}, "", ""};  // written before a restart
    case Found::kDifferent:
      return DifferentResultError(location, look->sha256, sha);
    case Found::kAbsent:
      break;
  }
  // Object storage has no hidden place to stage in: the bytes wait here, and
  // the store's "finalizing" record keeps them durable meanwhile.
  return StagedResult{{location, sha}, location, bytes};
}

absl::StatusOr<PersistedResult> S3Sink::Publish(const StagedResult& staged) {
  if (staged.staged_at.empty()) return staged.result;  // already there
  const std::string& location = staged.result.location;
  const std::string& sha = staged.result.sha256;
  absl::StatusOr<std::string> key = KeyOf(location);
  if (!key.ok()) return key.status();
  // Job ids hold no '.': the object's name up to the first one.
  const std::string name = location.substr(location.rfind('/') + 1);
  const std::string job_id = name.substr(0, name.find('.'));
  const bool multipart =
      static_cast<int64_t>(staged.payload.size()) > options_.multipart_threshold;
  absl::Duration backoff = options_.initial_backoff;
  bool tried = false;
  while (true) {
    if (tried) {
      // The last attempt's answer was lost: it may have written the object.
      absl::StatusOr<Look> look = LookAt(*key, sha, job_id);
      if (!look.ok()) return look.status();
      if (look->found == Found::kDifferent) {
        return DifferentResultError(location, look->sha256, sha);
      }
      if (look->found == Found::kSame) {
        writes_.fetch_add(1);
        return staged.result;
      }
    }
    tried = true;
    absl::Status s = multipart ? PutMultipart(*key, staged.payload, sha, job_id)
                               : PutObject(*key, staged.payload, sha, job_id);
    if (s.ok()) {
      writes_.fetch_add(1);
      return staged.result;
    }
    if (absl::IsAlreadyExists(s)) {
      // 412: someone wrote the object since Stage looked. The same bytes
      // are a success (not a write of ours); other bytes fail the job.
      absl::StatusOr<Look> look = LookAt(*key, sha, job_id);
      if (!look.ok()) return look.status();
      if (look->found == Found::kSame) return staged.result;
      return DifferentResultError(location, look->sha256, sha);
    }
    if (!absl::IsUnavailable(s)) return s;
    if (cancelled_.HasBeenNotified()) return s;
    spdlog::warn("job={} {}; retrying in {}", job_id, std::string(s.message()),
                 absl::FormatDuration(backoff));
    retries_.Add({{"operation", multipart ? "complete_multipart" : "put"}}).Increment();
    Backoff(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status S3Sink::PutObject(const std::string& key, const std::string& bytes,
                               const std::string& sha256, const std::string& job_id) {
  S3Request put{"PUT",
                key,
                {},
                {{"Content-Type", "application/json"},
                 {"If-None-Match", "*"},
                 {kShaHeader, sha256},
                 {kJobHeader, job_id}},
                bytes};
  absl::StatusOr<S3Response> r = Call("put", put, Retry::kNever, job_id);
  if (!r.ok()) return r.status();
  if (r->ok()) return absl::OkStatus();
  if (r->status == 412) return absl::AlreadyExistsError(client_->Location(key));
  return Failed("PUT", key, *r);
}

absl::Status S3Sink::PutMultipart(const std::string& key, const std::string& bytes,
                                  const std::string& sha256, const std::string& job_id) {
  const int64_t size = static_cast<int64_t>(bytes.size());
  const int64_t part_size =
      std::max(options_.part_size, (size + kMaxParts - 1) / kMaxParts);
  S3Request create{
      "POST",
      key,
      {{"uploads", ""}},
      {{"Content-Type", "application/json"}, {kShaHeader, sha256}, {kJobHeader, job_id}}};
  absl::StatusOr<S3Response> created =
      Call("create_multipart", create, Retry::kForever, job_id);
  if (!created.ok()) return created.status();
  if (!created->ok()) return Failed("CreateMultipartUpload", key, *created);
  const std::string upload_id = XmlElement(created->body, "UploadId");
  if (upload_id.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("S3 CreateMultipartUpload ",
                                                      client_->Location(key),
                                                      ": no UploadId in the answer"));
  }
  // From here on every way out but success aborts the upload.
  auto fail = [&](absl::Status s) {
    AbortUpload(key, upload_id, job_id);
    return s;
  };
  std::string complete = "<CompleteMultipartUpload>";
  for (int64_t part = 1, off = 0; off < size; ++part, off += part_size) {
    S3Request upload{"PUT",
                     key,
                     {{"partNumber", absl::StrCat(part)}, {"uploadId", upload_id}},
                     {},
                     absl::string_view(bytes).substr(off, part_size)};
    absl::StatusOr<S3Response> r = Call("upload_part", upload, Retry::kForever, job_id);
    if (!r.ok()) return fail(r.status());
    if (!r->ok()) return fail(Failed(absl::StrCat("UploadPart ", part), key, *r));
    const std::string etag = r->Header("etag");
    if (etag.empty()) {
      return fail(absl::FailedPreconditionError(absl::StrCat("S3 UploadPart ", part, " ",
                                                             client_->Location(key),
                                                             ": no ETag in the answer")));
    }
    absl::StrAppend(&complete, "<Part><PartNumber>", part, "</PartNumber><ETag>", etag,
                    "</ETag></Part>");
  }
  absl::StrAppend(&complete, "</CompleteMultipartUpload>");
  S3Request finish{"POST",
                   key,
                   {{"uploadId", upload_id}},
                   {{"Content-Type", "application/xml"}, {"If-None-Match", "*"}},
                   complete};
  absl::StatusOr<S3Response> r =
      Call("complete_multipart", finish, Retry::kForever, job_id);
  if (!r.ok()) return fail(r.status());
  if (r->ok()) return absl::OkStatus();
  if (r->status == 412) return fail(absl::AlreadyExistsError(client_->Location(key)));
  // NoSuchUpload after a retried complete: the first one went through and
  // its answer was lost; Publish looks before anything else.
  if (r->error_code == "NoSuchUpload") {
    return absl::UnavailableError(absl::StrCat(
        "S3 CompleteMultipartUpload ", client_->Location(key), ": ", r->Describe()));
  }
  return fail(Failed("CompleteMultipartUpload", key, *r));
}

void S3Sink::AbortUpload(const std::string& key, const std::string& upload_id,
                         const std::string& job_id) {
  // Sent even when the scheduler is stopping, so that no parts are left.
  S3Request abort{"DELETE", key, {{"uploadId", upload_id}}};
  abort.ignore_cancel = true;
  absl::StatusOr<S3Response> r = Call("abort_multipart", abort, Retry::kReads, job_id);
  if (r.ok() && (r->ok() || r->status == 404)) return;
  spdlog::warn(
      "job={} S3 AbortMultipartUpload {} upload {} failed: {}; its parts stay until a "
      "bucket lifecycle rule removes them",
      job_id, client_->Location(key), upload_id,
      r.ok() ? r->Describe() : std::string(r.status().message()));
}

absl::StatusOr<std::string> S3Sink::Read(const std::string& location) {
  absl::StatusOr<std::string> key = KeyOf(location);
  if (!key.ok()) return key.status();
  S3Request get{"GET", *key};
  absl::StatusOr<S3Response> r = Call("get", get, Retry::kReads, "-");
  if (!r.ok()) return r.status();
  if (r->status == 404 && r->error_code != "NoSuchBucket") {
    return absl::DataLossError(absl::StrCat("result object ", location, " is missing"));
  }
  if (!r->ok()) return Failed("GET", *key, *r);
  return std::move(r->body);
}

absl::StatusOr<int64_t> S3Sink::Size(const std::string& location) {
  absl::StatusOr<std::string> key = KeyOf(location);
  if (!key.ok()) return key.status();
  S3Request head{"HEAD", *key};
  absl::StatusOr<S3Response> r = Call("head", head, Retry::kReads, "-");
  if (!r.ok()) return r.status();
  if (r->status == 404) {
    return absl::DataLossError(absl::StrCat("result object ", location, " is missing"));
  }
  if (!r->ok()) return Failed("HEAD", *key, *r);
  int64_t size = 0;
  if (!absl::SimpleAtoi(r->Header("content-length"), &size)) {
    return absl::FailedPreconditionError(
        absl::StrCat("S3 HEAD ", location, ": no Content-Length in the answer"));
  }
  return size;
}

absl::Status S3Sink::Delete(const std::string& location) {
  absl::StatusOr<std::string> key = KeyOf(location);
  if (!key.ok()) return key.status();
  S3Request del{"DELETE", *key};
  absl::StatusOr<S3Response> r = Call("delete", del, Retry::kReads, "-");
  if (!r.ok()) return r.status();
  if (r->status == 404) return absl::OkStatus();  // already gone
  if (!r->ok()) return Failed("DELETE", *key, *r);
  return absl::OkStatus();
}

}  // namespace tessera::scheduler
