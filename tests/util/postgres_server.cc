#include "tests/util/postgres_server.h"

#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/util/s3rver.h"

namespace tessera::testing {
namespace {

namespace fs = std::filesystem;

// Under root, the command runs as the postgres system user (setpriv execs it,
// so the PID is the command's own).
absl::StatusOr<std::vector<std::string>> AsServerUser() {
  if (geteuid() != 0) return std::vector<std::string>{};
  if (getpwnam("postgres") == nullptr) {
    return absl::FailedPreconditionError(
        "tests run as root and there is no `postgres` user to run PostgreSQL as "
        "(install Debian's postgresql package: scripts/install-deps.sh)");
  }
  return std::vector<std::string>{"/usr/bin/setpriv", "--reuid=postgres",
                                  "--regid=postgres", "--init-groups", "--"};
}

// Gives a path this helper made to the postgres user (under root only).
void GiveToServerUser(const std::string& path) {
  if (geteuid() != 0) return;
  const passwd* pw = getpwnam("postgres");
  if (pw != nullptr && chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    perror(("chown " + path).c_str());
  }
}

}  // namespace

bool PostgresSkipped() {
  const char* v = std::getenv("TESSERA_SKIP_POSTGRES");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

std::string PostgresServer::BinDir() {
  if (const char* dir = std::getenv("TESSERA_POSTGRES_BIN"); dir != nullptr && *dir) {
    return dir;
  }
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string bin = (entry.path() / "bin").string();
    int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version && fs::exists(bin + "/initdb") &&
        fs::exists(bin + "/postgres")) {
      best = bin;
      best_version = version;
    }
  }
  return best;
}

PostgresServer::PostgresServer() : bin_(BinDir()), password_(RandomHex(24)) {}

PostgresServer::~PostgresServer() {
  (void)Stop();
  process_.reset();  // SIGKILLs it if it did not stop; then tmp_ is removed
}

absl::Status PostgresServer::Start() {
  if (bin_.empty() || !fs::exists(bin_ + "/initdb") || !fs::exists(bin_ + "/postgres")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL server binaries (initdb, postgres) not found",
        bin_.empty() ? " under /usr/lib/postgresql/*/bin" : " in " + bin_,
        ": install Debian's postgresql package (scripts/install-deps.sh), point "
        "TESSERA_POSTGRES_BIN at them, or set TESSERA_SKIP_POSTGRES=1 to skip these "
        "tests"));
  }
  if (running()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::string>> as_user = AsServerUser();
  if (!as_user.ok()) return as_user.status();
  const std::string data = dir_ + "/data";
  const std::string sockets = dir_ + "/sockets";
  if (!initialized_) {
    GiveToServerUser(dir_);
    fs::create_directories(sockets);
    GiveToServerUser(sockets);
    const std::string pwfile = dir_ + "/pwfile";
    {
      std::ofstream out(pwfile);
      out << password_ << "\n";
    }
    chmod(pwfile.c_str(), 0600);
    GiveToServerUser(pwfile);
    std::vector<std::string> argv = *as_user;
    for (const std::string& a :
         {bin_ + "/initdb", "-D" + data, "-U" + user_, "--pwfile=" + pwfile,
          std::string("--auth=scram-sha-256"), std::string("--no-locale"),
          std::string("--encoding=UTF8"), std::string("--no-sync")}) {
      argv.push_back(a);
    }
    CommandResult r = RunCommand(argv, {}, absl::Seconds(120));
    fs::remove(pwfile);
    if (r.status != 0) {
      return absl::InternalError(
          absl::StrCat("initdb failed (status ", r.status, "): ", r.out));
    }
    port_ = FreePort();
    initialized_ = true;
  }
  std::vector<std::string> argv = *as_user;
  for (const std::string& a :
       {bin_ + "/postgres", "-D" + data, "-p" + std::to_string(port_), "-k" + sockets,
        std::string("-clisten_addresses=127.0.0.1"), std::string("-cfsync=off"),
        std::string("-cfull_page_writes=off"), std::string("-cmax_connections=40"),
        std::string("-cshared_buffers=16MB"), std::string("-clogging_collector=off")}) {
    argv.push_back(a);
  }
  process_ = std::make_unique<Process>(argv, dir_ + "/postgres.log");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    if (!process_->running()) {
      return absl::InternalError(absl::StrCat("postgres exited at start: ", Log()));
    }
    CommandResult ready = RunCommand(
        {bin_ + "/pg_isready", "-q", "-h127.0.0.1", "-p" + std::to_string(port_)}, {},
        absl::Seconds(10));
    if (ready.status == 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("postgres did not accept connections within 60s: ", Log()));
}

absl::Status PostgresServer::Stop() {
  if (!running()) return absl::OkStatus();
  process_->Signal(SIGINT);
  if (!process_->Wait(absl::Seconds(30)).has_value()) {
    process_->Signal(SIGKILL);
    process_->Wait(absl::Seconds(10));
    return absl::DeadlineExceededError("postgres did not stop within 30s; killed");
  }
  return absl::OkStatus();
}

bool PostgresServer::running() const {
  return process_ != nullptr && process_->running();
}

std::string PostgresServer::Url(const std::string& name) const {
  return absl::StrCat("postgresql://", user_, "@127.0.0.1:", port_, "/", name);
}

std::string PostgresServer::UrlWithPassword(const std::string& name) const {
  return absl::StrCat("postgresql://", user_, ":", password_, "@127.0.0.1:", port_, "/",
                      name);
}

absl::StatusOr<std::string> PostgresServer::Psql(const std::string& name,
                                                 const std::string& sql) const {
  CommandResult r =
      RunCommand({bin_ + "/psql", "-X", "-q", "-At", "-vON_ERROR_STOP=1", "-h127.0.0.1",
                  "-p" + std::to_string(port_), "-U" + user_, "-d" + name, "-c" + sql},
                 {"PGPASSWORD=" + password_}, absl::Seconds(30));
  if (r.status != 0) {
    return absl::InternalError(
        absl::StrCat("psql ", sql, " failed (status ", r.status, "): ", r.out));
  }
  return std::string(absl::StripTrailingAsciiWhitespace(r.out));
}

absl::Status PostgresServer::CreateDatabase(const std::string& name) {
  return Psql("postgres", "CREATE DATABASE \"" + name + "\"").status();
}

std::string PostgresServer::Log() const {
  return process_ != nullptr ? process_->Log() : "";
}

}  // namespace tessera::testing
