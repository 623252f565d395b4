// Makes the result sink a scheduler is configured with (--result-sink):
//   ""                    the data dir: FileSink on <data-dir>/results
//   "s3://BUCKET[/PREFIX]" S3Sink (with the --s3-* options)
//   a directory path      FileSink on it (e.g. a shared volume)
#ifndef TESSERA_SCHEDULER_SINK_SINK_FACTORY_H_
#define TESSERA_SCHEDULER_SINK_SINK_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/sink/result_sink.h"
#include "scheduler/sink/s3_sink.h"

namespace tessera::scheduler {

// Checks the flags' values only (no file, network or credentials).
absl::Status ValidateResultSink(const std::string& result_sink, const S3SinkOptions& s3);

absl::StatusOr<std::unique_ptr<ResultSink>> MakeResultSink(const std::string& result_sink,
                                                           const S3SinkOptions& s3,
                                                           const std::string& data_dir);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SINK_SINK_FACTORY_H_
