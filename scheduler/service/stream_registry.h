// The executor streams the runtime can reach: executor id + generation →
// stream. The runtime looks a stream up by the ExecutorConn the core names in
// an action, so a message meant for an executor's old stream never reaches
// its newer one.
//
// Thread-safe. Borrows the streams: a stream stays registered until it is
// replaced or unregistered and must stay alive until then.
#ifndef TESSERA_SCHEDULER_SERVICE_STREAM_REGISTRY_H_
#define TESSERA_SCHEDULER_SERVICE_STREAM_REGISTRY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

// One executor's stream in the core's terms; the gRPC adapter
// (executor_service.cc) builds the messages. Called with the registry's lock
// (and often the runtime's) held: they only queue, never block, and never call
// back into the runtime.
class ExecutorStream {
 public:
  virtual ~ExecutorStream() = default;
  virtual void SendAssignments(std::vector<Assignment> assignments) = 0;
  virtual void SendCancel(const std::string& lease_id) = 0;
  // Results of these leases are durable: the executor may forget them.
  virtual void SendAcks(std::vector<std::string> lease_ids) = 0;
  // Ends the stream with UNAVAILABLE and `reason`.
  virtual void Close(const std::string& reason) = 0;
};

class StreamRegistry {
 public:
  // Registers `stream` for `conn`. An older stream of the same executor id is
  // closed first: the core took its shards back, so it must run nothing more.
  void Replace(const ExecutorConn& conn, ExecutorStream* stream);
  // Unregisters `conn`'s stream; false (and nothing changed) when a newer
  // stream has replaced it or it is gone.
  bool Unregister(const ExecutorConn& conn);
  // Closes and unregisters `conn`'s stream, if it is still the registered one.
  void Close(const ExecutorConn& conn, const std::string& reason);
  // Calls `send` with `conn`'s stream, under the registry's lock; false when
  // the stream has closed or been replaced (its Disconnect requeues its shards).
  template <typename Fn>
  bool Send(const ExecutorConn& conn, Fn send) {
    absl::MutexLock lock(&mu_);
    ExecutorStream* stream = FindLocked(conn);
    if (stream == nullptr) return false;
    send(*stream);
    return true;
  }
  bool Contains(const ExecutorConn& conn);

 private:
  struct Entry {
    uint64_t generation;
    ExecutorStream* stream;
  };
  ExecutorStream* FindLocked(const ExecutorConn& conn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<std::string, Entry> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_STREAM_REGISTRY_H_
