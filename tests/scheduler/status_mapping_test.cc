// How errors reach a caller, over every absl::StatusCode: the gRPC edge carries the
// code over one to one (shared/grpc_util.h), and a failing store or sink refuses calls
// with UNAVAILABLE, or RESOURCE_EXHAUSTED for a full disk (scheduler/service/faults.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/service/faults.h"
#include "shared/grpc_util.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::GrpcStatusIs;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::HasSubstr;

// Every code absl defines, OK included.
std::vector<absl::StatusCode> AllCodes() {
  std::vector<absl::StatusCode> codes;
  for (int c = 0; c <= static_cast<int>(absl::StatusCode::kUnauthenticated); ++c) {
    codes.push_back(static_cast<absl::StatusCode>(c));
  }
  return codes;
}

// What a failing store or sink turns its error into for a caller.
absl::StatusCode RefusalCodeFor(absl::StatusCode error) {
  return error == absl::StatusCode::kResourceExhausted
             ? absl::StatusCode::kResourceExhausted
             : absl::StatusCode::kUnavailable;
}

TEST(StatusMappingTest, TheGrpcEdgeCarriesEveryCodeAndItsMessageOneToOne) {
  // The names gRPC gives its codes, in number order.
  const std::vector<std::string> grpc_names = {"OK",
                                               "CANCELLED",
                                               "UNKNOWN",
                                               "INVALID_ARGUMENT",
                                               "DEADLINE_EXCEEDED",
                                               "NOT_FOUND",
                                               "ALREADY_EXISTS",
                                               "PERMISSION_DENIED",
                                               "RESOURCE_EXHAUSTED",
                                               "FAILED_PRECONDITION",
                                               "ABORTED",
                                               "OUT_OF_RANGE",
                                               "UNIMPLEMENTED",
                                               "INTERNAL",
                                               "UNAVAILABLE",
                                               "DATA_LOSS",
                                               "UNAUTHENTICATED"};
  ASSERT_EQ(AllCodes().size(), grpc_names.size());
  for (absl::StatusCode code : AllCodes()) {
    SCOPED_TRACE(absl::StatusCodeToString(code));
    const absl::Status status(code, "job 7f3a: shard_size must be > 0 (got 0)");
    const grpc::Status g = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(g.error_code()), static_cast<int>(code));
    EXPECT_EQ(absl::StatusCodeToString(code), grpc_names[static_cast<int>(code)]);
    if (code == absl::StatusCode::kOk) {
      EXPECT_THAT(g, IsOk());
      EXPECT_EQ(g.error_message(), "");  // an OK status carries no message
      EXPECT_THAT(FromGrpcStatus(g), IsOk());
    } else {
      EXPECT_THAT(g, GrpcStatusIs(static_cast<grpc::StatusCode>(code),
                                  "job 7f3a: shard_size must be > 0 (got 0)"));
      EXPECT_EQ(FromGrpcStatus(g), status);
    }
  }
}

TEST(StatusMappingTest, ACommitThatKeepsFailingRefusesWritesWhateverTheStoresCode) {
  for (absl::StatusCode code : AllCodes()) {
    if (code == absl::StatusCode::kOk) continue;
    SCOPED_TRACE(absl::StatusCodeToString(code));
    FaultState faults(absl::Seconds(30));
    const absl::Status error(code, "disk says no");
    faults.CommitFailed(error);
    // One blip that the first retry gets past refuses nothing ...
    EXPECT_THAT(faults.Refusal(/*new_work=*/false), IsOk());
    // ... but the waiting call is told the store's own error.
    EXPECT_EQ(faults.StoreError(), error);
    for (int i = 1; i < kFailuresBeforeRefusing; ++i) faults.CommitFailed(error);
    const absl::Status refusal = faults.Refusal(/*new_work=*/false);
    EXPECT_THAT(refusal, StatusIs(RefusalCodeFor(code), HasSubstr("disk says no")));
    EXPECT_THAT(refusal,
                StatusIs(RefusalCodeFor(code), HasSubstr("nothing was changed")));
    EXPECT_THAT(ToGrpcStatus(refusal),
                GrpcStatusIs(static_cast<grpc::StatusCode>(RefusalCodeFor(code))));
    EXPECT_THAT(faults.Refusal(/*new_work=*/true), StatusIs(RefusalCodeFor(code)));
    faults.CommitSucceeded();
    EXPECT_THAT(faults.Refusal(/*new_work=*/true), IsOk());
    EXPECT_THAT(faults.StoreError(), IsOk());
  }
}

TEST(StatusMappingTest, AResultSinkThatKeepsFailingRefusesOnlyNewWork) {
  for (absl::StatusCode code : AllCodes()) {
    if (code == absl::StatusCode::kOk) continue;
    SCOPED_TRACE(absl::StatusCodeToString(code));
    FaultState faults(absl::Seconds(30));
    const absl::Status error(code, "bucket says no");
    faults.SinkFailed(1, error);
    EXPECT_THAT(faults.Refusal(/*new_work=*/true), IsOk());
    faults.SinkFailed(kFailuresBeforeRefusing, error);
    EXPECT_THAT(faults.Refusal(/*new_work=*/true),
                StatusIs(RefusalCodeFor(code), HasSubstr("bucket says no")));
    EXPECT_THAT(faults.Refusal(/*new_work=*/false), IsOk());
    faults.SinkRetriesEnded(kFailuresBeforeRefusing);
    EXPECT_THAT(faults.Refusal(/*new_work=*/true), IsOk());
  }
}

TEST(StatusMappingTest, ACommitRunningPastItsTimeoutIsUnavailable) {
  FaultState faults(absl::Seconds(5));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  faults.CommitStarted(t0);
  faults.Check(t0 + absl::Seconds(4));
  EXPECT_THAT(faults.Refusal(/*new_work=*/false), IsOk());
  faults.Check(t0 + absl::Seconds(6));
  EXPECT_THAT(faults.Refusal(/*new_work=*/false),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("has run for over 5s")));
  EXPECT_THAT(faults.StoreError(), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace tessera::scheduler
