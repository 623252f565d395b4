// The S3 sink's answers to what S3 may say, against a scripted HTTP server on
// loopback (tests/util/fake_http_server.h): 412s, lost answers, 5xx, errors,
// multipart uploads that fail. What a real S3-compatible server does with
// the sink's signed requests is in s3_sink_s3rver_test.cc.
#include "scheduler/sink/s3_sink.h"

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "scheduler/sink/s3_credentials.h"
#include "scheduler/sink/sink_factory.h"
#include "shared/sha256.h"
#include "tests/util/fake_http_server.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::Not;

using ::tessera::testing::FakeHttpServer;
using ::tessera::testing::HttpRequest;
using ::tessera::testing::HttpResponse;

constexpr char kBytes[] = "{\"primes\": 25}\n";

HttpResponse Xml(int status, const std::string& code, const std::string& message) {
  return {status,
          {{"Content-Type", "application/xml"}},
          absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>", code,
                       "</Code><Message>", message, "</Message></Error>")};
}

HttpResponse Found(const std::string& sha256) {
  return {200, {{"x-amz-meta-sha256", sha256}, {"Content-Length", "16"}}, ""};
}

// A store without objects that takes every write.
HttpResponse EmptyStore(const HttpRequest& r) {
  return r.method == "HEAD" ? HttpResponse{404} : HttpResponse{200};
}

// Multipart above 1 KiB, in parts of 1 KiB.
S3SinkOptions InKiBParts() {
  S3SinkOptions options;
  options.multipart_threshold = 1024;
  options.part_size = 1024;
  return options;
}

std::unique_ptr<S3Sink> MakeSink(const FakeHttpServer& server,
                                 S3SinkOptions options = {}) {
  options.endpoint = server.url();
  options.timeout = absl::Seconds(2);
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(40);
  auto sink = S3Sink::Create(
      "s3://results/jobs", options,
      CredentialsSource::Fixed({"AKFAKE0000", "fake-secret-not-logged", ""}));
  EXPECT_THAT(sink, IsOk());
  return sink.ok() ? *std::move(sink) : nullptr;
}

std::vector<std::string> Methods(const std::vector<HttpRequest>& requests) {
  std::vector<std::string> out;
  for (const HttpRequest& r : requests) out.push_back(r.method);
  return out;
}

double Metric(S3Sink& sink, const std::string& family, const std::string& op) {
  for (const prometheus::MetricFamily& f : sink.CollectMetrics()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      for (const prometheus::ClientMetric::Label& l : m.label) {
        if (l.name == "operation" && l.value == op) return m.counter.value;
      }
    }
  }
  return -1;
}

TEST(S3SinkTest, PutsOnceWithTheConditionTheDigestAndTheJobIdAllSigned) {
  FakeHttpServer server(EmptyStore);
  auto sink = MakeSink(server);
  auto written = sink->Write("abc123", 1, kBytes);
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->location, "s3://results/jobs/abc123.json");
  EXPECT_EQ(written->sha256, Sha256Hex(kBytes));
  EXPECT_EQ(sink->writes(), 1);
  const std::vector<HttpRequest> got = server.requests();
  ASSERT_EQ(Methods(got), (std::vector<std::string>{"HEAD", "PUT"}));
  const HttpRequest& put = got[1];
  EXPECT_EQ(put.target, "/results/jobs/abc123.json");
  EXPECT_EQ(put.body, kBytes);
  EXPECT_EQ(put.Header("if-none-match"), "*");
  EXPECT_EQ(put.Header("x-amz-meta-sha256"), Sha256Hex(kBytes));
  EXPECT_EQ(put.Header("x-amz-meta-tessera-job-id"), "abc123");
  EXPECT_EQ(put.Header("x-amz-content-sha256"), Sha256Hex(kBytes));
  const std::string auth = put.Header("authorization");
  EXPECT_TRUE(absl::StartsWith(auth, "AWS4-HMAC-SHA256 Credential=AKFAKE0000/")) << auth;
  EXPECT_TRUE(absl::StrContains(auth, "/us-east-1/s3/aws4_request")) << auth;
  EXPECT_TRUE(absl::StrContains(
      auth,
      "SignedHeaders=content-type;host;if-none-match;x-amz-content-sha256;x-amz-date;"
      "x-amz-meta-sha256;x-amz-meta-tessera-job-id,"))
      << auth;
  EXPECT_FALSE(absl::StrContains(auth, "fake-secret")) << auth;
  // A HEAD has no payload: the digest of nothing.
  EXPECT_EQ(got[0].Header("x-amz-content-sha256"), Sha256Hex(""));
  // Versions after the first are objects of their own.
  auto v2 = sink->Write("abc123", 2, kBytes);
  ASSERT_THAT(v2, IsOk());
  EXPECT_EQ(v2->location, "s3://results/jobs/abc123.v2.json");
  EXPECT_EQ(server.requests().back().target, "/results/jobs/abc123.v2.json");
}

TEST(S3SinkTest, AConditionalPutThatFindsTheSameBytesSucceedsWithoutAWrite) {
  int heads = 0;
  FakeHttpServer server([&heads](const HttpRequest& r) {
    if (r.method == "HEAD")
      return ++heads == 1 ? HttpResponse{404} : Found(Sha256Hex(kBytes));
    return Xml(412, "PreconditionFailed", "At least one of the preconditions failed");
  });
  auto sink = MakeSink(server);
  auto written = sink->Write("abc123", 1, kBytes);
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->sha256, Sha256Hex(kBytes));
  EXPECT_EQ(sink->writes(), 0);  // someone else's write
  EXPECT_EQ(Methods(server.requests()),
            (std::vector<std::string>{"HEAD", "PUT", "HEAD"}));
}

TEST(S3SinkTest, AConditionalPutThatFindsOtherBytesFailsLoudlyAndWritesNothing) {
  int heads = 0;
  const std::string other = Sha256Hex("{\"primes\": 26}\n");
  FakeHttpServer server([&](const HttpRequest& r) {
    if (r.method == "HEAD") return ++heads == 1 ? HttpResponse{404} : Found(other);
    return Xml(412, "PreconditionFailed", "At least one of the preconditions failed");
  });
  auto sink = MakeSink(server);
  auto written = sink->Write("abc123", 1, kBytes);
  ASSERT_THAT(written, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(absl::StrContains(written.status().message(), other)) << written.status();
  EXPECT_TRUE(absl::StrContains(written.status().message(), Sha256Hex(kBytes)));
  EXPECT_TRUE(absl::StrContains(written.status().message(), "not overwritten"));
  EXPECT_EQ(Methods(server.requests()),
            (std::vector<std::string>{"HEAD", "PUT", "HEAD"}));
}

TEST(S3SinkTest, AnObjectWithOtherBytesFoundBeforeWritingFailsWithoutAPut) {
  const std::string other = Sha256Hex("other");
  FakeHttpServer server([&](const HttpRequest&) { return Found(other); });
  auto sink = MakeSink(server);
  auto staged = sink->Stage("abc123", 1, kBytes);
  ASSERT_THAT(staged, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Methods(server.requests()), (std::vector<std::string>{"HEAD"}));
}

TEST(S3SinkTest, TheSameBytesFoundBeforeWritingAreNotWrittenAgain) {
  FakeHttpServer server([](const HttpRequest&) { return Found(Sha256Hex(kBytes)); });
  auto sink = MakeSink(server);
  auto staged = sink->Stage("abc123", 1, kBytes);
  ASSERT_THAT(staged, IsOk());
  EXPECT_TRUE(staged->staged_at.empty());
  ASSERT_THAT(sink->Publish(*staged), IsOk());
  EXPECT_EQ(sink->writes(), 0);
  EXPECT_EQ(Methods(server.requests()), (std::vector<std::string>{"HEAD"}));
}

TEST(S3SinkTest, AnObjectWithoutADigestIsComparedByItsBytes) {
  FakeHttpServer server([](const HttpRequest& r) {
    return r.method == "HEAD" ? HttpResponse{200, {{"Content-Length", "16"}}, ""}
                              : HttpResponse{200, {}, kBytes};
  });
  auto sink = MakeSink(server);
  auto staged = sink->Stage("abc123", 1, kBytes);
  ASSERT_THAT(staged, IsOk());
  EXPECT_TRUE(staged->staged_at.empty());
  EXPECT_EQ(Methods(server.requests()), (std::vector<std::string>{"HEAD", "GET"}));
}

TEST(S3SinkTest, TransientFailuresAreRetriedAndTheObjectIsLookedAtBeforeWritingAgain) {
  int puts = 0;
  FakeHttpServer server([&puts](const HttpRequest& r) {
    if (r.method == "HEAD") return HttpResponse{404};
    switch (++puts) {
      case 1:
        return Xml(503, "SlowDown", "Please reduce your request rate.");
      case 2:
        return Xml(500, "InternalError", "We encountered an internal error.");
      default:
        return HttpResponse{200};
    }
  });
  auto sink = MakeSink(server);
  auto written = sink->Write("abc123", 1, kBytes);
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(sink->writes(), 1);
  EXPECT_EQ(Methods(server.requests()),
            (std::vector<std::string>{"HEAD", "PUT", "HEAD", "PUT", "HEAD", "PUT"}));
  EXPECT_EQ(Metric(*sink, "tessera_s3_retries_total", "put"), 2);
}

TEST(S3SinkTest, APutWhoseAnswerWasLostIsFoundInPlaceAndNotSentAgain) {
  std::atomic<bool> stored{false};
  FakeHttpServer server([&stored](const HttpRequest& r) {
    if (r.method == "HEAD") return stored ? Found(Sha256Hex(kBytes)) : HttpResponse{404};
    stored = true;  // stored, but the answer never comes
    HttpResponse lost;
    lost.drop = true;
    return lost;
  });
  auto sink = MakeSink(server);
  auto written = sink->Write("abc123", 1, kBytes);
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(sink->writes(), 1);  // it was this scheduler's write
  EXPECT_EQ(Methods(server.requests()),
            (std::vector<std::string>{"HEAD", "PUT", "HEAD"}));
}

TEST(S3SinkTest, PermanentErrorsFailWithS3sCodeAndMessage) {
  struct Case {
    int status;
    std::string code, message;
    absl::StatusCode want;
  };
  for (const Case& c :
       {Case{403, "AccessDenied", "Access Denied", absl::StatusCode::kPermissionDenied},
        Case{404, "NoSuchBucket", "The specified bucket does not exist",
             absl::StatusCode::kNotFound},
        Case{400, "InvalidBucketName", "The specified bucket is not valid.",
             absl::StatusCode::kFailedPrecondition}}) {
    FakeHttpServer server([&c](const HttpRequest& r) {
      if (r.method == "HEAD") return HttpResponse{404};
      return Xml(c.status, c.code, c.message);
    });
    auto sink = MakeSink(server);
    auto written = sink->Write("abc123", 1, kBytes);
    ASSERT_THAT(written, Not(IsOk())) << c.code;
    EXPECT_EQ(written.status().code(), c.want) << c.code;
    EXPECT_EQ(written.status().message(),
              absl::StrCat("S3 PUT s3://results/jobs/abc123.json: ", c.status, " ",
                           c.code, ": ", c.message));
    EXPECT_EQ(Methods(server.requests()), (std::vector<std::string>{"HEAD", "PUT"}));
  }
}

TEST(S3SinkTest, AForbiddenHeadIsAskedAgainWithGetToNameTheError) {
  FakeHttpServer server([](const HttpRequest& r) {
    if (r.method == "HEAD") return HttpResponse{403};
    return Xml(403, "SignatureDoesNotMatch",
               "The request signature we calculated does not match the signature you "
               "provided.");
  });
  auto sink = MakeSink(server);
  auto staged = sink->Stage("abc123", 1, kBytes);
  ASSERT_THAT(staged, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_TRUE(absl::StrContains(staged.status().message(), "403 SignatureDoesNotMatch"))
      << staged.status();
}

TEST(S3SinkTest, CancelEndsTheRetriesWithUnavailable) {
  FakeHttpServer server([](const HttpRequest&) {
    return Xml(503, "ServiceUnavailable", "Please try again.");
  });
  auto sink = MakeSink(server);
  absl::StatusOr<StagedResult> staged;
  std::thread stage([&] { staged = sink->Stage("abc123", 1, kBytes); });
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Time t0 = absl::Now();
  sink->Cancel();
  stage.join();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  ASSERT_THAT(staged, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_GT(server.requests().size(), 2u);  // it had been retrying
}

// A scripted multipart upload: CreateMultipartUpload, parts, complete; each
// step's answer can be changed.
struct MultipartScript {
  absl::Mutex mu;
  std::function<HttpResponse(const HttpRequest&)> on_part = [](const HttpRequest& r) {
    return HttpResponse{200, {{"ETag", "\"etag-" + r.body.substr(0, 1) + "\""}}, ""};
  };
  std::function<HttpResponse(const HttpRequest&)> on_complete = [](const HttpRequest&) {
    return HttpResponse{200, {}, "<CompleteMultipartUploadResult/>"};
  };
  HttpResponse Answer(const HttpRequest& r) {
    if (r.method == "HEAD") return HttpResponse{404};
    if (r.method == "POST" && absl::StrContains(r.target, "?uploads=")) {
      return {200,
              {},
              "<InitiateMultipartUploadResult><UploadId>up/1+x</UploadId>"
              "</InitiateMultipartUploadResult>"};
    }
    if (r.method == "PUT") return on_part(r);
    if (r.method == "POST") return on_complete(r);
    return HttpResponse{204};  // DELETE: aborted
  }
};

TEST(S3SinkTest, ALargeResultGoesUpInPartsWithCanonicalQueries) {
  MultipartScript script;
  FakeHttpServer server([&](const HttpRequest& r) { return script.Answer(r); });
  S3SinkOptions options;
  options.multipart_threshold = 2000;
  options.part_size = 1024;
  auto sink = MakeSink(server, options);
  const std::string bytes = std::string(1024, 'a') + std::string(1024, 'b') + "c\n";
  auto written = sink->Write("big1", 1, bytes);
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(sink->writes(), 1);
  const std::vector<HttpRequest> got = server.requests();
  ASSERT_EQ(Methods(got),
            (std::vector<std::string>{"HEAD", "POST", "PUT", "PUT", "PUT", "POST"}));
  EXPECT_EQ(got[1].target, "/results/jobs/big1.json?uploads=");
  EXPECT_EQ(got[1].Header("x-amz-meta-sha256"), Sha256Hex(bytes));
  EXPECT_EQ(got[1].Header("x-amz-meta-tessera-job-id"), "big1");
  // The upload id is percent-encoded; names sorted (as signed).
  EXPECT_EQ(got[2].target, "/results/jobs/big1.json?partNumber=1&uploadId=up%2F1%2Bx");
  EXPECT_EQ(got[4].target, "/results/jobs/big1.json?partNumber=3&uploadId=up%2F1%2Bx");
  EXPECT_EQ(got[2].body + got[3].body + got[4].body, bytes);
  EXPECT_EQ(got[3].Header("x-amz-content-sha256"), Sha256Hex(got[3].body));
  EXPECT_EQ(got[5].target, "/results/jobs/big1.json?uploadId=up%2F1%2Bx");
  EXPECT_EQ(got[5].Header("if-none-match"), "*");
  EXPECT_EQ(got[5].body,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"etag-a\""
            "</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"etag-b\"</ETag></Part>"
            "<Part><PartNumber>3</PartNumber><ETag>\"etag-c\"</ETag></Part>"
            "</CompleteMultipartUpload>");
}

TEST(S3SinkTest, AFailedPartAbortsTheUploadSoThatNoPartsAreLeft) {
  MultipartScript script;
  script.on_part = [](const HttpRequest& r) {
    if (absl::StrContains(r.target, "partNumber=2")) {
      return Xml(403, "AccessDenied", "Access Denied");
    }
    return HttpResponse{200, {{"ETag", "\"e\""}}, ""};
  };
  FakeHttpServer server([&](const HttpRequest& r) { return script.Answer(r); });
  auto sink = MakeSink(server, InKiBParts());
  auto written = sink->Write("big1", 1, std::string(3000, 'x'));
  ASSERT_THAT(written, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_TRUE(absl::StrContains(written.status().message(), "UploadPart 2"));
  const std::vector<HttpRequest> got = server.requests();
  ASSERT_EQ(Methods(got),
            (std::vector<std::string>{"HEAD", "POST", "PUT", "PUT", "DELETE"}));
  EXPECT_EQ(got.back().target, "/results/jobs/big1.json?uploadId=up%2F1%2Bx");
  EXPECT_EQ(sink->writes(), 0);
}

TEST(S3SinkTest, ACompleteAnsweredWithAnErrorBodyIsRetried) {
  MultipartScript script;
  int completes = 0;
  script.on_complete = [&completes](const HttpRequest&) {
    // S3 may say 200 and then fail in the body.
    return ++completes == 1
               ? Xml(200, "InternalError", "We encountered an internal error.")
               : HttpResponse{200, {}, "<CompleteMultipartUploadResult/>"};
  };
  FakeHttpServer server([&](const HttpRequest& r) { return script.Answer(r); });
  auto sink = MakeSink(server, InKiBParts());
  ASSERT_THAT(sink->Write("big1", 1, std::string(1500, 'x')), IsOk());
  EXPECT_EQ(completes, 2);
  EXPECT_EQ(sink->writes(), 1);
}

TEST(S3SinkTest, AMultipartUploadMeetingAnObjectWithOtherBytesIsAbortedAndFails) {
  MultipartScript script;
  script.on_complete = [](const HttpRequest&) {
    return Xml(412, "PreconditionFailed", "At least one of the preconditions failed");
  };
  int heads = 0;
  FakeHttpServer server([&](const HttpRequest& r) {
    if (r.method == "HEAD" && ++heads > 1) return Found(Sha256Hex("other"));
    return script.Answer(r);
  });
  auto sink = MakeSink(server, InKiBParts());
  auto written = sink->Write("big1", 1, std::string(1500, 'x'));
  ASSERT_THAT(written, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(
      Methods(server.requests()),
      (std::vector<std::string>{"HEAD", "POST", "PUT", "PUT", "POST", "DELETE", "HEAD"}));
}

TEST(S3SinkTest, ReadChecksTheLocationAndSaysWhenTheObjectIsMissing) {
  FakeHttpServer server([](const HttpRequest& r) {
    if (r.target == "/results/jobs/abc123.json") return HttpResponse{200, {}, kBytes};
    return Xml(404, "NoSuchKey", "The specified key does not exist.");
  });
  auto sink = MakeSink(server);
  auto read = sink->Read("s3://results/jobs/abc123.json");
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(*read, kBytes);
  EXPECT_EQ(*sink->Size("s3://results/jobs/abc123.json"), sizeof(kBytes) - 1);
  EXPECT_THAT(sink->Read("s3://results/jobs/gone.json"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(sink->Read("s3://other/jobs/abc123.json"),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(sink->Read("s3://results/elsewhere/abc123.json"),
              StatusIs(absl::StatusCode::kInternal));
}

TEST(S3SinkTest, ASessionTokenIsSentAndSigned) {
  FakeHttpServer server(EmptyStore);
  S3SinkOptions options;
  options.endpoint = server.url();
  auto sink = S3Sink::Create("s3://results", options,
                             CredentialsSource::Fixed({"ASIAFAKE", "s", "token-123"}));
  ASSERT_THAT(sink, IsOk());
  ASSERT_THAT((*sink)->Write("abc123", 1, kBytes), IsOk());
  const HttpRequest put = server.requests().back();
  EXPECT_EQ(put.target, "/results/abc123.json");  // no prefix
  EXPECT_EQ(put.Header("x-amz-security-token"), "token-123");
  EXPECT_TRUE(absl::StrContains(put.Header("authorization"), ";x-amz-security-token"));
}

TEST(S3SinkTest, RefusesBadUrlsAndOptions) {
  S3SinkOptions options;
  auto creds = [] { return CredentialsSource::Fixed({"AK", "s", ""}); };
  EXPECT_THAT(S3Sink::Create("s3:/x", options, creds()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(S3Sink::Create("s3://B_ad", options, creds()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(S3Sink::Create("s3://bucket/a/../b", options, creds()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options.endpoint = "ftp://x";
  EXPECT_THAT(S3Sink::Create("s3://bucket", options, creds()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options.endpoint = "";
  options.part_size = 10;
  EXPECT_THAT(S3Sink::Create("s3://bucket", options, creds()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto parsed = ParseS3Url("s3://bucket/a/b/");
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->first, "bucket");
  EXPECT_EQ(parsed->second, "a/b/");
}

TEST(S3CredentialsTest, ReadsAProfileOfACredentialsFile) {
  const std::string text =
      "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = d\n\n"
      "# the one in use\n[profile tessera]\naws_access_key_id=AKTESSERA\n"
      "aws_secret_access_key=t-secret\naws_session_token = tok\n";
  auto c = ParseCredentialsFile(text, "tessera", "/creds");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->access_key_id, "AKTESSERA");
  EXPECT_EQ(c->secret_access_key, "t-secret");
  EXPECT_EQ(c->session_token, "tok");
  EXPECT_EQ(ParseCredentialsFile(text, "default", "/creds")->access_key_id, "AKDEFAULT");
  auto missing = ParseCredentialsFile(text, "prod", "/creds");
  EXPECT_EQ(missing.status().message(), "credentials file /creds has no [prod] section");
}

TEST(S3CredentialsTest, AnIncompleteFileNamesTheMissingKeyAndNoValue) {
  auto c = ParseCredentialsFile("[default]\naws_access_key_id=AKONLY\n", "default", "/c");
  ASSERT_THAT(c, Not(IsOk()));
  EXPECT_EQ(c.status().message(),
            "credentials file /c: [default] has no aws_secret_access_key");
  EXPECT_FALSE(absl::StrContains(c.status().message(), "AKONLY"));
}

TEST(S3CredentialsTest, DescribeNamesTheKeyByItsFirstCharactersOnly) {
  auto source = CredentialsSource::Fixed({"AKIAEXAMPLE123", "very-secret", "tok"});
  const std::string d = source->Describe();
  EXPECT_TRUE(absl::StrContains(d, "AKIA…")) << d;
  EXPECT_FALSE(absl::StrContains(d, "EXAMPLE")) << d;
  EXPECT_FALSE(absl::StrContains(d, "very-secret")) << d;
}

}  // namespace
}  // namespace tessera::scheduler

namespace tessera::scheduler {
namespace {

TEST(SinkFactoryTest, MakesTheSinkTheFlagNames) {
  const ::tessera::testing::TempDir tmp("tessera-factory");
  const std::string dir = tmp.path();
  auto file = MakeResultSink("", S3SinkOptions{}, dir);
  ASSERT_THAT(file, IsOk());
  auto written = (*file)->Write("j1", 1, "{}\n");
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->location, dir + "/results/j1.json");
  auto shared = MakeResultSink(dir + "/shared", S3SinkOptions{}, dir);
  ASSERT_THAT(shared, IsOk());
  EXPECT_EQ((*shared)->Write("j1", 1, "{}\n")->location, dir + "/shared/j1.json");
  auto url = MakeResultSink("file://" + dir + "/url", S3SinkOptions{}, dir);
  ASSERT_THAT(url, IsOk());
  EXPECT_EQ((*url)->Write("j2", 1, "{}\n")->location, dir + "/url/j2.json");
  EXPECT_THAT(MakeResultSink("file://host/results", S3SinkOptions{}, dir),
              StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_THAT(MakeResultSink("gs://bucket", S3SinkOptions{}, dir),
              StatusIs(absl::StatusCode::kInvalidArgument));
  S3SinkOptions bad;
  bad.timeout = absl::Milliseconds(10);
  EXPECT_THAT(ValidateResultSink("s3://bucket", bad),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateResultSink("s3://bucket/p", S3SinkOptions{}), IsOk());
}

TEST(SinkFactoryTest, AnS3SinkWithoutCredentialsIsRefusedNamingTheVariables) {
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  auto sink = MakeResultSink("s3://bucket/p", S3SinkOptions{}, "/nonexistent");
  ASSERT_THAT(sink, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(absl::StrContains(sink.status().message(), "AWS_SECRET_ACCESS_KEY"));
  S3SinkOptions from_file;
  from_file.credentials_file = "/nonexistent/credentials";
  auto missing = MakeResultSink("s3://bucket/p", from_file, "/nonexistent");
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "/nonexistent/credentials"))
      << missing.status();
}

}  // namespace
}  // namespace tessera::scheduler
