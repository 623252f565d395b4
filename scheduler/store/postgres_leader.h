// Leader election for two (or more) schedulers on one PostgreSQL database: a
// lease row in tessera_leader (schema 3) holding the leader's identity, the
// address clients reach it at, an epoch that grows at every takeover, and an
// expiry on the SERVER's clock (now()), so that no scheduler's clock matters.
//
// - A follower calls TryAcquire every renew interval: the row is taken only
//   when it has expired (INSERT … ON CONFLICT … DO UPDATE … WHERE expired),
//   and every takeover adds one to the epoch.
// - The leader calls Renew every renew interval; a renewal that finds the row
//   expired, or held by another epoch, has lost the lease (the leader steps
//   down: it never extends a lease it may have lost).
// - FenceSql() is the statement PostgresStore runs first in every transaction
//   that changes state (SetFenceSql): true only while this holder, at this
//   epoch, holds an unexpired lease. It takes a share lock on the row, so a
//   takeover (an UPDATE of the row) waits until that transaction ends: a
//   transaction that passed the fence commits before the next leader starts.
//
// Why a row and an epoch, not an advisory lock alone: an advisory lock lives
// and dies with its connection; a leader paused past its TTL, or partitioned,
// keeps no lock but still believes it leads, and nothing stops its next write
// on a new connection. The epoch check inside each transaction does.
//
// Thread-safe (one connection of its own, behind a mutex).
#ifndef TESSERA_SCHEDULER_STORE_POSTGRES_LEADER_H_
#define TESSERA_SCHEDULER_STORE_POSTGRES_LEADER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/store/postgres_store.h"

struct pg_conn;

namespace tessera::scheduler {

struct LeaderInfo {
  std::string holder;   // empty: nobody has ever led
  std::string address;  // where the holder serves
  int64_t epoch = 0;
  bool live = false;  // not expired (by the server's clock)
};

class PostgresLeaderLease {
 public:
  // `identity` names this scheduler (unique per process); `address` is where
  // clients reach it. Both are kept to [A-Za-z0-9._:/@-] (anything else
  // becomes '_'). Connects lazily.
  PostgresLeaderLease(const PostgresOptions& options, std::string identity,
                      std::string address, absl::Duration ttl);
  ~PostgresLeaderLease();

  // Takes the lease if it is free or expired: the new epoch, or 0 when
  // another holder's lease is live.
  absl::StatusOr<int64_t> TryAcquire();
  // Extends the lease held at `epoch`: false when it is lost (expired or taken).
  absl::StatusOr<bool> Renew(int64_t epoch);
  // Ends the lease held at `epoch` now (a clean shutdown), so that a follower
  // takes over at its next poll rather than after the TTL.
  absl::Status Resign(int64_t epoch);
  absl::StatusOr<LeaderInfo> Current();
  // The fence statement for PostgresStore::SetFenceSql at `epoch`.
  std::string FenceSql(int64_t epoch) const;

  const std::string& identity() const { return identity_; }
  const std::string& address() const { return address_; }

 private:
  // Runs `sql` with text parameters; the rows in text.
  absl::StatusOr<std::vector<std::vector<std::string>>> Query(
      const char* sql, const std::vector<std::string>& params, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PostgresOptions options_;
  const std::string redacted_url_;
  const std::string identity_;
  const std::string address_;
  const std::string ttl_seconds_;
  absl::Mutex mu_;
  pg_conn* conn_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// A name for this process: host, pid and random bits, never reused.
std::string NewLeaderIdentity();

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_STORE_POSTGRES_LEADER_H_
