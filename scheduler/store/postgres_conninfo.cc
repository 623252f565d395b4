#include "scheduler/store/postgres_conninfo.h"

#include <cctype>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tessera::scheduler {
namespace {

constexpr char kHidden[] = "***";

std::string RedactUri(const std::string& url, size_t scheme_end) {
  const size_t start = scheme_end + 3;  // past "://"
  size_t end = url.find_first_of("/?#", start);
  if (end == std::string::npos) end = url.size();
  std::string out = url.substr(0, start);
  const std::string authority = url.substr(start, end - start);
  // The user info ends at the last '@' (a password may hold one, unencoded).
  const size_t at = authority.rfind('@');
  if (at == std::string::npos) {
    out += authority;
  } else {
    const std::string userinfo = authority.substr(0, at);
    const size_t colon = userinfo.find(':');
    out += colon == std::string::npos
               ? userinfo
               : absl::StrCat(userinfo.substr(0, colon + 1), kHidden);
    out += authority.substr(at);
  }
  const size_t query = url.find('?', end);
  out += url.substr(end, query == std::string::npos ? std::string::npos : query - end);
  if (query == std::string::npos) return out;
  out += '?';
  bool first = true;
  for (absl::string_view param : absl::StrSplit(url.substr(query + 1), '&')) {
    if (!first) out += '&';
    first = false;
    const size_t eq = param.find('=');
    const std::string key = absl::AsciiStrToLower(param.substr(0, eq));
    if (eq != absl::string_view::npos && key == "password") {
      absl::StrAppend(&out, param.substr(0, eq + 1), kHidden);
    } else {
      absl::StrAppend(&out, param);
    }
  }
  return out;
}

std::string RedactKeywords(const std::string& s) {
  std::string out;
  size_t i = 0;
  const auto skip_space = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) out += s[i++];
  };
  while (true) {
    skip_space();
    if (i >= s.size()) return out;
    const size_t key_start = i;
    while (i < s.size() && s[i] != '=' && !std::isspace(static_cast<unsigned char>(s[i])))
      ++i;
    const std::string key = s.substr(key_start, i - key_start);
    out += key;
    skip_space();
    if (i >= s.size() || s[i] != '=')
      return out + kHidden;  // not conninfo: hide the rest
    out += s[i++];
    skip_space();
    const size_t value_start = i;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      while (i < s.size() && s[i] != '\'') i += s[i] == '\\' ? 2 : 1;
      if (i >= s.size()) return out + kHidden;  // unterminated quote
      ++i;
    } else {
      while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])))
        i += s[i] == '\\' ? 2 : 1;
      i = std::min(i, s.size());
    }
    out += absl::AsciiStrToLower(key) == "password"
               ? std::string(kHidden)
               : s.substr(value_start, i - value_start);
  }
}

}  // namespace

std::string RedactConninfo(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme != std::string::npos &&
      (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://"))) {
    return RedactUri(url, scheme);
  }
  return RedactKeywords(url);
}

absl::StatusOr<std::string> ReadPasswordFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("--postgres-password-file ", path, ": cannot read it"));
  }
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--postgres-password-file ", path, ": its first line is empty"));
  }
  return line;
}

}  // namespace tessera::scheduler
