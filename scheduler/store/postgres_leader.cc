#include "scheduler/store/postgres_leader.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace tessera::scheduler {
namespace {

// One election per database: every scheduler on it competes for this row.
constexpr char kElection[] = "scheduler";

std::string Sanitize(std::string s) {
  for (char& c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                    c == '/' || c == '@' || c == '-';
    if (!ok) c = '_';
  }
  return s.substr(0, 200);
}

// A free or expired row is taken, and every takeover adds one to the epoch.
// now() is the server's clock: the schedulers' clocks never decide.
constexpr char kAcquire[] =
    "INSERT INTO tessera_leader AS l (name, holder, address, epoch, expires_at) "
    "VALUES ($1, $2, $3, 1, now() + make_interval(secs => $4::double precision)) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, address = "
    "excluded.address, epoch = l.epoch + 1, expires_at = excluded.expires_at "
    "WHERE l.expires_at <= now() OR l.holder = excluded.holder "
    "RETURNING epoch";
// Only a live lease of this holder at this epoch is extended.
constexpr char kRenew[] =
    "UPDATE tessera_leader SET expires_at = now() + make_interval(secs => "
    "$4::double precision) WHERE name = $1 AND holder = $2 AND epoch = $3 AND "
    "expires_at > now() RETURNING epoch";
constexpr char kResign[] =
    "UPDATE tessera_leader SET expires_at = now() WHERE name = $1 AND holder = $2 AND "
    "epoch = $3";
constexpr char kCurrent[] =
    "SELECT holder, address, epoch, expires_at > now() FROM tessera_leader WHERE name "
    "= $1";

}  // namespace

std::string NewLeaderIdentity() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return Sanitize(absl::StrFormat("%s/%d-%08x", host[0] ? host : "scheduler",
                                  static_cast<int>(getpid()), rd()));
}

PostgresLeaderLease::PostgresLeaderLease(const PostgresOptions& options,
                                         std::string identity, std::string address,
                                         absl::Duration ttl)
    : options_(options),
      redacted_url_(RedactConninfo(options.url)),
      identity_(Sanitize(std::move(identity))),
      address_(Sanitize(std::move(address))),
      ttl_seconds_(absl::StrFormat("%.3f", absl::ToDoubleSeconds(ttl))) {}

PostgresLeaderLease::~PostgresLeaderLease() {
  absl::MutexLock lock(&mu_);
  if (conn_ != nullptr) PQfinish(conn_);
}

std::string PostgresLeaderLease::FenceSql(int64_t epoch) const {
  // identity_ holds no quote (Sanitize), so it is a safe literal.
  return absl::StrCat("SELECT COALESCE((SELECT holder = '", identity_,
                      "' AND epoch = ", epoch,
                      " AND expires_at > now() FROM tessera_leader WHERE name = '",
                      kElection, "' FOR SHARE), false)");
}

absl::Status PostgresLeaderLease::ConnectLocked() {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  const std::string timeout = std::to_string(options_.connect_timeout_seconds);
  std::vector<const char*> keys = {
      "connect_timeout",     "application_name", "keepalives",      "keepalives_idle",
      "keepalives_interval", "keepalives_count", "tcp_user_timeout"};
  std::vector<const char*> values = {
      timeout.c_str(), "tessera-scheduler-lease", "1", "5", "2", "2", "5000"};
  if (!options_.password.empty()) {
    keys.push_back("password");
    values.push_back(options_.password.c_str());
  }
  keys.push_back("dbname");
  values.push_back(options_.url.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), 1);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    std::string message =
        conn ? std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)))
             : "out of memory";
    if (conn) PQfinish(conn);
    if (options_.password.size() >= 4) {
      message = absl::StrReplaceAll(message, {{options_.password, "***"}});
    }
    return absl::UnavailableError(absl::StrCat("leader lease on postgres ", redacted_url_,
                                               ": cannot connect: ", message));
  }
  conn_ = conn;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<std::string>>> PostgresLeaderLease::Query(
    const char* sql, const std::vector<std::string>& params, const char* what) {
  if (absl::Status s = ConnectLocked(); !s.ok()) return s;
  std::vector<const char*> values;
  for (const std::string& p : params) values.push_back(p.c_str());
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                   nullptr, nullptr, 0),
      &PQclear);
  const ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    std::string message(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn_));
    if (PQstatus(conn_) != CONNECTION_OK) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
    return absl::UnavailableError(
        absl::StrCat("leader lease on postgres ", redacted_url_, ": ", what, ": ",
                     absl::StripTrailingAsciiWhitespace(message)));
  }
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < PQntuples(res.get()); ++i) {
    std::vector<std::string> row;
    for (int j = 0; j < PQnfields(res.get()); ++j)
      row.push_back(PQgetvalue(res.get(), i, j));
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<int64_t> PostgresLeaderLease::TryAcquire() {
  absl::MutexLock lock(&mu_);
  auto rows = Query(kAcquire, {kElection, identity_, address_, ttl_seconds_}, "acquire");
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return 0;
  return std::stoll((*rows)[0][0]);
}

absl::StatusOr<bool> PostgresLeaderLease::Renew(int64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto rows =
      Query(kRenew, {kElection, identity_, std::to_string(epoch), ttl_seconds_}, "renew");
  if (!rows.ok()) return rows.status();
  return !rows->empty();
}

absl::Status PostgresLeaderLease::Resign(int64_t epoch) {
  absl::MutexLock lock(&mu_);
  return Query(kResign, {kElection, identity_, std::to_string(epoch)}, "resign").status();
}

absl::StatusOr<LeaderInfo> PostgresLeaderLease::Current() {
  absl::MutexLock lock(&mu_);
  auto rows = Query(kCurrent, {kElection}, "read the lease");
  if (!rows.ok()) return rows.status();
  LeaderInfo info;
  if (rows->empty()) return info;
  info.holder = (*rows)[0][0];
  info.address = (*rows)[0][1];
  info.epoch = std::stoll((*rows)[0][2]);
  info.live = (*rows)[0][3] == "t";
  return info;
}

}  // namespace tessera::scheduler
