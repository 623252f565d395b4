#include "shared/ids.h"

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/synchronization/mutex.h"

namespace tessera {

std::string RandomHexId(int bytes) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen();
  std::string raw(bytes, '\0');
  {
    absl::MutexLock lock(&mu);
    for (char& b : raw) b = static_cast<char>(absl::Uniform<unsigned>(*gen, 0, 256));
  }
  return absl::BytesToHexString(raw);
}

}  // namespace tessera
