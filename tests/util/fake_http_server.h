// A scripted HTTP/1.1 server on 127.0.0.1 for tests of HTTP clients (e.g. the
// S3 sink's answers that a real S3-compatible test server never gives: 412,
// 503, lost answers). Each connection carries one request; a test's handler
// decides each answer. Not a mock of S3: it signs and checks nothing.
//
// Thread-safe; owns its thread, joined by the destructor.
#ifndef TESSERA_TESTS_UTIL_FAKE_HTTP_SERVER_H_
#define TESSERA_TESTS_UTIL_FAKE_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tessera::testing {

struct HttpRequest {
  std::string method;
  std::string target;                          // path and query, as sent
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string Header(const std::string& lowercase_name) const {
    auto it = headers.find(lowercase_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;   // not sent for HEAD (its Content-Length is)
  bool drop = false;  // close the connection without answering
};

class FakeHttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Listens on 127.0.0.1 on a port the kernel picks.
  explicit FakeHttpServer(Handler handler);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Every request received so far, in order.
  std::vector<HttpRequest> requests();

 private:
  void Serve();
  void HandleConnection(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_UTIL_FAKE_HTTP_SERVER_H_
