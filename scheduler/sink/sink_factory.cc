#include "scheduler/sink/sink_factory.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/sink/file_sink.h"

namespace tessera::scheduler {

absl::Status ValidateResultSink(const std::string& result_sink, const S3SinkOptions& s3) {
  if (absl::StartsWith(result_sink, "s3://")) {
    if (absl::Status s = ParseS3Url(result_sink).status(); !s.ok()) return s;
    return s3.Validate();
  }
  if (absl::StartsWith(result_sink, "file://")) {
    if (!absl::StartsWith(result_sink, "file:///")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--result-sink file:// takes an absolute local path, file:///DIR (got \"",
          result_sink, "\")"));
    }
    return absl::OkStatus();
  }
  if (absl::StrContains(result_sink, "://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--result-sink must be s3://BUCKET[/PREFIX], file:///DIR or a directory (got \"",
        result_sink, "\")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ResultSink>> MakeResultSink(const std::string& result_sink,
                                                           const S3SinkOptions& s3,
                                                           const std::string& data_dir) {
  if (absl::Status s = ValidateResultSink(result_sink, s3); !s.ok()) return s;
  if (absl::StartsWith(result_sink, "s3://")) {
    absl::StatusOr<std::unique_ptr<S3Sink>> sink = S3Sink::Create(result_sink, s3);
    if (!sink.ok()) return sink.status();
    return std::unique_ptr<ResultSink>(*std::move(sink));
  }
  // file:///DIR is DIR (the form HA docs use for a shared volume).
  const std::string dir = absl::StartsWith(result_sink, "file://")
                              ? result_sink.substr(std::string("file://").size())
                              : result_sink;
  absl::StatusOr<std::unique_ptr<FileSink>> sink =
      FileSink::Create(dir.empty() ? data_dir + "/results" : dir);
  if (!sink.ok()) return sink.status();
  return std::unique_ptr<ResultSink>(*std::move(sink));
}

}  // namespace tessera::scheduler
