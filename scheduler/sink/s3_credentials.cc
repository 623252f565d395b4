#include "scheduler/sink/s3_credentials.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tessera::scheduler {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// The first characters of an access key id: enough to tell keys apart in a
// log, far from enough to use one.
std::string KeyHint(const std::string& id) {
  return id.size() <= 4 ? "…" : absl::StrCat(id.substr(0, 4), "…");
}

}  // namespace

absl::StatusOr<S3Credentials> ParseCredentialsFile(const std::string& text,
                                                   const std::string& profile,
                                                   const std::string& file_name) {
  S3Credentials c;
  bool in_profile = false, found = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      absl::string_view name =
          absl::StripAsciiWhitespace(line.substr(1, line.size() - 2));
      absl::ConsumePrefix(&name, "profile ");  // the config file's spelling
      in_profile = name == profile;
      found = found || in_profile;
      continue;
    }
    if (!in_profile) continue;
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    const std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(kv.first));
    const std::string value(absl::StripAsciiWhitespace(kv.second));
    if (key == "aws_access_key_id") c.access_key_id = value;
    if (key == "aws_secret_access_key") c.secret_access_key = value;
    if (key == "aws_session_token") c.session_token = value;
  }
  if (!found) {
    return absl::FailedPreconditionError(
        absl::StrCat("credentials file ", file_name, " has no [", profile, "] section"));
  }
  for (const auto& [key, value] :
       {std::pair{"aws_access_key_id", &c.access_key_id},
        std::pair{"aws_secret_access_key", &c.secret_access_key}}) {
    if (value->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("credentials file ", file_name, ": [", profile, "] has no ", key));
    }
  }
  return c;
}

absl::StatusOr<std::unique_ptr<CredentialsSource>> CredentialsSource::Create(
    const std::string& file, const std::string& profile) {
  std::unique_ptr<CredentialsSource> source(new CredentialsSource(file, profile));
  if (file.empty()) {
    S3Credentials c{Env("AWS_ACCESS_KEY_ID"), Env("AWS_SECRET_ACCESS_KEY"),
                    Env("AWS_SESSION_TOKEN")};
    if (c.access_key_id.empty() || c.secret_access_key.empty()) {
      return absl::FailedPreconditionError(
          "S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
          "AWS_SESSION_TOKEN for temporary credentials), or --s3-credentials-file");
    }
    absl::MutexLock lock(&source->mu_);
    source->current_ = std::move(c);
    return source;
  }
  absl::MutexLock lock(&source->mu_);
  if (absl::Status s = source->Reload(); !s.ok()) return s;
  return source;
}

std::unique_ptr<CredentialsSource> CredentialsSource::Fixed(S3Credentials credentials) {
  std::unique_ptr<CredentialsSource> source(new CredentialsSource("", ""));
  absl::MutexLock lock(&source->mu_);
  source->current_ = std::move(credentials);
  return source;
}

absl::Status CredentialsSource::Reload() {
  struct stat st;
  if (::stat(file_.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("credentials file ", file_, ": ", std::strerror(errno)));
  }
  if (st.st_size == size_ && st.st_mtim.tv_sec == mtime_.tv_sec &&
      st.st_mtim.tv_nsec == mtime_.tv_nsec) {
    return absl::OkStatus();
  }
  std::ifstream in(file_, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("credentials file ", file_, " cannot be read"));
  }
  absl::StatusOr<S3Credentials> c = ParseCredentialsFile(text.str(), profile_, file_);
  if (!c.ok()) return c.status();
  current_ = *std::move(c);
  mtime_ = st.st_mtim;
  size_ = st.st_size;
  return absl::OkStatus();
}

absl::StatusOr<S3Credentials> CredentialsSource::Get() {
  absl::MutexLock lock(&mu_);
  if (!file_.empty()) {
    if (absl::Status s = Reload(); !s.ok()) return s;
  }
  return current_;
}

std::string CredentialsSource::Describe() {
  absl::MutexLock lock(&mu_);
  const std::string from =
      file_.empty() ? "environment" : absl::StrCat("file ", file_, " [", profile_, "]");
  return absl::StrCat(from, ", access key ", KeyHint(current_.access_key_id),
                      current_.session_token.empty() ? "" : " with a session token");
}

}  // namespace tessera::scheduler
