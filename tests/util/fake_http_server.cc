#include "tests/util/fake_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tessera::testing {
namespace {

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

FakeHttpServer::FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::abort();  // a test machine without loopback cannot run these tests
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

FakeHttpServer::~FakeHttpServer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  ::close(listen_fd_);
}

std::vector<HttpRequest> FakeHttpServer::requests() {
  absl::MutexLock lock(&mu_);
  return requests_;
}

void FakeHttpServer::Serve() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{5, 0};  // a client that stops sending does not hang the test
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    HandleConnection(fd);
    ::close(fd);
  }
}

void FakeHttpServer::HandleConnection(int fd) {
  std::string data;
  char buf[65536];
  size_t header_end;
  while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    data.append(buf, static_cast<size_t>(n));
  }
  HttpRequest req;
  std::vector<std::string> lines =
      absl::StrSplit(data.substr(0, header_end), "\r\n", absl::SkipEmpty());
  if (lines.empty()) return;
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  if (first.size() < 2) return;
  req.method = first[0];
  req.target = first[1];
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    req.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  size_t length = 0;
  (void)absl::SimpleAtoi(req.Header("content-length"), &length);
  if (length > 0 && absl::AsciiStrToLower(req.Header("expect")) == "100-continue" &&
      data.size() == header_end + 4) {
    if (!SendAll(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return;
  }
  req.body = data.substr(header_end + 4);
  while (req.body.size() < length) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    req.body.append(buf, static_cast<size_t>(n));
  }
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(req);
  }
  const HttpResponse resp = handler_(req);
  if (resp.drop) return;
  std::string out = absl::StrCat("HTTP/1.1 ", resp.status, " Fake\r\n");
  bool has_length = false;
  for (const auto& [name, value] : resp.headers) {
    absl::StrAppend(&out, name, ": ", value, "\r\n");
    has_length = has_length || absl::AsciiStrToLower(name) == "content-length";
  }
  if (!has_length) absl::StrAppend(&out, "Content-Length: ", resp.body.size(), "\r\n");
  absl::StrAppend(&out, "Connection: close\r\n\r\n");
  if (req.method != "HEAD") out += resp.body;
  SendAll(fd, out);
}

}  // namespace tessera::testing
