#include "executor/service/executor_client.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "executor/core/backoff.h"
#include "executor/service/convert.h"
#include "shared/version.h"
#include "spdlog/spdlog.h"

namespace tessera::executor {
namespace {

// Results per ResultBatch message, in bytes of JSON (the scheduler accepts
// messages of 64 MiB by default).
constexpr size_t kMaxBatchBytes = 4 << 20;
// How often drain progress is checked while shards finish.
constexpr absl::Duration kDrainPoll = absl::Milliseconds(50);
// At the drain deadline: how long outcomes on their way out get to be written.
constexpr absl::Duration kOutcomeGrace = absl::Seconds(1);
// Repeat "cannot reach the scheduler" at warn at most this often.
constexpr absl::Duration kWarnEvery = absl::Seconds(30);

}  // namespace

ExecutorClient::ExecutorClient(ExecutorClientOptions options,
                               const HandlerRegistry* registry, ExecutorMetrics* metrics,
                               SchedulerConnection* connection, const Clock* clock)
    : options_(std::move(options)),
      registry_(registry),
      metrics_(metrics),
      connection_(connection),
      clock_(clock),
      heartbeat_(options_.default_heartbeat),
      drain_(options_.drain_timeout),
      ledger_(options_.max_unacked_results, options_.max_unsent_results),
      runner_(registry, options_.slots, this, clock, metrics, options_.executor_id) {
  SetConnected(false);
}

ExecutorClient::~ExecutorClient() { runner_.Stop(); }

void ExecutorClient::Run() {
  spdlog::info("executor={} name={} starting: scheduler={} slots={} tasks={}",
               options_.executor_id, options_.name, options_.scheduler_address,
               runner_.slots(), absl::StrJoin(registry_->Names(), ","));
  runner_.Start();
  sender_ = std::thread([this] { SenderLoop(); });
  // Replicas (a comma-separated --scheduler): one address per attempt, in
  // turn (a follower answers UNAVAILABLE naming the leader; a dead replica
  // does not answer).
  const std::vector<std::string> addresses =
      absl::StrSplit(options_.scheduler_address, ',', absl::SkipEmpty());
  size_t next_address = 0;
  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  absl::BitGen gen;
  int failures = 0;
  absl::Time last_warn = absl::InfinitePast();
  bool stop = false;
  while (!stop) {
    const std::string address = addresses.empty()
                                    ? options_.scheduler_address
                                    : addresses[next_address++ % addresses.size()];
    bool welcomed = false;
    const absl::Status status = Session(address, &welcomed);
    {
      absl::MutexLock lock(&mu_);
      if (drain_.complete()) break;
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
      last_warn = clock_->Now();
      spdlog::warn("executor={} lost the stream to scheduler {}: {}; reconnecting",
                   options_.executor_id, options_.scheduler_address, status.ToString());
    } else if (++failures == 1 || clock_->Now() - last_warn >= kWarnEvery) {
      last_warn = clock_->Now();
      spdlog::warn("executor={} cannot reach scheduler {} (attempt {}): {}; retrying",
                   options_.executor_id, options_.scheduler_address, failures,
                   status.ToString());
    } else {
      spdlog::debug("executor={} connect attempt {} failed: {}", options_.executor_id,
                    failures, status.ToString());
    }
    const absl::Time retry_at = clock_->Now() + backoff.Next(gen);
    while (!(stop = DrainOverWhileDisconnected()) && clock_->Now() < retry_at) {
      absl::MutexLock lock(&mu_);
      WaitLocked(retry_at, kDrainPoll);
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
  if (ledger_.unsent() > 0) {
    spdlog::warn("executor={} exiting with {} outcomes it could not send",
                 options_.executor_id, ledger_.unsent());
  }
  spdlog::info("executor={} stopped", options_.executor_id);
}

void ExecutorClient::Drain() {
  absl::MutexLock lock(&mu_);
  switch (drain_.Ask(clock_->Now())) {
    case DrainState::Request::kIgnored:
      return;
    case DrainState::Request::kStarted:
      spdlog::info("executor={} draining: no new shards; running shards get up to {}",
                   options_.executor_id, absl::FormatDuration(options_.drain_timeout));
      break;
    case DrainState::Request::kCutShort:
      spdlog::warn("executor={} asked to stop again: cutting the drain short",
                   options_.executor_id);
      break;
  }
  cv_.SignalAll();
}

absl::Status ExecutorClient::Session(const std::string& address, bool* welcomed) {
  absl::StatusOr<std::unique_ptr<SchedulerSession>> opened = connection_->Open(address);
  if (!opened.ok()) return opened.status();
  SchedulerSession* const session = opened->get();
  {
    absl::MutexLock lock(&mu_);
    session_ended_ = false;
    welcomed_ = false;
    heartbeat_ = options_.default_heartbeat;
    next_heartbeat_ = clock_->Now() + heartbeat_;
  }
  HelloInfo hello{options_.executor_id, options_.name, registry_->Names(),
                  runner_.slots(),      VersionTag(),  runner_.RunningAssignments(),
                  options_.queues};
  bool said_hello;
  {
    // Hello goes out before anything else can use the new session.
    absl::MutexLock lock(&write_mu_);
    session_ = session;
    writes_closed_ = false;
    said_hello = SendLocked(HelloMessage(hello));
  }
  // When Hello cannot be written the call is already dead and Read fails at once.
  if (said_hello) FlushUnsent();
  std::thread control([this, session] { ControlLoop(session); });
  v1::SchedulerMessage msg;
  while (session->Read(&msg)) HandleMessage(msg);
  {
    absl::MutexLock lock(&write_mu_);
    session_ = nullptr;
  }
  {
    absl::MutexLock lock(&mu_);
    session_ended_ = true;
    *welcomed = welcomed_;
    cv_.SignalAll();
  }
  control.join();
  SetConnected(false);
  return session->Finish();
}

void ExecutorClient::ControlLoop(SchedulerSession* session) {
  bool announced = false;  // Draining sent on this session
  while (true) {
    DrainState::Step step = DrainState::Step::kNone;
    bool heartbeat_due = false;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (session_ended_) return;
        const absl::Time now = clock_->Now();
        step = drain_.OnStream(now, announced, runner_.Idle(), ledger_.unacked() == 0);
        if (step != DrainState::Step::kNone && step != DrainState::Step::kWait) break;
        if (now >= next_heartbeat_) {
          heartbeat_due = true;
          next_heartbeat_ = now + heartbeat_;
          break;
        }
        // While draining, shards finishing are checked every kDrainPoll.
        if (step == DrainState::Step::kWait) {
          WaitLocked(std::min(next_heartbeat_, drain_.deadline()), kDrainPoll);
        } else {
          WaitLocked(next_heartbeat_);
        }
      }
    }
    switch (step) {
      case DrainState::Step::kAnnounce: {
        announced = true;
        const std::vector<std::string> released = runner_.StopAccepting();
        Send(DrainingMessage());
        if (!released.empty()) Send(ReleaseMessage(released));
        spdlog::info("executor={} sent Draining; released {} queued shards{}{}",
                     options_.executor_id, released.size(), released.empty() ? "" : ": ",
                     absl::StrJoin(released, ","));
        continue;  // the drain's next step at once
      }
      case DrainState::Step::kCancelAndClose:
        CancelRunningForDrain();
        [[fallthrough]];
      case DrainState::Step::kClose:
        CloseSession(session);
        return;
      case DrainState::Step::kNone:
      case DrainState::Step::kWait:
        break;
    }
    if (heartbeat_due) Send(HeartbeatMessage());
  }
}

void ExecutorClient::CancelRunningForDrain() {
  const std::vector<std::string> leases = runner_.CancelRunning();
  if (!leases.empty()) Send(ReleaseMessage(leases));
  spdlog::warn("executor={} drain timeout: cancelled and released {} running shards{}{}",
               options_.executor_id, leases.size(), leases.empty() ? "" : ": ",
               absl::StrJoin(leases, ","));
  // Let outcomes already on their way out be written before the stream closes:
  // the handlers return, then the sender thread writes what they left.
  const absl::Time start = clock_->Now();
  runner_.WaitIdle(kOutcomeGrace);
  const absl::Duration left = kOutcomeGrace - (clock_->Now() - start);
  absl::MutexLock lock(&mu_);
  AwaitFor(
      &mu_, written_cv_,
      [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return ledger_.outbox_empty() && result_writers_ == 0;
      },
      left);
}

void ExecutorClient::CloseSession(SchedulerSession* session) {
  {
    absl::MutexLock lock(&write_mu_);
    if (session_ != nullptr && !writes_closed_) session_->CloseWrites();
    writes_closed_ = true;
  }
  bool ended = false;
  {
    absl::MutexLock lock(&mu_);
    drain_.Complete();
    const absl::Time deadline = clock_->Now() + options_.close_grace;
    while (!session_ended_ && clock_->Now() < deadline) WaitLocked(deadline);
    ended = session_ended_;
  }
  if (!ended) {
    spdlog::warn("executor={} scheduler did not end the stream within {}; cancelling it",
                 options_.executor_id, absl::FormatDuration(options_.close_grace));
    session->Cancel();
  }
  spdlog::info("executor={} drained; stream closed", options_.executor_id);
}

bool ExecutorClient::DrainOverWhileDisconnected() {
  absl::MutexLock lock(&mu_);
  if (!drain_.requested()) return false;
  // No scheduler to release to: the queued leases ended with the stream.
  runner_.StopAccepting();
  return drain_.OverWhileDisconnected(clock_->Now(), runner_.Idle(), ledger_.settled());
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
        next_heartbeat_ = std::min(next_heartbeat_, clock_->Now() + hb);
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
      const std::vector<std::string> leases(msg.ack().lease_ids().begin(),
                                            msg.ack().lease_ids().end());
      absl::MutexLock lock(&mu_);
      ApplyLocked(ledger_.Ack(leases, clock_->Now()));
      cv_.SignalAll();  // a drain may be waiting for this
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
    pending = ledger_.TakeUnsent();
    results = ledger_.Unacked();
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
    ledger_.PutBackUnsent(
        std::vector<ShardOutcome>(pending.begin() + sent, pending.end()));
  }
}

bool ExecutorClient::Send(const v1::ExecutorMessage& msg) {
  absl::MutexLock lock(&write_mu_);
  return SendLocked(msg);
}

bool ExecutorClient::SendLocked(const v1::ExecutorMessage& msg) {
  if (session_ == nullptr || writes_closed_) return false;
  return session_->Write(msg);
}

void ExecutorClient::WaitLocked(absl::Time deadline, absl::Duration recheck) {
  const absl::Duration left =
      std::min({deadline - clock_->Now(), recheck, options_.clock_poll});
  if (left > absl::ZeroDuration()) cv_.WaitWithTimeout(&mu_, left);
}

void ExecutorClient::SetConnected(bool connected) {
  if (metrics_ != nullptr) metrics_->SetConnected(connected);
}

void ExecutorClient::ApplyLocked(const ResultLedger::Backpressure& b) {
  if (metrics_ != nullptr) metrics_->SetUnackedResults(b.unacked);
  switch (b.change) {
    case ResultLedger::Backpressure::Change::kNone:
      return;
    case ResultLedger::Backpressure::Change::kStarted:
      runner_.Pause();
      if (metrics_ != nullptr) metrics_->SetBackpressure(true);
      spdlog::warn(
          "executor={} {} results await the scheduler's ack: starting no new shard "
          "until acks bring them down to {} (the scheduler's commits are behind)",
          options_.executor_id, b.unacked, b.resume_at);
      return;
    case ResultLedger::Backpressure::Change::kEnded:
      runner_.Resume();
      if (metrics_ != nullptr) metrics_->SetBackpressure(false);
      spdlog::info("executor={} {} results await an ack: taking work again after {}",
                   options_.executor_id, b.unacked, absl::FormatDuration(b.lasted));
      return;
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
      while (ledger_.outbox_empty() && !sender_stop_) outbox_cv_.Wait(&mu_);
      if (ledger_.outbox_empty()) return;  // stopping; unsent results stay in the ledger
      batch = ledger_.TakeBatch(kMaxBatchBytes);
      ++result_writers_;
    }
    if (!WriteResults(batch)) {
      // Kept in the ledger: re-sent right after the next Hello.
      spdlog::info("executor={} stream is down; {} results kept for the next connection",
                   options_.executor_id, batch.size());
    }
  }
}

bool ExecutorClient::WriteResults(const std::vector<ShardOutcome>& batch) {
  bool written;
  {
    absl::MutexLock wlock(&write_mu_);
    written = SendLocked(ResultBatchMessage(batch));
  }
  absl::MutexLock lock(&mu_);
  if (--result_writers_ == 0 && ledger_.outbox_empty()) written_cv_.SignalAll();
  return written;
}

void ExecutorClient::OnFinished(const ShardOutcome& outcome) {
  // Results stay in the ledger until acked. The last result of a busy spell
  // goes out at once from this thread (no hop to the sender: latency); while
  // more work is on hand results queue for the sender thread, which writes all
  // that queued as one batch (throughput). Failures are written under
  // write_mu_ throughout, so that one is either written or buffered before the
  // next connection flushes the buffer.
  if (outcome.kind == ShardOutcome::Kind::kSucceeded) {
    const bool last = runner_.pending() <= 1;  // this shard is still counted
    bool write_now = false;
    {
      absl::MutexLock lock(&mu_);
      ApplyLocked(ledger_.Keep(outcome, clock_->Now()));
      if (last && ledger_.outbox_empty() && result_writers_ == 0) {
        ++result_writers_;
        write_now = true;
      } else if (ledger_.Queue(outcome)) {
        outbox_cv_.Signal();
      }
    }
    if (write_now) WriteResults({outcome});  // if not written, re-sent from the ledger
    return;
  }
  absl::MutexLock wlock(&write_mu_);
  if (SendLocked(OutcomeMessage(outcome))) return;
  absl::MutexLock lock(&mu_);
  if (ledger_.KeepUnsent(outcome) > 0) {
    spdlog::warn("executor={} unsent outcome buffer full; dropped the oldest",
                 options_.executor_id);
  }
  spdlog::info(
      "executor={} job={} shard={} lease={} stream is down; outcome kept for the next "
      "connection",
      options_.executor_id, outcome.job_id, outcome.shard, outcome.lease_id);
}

}  // namespace tessera::executor
