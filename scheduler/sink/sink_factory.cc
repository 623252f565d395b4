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
  if (absl::StrContains(result_sink, "://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--result-sink must be s3://BUCKET[/PREFIX] or a directory (got \"",
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
  absl::StatusOr<std::unique_ptr<FileSink>> sink =
      FileSink::Create(result_sink.empty() ? data_dir + "/results" : result_sink);
  if (!sink.ok()) return sink.status();
  return std::unique_ptr<ResultSink>(*std::move(sink));
}

}  // namespace tessera::scheduler
