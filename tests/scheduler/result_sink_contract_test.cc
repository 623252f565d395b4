// The ResultSink contract: one behaviour suite run against every sink (the
// file sink on a temp dir, the S3 sink against a real S3-compatible server
// on loopback). A new sink (or a store shared by HA schedulers) adds itself
// to SinkTypes and must pass all of it.
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "scheduler/sink/file_sink.h"
#include "scheduler/sink/s3_credentials.h"
#include "scheduler/sink/s3_sink.h"
#include "shared/sha256.h"
#include "tests/util/process.h"
#include "tests/util/s3rver.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::Not;

using ::tessera::testing::S3rver;
using ::tessera::testing::TempDir;

// Each kind makes a fresh, empty sink per test, and can write "someone
// else's" bytes where a result would go.
struct FileSinkKind {
  static constexpr char kName[] = "file";
  TempDir tmp{"tessera-contract"};  // kind_ outlives the fixture's sink_
  std::string dir = tmp.path() + "/results";
  std::unique_ptr<ResultSink> Make() {
    auto sink = FileSink::Create(dir);
    EXPECT_THAT(sink, IsOk());
    return sink.ok() ? *std::move(sink) : nullptr;
  }
  std::string Foreign() { return dir + "-elsewhere/x.json"; }
  void PlaceOther(const std::string& location, const std::string& bytes) {
    std::ofstream(location, std::ios::binary) << bytes;
  }
};

struct S3SinkKind {
  static constexpr char kName[] = "s3";
  // One server for the whole suite; each test gets its own prefix.
  static S3rver* server;
  std::string prefix = "t" + ::tessera::testing::RandomHex(8);
  std::unique_ptr<S3Sink> Connect() {
    S3SinkOptions options;
    options.endpoint = server->endpoint();
    options.timeout = absl::Seconds(5);
    auto sink =
        S3Sink::Create("s3://results/" + prefix, options,
                       CredentialsSource::Fixed(
                           {server->access_key_id(), server->secret_access_key(), ""}));
    EXPECT_THAT(sink, IsOk());
    return sink.ok() ? *std::move(sink) : nullptr;
  }
  std::unique_ptr<ResultSink> Make() { return Connect(); }
  std::string Foreign() { return "s3://results/" + prefix + "-other/x.json"; }
  void PlaceOther(const std::string& location, const std::string& bytes) {
    // Through S3 (not the server's files), as another writer would.
    std::unique_ptr<S3Sink> other = Connect();
    S3Request put{"PUT", location.substr(std::string("s3://results/").size())};
    put.body = bytes;
    auto r = other->client().Send(put);
    ASSERT_TRUE(r.ok() && r->ok()) << (r.ok() ? r->Describe() : r.status().ToString());
  }
};
S3rver* S3SinkKind::server = nullptr;

template <typename Kind>
class ResultSinkContract : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if constexpr (std::is_same_v<Kind, S3SinkKind>) {
      // In a temp dir of its own, removed with it (TearDownTestSuite).
      S3SinkKind::server = new S3rver(std::vector<std::string>{"results"});
      absl::Status s = S3SinkKind::server->Start();
      ASSERT_THAT(s, IsOk());
    }
  }
  static void TearDownTestSuite() {
    if constexpr (std::is_same_v<Kind, S3SinkKind>) {
      delete S3SinkKind::server;
      S3SinkKind::server = nullptr;
    }
  }
  void SetUp() override {
    sink_ = kind_.Make();
    ASSERT_NE(sink_, nullptr);
  }

  Kind kind_;
  std::unique_ptr<ResultSink> sink_;
};

using SinkKinds = ::testing::Types<FileSinkKind, S3SinkKind>;
class KindNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};
TYPED_TEST_SUITE(ResultSinkContract, SinkKinds, KindNames);

constexpr char kBytes[] = "{\n  \"primes\": 25\n}\n";

TYPED_TEST(ResultSinkContract, WritesTheExactBytesAndReportsTheirSha256) {
  auto r = this->sink_->Write("job-1", 1, kBytes);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(absl::EndsWith(r->location, "/job-1.json")) << r->location;
  EXPECT_EQ(r->sha256, Sha256Hex(kBytes));
  EXPECT_EQ(*this->sink_->Read(r->location), kBytes);
  EXPECT_EQ(*this->sink_->Size(r->location), static_cast<int64_t>(sizeof(kBytes) - 1));
  EXPECT_EQ(this->sink_->writes(), 1);
}

TYPED_TEST(ResultSinkContract, EachVersionIsAnObjectOfItsOwn) {
  auto v1 = this->sink_->Write("job-1", 1, "{\"v\": 1}\n");
  auto v2 = this->sink_->Write("job-1", 2, "{\"v\": 2}\n");
  ASSERT_THAT(v1, IsOk());
  ASSERT_THAT(v2, IsOk());
  EXPECT_TRUE(absl::EndsWith(v2->location, "/job-1.v2.json")) << v2->location;
  EXPECT_EQ(*this->sink_->Read(v1->location), "{\"v\": 1}\n");
  EXPECT_EQ(*this->sink_->Read(v2->location), "{\"v\": 2}\n");
}

TYPED_TEST(ResultSinkContract, AStagedResultIsOutOfSightUntilPublished) {
  auto staged = this->sink_->Stage("job-1", 1, kBytes);
  ASSERT_THAT(staged, IsOk());
  EXPECT_FALSE(staged->staged_at.empty());
  EXPECT_THAT(this->sink_->Read(staged->result.location),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(this->sink_->writes(), 0);
  auto published = this->sink_->Publish(*staged);
  ASSERT_THAT(published, IsOk());
  EXPECT_EQ(published->location, staged->result.location);
  EXPECT_EQ(*this->sink_->Read(published->location), kBytes);
  EXPECT_EQ(this->sink_->writes(), 1);
}

TYPED_TEST(ResultSinkContract, TheSameBytesAgainAfterARestartAreNotWrittenAgain) {
  ASSERT_THAT(this->sink_->Write("job-1", 1, kBytes), IsOk());
  std::unique_ptr<ResultSink> restarted = this->kind_.Make();
  auto staged = restarted->Stage("job-1", 1, kBytes);
  ASSERT_THAT(staged, IsOk());
  EXPECT_TRUE(staged->staged_at.empty());  // found in place
  auto again = restarted->Publish(*staged);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->sha256, Sha256Hex(kBytes));
  EXPECT_EQ(restarted->writes(), 0);
}

TYPED_TEST(ResultSinkContract, OtherBytesAlreadyThereFailTheWriteAndStayAsTheyAre) {
  auto first = this->sink_->Write("job-1", 1, kBytes);
  ASSERT_THAT(first, IsOk());
  this->kind_.PlaceOther(first->location, "{\"someone\": \"else\"}\n");
  std::unique_ptr<ResultSink> restarted = this->kind_.Make();
  auto written = restarted->Write("job-1", 1, kBytes);
  ASSERT_THAT(written, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(absl::StrContains(written.status().message(), "not overwritten"))
      << written.status();
  EXPECT_EQ(*restarted->Read(first->location), "{\"someone\": \"else\"}\n");
  EXPECT_EQ(restarted->writes(), 0);
}

TYPED_TEST(ResultSinkContract, AMissingResultIsDataLossAndAForeignLocationInternal) {
  auto r = this->sink_->Write("job-1", 1, kBytes);
  ASSERT_THAT(r, IsOk());
  const std::string missing =
      r->location.substr(0, r->location.rfind('/')) + "/nope.json";
  EXPECT_THAT(this->sink_->Read(missing), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(this->sink_->Size(missing), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(this->sink_->Read(this->kind_.Foreign()),
              StatusIs(absl::StatusCode::kInternal));
}

TYPED_TEST(ResultSinkContract, DeletesAResultAndADeletedOneAgainIsFine) {
  auto r = this->sink_->Write("job-1", 1, kBytes);
  ASSERT_THAT(r, IsOk());
  ASSERT_THAT(this->sink_->Delete(r->location), IsOk());
  EXPECT_THAT(this->sink_->Read(r->location), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(this->sink_->Delete(r->location), IsOk());
  EXPECT_THAT(this->sink_->Delete(this->kind_.Foreign()),
              StatusIs(absl::StatusCode::kInternal));
}

TYPED_TEST(ResultSinkContract, RefusesJobIdsThatCouldLeaveTheSink) {
  for (const char* id : {"../x", "a/b", "", "a.b"}) {
    EXPECT_THAT(this->sink_->Write(id, 1, kBytes),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << id;
  }
  EXPECT_EQ(this->sink_->writes(), 0);
}

TYPED_TEST(ResultSinkContract, ManyWritesAtOnceEachLandOnce) {
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([this, i] {
      const std::string bytes = "{\"n\": " + std::to_string(i) + "}\n";
      auto r = this->sink_->Write("job-" + std::to_string(i), 1, bytes);
      ASSERT_THAT(r, IsOk());
      EXPECT_EQ(*this->sink_->Read(r->location), bytes);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(this->sink_->writes(), 8);
}

}  // namespace
}  // namespace tessera::scheduler
