#include "shared/duration.h"

#include <gtest/gtest.h>

#include "shared/proto_duration.h"

namespace tessera {
namespace {

TEST(ParseFiniteDuration, ReadsAbslSyntax) {
  EXPECT_EQ(ParseFiniteDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(ParseFiniteDuration("1m30s"), absl::Seconds(90));
  EXPECT_EQ(ParseFiniteDuration("0"), absl::ZeroDuration());
  EXPECT_EQ(ParseFiniteDuration("-2s"), absl::Seconds(-2));
}

TEST(ParseFiniteDuration, RefusesTextWithoutUnitAndInfinity) {
  for (const char* bad : {"", "2", "soon", "inf", "-inf", "1 s"}) {
    EXPECT_FALSE(ParseFiniteDuration(bad).has_value()) << bad;
  }
}

TEST(ProtoDuration, RoundTripsWithSignedNanos) {
  for (absl::Duration d : {absl::ZeroDuration(), absl::Milliseconds(1500),
                           -absl::Milliseconds(1500), absl::Hours(24 * 366)}) {
    google::protobuf::Duration proto;
    DurationToProto(d, &proto);
    EXPECT_EQ(DurationFromProto(proto), d);
    EXPECT_GE(proto.seconds() * proto.nanos(), 0) << "signs differ";
  }
  google::protobuf::Duration proto;
  DurationToProto(absl::Milliseconds(1250), &proto);
  EXPECT_EQ(proto.seconds(), 1);
  EXPECT_EQ(proto.nanos(), 250'000'000);
}

}  // namespace
}  // namespace tessera
