// A core file breaking the purity rule, for style.core_purity_detects.
#include "grpcpp/grpcpp.h"
#include "spdlog/spdlog.h"
#include "tessera/v1/executor.pb.h"

int Impure() { return static_cast<int>(absl::ToUnixSeconds(absl::Now())); }
