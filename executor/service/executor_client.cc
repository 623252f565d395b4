#include "executor/service/executor_client.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "executor/core/backoff.h"
#include "executor/service/convert.h"
#include "shared/grpc_util.h"
#include "shared/version.h"
#include "spdlog/spdlog.h"

namespace tessera::executor {
namespace {

// Results per ResultBatch message, in bytes of JSON (the scheduler accepts
// messages of 64 MiB by default).
constexpr size_t kMaxBatchBytes = 4 << 20;
constexpr int kMaxReceiveBytes = 64 << 20;
// How often drain progress is checked while shards finish.
constexpr absl::Duration kDrainPoll = absl::Milliseconds(50);
// Repeat "cannot reach the scheduler" at warn at most this often.
constexpr absl::Duration kWarnEvery = absl::Seconds(30);

// A fresh channel per connection attempt, with its own subchannel: a shared
// subchannel stuck in its reconnect backoff kept failing new streams for
// seconds after the scheduler came up.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const ExecutorClientOptions& o) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Assign messages of items jobs can be large (the scheduler's limit is its
  // --max-message-bytes, 64 MiB by default); gRPC's own default is 4 MiB.
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  // A scheduler that stops answering (paused, its host gone, a partition)
  // ends the stream within about two keepalives, so the executor reconnects
  // (and finds the new leader) instead of waiting on a dead connection.
  const int keepalive_ms = static_cast<int>(absl::ToInt64Milliseconds(o.keepalive));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeChannelCredentials(o.tls);
  if (!creds.ok()) return creds.status();
  return grpc::CreateCustomChannel(address, *creds, args);
}

// Waits until `channel` is READY; false as soon as a connect attempt fails
// (our own backoff decides when to try again) or at `deadline`.
bool ConnectChannel(grpc::Channel& channel, absl::Time deadline) {
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      return false;
    }
    if (!channel.WaitForStateChange(state, absl::ToChronoTime(deadline))) return false;
    state = channel.GetState(/*try_to_connect=*/true);
  }
  return true;
}

}  // namespace

ExecutorClient::ExecutorClient(ExecutorClientOptions options,
                               const HandlerRegistry* registry, ExecutorMetrics* metrics)
    : options_(std::move(options)),
      registry_(registry),
      metrics_(metrics),
      heartbeat_(options_.default_heartbeat),
      unsent_(options_.max_unsent_results),
      runner_(registry, options_.slots, this, &clock_, metrics, options_.executor_id) {
  SetConnected(false);
}

ExecutorClient::~ExecutorClient() { runner_.Stop(); }

void ExecutorClient::Run() {
  spdlog::info("executor={} name={} starting: scheduler={} slots={} tasks={}",
               options_.executor_id, options_.name, options_.scheduler_address,
               runner_.slots(), absl::StrJoin(registry_->Names(), ","));
  runner_.Start();
  sender_ = std::thread([this] { SenderLoop(); });
  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  absl::BitGen gen;
  int failures = 0;
  absl::Time last_warn = absl::InfinitePast();
  bool stop = false;
  while (!stop) {
    bool welcomed = false;
    const absl::Status status = Session(&welcomed);
    {
      absl::MutexLock lock(&mu_);
      if (drain_complete_) break;
    }
    if (const auto dropped = runner_.DropQueued(); !dropped.empty()) {
      spdlog::info(
          "executor={} dropped {} queued assignments whose leases ended with the "
          "stream: {}",
          options_.executor_id, dropped.size(), absl::StrJoin(dropped, ","));
    }
    if (welcomed) {
      backoff.Reset();
      failures = 0;
      last_warn = clock_.Now();
      spdlog::warn("executor={} lost the stream to scheduler {}: {}; reconnecting",
                   options_.executor_id, options_.scheduler_address, status.ToString());
    } else if (++failures == 1 || clock_.Now() - last_warn >= kWarnEvery) {
      last_warn = clock_.Now();
      spdlog::warn("executor={} cannot reach scheduler {} (attempt {}): {}; retrying",
                   options_.executor_id, options_.scheduler_address, failures,
                   status.ToString());
    } else {
      spdlog::debug("executor={} connect attempt {} failed: {}", options_.executor_id,
                    failures, status.ToString());
    }
    const absl::Time retry_at = clock_.Now() + backoff.Next(gen);
    while (!(stop = DrainOverWhileDisconnected()) && clock_.Now() < retry_at) {
      absl::MutexLock lock(&mu_);
      cv_.WaitWithDeadline(&mu_, std::min(retry_at, clock_.Now() + kDrainPoll));
    }
  }
  runner_.Stop();
  {
    absl::MutexLock lock(&mu_);
    sender_stop_ = true;
    outbox_cv_.Signal();
  }
  sender_.join();
  SetConnected(false);
  absl::MutexLock lock(&mu_);
  if (!unsent_.empty()) {
    spdlog::warn("executor={} exiting with {} outcomes it could not send",
                 options_.executor_id, unsent_.size());
  }
  spdlog::info("executor={} stopped", options_.executor_id);
}

void ExecutorClient::Drain() {
  absl::MutexLock lock(&mu_);
  if (drain_complete_) return;
  if (!drain_requested_) {
    drain_requested_ = true;
    drain_deadline_ = clock_.Now() + options_.drain_timeout;
    spdlog::info("executor={} draining: no new shards; running shards get up to {}",
                 options_.executor_id, absl::FormatDuration(options_.drain_timeout));
  } else {
    drain_deadline_ = clock_.Now();
    spdlog::warn("executor={} asked to stop again: cutting the drain short",
                 options_.executor_id);
  }
  cv_.SignalAll();
}

absl::Status ExecutorClient::Session(bool* welcomed) {
  // Replicas (a comma-separated --scheduler): one address per attempt, the
  // next after an attempt that was not welcomed (a follower answers
  // UNAVAILABLE naming the leader; a dead replica does not answer).
  const std::vector<std::string> addresses =
      absl::StrSplit(options_.scheduler_address, ',', absl::SkipEmpty());
  const std::string address = addresses.empty()
                                  ? options_.scheduler_address
                                  : addresses[next_address_++ % addresses.size()];
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(address, options_);
  if (!channel.ok()) return channel.status();
  absl::StatusOr<std::string> token =
      ReadTokenFile(options_.auth_token_file, "--auth-token-file");
  if (!token.ok()) return token.status();
  if (!ConnectChannel(**channel, clock_.Now() + options_.max_backoff)) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", address,
        options_.tls.ca_file.empty() ? ""
                                     : " (TLS: check --tls-ca and the server's name)"));
  }
  auto stub = v1::ExecutorService::NewStub(*channel);
  grpc::ClientContext ctx;
  if (!token->empty()) ctx.AddMetadata("authorization", "Bearer " + *token);
  std::unique_ptr<grpc::ClientReaderWriter<v1::ExecutorMessage, v1::SchedulerMessage>>
      stream = stub->Connect(&ctx);
  {
    absl::MutexLock lock(&mu_);
    session_ended_ = false;
    welcomed_ = false;
    heartbeat_ = options_.default_heartbeat;
  }
  HelloInfo hello{options_.executor_id, options_.name, registry_->Names(),
                  runner_.slots(),      VersionTag(),  runner_.RunningAssignments(),
                  options_.queues};
  bool said_hello;
  {
    // Hello goes out before anything else can use the new stream.
    absl::MutexLock lock(&write_mu_);
    stream_ = stream.get();
    writes_closed_ = false;
    said_hello = SendLocked(HelloMessage(hello));
  }
  // When Hello cannot be written the call is already dead and Read fails at once.
  if (said_hello) FlushUnsent();
  std::thread control([this, &ctx] { ControlLoop(&ctx); });
  v1::SchedulerMessage msg;
  while (stream->Read(&msg)) HandleMessage(msg);
  {
    absl::MutexLock lock(&write_mu_);
    stream_ = nullptr;
  }
  {
    absl::MutexLock lock(&mu_);
    session_ended_ = true;
    *welcomed = welcomed_;
    cv_.SignalAll();
  }
  control.join();
  SetConnected(false);
  return FromGrpcStatus(stream->Finish());
}

void ExecutorClient::ControlLoop(grpc::ClientContext* ctx) {
  bool draining = false;
  absl::Duration interval;
  {
    absl::MutexLock lock(&mu_);
    interval = heartbeat_;
  }
  absl::Time next_heartbeat = clock_.Now() + interval;
  while (true) {
    bool begin_drain = false;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time poll_at =
          draining ? clock_.Now() + kDrainPoll : absl::InfiniteFuture();
      while (true) {
        if (session_ended_) return;
        if (heartbeat_ != interval) {  // Welcome arrived
          interval = heartbeat_;
          next_heartbeat = std::min(next_heartbeat, clock_.Now() + interval);
        }
        if (drain_requested_ && !draining) {
          begin_drain = true;
          break;
        }
        const absl::Time wake = std::min(next_heartbeat, poll_at);
        if (clock_.Now() >= wake) break;
        cv_.WaitWithDeadline(&mu_, wake);
      }
    }
    if (begin_drain) {
      draining = true;
      const std::vector<std::string> released = runner_.StopAccepting();
      Send(DrainingMessage());
      if (!released.empty()) Send(ReleaseMessage(released));
      spdlog::info("executor={} sent Draining; released {} queued shards{}{}",
                   options_.executor_id, released.size(), released.empty() ? "" : ": ",
                   absl::StrJoin(released, ","));
    }
    if (draining && DrainStepDone()) {
      CloseStream(ctx);
      return;
    }
    if (clock_.Now() >= next_heartbeat) {
      Send(HeartbeatMessage());
      next_heartbeat = clock_.Now() + interval;
    }
  }
}

bool ExecutorClient::DrainStepDone() {
  bool acked;
  {
    absl::MutexLock lock(&mu_);
    acked = unacked_.empty();
  }
  if (runner_.Idle() && acked) return true;
  absl::Time deadline;
  {
    absl::MutexLock lock(&mu_);
    deadline = drain_deadline_;
  }
  if (clock_.Now() < deadline) return false;
  if (runner_.Idle()) return true;  // results not acked in time are re-run elsewhere
  const std::vector<std::string> leases = runner_.CancelRunning();
  if (!leases.empty()) Send(ReleaseMessage(leases));
  spdlog::warn("executor={} drain timeout: cancelled and released {} running shards{}{}",
               options_.executor_id, leases.size(), leases.empty() ? "" : ": ",
               absl::StrJoin(leases, ","));
  // Let outcomes already on their way out be written before the stream closes:
  // the handlers return, then the sender thread writes what they left.
  const absl::Time deadline_out = clock_.Now() + absl::Seconds(1);
  runner_.WaitIdle(absl::Seconds(1));
  absl::MutexLock lock(&mu_);
  auto written = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outbox_.empty() && result_writers_ == 0;
  };
  while (!written() && written_cv_.WaitWithDeadline(&mu_, deadline_out)) {
  }
  return true;
}

void ExecutorClient::CloseStream(grpc::ClientContext* ctx) {
  {
    absl::MutexLock lock(&write_mu_);
    if (stream_ != nullptr && !writes_closed_) stream_->WritesDone();
    writes_closed_ = true;
  }
  bool ended = false;
  {
    absl::MutexLock lock(&mu_);
    drain_complete_ = true;
    const absl::Time deadline = clock_.Now() + options_.close_grace;
    while (!session_ended_ && !cv_.WaitWithDeadline(&mu_, deadline)) {
    }
    ended = session_ended_;
  }
  if (!ended) {
    spdlog::warn("executor={} scheduler did not end the stream within {}; cancelling it",
                 options_.executor_id, absl::FormatDuration(options_.close_grace));
    ctx->TryCancel();
  }
  spdlog::info("executor={} drained; stream closed", options_.executor_id);
}

bool ExecutorClient::DrainOverWhileDisconnected() {
  absl::MutexLock lock(&mu_);
  if (!drain_requested_) return false;
  // No scheduler to release to: the queued leases ended with the stream.
  runner_.StopAccepting();
  return clock_.Now() >= drain_deadline_ ||
         (unsent_.empty() && unacked_.empty() && runner_.Idle());
}

void ExecutorClient::HandleMessage(const v1::SchedulerMessage& msg) {
  switch (msg.msg_case()) {
    case v1::SchedulerMessage::kWelcome: {
      const int ms = msg.welcome().heartbeat_interval_ms();
      const absl::Duration hb =
          ms > 0 ? absl::Milliseconds(ms) : options_.default_heartbeat;
      {
        absl::MutexLock lock(&mu_);
        heartbeat_ = hb;
        welcomed_ = true;
        cv_.SignalAll();
      }
      SetConnected(true);
      spdlog::info("executor={} connected to scheduler {} (heartbeat every {})",
                   options_.executor_id, options_.scheduler_address,
                   absl::FormatDuration(hb));
      const std::string& id = msg.welcome().executor_id();
      if (!id.empty() && id != options_.executor_id) {
        spdlog::warn("executor={} scheduler welcomed us as executor={}",
                     options_.executor_id, id);
      }
      break;
    }
    case v1::SchedulerMessage::kAssign: {
      std::vector<Assignment> assignments;
      assignments.reserve(msg.assign().assignments_size());
      for (const v1::Assignment& a : msg.assign().assignments()) {
        assignments.push_back(FromProto(a));
      }
      const std::vector<std::string> released = runner_.Offer(std::move(assignments));
      if (!released.empty()) {
        Send(ReleaseMessage(released));
        spdlog::info("executor={} draining: released {} new assignments: {}",
                     options_.executor_id, released.size(), absl::StrJoin(released, ","));
      }
      break;
    }
    case v1::SchedulerMessage::kAck: {
      absl::MutexLock lock(&mu_);
      for (const std::string& lease : msg.ack().lease_ids()) unacked_.erase(lease);
      UpdateBackpressureLocked();
      break;
    }
    case v1::SchedulerMessage::kCancel: {
      const std::string& lease = msg.cancel().lease_id();
      const bool cancelled = runner_.Cancel(lease);
      spdlog::info("executor={} lease={} cancel requested by the scheduler{}",
                   options_.executor_id, lease,
                   cancelled ? "" : " (not running; ignored)");
      break;
    }
    default:
      spdlog::warn("executor={} ignoring a scheduler message of unknown kind {}",
                   options_.executor_id, static_cast<int>(msg.msg_case()));
  }
}

void ExecutorClient::FlushUnsent() {
  absl::MutexLock wlock(&write_mu_);
  std::vector<ShardOutcome> pending;
  std::vector<ShardOutcome> results;
  {
    absl::MutexLock lock(&mu_);
    pending = unsent_.TakeAll();
    for (const auto& [lease, outcome] : unacked_) results.push_back(outcome);
  }
  size_t resent = 0;
  while (resent < results.size() && SendLocked(OutcomeMessage(results[resent]))) ++resent;
  if (!results.empty()) {
    spdlog::info("executor={} re-sent {} of {} results not yet acknowledged",
                 options_.executor_id, resent, results.size());
  }
  if (pending.empty()) return;
  size_t sent = 0;
  while (sent < pending.size() && SendLocked(OutcomeMessage(pending[sent]))) ++sent;
  spdlog::info("executor={} resent {} of {} outcomes kept while disconnected",
               options_.executor_id, sent, pending.size());
  if (sent < pending.size()) {
    absl::MutexLock lock(&mu_);
    unsent_.PutBack(std::vector<ShardOutcome>(pending.begin() + sent, pending.end()));
  }
}

bool ExecutorClient::Send(const v1::ExecutorMessage& msg) {
  absl::MutexLock lock(&write_mu_);
  return SendLocked(msg);
}

bool ExecutorClient::SendLocked(const v1::ExecutorMessage& msg) {
  if (stream_ == nullptr || writes_closed_) return false;
  return stream_->Write(msg);
}

void ExecutorClient::SetConnected(bool connected) {
  if (metrics_ != nullptr) metrics_->SetConnected(connected);
}

void ExecutorClient::UpdateBackpressureLocked() {
  const size_t n = unacked_.size();
  if (metrics_ != nullptr) metrics_->SetUnackedResults(n);
  const size_t cap = std::max<size_t>(options_.max_unacked_results, 1);
  if (!backpressure_ && n >= cap) {
    backpressure_ = true;
    backpressure_since_ = clock_.Now();
    runner_.Pause();
    if (metrics_ != nullptr) metrics_->SetBackpressure(true);
    spdlog::warn(
        "executor={} {} results await the scheduler's ack: starting no new shard until "
        "acks bring them down to {} (the scheduler's commits are behind)",
        options_.executor_id, n, cap / 2);
  } else if (backpressure_ && n <= cap / 2) {
    backpressure_ = false;
    runner_.Resume();
    if (metrics_ != nullptr) metrics_->SetBackpressure(false);
    spdlog::info("executor={} {} results await an ack: taking work again after {}",
                 options_.executor_id, n,
                 absl::FormatDuration(clock_.Now() - backpressure_since_));
  }
}

void ExecutorClient::OnProgress(const Assignment& a, int64_t done, int64_t total) {
  Send(ProgressMessage(a.lease_id, done, total));  // best effort
}

void ExecutorClient::SenderLoop() {
  while (true) {
    std::vector<ShardOutcome> batch;
    {
      // At most kMaxBatchBytes of results per message, far below the
      // scheduler's message limit; the rest goes in the next round.
      absl::MutexLock lock(&mu_);
      while (outbox_.empty() && !sender_stop_) outbox_cv_.Wait(&mu_);
      if (outbox_.empty()) return;  // stopping; anything unsent stays in unacked_
      size_t bytes = 0;
      size_t n = 0;
      while (n < outbox_.size() &&
             (n == 0 || bytes + outbox_[n].result_json.size() <= kMaxBatchBytes)) {
        bytes += outbox_[n].result_json.size();
        ++n;
      }
      batch.assign(std::make_move_iterator(outbox_.begin()),
                   std::make_move_iterator(outbox_.begin() + n));
      outbox_.erase(outbox_.begin(), outbox_.begin() + n);
      ++result_writers_;
    }
    {
      absl::MutexLock wlock(&write_mu_);
      if (!SendLocked(ResultBatchMessage(batch))) {
        // Kept in unacked_: re-sent right after the next Hello.
        spdlog::info(
            "executor={} stream is down; {} results kept for the next connection",
            options_.executor_id, batch.size());
      }
    }
    absl::MutexLock lock(&mu_);
    --result_writers_;
    SignalIfWrittenLocked();
  }
}

void ExecutorClient::SignalIfWrittenLocked() {
  if (outbox_.empty() && result_writers_ == 0) written_cv_.SignalAll();
}

void ExecutorClient::OnFinished(const ShardOutcome& outcome) {
  // Results stay in unacked_ until acked. The last result of a busy spell goes
  // out at once from this thread (no hop to the sender: latency); while more
  // work is on hand results queue for the sender thread, which writes all that
  // queued as one batch (throughput). Failures are written under write_mu_
  // throughout, so that one is either written or buffered before the next
  // connection flushes the buffer.
  if (outcome.kind == ShardOutcome::Kind::kSucceeded) {
    const bool last = runner_.pending() <= 1;  // this shard is still counted
    bool write_now = false;
    {
      absl::MutexLock lock(&mu_);
      unacked_[outcome.lease_id] = outcome;
      UpdateBackpressureLocked();
      if (last && outbox_.empty() && result_writers_ == 0) {
        ++result_writers_;
        write_now = true;
      } else {
        outbox_.push_back(outcome);
        if (outbox_.size() == 1) outbox_cv_.Signal();
      }
    }
    if (write_now) {
      {
        absl::MutexLock wlock(&write_mu_);
        SendLocked(ResultBatchMessage({outcome}));  // if not, re-sent from unacked_
      }
      absl::MutexLock lock(&mu_);
      --result_writers_;
      SignalIfWrittenLocked();
    }
    return;
  }
  absl::MutexLock wlock(&write_mu_);
  if (SendLocked(OutcomeMessage(outcome))) return;
  absl::MutexLock lock(&mu_);
  if (unsent_.Add(outcome) > 0) {
    spdlog::warn("executor={} unsent outcome buffer full; dropped the oldest",
                 options_.executor_id);
  }
  spdlog::info(
      "executor={} job={} shard={} lease={} stream is down; outcome kept for the next "
      "connection",
      options_.executor_id, outcome.job_id, outcome.shard, outcome.lease_id);
}

}  // namespace tessera::executor
