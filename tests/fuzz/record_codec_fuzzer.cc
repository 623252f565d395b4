// Fuzz target: the store's job record codec (scheduler/store/record_codec.cc)
// on arbitrary bytes, as a damaged or foreign row would hand them to it, and
// a restart from what decodes.
//
// Input: the record (the first line), then optionally the stored results of
// shards 0, 1, 2, ... (one JSON text per line).
//
// Beyond "no crash": what decodes encodes to bytes that decode to the same
// record (the encoding is a fixed point after one round); a restarted core
// takes the record and its results back (Restore) and carries on with an
// executor connecting and time passing, without crashing or breaking its
// invariants (checked after each step: asserts are on in the fuzz build).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/store/store.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera::scheduler;  // NOLINT(build/namespaces): a fuzz entry point
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> lines = absl::StrSplit(input, '\n');
  absl::StatusOr<JobRecord> record = DecodeJobRecord(lines[0]);
  if (!record.ok()) return 0;

  const std::string text = EncodeJobRecord(*record);
  absl::StatusOr<JobRecord> again = DecodeJobRecord(text);
  TESSERA_FUZZ_CHECK(again.ok(), absl::StrCat(input, "\nencoded: ", text, "\n",
                                              again.status().ToString()));
  TESSERA_FUZZ_CHECK(SameSpec(record->spec, again->spec),
                     absl::StrCat(input, "\nencoded: ", text));
  TESSERA_FUZZ_CHECK(
      EncodeJobRecord(*again) == text,
      absl::StrCat(input, "\nencoded: ", text, "\nthen: ", EncodeJobRecord(*again)));

  std::map<std::string, std::vector<StoredResult>> results;
  for (size_t i = 1; i < lines.size(); ++i) {
    results[record->id].push_back({static_cast<int64_t>(i - 1), std::move(lines[i])});
  }
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000);
  CoreConfig config;
  SchedulerCore core(config);
  Actions out;
  core.Restore({*record}, results, t0, out);
  ExecutorHello hello;
  hello.executor_id = "e1";
  hello.name = "e1";
  hello.tasks = {record->spec.task};
  hello.slots = 2;
  hello.queues = {record->spec.queue};
  ExecutorConn conn = core.Connect(hello, t0, out);
  core.Tick(t0 + config.reattach_grace + absl::Seconds(1), out);
  (void)core.GetJob(record->id, t0);
  core.Disconnect(conn, t0 + config.reattach_grace + absl::Seconds(2), out);
  return 0;
}
