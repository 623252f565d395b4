// AWS credentials for the S3 result sink: from the standard environment
// variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or
// from a credentials file in the AWS shared-credentials format (one
// [profile] section with aws_access_key_id, aws_secret_access_key and
// optionally aws_session_token), read again whenever it changes so that a
// rotated Secret is picked up without a restart.
//
// Secrets never leave this object except into the signing of a request: no
// error message, log line or DebugString holds one.
//
// Thread-safe.
#ifndef TESSERA_SCHEDULER_SINK_S3_CREDENTIALS_H_
#define TESSERA_SCHEDULER_SINK_S3_CREDENTIALS_H_

#include <ctime>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace tessera::scheduler {

struct S3Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none
};

class CredentialsSource {
 public:
  // `file` empty: the environment, read once now. Otherwise the file's
  // `profile` section, read now and again when its size or mtime changes.
  // Fails (naming the variable or the file and the missing key, never a
  // value) when no complete key pair is found.
  static absl::StatusOr<std::unique_ptr<CredentialsSource>> Create(
      const std::string& file, const std::string& profile);
  // Fixed credentials (tests).
  static std::unique_ptr<CredentialsSource> Fixed(S3Credentials credentials);

  absl::StatusOr<S3Credentials> Get();
  // Where they come from, e.g. "environment (AWS_ACCESS_KEY_ID AKIA…)" with
  // only the access key id's first 4 characters.
  std::string Describe();

 private:
  CredentialsSource(std::string file, std::string profile)
      : file_(std::move(file)), profile_(std::move(profile)) {}
  absl::Status Reload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string file_;
  const std::string profile_;
  absl::Mutex mu_;
  S3Credentials current_ ABSL_GUARDED_BY(mu_);
  timespec mtime_ ABSL_GUARDED_BY(mu_) = {0, 0};
  off_t size_ ABSL_GUARDED_BY(mu_) = -1;
};

// Parses the AWS shared-credentials format; exposed for tests.
absl::StatusOr<S3Credentials> ParseCredentialsFile(const std::string& text,
                                                   const std::string& profile,
                                                   const std::string& file_name);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SINK_S3_CREDENTIALS_H_
