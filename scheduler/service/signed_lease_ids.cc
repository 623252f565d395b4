#include "scheduler/service/signed_lease_ids.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tessera::scheduler {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNoncePrefixBytes = 8;
constexpr size_t kMacBytes = 16;

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) !=
      1) {
    // OpenSSL's generator does not fail once seeded; never hand out a weak id.
    std::abort();
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SignedLeaseIds>> SignedLeaseIds::Create(Store* store) {
  absl::StatusOr<std::string> hex =
      store->InitMeta("lease_key", absl::BytesToHexString(RandomBytes(kKeyBytes)));
  if (!hex.ok()) return hex.status();
  return std::make_unique<SignedLeaseIds>(absl::HexStringToBytes(*hex));
}

SignedLeaseIds::SignedLeaseIds(std::string key)
    : key_(std::move(key)),
      nonce_prefix_(absl::BytesToHexString(RandomBytes(kNoncePrefixBytes))) {}

std::string SignedLeaseIds::Mac(const std::string& body,
                                const std::string& holder) const {
  // Ids and identities hold no newline (job ids are checked; names come from
  // tokens files and certificates), so the pair is unambiguous.
  const std::string text = absl::StrCat(body, "\n", holder);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(mac), kMacBytes));
}

std::string SignedLeaseIds::Mint(const std::string& job_id, int64_t shard,
                                 int32_t attempt, const std::string& holder) {
  const std::string body =
      absl::StrCat(job_id, ".", shard, ".", attempt, ".", nonce_prefix_,
                   absl::Hex(next_nonce_.fetch_add(1, std::memory_order_relaxed)));
  return absl::StrCat(body, ".", Mac(body, holder));
}

bool SignedLeaseIds::Issued(const std::string& lease_id, const std::string& job_id,
                            int64_t shard, const std::string& holder) const {
  if (!absl::StartsWith(lease_id, absl::StrCat(job_id, ".", shard, "."))) return false;
  const size_t dot = lease_id.rfind('.');
  if (dot == std::string::npos || lease_id.size() - dot - 1 != 2 * kMacBytes)
    return false;
  const std::string expected = Mac(lease_id.substr(0, dot), holder);
  return CRYPTO_memcmp(expected.data(), lease_id.data() + dot + 1, expected.size()) == 0;
}

}  // namespace tessera::scheduler
