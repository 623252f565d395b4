// The auth policy without a server: the tokens file format, what each role may
// do, and which listen addresses count as loopback.
#include "scheduler/service/auth.h"

#include "gtest/gtest.h"
#include "shared/sha256.h"
#include "shared/tls.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::Not;

const std::string kHash = Sha256Hex("token");

TEST(ParseTokensFileTest, ReadsNamesRolesAndQueuesKeyedByTheHash) {
  auto tokens = ParseTokensFile(R"({"tokens":[
      {"name":"ci","sha256":")" +
                                kHash + R"(","role":"submitter","queues":["a","b"]},
      {"name":"ops","sha256":")" +
                                Sha256Hex("other") + R"(","role":"admin"}]})");
  ASSERT_THAT(tokens, IsOk());
  ASSERT_EQ(tokens->size(), 2u);
  const TokenEntry& ci = tokens->at(kHash);
  EXPECT_EQ(ci.name, "ci");
  EXPECT_EQ(ci.role, Role::kSubmitter);
  EXPECT_EQ(ci.queues, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(tokens->at(Sha256Hex("other")).role, Role::kAdmin);
}

TEST(ParseTokensFileTest, AcceptsAnUppercaseHash) {
  std::string upper = kHash;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  auto tokens = ParseTokensFile(R"({"tokens":[{"name":"r","sha256":")" + upper +
                                R"(","role":"reader"}]})");
  ASSERT_THAT(tokens, IsOk());
  EXPECT_EQ(tokens->count(kHash), 1u);
}

TEST(ParseTokensFileTest, RefusesBadFilesNamingTheEntryAndField) {
  const std::string h = kHash;
  struct Case {
    std::string text;
    std::string error;
  } cases[] = {
      {"[]", "not a JSON object"},
      {R"({"tokens":{}})", "\"tokens\" must be an array"},
      {R"({"tokens":[],"extra":1})", "unknown field \"extra\""},
      {R"({"tokens":[{"sha256":")" + h + R"(","role":"reader"}]})", "tokens[0].name"},
      {R"({"tokens":[{"name":"x","sha256":")" + h + R"("}]})",
       "tokens[0].role is required"},
      {R"({"tokens":[{"name":"x","sha256":"abc","role":"reader"}]})",
       "tokens[0] (x).sha256 must be the 64 hex digits"},
      {R"({"tokens":[{"name":"x","sha256":")" + h + R"(","role":"root"}]})",
       "tokens[0] (x): role must be reader, submitter, executor or admin (got \"root\")"},
      {R"({"tokens":[{"name":"x","sha256":")" + h +
           R"(","role":"reader","queues":["a"]}]})",
       "queues applies to role submitter only"},
      {R"({"tokens":[{"name":"x","sha256":")" + h + R"(","role":"reader","token":"t"}]})",
       "unknown or mistyped field \"token\""},
      {R"({"tokens":[{"name":"x","sha256":")" + h + R"(","role":"reader"},)" +
           R"({"name":"x","sha256":")" + Sha256Hex("2") + R"(","role":"reader"}]})",
       "tokens[1]: name \"x\" is used twice"},
      {R"({"tokens":[{"name":"x","sha256":")" + h + R"(","role":"reader"},)" +
           R"({"name":"y","sha256":")" + h + R"(","role":"reader"}]})",
       "tokens[1]: the same token hash is listed twice"},
  };
  for (const Case& c : cases) {
    auto tokens = ParseTokensFile(c.text);
    ASSERT_THAT(tokens, Not(IsOk())) << c.text;
    EXPECT_THAT(tokens, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_NE(tokens.status().message().find(c.error), std::string::npos)
        << tokens.status().message() << "\nwanted: " << c.error;
  }
}

Identity Who(Role role, std::vector<std::string> queues = {}) {
  return Identity{"caller", role, std::move(queues), false};
}

TEST(AuthorizeTest, EachRoleMayDoWhatItsNameSaysAndNoMore) {
  struct Case {
    Role role;
    Permission permission;
    bool allowed;
  } cases[] = {
      {Role::kReader, Permission::kRead, true},
      {Role::kReader, Permission::kSubmit, false},
      {Role::kReader, Permission::kExecute, false},
      {Role::kSubmitter, Permission::kRead, true},
      {Role::kSubmitter, Permission::kSubmit, true},
      {Role::kSubmitter, Permission::kExecute, false},
      {Role::kExecutor, Permission::kRead, false},
      {Role::kExecutor, Permission::kSubmit, false},
      {Role::kExecutor, Permission::kExecute, true},
      {Role::kAdmin, Permission::kRead, true},
      {Role::kAdmin, Permission::kSubmit, true},
      {Role::kAdmin, Permission::kExecute, true},
      {Role::kReader, Permission::kAny, true},
      {Role::kExecutor, Permission::kAny, true},
  };
  for (const Case& c : cases) {
    absl::Status s = Authorize(Who(c.role), c.permission, "Method", "default");
    EXPECT_EQ(s.ok(), c.allowed)
        << RoleName(c.role) << " " << static_cast<int>(c.permission);
    if (!c.allowed) {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
      EXPECT_NE(s.message().find("Method needs "), std::string::npos) << s.message();
      EXPECT_NE(
          s.message().find(std::string("has role ") + std::string(RoleName(c.role))),
          std::string::npos)
          << s.message();
    }
  }
}

TEST(AuthorizeTest, AQueueScopedSubmitterIsHeldToItsQueues) {
  const Identity a = Who(Role::kSubmitter, {"a"});
  EXPECT_THAT(Authorize(a, Permission::kSubmit, "SubmitJob", "a"), IsOk());
  absl::Status s = Authorize(a, Permission::kSubmit, "SubmitJob", "b");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(s.message(),
            "SubmitJob on queue \"b\" needs a submitter token for that queue; \"caller\" "
            "may use queues a");
  // Before the queue is known only the role is checked; reading is not scoped.
  EXPECT_THAT(Authorize(a, Permission::kSubmit, "CancelJob"), IsOk());
  EXPECT_THAT(Authorize(a, Permission::kRead, "GetJob", "b"), IsOk());
  EXPECT_THAT(Authorize(Who(Role::kSubmitter), Permission::kSubmit, "SubmitJob", "b"),
              IsOk());
}

TEST(LoopbackTest, TellsLoopbackFromEveryOtherListenAddress) {
  for (const char* a : {"127.0.0.1:50051", "127.1.2.3:0", "localhost:1", "[::1]:50051",
                        "unix:/tmp/x.sock"}) {
    EXPECT_TRUE(IsLoopbackListenAddress(a)) << a;
  }
  for (const char* a : {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.1:1",
                        "scheduler:50051", "[::1:1"}) {
    EXPECT_FALSE(IsLoopbackListenAddress(a)) << a;
  }
}

}  // namespace
}  // namespace tessera::scheduler
