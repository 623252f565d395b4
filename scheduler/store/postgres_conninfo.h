// PostgreSQL connection strings as the operator gives them (--postgres-url):
// hiding their password before they reach a message or a log line, and
// reading a password file.
#ifndef TESSERA_SCHEDULER_STORE_POSTGRES_CONNINFO_H_
#define TESSERA_SCHEDULER_STORE_POSTGRES_CONNINFO_H_

#include <string>

#include "absl/status/statusor.h"

namespace tessera::scheduler {

// `url` (libpq conninfo "host=… password=…" or URI
// "postgresql://user:password@host/db?password=…") with every password
// replaced by "***". Whatever cannot be parsed is hidden whole from the
// first unclear point, rather than shown.
std::string RedactConninfo(const std::string& url);

// The password in `path`: the file's first line, without its line end. An
// error names the file, never its content.
absl::StatusOr<std::string> ReadPasswordFile(const std::string& path);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_STORE_POSTGRES_CONNINFO_H_
