// Human and JSON renderings of JobService responses. Pure: time zone and "now"
// are parameters so that tests get fixed output.
#ifndef TESSERA_CLI_FORMAT_H_
#define TESSERA_CLI_FORMAT_H_

#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::cli {

// Columns separated by two spaces, each as wide as its widest cell.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// "2024-05-01 12:34:56" in `tz`, or "-" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& ts, absl::TimeZone tz);

// "3s ago", "5m ago", "2h ago", "-" when unset.
std::string FormatAgo(const google::protobuf::Timestamp& ts, absl::Time now);

// ID STATE NAME TASK QUEUE SHARDS CREATED; SHARDS is "succeeded/total".
std::string FormatJobsTable(const tessera::v1::ListJobsResponse& response,
                            absl::TimeZone tz);

// ID NAME TASKS QUEUES SLOTS ASSIGNED DRAINING LAST SEEN.
std::string FormatExecutorsTable(const tessera::v1::ListExecutorsResponse& response,
                                 absl::Time now);

// A "key: value" description of a job: its input (range, or item count and
// batch size), queue, priority, limits, concurrency key and labels, shard
// errors, the result (with its version) and the failed shards included.
std::string FormatJobDetail(const tessera::v1::Job& job, absl::TimeZone tz);

// "job <id> SUCCEEDED  64/64 shards  1000000 items  in 3.2s" plus the job's
// message and shard errors, one per line, when it did not succeed. A PARTIAL
// job's errors are left out: FormatFailedShards says more about them.
std::string FormatJobSummary(const tessera::v1::Job& job);

// "failed shards:" and one "  shard 3 [30, 40) after 3 attempts: boom" line per
// failed shard, at most `max_shards` of them (0: all) and then how many more;
// "" when the job has none.
std::string FormatFailedShards(const tessera::v1::Job& job, int max_shards = 0);

// JobSpec.max_parallel: "8", or "no cap" for 0.
std::string FormatMaxParallel(int32_t max_parallel);

// JobSpec.rate_limit: "2.5 shards/s", or "no limit" for 0.
std::string FormatRateLimit(double rate_limit);

// Labels sorted by key: "env=prod, team=ml", or "-" when there are none.
std::string FormatLabels(const google::protobuf::Map<std::string, std::string>& labels);

std::string FormatQueueStats(const tessera::v1::GetQueueStatsResponse& stats);

// The result as indented JSON, keys in their persisted order. Uses the exact
// persisted bytes when present, else the Struct.
absl::StatusOr<std::string> PrettyResultJson(const tessera::v1::GetResultResponse& r);

// "result: <location> (sha256 <hex>)", with ", version N" inside the
// parentheses when `version` > 1 (RetryFailedShards persisted a new one).
std::string FormatResultLocation(absl::string_view location, absl::string_view sha256,
                                 int32_t version = 0);

// Proto3 JSON on one line, default-valued fields included.
std::string ToJsonLine(const google::protobuf::Message& message);

}  // namespace tessera::cli

#endif  // TESSERA_CLI_FORMAT_H_
