// Random identifiers for jobs, leases and executors.
#ifndef TESSERA_SHARED_IDS_H_
#define TESSERA_SHARED_IDS_H_

#include <string>

namespace tessera {

// `bytes` random bytes as lowercase hex (2 * bytes characters). Thread-safe.
std::string RandomHexId(int bytes = 8);

}  // namespace tessera

#endif  // TESSERA_SHARED_IDS_H_
