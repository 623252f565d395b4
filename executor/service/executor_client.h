// The executor's side of ExecutorService.Connect: one bidirectional stream to
// the scheduler, reconnected with backoff, and the drain on shutdown.
#ifndef TESSERA_EXECUTOR_SERVICE_EXECUTOR_CLIENT_H_
#define TESSERA_EXECUTOR_SERVICE_EXECUTOR_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "executor/core/result_buffer.h"
#include "executor/handlers/handler.h"
#include "executor/service/executor_metrics.h"
#include "executor/service/shard_runner.h"
#include "shared/clock.h"
#include "shared/steady_wait.h"
#include "shared/tls.h"
#include "tessera/v1/executor.grpc.pb.h"

namespace tessera::executor {

struct ExecutorClientOptions {
  std::string scheduler_address;  // host:port
  std::string executor_id;        // stable for the life of the process
  std::string name;
  int slots = 1;
  std::vector<std::string> queues;  // empty: "default"
  absl::Duration drain_timeout = absl::Seconds(30);
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Until Welcome says otherwise.
  absl::Duration default_heartbeat = absl::Seconds(5);
  // After WritesDone, how long the scheduler gets to end the call.
  absl::Duration close_grace = absl::Seconds(5);
  size_t max_unsent_results = 1000;
  // Backpressure: with this many results awaiting the scheduler's ack the
  // executor starts no new shard (assignments wait) until acks bring them
  // down to half of it. Every result is kept until acked, whatever the count
  // (shards running when it starts still add theirs).
  size_t max_unacked_results = 1000;
  // HTTP/2 keepalive ping interval and answer timeout (ExecutorConfig::keepalive).
  absl::Duration keepalive = absl::Seconds(5);
  // TLS to the scheduler (empty ca_file: plaintext) and an optional client
  // certificate (mTLS); the files are read again for every connection.
  ClientTlsOptions tls;
  // File holding the bearer token sent on the stream (role executor); read
  // again for every connection, so a rotated Secret takes effect on reconnect.
  std::string auth_token_file;
};

// Threads: Run() is the stream reader (the caller's thread); per connection it
// owns a control thread (heartbeats, drain steps), joined before the next
// connection; it owns the sender thread, which writes results in batches
// while work is on hand, so that no slot waits on the stream (the last result
// of a busy spell is written by its worker); the ShardRunner owns the slot workers.
// Writes to the stream are serialised by write_mu_. Drain() may be called from any
// thread. Lock order: write_mu_, then mu_, then the runner's lock.
//
// Results are kept until the scheduler acks them (it does once they are
// durable) and re-sent right after Hello on every new connection, also to a
// restarted scheduler; failures that could not be written are kept in a
// bounded buffer the same way. Hello lists the shards still running, so a
// restarted scheduler adopts them instead of running them again. With
// max_unacked_results awaiting an ack the executor starts no new shard until
// acks arrive (backpressure), rather than let go of any result.
class ExecutorClient : private ShardRunner::Listener {
 public:
  // `registry` must outlive the client; `metrics` may be null.
  ExecutorClient(ExecutorClientOptions options, const HandlerRegistry* registry,
                 ExecutorMetrics* metrics);
  ~ExecutorClient() override;

  // Connects, reconnects and serves until a drain has finished. Call once.
  void Run();

  // Starts the drain: send Draining, release queued work, let running shards
  // finish within drain_timeout (then cancel and release them), close the stream
  // and make Run() return. A second call cuts the grace period short.
  void Drain();

  int slots() const { return runner_.slots(); }

 private:
  // Which of the --scheduler addresses the next session tries (Run's thread).
  size_t next_address_ = 0;
  // One connection: Hello, read until the stream ends. Returns its status.
  absl::Status Session(bool* welcomed);
  void ControlLoop(grpc::ClientContext* ctx);
  void HandleMessage(const v1::SchedulerMessage& msg);
  // Drain steps on a live stream; true when the executor has nothing left to do.
  bool DrainStepDone();
  void CloseStream(grpc::ClientContext* ctx);
  void SignalIfWrittenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // While disconnected and draining: is there still a reason to reconnect?
  bool DrainOverWhileDisconnected();
  void FlushUnsent();
  // The sender thread: writes what the outbox holds as ResultBatch messages.
  void SenderLoop();
  bool Send(const v1::ExecutorMessage& msg);
  bool SendLocked(const v1::ExecutorMessage& msg)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void SetConnected(bool connected);
  // After unacked_ changed: starts or ends backpressure, updates the gauge.
  void UpdateBackpressureLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ShardRunner::Listener
  void OnProgress(const Assignment& a, int64_t done, int64_t total) override;
  void OnFinished(const ShardOutcome& outcome) override;

  const ExecutorClientOptions options_;
  const HandlerRegistry* const registry_;
  ExecutorMetrics* const metrics_;
  RealClock clock_;

  absl::Mutex write_mu_;
  grpc::ClientReaderWriter<v1::ExecutorMessage, v1::SchedulerMessage>* stream_
      ABSL_GUARDED_BY(write_mu_) = nullptr;
  bool writes_closed_ ABSL_GUARDED_BY(write_mu_) = false;

  absl::Mutex mu_;
  SteadyCondVar cv_;  // timed waits on the monotonic clock
  // Signalled when the outbox is empty and no result is being written.
  SteadyCondVar written_cv_;
  bool session_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration heartbeat_ ABSL_GUARDED_BY(mu_);
  bool drain_requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool drain_complete_ ABSL_GUARDED_BY(mu_) = false;
  ResultBuffer unsent_ ABSL_GUARDED_BY(mu_);  // failures the stream could not take
  // Results sent (or not) and not yet acknowledged as durable by the
  // scheduler: re-sent after every reconnect until acked.
  std::map<std::string, ShardOutcome> unacked_ ABSL_GUARDED_BY(mu_);
  // Set while unacked_ holds too many results: the runner is paused.
  bool backpressure_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time backpressure_since_ ABSL_GUARDED_BY(mu_);
  // Results waiting for the sender thread, which writes all it finds as one
  // ResultBatch while more queue up.
  std::vector<ShardOutcome> outbox_ ABSL_GUARDED_BY(mu_);
  int result_writers_ ABSL_GUARDED_BY(mu_) = 0;  // threads writing results now
  absl::CondVar outbox_cv_;
  bool sender_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sender_;

  // Declared last: its workers call back into this object and are joined first.
  ShardRunner runner_;
};

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_SERVICE_EXECUTOR_CLIENT_H_
