// The status matchers themselves: they match what they should, fail on what they
// should not, and say why in words a person reading a failed test can use.
#include "tests/util/status_matchers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace tessera::testing {
namespace {

using ::testing::DescribeMatcher;
using ::testing::Eq;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StringMatchResultListener;

// What a matcher says when `value` does not match it (empty when it matches).
template <typename M, typename V>
std::string Explain(const M& matcher, const V& value) {
  StringMatchResultListener listener;
  if (::testing::ExplainMatchResult(matcher, value, &listener)) return "";
  return listener.str();
}

TEST(StatusMatchersTest, IsOkMatchesOnlyOkStatuses) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  EXPECT_THAT(grpc::Status(), IsOk());
  EXPECT_THAT(absl::NotFoundError("job 7f3a"), Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(absl::InternalError("disk")), Not(IsOk()));
  EXPECT_THAT(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), Not(IsOk()));
}

TEST(StatusMatchersTest, IsOkExplainsWithTheCodeAndMessage) {
  EXPECT_EQ(Explain(IsOk(), absl::NotFoundError("job 7f3a")),
            "whose status is NOT_FOUND: job 7f3a");
  EXPECT_EQ(Explain(IsOk(), grpc::Status(grpc::StatusCode::UNAVAILABLE, "store down")),
            "whose status is UNAVAILABLE: store down");
  EXPECT_EQ(DescribeMatcher<absl::Status>(IsOk()), "is OK");
  EXPECT_EQ(DescribeMatcher<absl::Status>(IsOk(), /*negation=*/true), "is not OK");
}

TEST(StatusMatchersTest, StatusIsComparesTheCode) {
  const absl::Status s = absl::InvalidArgumentError("shard_size must be > 0 (got 0)");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kNotFound)));
  EXPECT_THAT(absl::OkStatus(), StatusIs(absl::StatusCode::kOk));
  EXPECT_THAT(absl::OkStatus(), Not(StatusIs(absl::StatusCode::kInternal)));
  EXPECT_THAT(absl::StatusOr<int>(absl::AbortedError("x")),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(absl::StatusOr<int>(1), Not(StatusIs(absl::StatusCode::kAborted)));
  EXPECT_EQ(Explain(StatusIs(absl::StatusCode::kNotFound), s),
            "whose status is INVALID_ARGUMENT: shard_size must be > 0 (got 0)");
  EXPECT_EQ(DescribeMatcher<absl::Status>(StatusIs(absl::StatusCode::kNotFound)),
            "has status NOT_FOUND");
}

TEST(StatusMatchersTest, StatusIsComparesTheMessageWithAStringOrAMatcher) {
  const absl::Status s = absl::InvalidArgumentError("shard_size must be > 0 (got 0)");
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument, "shard_size must be > 0 (got 0)"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("shard_size")));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batch"))));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument, "shard_size")));
  EXPECT_EQ(Explain(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batch")), s),
            "whose message \"shard_size must be > 0 (got 0)\" does not match");
  EXPECT_EQ(DescribeMatcher<absl::Status>(
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batch"))),
            "has status INVALID_ARGUMENT with a message that has substring \"batch\"");
}

TEST(StatusMatchersTest, GrpcStatusIsComparesTheGrpcCode) {
  const grpc::Status s(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full");
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED, HasSubstr("full")));
  EXPECT_THAT(s, Not(GrpcStatusIs(grpc::StatusCode::UNAVAILABLE)));
  EXPECT_THAT(s, Not(GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "empty")));
  EXPECT_THAT(grpc::Status(), Not(GrpcStatusIs(grpc::StatusCode::NOT_FOUND)));
  EXPECT_EQ(Explain(GrpcStatusIs(grpc::StatusCode::UNAVAILABLE), s),
            "whose status is RESOURCE_EXHAUSTED: queue full");
  EXPECT_EQ(::testing::PrintToString(s), "RESOURCE_EXHAUSTED: queue full");
}

TEST(StatusMatchersTest, IsOkAndHoldsMatchesTheValueOfAnOkStatusOr) {
  EXPECT_THAT(absl::StatusOr<int>(7), IsOkAndHolds(7));
  EXPECT_THAT(absl::StatusOr<int>(7), IsOkAndHolds(Gt(5)));
  EXPECT_THAT(absl::StatusOr<std::string>("abc"), IsOkAndHolds(HasSubstr("b")));
  EXPECT_THAT(absl::StatusOr<int>(7), Not(IsOkAndHolds(8)));
  EXPECT_THAT(absl::StatusOr<int>(absl::NotFoundError("gone")), Not(IsOkAndHolds(7)));
}

TEST(StatusMatchersTest, IsOkAndHoldsExplainsAWrongValueOrAnError) {
  EXPECT_EQ(Explain(IsOkAndHolds(Eq(8)), absl::StatusOr<int>(7)),
            "whose value 7 does not match");
  EXPECT_EQ(Explain(IsOkAndHolds(8), absl::StatusOr<int>(absl::NotFoundError("gone"))),
            "whose status is NOT_FOUND: gone");
  EXPECT_EQ(DescribeMatcher<absl::StatusOr<int>>(IsOkAndHolds(Gt(5))),
            "is OK and has a value that is > 5");
  EXPECT_EQ(DescribeMatcher<absl::StatusOr<int>>(IsOkAndHolds(Gt(5)), /*negation=*/true),
            "is not OK or has a value that isn't > 5");
}

}  // namespace
}  // namespace tessera::testing
