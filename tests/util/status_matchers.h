// gMock matchers for absl::Status, absl::StatusOr<T> and grpc::Status, so that a failed
// check prints the code and the message instead of "Value of: s.ok()  Actual: false":
//
//   EXPECT_THAT(store->Flush(), IsOk());
//   EXPECT_THAT(Parse("x"), StatusIs(absl::StatusCode::kInvalidArgument,
//                                    HasSubstr("shard_size")));
//   EXPECT_THAT(store->LoadJob(id), IsOkAndHolds(Field(&Job::id, id)));
//   EXPECT_THAT(stub->GetJob(&ctx, req, &job),
//   GrpcStatusIs(grpc::StatusCode::NOT_FOUND));
//
// StatusIs and IsOk accept any of the three status types; absl and gRPC codes share
// numbers, so a grpc::Status is matched by its code's absl twin. Header only; the
// gRPC header it includes is inline, so tests that do not link gRPC can use it.
#ifndef TESSERA_TESTS_UTIL_STATUS_MATCHERS_H_
#define TESSERA_TESTS_UTIL_STATUS_MATCHERS_H_

#include <gmock/gmock.h>
#include <grpcpp/support/status.h>

#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// gtest prints a value through PrintTo found by argument-dependent lookup; without it
// a grpc::Status prints as raw bytes.
namespace grpc {
inline void PrintTo(const Status& s, std::ostream* os) {
  if (s.ok()) {
    *os << "OK";
    return;
  }
  *os << absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())) << ": "
      << s.error_message();
}
}  // namespace grpc

namespace tessera::testing {
namespace status_internal {

inline const absl::Status& ToStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
inline absl::Status ToStatus(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// Says what the status was when a matcher does not match ("whose status is ...").
inline void ExplainStatus(const absl::Status& s,
                          ::testing::MatchResultListener* listener) {
  *listener << "whose status is " << (s.ok() ? std::string("OK") : s.ToString());
}

class IsOkMatcher {
 public:
  template <typename S>
  bool MatchAndExplain(const S& value, ::testing::MatchResultListener* listener) const {
    const absl::Status& s = ToStatus(value);
    if (!s.ok()) ExplainStatus(s, listener);
    return s.ok();
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not OK"; }
};

class StatusIsMatcher {
 public:
  StatusIsMatcher(absl::StatusCode code, ::testing::Matcher<const std::string&> message,
                  bool any_message)
      : code_(code), message_(std::move(message)), any_message_(any_message) {}

  template <typename S>
  bool MatchAndExplain(const S& value, ::testing::MatchResultListener* listener) const {
    const absl::Status& s = ToStatus(value);
    if (s.code() != code_) {
      ExplainStatus(s, listener);
      return false;
    }
    ::testing::StringMatchResultListener inner;
    if (!message_.MatchAndExplain(std::string(s.message()), &inner)) {
      *listener << "whose message \"" << s.message() << "\" does not match";
      if (!inner.str().empty()) *listener << " (" << inner.str() << ")";
      return false;
    }
    return true;
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has status " << absl::StatusCodeToString(code_);
    if (!any_message_) {
      *os << " with a message that ";
      message_.DescribeTo(os);
    }
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "does not have status " << absl::StatusCodeToString(code_);
    if (!any_message_) {
      *os << " or has a message that ";
      message_.DescribeNegationTo(os);
    }
  }

 private:
  absl::StatusCode code_;
  ::testing::Matcher<const std::string&> message_;
  bool any_message_;
};

template <typename StatusOrRef>
class IsOkAndHoldsImpl : public ::testing::MatcherInterface<StatusOrRef> {
 public:
  using StatusOrType = std::remove_cv_t<std::remove_reference_t<StatusOrRef>>;
  using ValueType = typename StatusOrType::value_type;

  template <typename InnerMatcher>
  explicit IsOkAndHoldsImpl(InnerMatcher&& inner)
      : inner_(::testing::SafeMatcherCast<const ValueType&>(
            std::forward<InnerMatcher>(inner))) {}

  void DescribeTo(std::ostream* os) const override {
    *os << "is OK and has a value that ";
    inner_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const override {
    *os << "is not OK or has a value that ";
    inner_.DescribeNegationTo(os);
  }
  bool MatchAndExplain(StatusOrRef actual,
                       ::testing::MatchResultListener* listener) const override {
    if (!actual.ok()) {
      ExplainStatus(actual.status(), listener);
      return false;
    }
    ::testing::StringMatchResultListener inner;
    const bool matched = inner_.MatchAndExplain(*actual, &inner);
    *listener << "whose value " << ::testing::PrintToString(*actual)
              << (matched ? " matches" : " does not match");
    if (!inner.str().empty()) *listener << " (" << inner.str() << ")";
    return matched;
  }

 private:
  ::testing::Matcher<const ValueType&> inner_;
};

template <typename InnerMatcher>
class IsOkAndHoldsMatcher {
 public:
  explicit IsOkAndHoldsMatcher(InnerMatcher inner) : inner_(std::move(inner)) {}

  template <typename StatusOrRef>
  operator ::testing::Matcher<StatusOrRef>()
      const {  // NOLINT(google-explicit-constructor)
    return ::testing::Matcher<StatusOrRef>(
        new IsOkAndHoldsImpl<const StatusOrRef&>(inner_));
  }

 private:
  InnerMatcher inner_;
};

}  // namespace status_internal

// The status (of an absl::Status, absl::StatusOr or grpc::Status) is OK.
inline ::testing::PolymorphicMatcher<status_internal::IsOkMatcher> IsOk() {
  return ::testing::MakePolymorphicMatcher(status_internal::IsOkMatcher());
}

// The status has `code`, whatever its message.
inline ::testing::PolymorphicMatcher<status_internal::StatusIsMatcher> StatusIs(
    absl::StatusCode code) {
  return ::testing::MakePolymorphicMatcher(
      status_internal::StatusIsMatcher(code, ::testing::_, /*any_message=*/true));
}

// The status has `code` and a message that matches `message` (a string, or a string
// matcher such as HasSubstr).
template <typename MessageMatcher>
::testing::PolymorphicMatcher<status_internal::StatusIsMatcher> StatusIs(
    absl::StatusCode code, MessageMatcher&& message) {
  return ::testing::MakePolymorphicMatcher(status_internal::StatusIsMatcher(
      code,
      ::testing::MatcherCast<const std::string&>(std::forward<MessageMatcher>(message)),
      /*any_message=*/false));
}

// A grpc::Status with `code` (and a message that matches `message`).
inline ::testing::PolymorphicMatcher<status_internal::StatusIsMatcher> GrpcStatusIs(
    grpc::StatusCode code) {
  return StatusIs(static_cast<absl::StatusCode>(code));
}
template <typename MessageMatcher>
::testing::PolymorphicMatcher<status_internal::StatusIsMatcher> GrpcStatusIs(
    grpc::StatusCode code, MessageMatcher&& message) {
  return StatusIs(static_cast<absl::StatusCode>(code),
                  std::forward<MessageMatcher>(message));
}

// An OK absl::StatusOr whose value matches `inner` (a value or a matcher).
template <typename InnerMatcher>
status_internal::IsOkAndHoldsMatcher<std::decay_t<InnerMatcher>> IsOkAndHolds(
    InnerMatcher&& inner) {
  return status_internal::IsOkAndHoldsMatcher<std::decay_t<InnerMatcher>>(
      std::forward<InnerMatcher>(inner));
}

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_UTIL_STATUS_MATCHERS_H_
