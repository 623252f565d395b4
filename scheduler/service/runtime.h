// The imperative shell around SchedulerCore: holds the lock, the clock, the
// executor streams and the result sink; carries out the core's actions after
// releasing the lock; runs the ticker and the persister threads.
// Thread-safe. Owns its threads; borrows the clock and the sink, which must
// outlive it.
#ifndef TESSERA_SCHEDULER_SERVICE_RUNTIME_H_
#define TESSERA_SCHEDULER_SERVICE_RUNTIME_H_

#include <deque>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/metric_family.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/sink/result_sink.h"
#include "shared/clock.h"
#include "tessera/v1/executor.pb.h"

namespace tessera::scheduler {

// One executor's stream, as the runtime sees it. Send and Close are called
// with the runtime's locks held: they only queue, never block, and never call
// back into the runtime.
class ExecutorStream {
 public:
  virtual ~ExecutorStream() = default;
  virtual void Send(v1::SchedulerMessage message) = 0;
  // Ends the stream with UNAVAILABLE and `reason`.
  virtual void Close(const std::string& reason) = 0;
};

// Something polled by the ticker (~10 times a second), e.g. a WatchJob stream.
class Poller {
 public:
  virtual ~Poller() = default;
  virtual void Poll() = 0;
};

struct ResultBytes {
  JobView job;
  std::string bytes;
};

class Runtime {
 public:
  Runtime(CoreConfig config, const Clock* clock, ResultSink* sink);
  ~Runtime();

  void Start();
  // Stops the threads; pending persists are finished first.
  void Stop();

  // Job operations (JobService).
  absl::StatusOr<JobView> Submit(const JobSpec& spec);
  absl::StatusOr<JobView> Cancel(const std::string& job_id);
  absl::StatusOr<JobView> GetJob(const std::string& job_id);
  std::vector<JobView> ListJobs(std::optional<JobState> state, int64_t before, int limit,
                                int64_t* next);
  absl::StatusOr<ResultBytes> GetResult(const std::string& job_id);
  std::vector<ExecutorView> ListExecutors();
  QueueStats Stats();

  // Executor streams (ExecutorService). `stream` stays registered until
  // Disconnect and must stay alive until then.
  ExecutorConn Connect(const ExecutorHello& hello, ExecutorStream* stream);
  void OnMessage(const ExecutorConn& conn, const v1::ExecutorMessage& message);
  void Disconnect(const ExecutorConn& conn);
  absl::Duration heartbeat_interval() const { return config_.heartbeat_interval; }

  void AddPoller(Poller* poller);
  // After this returns the poller is never called again.
  void RemovePoller(Poller* poller);

  std::vector<prometheus::MetricFamily> CollectMetrics();

 private:
  void Execute(Actions actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TickLoop();
  void PersistLoop();

  const CoreConfig config_;
  const Clock* clock_;
  ResultSink* sink_;

  absl::Mutex mu_;
  SchedulerCore core_ ABSL_GUARDED_BY(mu_);

  struct StreamEntry {
    uint64_t generation;
    ExecutorStream* stream;
  };
  absl::Mutex streams_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<std::string, StreamEntry> streams_ ABSL_GUARDED_BY(streams_mu_);

  absl::Mutex pollers_mu_;
  std::set<Poller*> pollers_ ABSL_GUARDED_BY(pollers_mu_);

  absl::Mutex persist_mu_;
  std::deque<PersistAction> persist_queue_ ABSL_GUARDED_BY(persist_mu_);
  bool stopping_ ABSL_GUARDED_BY(persist_mu_) = false;

  std::thread ticker_;
  std::thread persister_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_RUNTIME_H_
