// Fuzz target: a SubmitJobRequest as it comes off the wire (protobuf bytes),
// through SpecFromProto and the core's Submit, as JobService::SubmitJob does.
//
// Beyond "no crash, no sanitizer report", an accepted spec must read back
// unchanged from GetJob's proto (JobToProto) and from its store record
// (EncodeJobRecord / DecodeJobRecord); a restarted core must take the record
// back; the first assignments of the job lie inside its input; and the same
// submission under an idempotency key returns the same job.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/service/convert.h"
#include "scheduler/store/store.h"
#include "tessera/v1/jobs.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

void CheckAssignments(const JobSpec& spec, const Actions& out, const std::string& req) {
  for (const AssignAction& a : out.assigns) {
    const ShardBounds& b = a.assignment.bounds;
    TESSERA_FUZZ_CHECK(b.start < b.end, req);
    if (spec.has_items) {
      TESSERA_FUZZ_CHECK(b.start >= 0 && b.end <= static_cast<int64_t>(spec.items.size()),
                         req);
      const json batch = json::parse(a.assignment.items_json, nullptr, false);
      TESSERA_FUZZ_CHECK(
          batch.is_array() && static_cast<int64_t>(batch.size()) == b.end - b.start,
          absl::StrCat(req, "\nitems_json: ", a.assignment.items_json));
    } else {
      TESSERA_FUZZ_CHECK(b.start >= spec.range.start && b.end <= spec.range.end, req);
    }
    TESSERA_FUZZ_CHECK(
        json::parse(a.assignment.params_json, nullptr, false) == spec.params,
        absl::StrCat(req, "\nparams_json: ", a.assignment.params_json));
  }
}

}  // namespace
}  // namespace tessera::scheduler

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Protobuf logs every string field with invalid UTF-8 it refuses to parse.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera::scheduler;  // NOLINT(build/namespaces): a fuzz entry point
  tessera::v1::SubmitJobRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<JobSpec> spec = SpecFromProto(request.spec());
  if (!spec.ok()) return 0;
  const std::string req = request.ShortDebugString();

  CoreConfig config;
  SchedulerCore core(config);
  Actions out;
  absl::StatusOr<JobView> job = core.Submit(*spec, "job1", kT0, out);
  if (!job.ok()) return 0;

  // GetJob shows the spec that was submitted (items are counted, not echoed).
  tessera::v1::Job proto;
  JobToProto(*job, &proto);
  absl::StatusOr<JobSpec> echoed = SpecFromProto(proto.spec());
  TESSERA_FUZZ_CHECK(echoed.ok(), absl::StrCat(req, "\n", echoed.status().ToString()));
  if (spec->has_items) echoed->items = spec->items;
  TESSERA_FUZZ_CHECK(SameSpec(*spec, *echoed),
                     absl::StrCat(req, "\nechoed: ", proto.spec().ShortDebugString()));

  // The store keeps the same spec, and a restarted core takes it back.
  const JobRecord* saved = nullptr;
  for (const DurableOp& op : out.durable) {
    if (const auto* s = std::get_if<SaveJobOp>(&op)) saved = &s->record();
  }
  TESSERA_FUZZ_CHECK(saved != nullptr, req);
  const std::string text = EncodeJobRecord(*saved);
  absl::StatusOr<JobRecord> decoded = DecodeJobRecord(text);
  TESSERA_FUZZ_CHECK(decoded.ok(), absl::StrCat(req, "\n", decoded.status().ToString(),
                                                "\nrecord: ", text));
  TESSERA_FUZZ_CHECK(SameSpec(saved->spec, decoded->spec),
                     absl::StrCat(req, "\nrecord: ", text));
  TESSERA_FUZZ_CHECK(EncodeJobRecord(*decoded) == text,
                     absl::StrCat(req, "\nrecord: ", text));
  SchedulerCore restarted(config);
  Actions restored;
  restarted.Restore({*decoded}, {}, kT0, restored);
  TESSERA_FUZZ_CHECK(restarted.GetJob("job1", kT0).ok(),
                     absl::StrCat(req, "\nrecord: ", text));

  if (!spec->idempotency_key.empty()) {
    Actions again;
    absl::StatusOr<JobView> same = core.Submit(*spec, "job2", kT0, again);
    TESSERA_FUZZ_CHECK(same.ok() && same->id == "job1", req);
  }

  // An executor serving the job's queue and task takes its first shards.
  ExecutorHello hello;
  hello.executor_id = "e1";
  hello.name = "e1";
  hello.tasks = {spec->task};
  hello.slots = 3;
  hello.queues = {spec->queue};
  Actions connected;
  core.Connect(hello, kT0, connected);
  CheckAssignments(*spec, connected, req);
  return 0;
}
