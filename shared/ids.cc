#include "shared/ids.h"

#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"

namespace tessera {

std::string RandomHexId(int bytes) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes);
  absl::MutexLock lock(&mu);
  for (int i = 0; i < bytes; ++i) {
    const auto b = absl::Uniform<unsigned>(*gen, 0, 256);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace tessera
