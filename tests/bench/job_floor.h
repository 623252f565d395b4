// The floor under one small job: what the scheduler cannot avoid spending on a
// single-shard job on this machine, measured with the same libraries on the
// same disk, without any of Tessera's own logic:
//   - gRPC: the calls and messages of one job (a SubmitJob call, a WatchJob
//     stream with its end event, and on an executor stream the assignment,
//     the result and its ack), answered by a server that does nothing else;
//   - the store: a durable SQLite commit (WAL, synchronous=FULL, as the
//     scheduler's store commits) of one small row, times the commits a job
//     takes;
//   - the sink: the file sink's durable write of a small result (measured by
//     perf_bench's floor).
// perf_bench subtracts these from the scheduler's CPU per job to show its
// own part, and bounds the latency and many-small-jobs targets with them.
#ifndef TESSERA_TESTS_BENCH_JOB_FLOOR_H_
#define TESSERA_TESTS_BENCH_JOB_FLOOR_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace tessera::bench {

// A JobService that answers SubmitJob with a queued job and WatchJob with one
// end event carrying a small result, at once: the server half of the gRPC
// floor. Register it beside the echo ExecutorService.
std::unique_ptr<grpc::Service> MakeFloorJobService();

struct GrpcJobFloor {
  double server_cpu_us = 0;  // the server process's CPU per job
  double p50_us = 0;         // one job's calls, back to back, as the client sees them
};

// Runs `jobs` job-shaped exchanges against the floor server at `address`
// (which serves MakeFloorJobService and the echo ExecutorService; its CPU
// seconds so far are `server_cpu()`): SubmitJob, an assignment and a result
// with its ack on one executor stream, WatchJob to its end event.
absl::StatusOr<GrpcJobFloor> MeasureGrpcJobFloor(
    const std::string& address, const std::function<double()>& server_cpu, int64_t jobs);

struct StoreCommitFloor {
  double cpu_us = 0;  // this thread's CPU per commit, kernel included
  double p50_ms = 0;
  // A commit and the `alongside` write started together, until both are
  // done (0 when not measured): a job's "finalizing" commit and its result's
  // write overlap so, on a disk that may take their flushes one at a time.
  double with_alongside_p50_ms = 0;
  // The same one after the other (0 when not measured).
  double then_alongside_p50_ms = 0;
};

// `commits` durable SQLite commits of one ~300-byte row each, in a new
// database under `dir`; then, when `alongside` is given, `commits` more, each
// started together with `alongside` on another thread (and `between` run
// there after it, untimed, e.g. a sink's Prepare).
absl::StatusOr<StoreCommitFloor> MeasureStoreCommitFloor(
    const std::string& dir, int64_t commits,
    const std::function<void()>& alongside = nullptr,
    const std::function<void()>& between = nullptr);

// CLOCK_THREAD_CPUTIME_ID in seconds.
double ThreadCpuSeconds();

}  // namespace tessera::bench

#endif  // TESSERA_TESTS_BENCH_JOB_FLOOR_H_
