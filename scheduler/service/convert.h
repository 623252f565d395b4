// The one place where the API's protobuf types and the core's plain types meet.
#ifndef TESSERA_SCHEDULER_SERVICE_CONVERT_H_
#define TESSERA_SCHEDULER_SERVICE_CONVERT_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"
#include "nlohmann/json.hpp"
#include "scheduler/core/types.h"
#include "scheduler/service/executor_result.h"
#include "tessera/v1/executor.pb.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::scheduler {

// INVALID_ARGUMENT naming the field for anything the core could not express.
absl::StatusOr<JobSpec> SpecFromProto(const v1::JobSpec& proto);
void SpecToProto(const JobSpec& spec, v1::JobSpec* proto);
void JobToProto(const JobView& view, v1::Job* proto);
v1::JobState StateToProto(JobState state);
// JOB_STATE_UNSPECIFIED maps to no filter.
absl::StatusOr<std::optional<JobState>> StateFromProto(v1::JobState state);
void ExecutorToProto(const ExecutorView& view, v1::Executor* proto);
void QueueStatsToProto(const QueueStats& stats, v1::GetQueueStatsResponse* proto);
ExecutorHello HelloFromProto(const v1::Hello& proto);
void AssignmentToProto(const Assignment& a, v1::Assignment* proto);
// Moves the result's JSON out of `proto`.
ExecutorResult ResultFromProto(v1::ShardResult& proto);

// JSON to a protobuf Value, directly: several times faster than printing it
// and parsing it again with protobuf's JSON parser, and on the path of every
// job's end event (its result). Numbers become doubles, as in that parser.
// Recursive: `json` must be bounded in depth (shared/json_limits.h).
void JsonToValue(const nlohmann::json& json, google::protobuf::Value* value);
// A JSON object to a Struct (anything else leaves `out` empty).
void JsonToStruct(const nlohmann::json& object, google::protobuf::Struct* out);

// Assign messages are cut (and merged on a busy stream) at about this many
// bytes, far below what an executor accepts (64 MiB).
constexpr size_t kMaxAssignMessageBytes = 1 << 20;
// About how many bytes `a` adds to an Assign message.
size_t ApproxBytes(const v1::Assignment& a);

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_CONVERT_H_
