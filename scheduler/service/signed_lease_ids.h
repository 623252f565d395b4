// Lease ids no peer can guess or forge: "<job>.<shard>.<attempt>.<nonce>.<mac>",
// where the nonce is unique per lease (never reused, also after
// RetryFailedShards or a restart) and the mac is an HMAC-SHA256 of the rest
// and of the holder's identity under a key kept in the store, so a restarted scheduler
// still recognises the leases it issued before and refuses made-up ones.
//
// Thread-safe after construction.
#ifndef TESSERA_SCHEDULER_SERVICE_SIGNED_LEASE_IDS_H_
#define TESSERA_SCHEDULER_SERVICE_SIGNED_LEASE_IDS_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/store/store.h"

namespace tessera::scheduler {

class SignedLeaseIds : public LeaseIds {
 public:
  // The key is the store's (made and kept there on first use).
  static absl::StatusOr<std::unique_ptr<SignedLeaseIds>> Create(Store* store);
  // For tests: a given key (any bytes).
  explicit SignedLeaseIds(std::string key);

  std::string Mint(const std::string& job_id, int64_t shard, int32_t attempt,
                   const std::string& holder) override;
  bool Issued(const std::string& lease_id, const std::string& job_id, int64_t shard,
              const std::string& holder) const override;

 private:
  // Hex of the first 16 bytes of HMAC-SHA256(key, body "\n" holder): the
  // holder is signed but not written into the id.
  std::string Mac(const std::string& body, const std::string& holder) const;
  const std::string key_;
  // Nonce = this run's random prefix + a counter: never reused, also across
  // restarts (another prefix) and RetryFailedShards (the counter goes on).
  const std::string nonce_prefix_;
  std::atomic<uint64_t> next_nonce_{0};
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_SIGNED_LEASE_IDS_H_
