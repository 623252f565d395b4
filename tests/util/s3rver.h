// A real S3-compatible server for tests: @20minutes/s3rver (which checks
// SigV4 signatures), installed by scripts/install-deps.sh --test into .tools/
// and started on 127.0.0.1 by tests/util/s3rver.js. Each instance makes its
// own random key pair at run time and hands it over in the environment,
// never in argv. Only the process it started is ever signalled.
#ifndef TESSERA_TESTS_UTIL_S3RVER_H_
#define TESSERA_TESTS_UTIL_S3RVER_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "tests/util/process.h"
#include "tests/util/temp_dir.h"

namespace tessera::testing {

class S3rver {
 public:
  // Objects are kept under `dir` (created; its owner removes it), in buckets
  // `buckets`. An empty `dir`: a temp dir of its own, removed with the server.
  S3rver(std::string dir, std::vector<std::string> buckets);
  explicit S3rver(std::vector<std::string> buckets) : S3rver("", std::move(buckets)) {}
  ~S3rver();  // SIGKILLs the server if it still runs, then removes its own dir
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

  // Starts it (again, on the same port and objects after the first time)
  // and waits until it listens.
  absl::Status Start();
  // SIGKILL, and waits for it to end.
  void Kill();
  void Pause();   // SIGSTOP: connections are accepted, nothing is answered
  void Resume();  // SIGCONT

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& access_key_id() const { return access_key_id_; }
  const std::string& secret_access_key() const { return secret_access_key_; }

  // An object's bytes as the server keeps them on disk (read without S3),
  // or nullopt if there is none.
  std::optional<std::string> Object(const std::string& bucket,
                                    const std::string& key) const;
  // Its metadata file (JSON: content-type, x-amz-meta-*), or "".
  std::string ObjectMetadata(const std::string& bucket, const std::string& key) const;
  std::string ObjectFile(const std::string& bucket, const std::string& key) const;
  // How often the server's log says it stored `key` (a PUT or a completed
  // multipart upload), and stored a part of any upload.
  int StoredCount(const std::string& key) const;
  int StoredParts() const;
  std::string Log() const;

 private:
  // Declared before the process, so that it has ended when the dir is removed.
  std::optional<TempDir> own_dir_;
  std::string dir_;
  std::vector<std::string> buckets_;
  std::string access_key_id_;
  std::string secret_access_key_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// A random string of `n` hex digits (throwaway test keys).
std::string RandomHex(int n);

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_UTIL_S3RVER_H_
