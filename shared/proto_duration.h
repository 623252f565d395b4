// google.protobuf.Duration <-> absl::Duration, for the code that speaks proto
// (the scheduler's convert.cc, the CLI). Header-only; links protobuf, so the
// cores never include it.
#ifndef TESSERA_SHARED_PROTO_DURATION_H_
#define TESSERA_SHARED_PROTO_DURATION_H_

#include <google/protobuf/duration.pb.h>

#include <cstdint>

#include "absl/time/time.h"

namespace tessera {

inline absl::Duration DurationFromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// Seconds and nanos carry the same sign, as the proto requires.
inline void DurationToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::ToInt64Seconds(d);
  out->set_seconds(seconds);
  out->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(seconds))));
}

}  // namespace tessera

#endif  // TESSERA_SHARED_PROTO_DURATION_H_
