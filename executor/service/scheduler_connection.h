// How the executor reaches the scheduler: one ExecutorService.Connect session
// at a time, behind an interface so that the stream client is tested against
// a fake (tests/executor/fake_scheduler_connection.h) and runs over gRPC
// (grpc_scheduler_connection.h).
#ifndef TESSERA_EXECUTOR_SERVICE_SCHEDULER_CONNECTION_H_
#define TESSERA_EXECUTOR_SERVICE_SCHEDULER_CONNECTION_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tessera/v1/executor.pb.h"

namespace tessera::executor {

// One open session stream. At most one thread writes (or closes writes) at a
// time and one thread reads; Cancel may be called from any thread.
class SchedulerSession {
 public:
  virtual ~SchedulerSession() = default;
  // False when the stream is broken or its writes are closed.
  virtual bool Write(const v1::ExecutorMessage& msg) = 0;
  // Blocks for the scheduler's next message; false once the stream has ended.
  virtual bool Read(v1::SchedulerMessage* msg) = 0;
  // No more writes (half-close): the scheduler then ends the stream.
  virtual void CloseWrites() = 0;
  // Ends the stream now; a blocked Read returns false.
  virtual void Cancel() = 0;
  // After Read returned false: how the stream ended. Call once.
  virtual absl::Status Finish() = 0;
};

// Opens sessions. Thread-compatible: the stream client opens one at a time.
class SchedulerConnection {
 public:
  virtual ~SchedulerConnection() = default;
  // Connects to one scheduler `address` (host:port) and opens a session;
  // UNAVAILABLE when nothing answers there.
  virtual absl::StatusOr<std::unique_ptr<SchedulerSession>> Open(
      const std::string& address) = 0;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_SCHEDULER_CONNECTION_H_
