#include "tests/util/s3rver.h"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace tessera::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

std::string RandomHex(int n) {
  std::random_device rd;
  std::string bytes((n + 1) / 2, '\0');
  for (char& b : bytes) b = static_cast<char>(rd() & 0xff);
  return absl::BytesToHexString(bytes).substr(0, n);
}

S3rver::S3rver(std::string dir, std::vector<std::string> buckets)
    : own_dir_(dir.empty() ? std::make_optional<TempDir>("tessera-s3rver")
                           : std::nullopt),
      dir_(own_dir_ ? own_dir_->path() : std::move(dir)),
      buckets_(std::move(buckets)),
      access_key_id_("AKTEST" + RandomHex(14)),
      secret_access_key_(RandomHex(40)) {
  std::filesystem::create_directories(dir_ + "/objects");
}

// Process's destructor SIGKILLs it (process_ goes first), then own_dir_ is removed.
S3rver::~S3rver() = default;

absl::Status S3rver::Start() {
  if (!std::filesystem::exists(TESSERA_S3RVER_MODULE)) {
    return absl::FailedPreconditionError(
        absl::StrCat(TESSERA_S3RVER_MODULE,
                     " is missing: run scripts/install-deps.sh --test (it installs "
                     "@20minutes/s3rver from npm into .tools/)"));
  }
  // The child inherits these; they are taken out of this process's
  // environment again at once.
  setenv("S3RVER_PORT", std::to_string(port_).c_str(), 1);
  setenv("S3RVER_DIR", (dir_ + "/objects").c_str(), 1);
  setenv("S3RVER_BUCKETS", absl::StrJoin(buckets_, ",").c_str(), 1);
  setenv("S3RVER_ACCESS_KEY_ID", access_key_id_.c_str(), 1);
  setenv("S3RVER_SECRET_ACCESS_KEY", secret_access_key_.c_str(), 1);
  process_ = std::make_unique<Process>(
      std::vector<std::string>{TESSERA_NODE_BIN, TESSERA_S3RVER_JS},
      dir_ + "/s3rver.log");
  for (const char* name : {"S3RVER_PORT", "S3RVER_DIR", "S3RVER_BUCKETS",
                           "S3RVER_ACCESS_KEY_ID", "S3RVER_SECRET_ACCESS_KEY"}) {
    unsetenv(name);
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    for (absl::string_view line : absl::StrSplit(process_->Log(), '\n')) {
      int port = 0;
      if (absl::ConsumePrefix(&line, "listening ") && absl::SimpleAtoi(line, &port)) {
        port_ = port;
        return absl::OkStatus();
      }
    }
    if (!process_->running()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::UnavailableError(absl::StrCat("s3rver did not start:\n", process_->Log()));
}

void S3rver::Kill() {
  if (!process_) return;
  process_->Signal(SIGKILL);
  process_->Wait(absl::Seconds(10));
}

void S3rver::Pause() { process_->Signal(SIGSTOP); }
void S3rver::Resume() { process_->Signal(SIGCONT); }

std::string S3rver::ObjectFile(const std::string& bucket, const std::string& key) const {
  return absl::StrCat(dir_, "/objects/", bucket, "/", key, "._S3rver_object");
}

std::optional<std::string> S3rver::Object(const std::string& bucket,
                                          const std::string& key) const {
  const std::string path = ObjectFile(bucket, key);
  if (!std::filesystem::exists(path)) return std::nullopt;
  return ReadFile(path);
}

std::string S3rver::ObjectMetadata(const std::string& bucket,
                                   const std::string& key) const {
  return ReadFile(
      absl::StrCat(dir_, "/objects/", bucket, "/", key, "._S3rver_metadata.json"));
}

int S3rver::StoredCount(const std::string& key) const {
  return Count(Log(), absl::StrCat("Stored object \"", key, "\""));
}

int S3rver::StoredParts() const { return Count(Log(), "Stored part "); }

std::string S3rver::Log() const { return process_ ? process_->Log() : ""; }

}  // namespace tessera::testing
