#include "scheduler/service/stream_registry.h"

namespace tessera::scheduler {

void StreamRegistry::Replace(const ExecutorConn& conn, ExecutorStream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(conn.executor_id);
  if (it != streams_.end() && it->second.stream != stream) {
    it->second.stream->Close("replaced by a newer connection of the same executor");
  }
  streams_[conn.executor_id] = {conn.generation, stream};
}

bool StreamRegistry::Unregister(const ExecutorConn& conn) {
  absl::MutexLock lock(&mu_);
  if (FindLocked(conn) == nullptr) return false;
  streams_.erase(conn.executor_id);
  return true;
}

void StreamRegistry::Close(const ExecutorConn& conn, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  ExecutorStream* stream = FindLocked(conn);
  if (stream == nullptr) return;
  stream->Close(reason);
  streams_.erase(conn.executor_id);
}

bool StreamRegistry::Contains(const ExecutorConn& conn) {
  absl::MutexLock lock(&mu_);
  return FindLocked(conn) != nullptr;
}

ExecutorStream* StreamRegistry::FindLocked(const ExecutorConn& conn) {
  auto it = streams_.find(conn.executor_id);
  if (it == streams_.end() || it->second.generation != conn.generation) return nullptr;
  return it->second.stream;
}

}  // namespace tessera::scheduler
