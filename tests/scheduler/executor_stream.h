// Helpers for tests that play an executor on a real ExecutorService stream.
#ifndef TESSERA_TESTS_SCHEDULER_EXECUTOR_STREAM_H_
#define TESSERA_TESTS_SCHEDULER_EXECUTOR_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <vector>

#include "tessera/v1/executor.grpc.pb.h"

namespace tessera::scheduler {

using ExecutorStreamRW =
    grpc::ClientReaderWriter<v1::ExecutorMessage, v1::SchedulerMessage>;

// Reads until `n` assignments arrived (fewer if the stream ends).
inline std::vector<v1::Assignment> ReadAssignments(ExecutorStreamRW* s, size_t n) {
  std::vector<v1::Assignment> out;
  v1::SchedulerMessage m;
  while (out.size() < n && s->Read(&m)) {
    for (const auto& a : m.assign().assignments()) out.push_back(a);
  }
  return out;
}

}  // namespace tessera::scheduler

#endif  // TESSERA_TESTS_SCHEDULER_EXECUTOR_STREAM_H_
