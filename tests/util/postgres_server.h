// A real PostgreSQL server for tests: initdb in a temp dir and `postgres` on
// 127.0.0.1 at a free port, its socket in the temp dir, fsync off. PostgreSQL
// refuses to run as root, so under root both run as the `postgres` system
// user (setpriv), and only the temp dir this helper made is given to it. The
// password of its superuser `tessera` is made at run time and handed to
// psql in the environment, never in argv. Only the server it started is ever
// signalled, by PID.
//
// Missing binaries are an error that says how to install them, unless
// TESSERA_SKIP_POSTGRES=1 (PostgresSkipped()).
#ifndef TESSERA_TESTS_UTIL_POSTGRES_SERVER_H_
#define TESSERA_TESTS_UTIL_POSTGRES_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/util/process.h"
#include "tests/util/temp_dir.h"

namespace tessera::testing {

// Whether TESSERA_SKIP_POSTGRES=1 asks to skip tests that need PostgreSQL.
bool PostgresSkipped();

class PostgresServer {
 public:
  // Directory of initdb and postgres: $TESSERA_POSTGRES_BIN, else the newest
  // /usr/lib/postgresql/<version>/bin (Debian's postgresql package); "" if none.
  static std::string BinDir();

  PostgresServer();
  ~PostgresServer();  // stops the server, then its temp dir is removed
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // The first time: initdb, then start. Later: starts it again on the same
  // port and data. Returns once it accepts connections.
  absl::Status Start();
  // Fast shutdown (SIGINT: open sessions are ended), and waits for it to end.
  absl::Status Stop();
  bool running() const;

  int port() const { return port_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  // A new empty database.
  absl::Status CreateDatabase(const std::string& name);
  // URI of database `name`, without the password (pass it in another way), or with it.
  std::string Url(const std::string& name) const;
  std::string UrlWithPassword(const std::string& name) const;
  // Runs `sql` in database `name` with psql; its output unaligned, tuples only.
  absl::StatusOr<std::string> Psql(const std::string& name, const std::string& sql) const;
  std::string Log() const;

 private:
  TempDir tmp_{"tessera-postgres"};  // outlives process_ (declared later)
  const std::string dir_ = tmp_.path();
  std::string bin_;
  std::string user_ = "tessera";
  std::string password_;
  int port_ = 0;
  bool initialized_ = false;
  std::unique_ptr<Process> process_;
};

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_UTIL_POSTGRES_SERVER_H_
