// SHA-256 of a byte string, as lowercase hex (OpenSSL underneath).
#ifndef TESSERA_SHARED_SHA256_H_
#define TESSERA_SHARED_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace tessera {

std::string Sha256Hex(absl::string_view bytes);

}  // namespace tessera

#endif  // TESSERA_SHARED_SHA256_H_
