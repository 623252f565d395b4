#include "scheduler/service/runtime.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/service/scheduler_metrics.h"
#include "scheduler/service/signed_lease_ids.h"
#include "scheduler/sink/result_sink.h"
#include "shared/ids.h"
#include "shared/logging.h"

namespace tessera::scheduler {
namespace {

// Reads at once: GetResult (may wait on a remote sink), and GetJob and
// ListJobs of finished jobs (read from the store).
constexpr int kReaders = 4;

// Whether a writer-queue item may wait for the linger: a result's record and
// its ack, and the "done" record of a job whose result the sink has (its
// watchers were told at the write; its durable "finalizing" record lets a
// restart find the same bytes without a second write, so nothing waits for
// this commit: it joins the next one, e.g. the next job's submit). Everything
// else is someone's answer or a job's state.
bool MayLinger(const DurableOp& op) {
  if (const auto* save = std::get_if<SaveJobOp>(&op)) {
    const JobRecord& r = save->record();
    return IsTerminal(r.state) && !r.location.empty() && !r.finalizing;
  }
  return std::holds_alternative<SaveResultOp>(op) || std::holds_alternative<AckOp>(op) ||
         std::holds_alternative<SaveFailedShardOp>(op) ||
         std::holds_alternative<RetireJobOp>(op);
}

}  // namespace

Runtime::Runtime(CoreConfig config, const Clock* clock, Store* store, ResultSink* sink)
    : config_(config),
      clock_(clock),
      store_(store),
      sink_(sink),
      metrics_(std::make_unique<SchedulerMetrics>()),
      core_(std::move(config)),
      writer_(clock, store, &faults_, metrics_.get(), WriterHooks()),
      publisher_(
          clock, sink, &writer_, &faults_, metrics_.get(),
          [this](const PersistAction& p, const absl::StatusOr<PersistedResult>& written) {
            ResultWritten(p, written);
          }) {}

Runtime::~Runtime() { Stop(); }

absl::Status Runtime::Recover() {
  // Unfinished jobs whole; finished ones as a few bytes each (their records
  // stay in the store and are read from there when asked for).
  const absl::Time t0 = clock_->Now();
  absl::StatusOr<StoredState> state = store_->LoadUnfinished();
  if (!state.ok()) return state.status();
  const absl::Duration load_time = clock_->Now() - t0;
  absl::StatusOr<std::unique_ptr<SignedLeaseIds>> ids = SignedLeaseIds::Create(store_);
  if (!ids.ok()) return ids.status();
  lease_ids_ = *std::move(ids);
  absl::MutexLock lock(&mu_);
  core_.SetIncarnation(RandomHexId(3));
  core_.SetLeaseIds(lease_ids_.get());
  Actions actions;
  core_.Restore(state->jobs, state->results, CoreNow(), actions, state->failed);
  core_.RestoreFinished(state->finished, state->max_seq, CoreNow());
  spdlog::info(
      "store {}: recovered {} jobs ({} unfinished, held in memory; {} finished, "
      "read from the store when asked for) in {} (store read {})",
      store_->name(), state->jobs.size() + state->finished.size(), state->jobs.size(),
      state->finished.size(), absl::FormatDuration(clock_->Now() - t0),
      absl::FormatDuration(load_time));
  metrics_->JobsRecovered(state->jobs);
  Execute(std::move(actions));
  return absl::OkStatus();
}

void Runtime::Start() {
  ticker_ = std::thread([this] { TickLoop(); });
  writer_.Start();
  publisher_.Start();
  {
    absl::MutexLock lock(&reads_mu_);
    reading_ = true;
  }
  for (int i = 0; i < kReaders; ++i) readers_.emplace_back([this] { ReadLoop(); });
}

std::optional<Runtime::CallReply> Runtime::AnswerAfterCommit(
    const absl::StatusOr<JobView>& job, const std::shared_ptr<PendingCall>& call) {
  if (!job.ok()) return std::nullopt;  // the caller answers with the error at once
  return CallReply{call, *job};
}

void Runtime::SetStoreTimeout(absl::Duration timeout) {
  store_timeout_ = timeout;
  faults_.SetCommitTimeout(timeout);
  writer_.SetStoreTimeout(timeout);
}

absl::Time Runtime::CoreNow() {
  const absl::Time now = clock_->Now();
  core_.SetWallOffset(clock_->WallNow() - now);
  return now;
}

void Runtime::BeginShutdown() {
  {
    absl::MutexLock lock(&stop_mu_);
    shutting_down_ = true;
  }
  writer_.BeginShutdown();
}

void Runtime::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
  }
  writer_.Stop();
  // Result writes retried stop, and a sink waiting out a store that is down
  // gives up: its jobs stay "finalizing" and the next start writes them (and
  // reads still queued end at once with UNAVAILABLE).
  publisher_.Stop();
  {
    absl::MutexLock lock(&reads_mu_);
    reading_ = false;
  }
  for (std::thread& t : readers_) t.join();
  readers_.clear();
  if (ticker_.joinable()) ticker_.join();
  // The writer ends once the results being written have queued their jobs'
  // ends; the publisher's workers once the writer has.
  writer_.Join();
  publisher_.Join();
  // What still waits was never committed, and now never will be.
  std::vector<std::shared_ptr<PendingCall>> calls;
  {
    absl::MutexLock lock(&calls_mu_);
    calls.swap(calls_);
  }
  for (const std::shared_ptr<PendingCall>& call : calls) {
    call->Answer(absl::UnavailableError(
        "the scheduler stopped before the change was durable; it did not take effect"));
  }
}

void Runtime::Submit(const JobSpec& spec, JobCallback done, const std::string& caller) {
  {
    absl::MutexLock lock(&stop_mu_);
    if (shutting_down_) {
      done(
          absl::UnavailableError("the scheduler is shutting down; submit again shortly"));
      return;
    }
  }
  if (absl::Status refused = faults_.Refusal(/*new_work=*/true); !refused.ok()) {
    done(refused);
    return;
  }
  // A resubmission whose key names a finished job held in the store only
  // compares its spec with the stored record (a primary-key read).
  std::optional<JobRecord> stored;
  if (!spec.idempotency_key.empty()) {
    std::optional<std::string> in_store;
    {
      absl::MutexLock lock(&mu_);
      in_store = core_.IdempotentJobInStore(spec, CoreNow());
    }
    if (in_store.has_value()) {
      absl::StatusOr<std::optional<JobRecord>> r = store_->LoadJob(*in_store);
      if (!r.ok()) {
        done(r.status());
        return;
      }
      stored = *std::move(r);
    }
  }
  const std::string id = RandomHexId(8);
  std::shared_ptr<PendingCall> call = TrackCall(std::move(done), "SubmitJob", id, true);
  absl::StatusOr<JobView> job;
  {
    absl::MutexLock lock(&mu_);
    Actions actions;
    const absl::Time now = CoreNow();
    job = core_.Submit(spec, id, now, actions, stored ? &*stored : nullptr);
    absl::Duration may_wait = absl::ZeroDuration();
    if (job.ok()) {
      call->SetJob(job->id);  // an idempotent resubmission's is older
      may_wait = QuickSubmitted(*job, actions, now);
    }
    Execute(std::move(actions), AnswerAfterCommit(job, call), may_wait);
  }
  if (!job.ok()) {
    call->Answer(job.status());
    return;
  }
  spdlog::info("audit: SubmitJob job={} by {} task={} shards={} queue={} name=\"{}\"",
               job->id, caller, spec.task, job->shards.total, spec.queue, spec.name);
}

absl::Duration Runtime::QuickSubmitted(const JobView& job, const Actions& actions,
                                       absl::Time now) {
  if (quick_wait_ <= absl::ZeroDuration() || job.shards.total <= 0) {
    return absl::ZeroDuration();
  }
  const auto assigned = std::count_if(
      actions.assigns.begin(), actions.assigns.end(),
      [&job](const AssignAction& a) { return a.assignment.job_id == job.id; });
  if (assigned != job.shards.total) return absl::ZeroDuration();
  // Another such job still running: jobs overlap, and their records share
  // commits anyway.
  if (!quick_.id.empty()) quick_.expected = false;
  const bool expected = quick_.expected && now - quick_.ended <= quick_recent_;
  quick_.id = job.id;
  quick_.submitted = now;
  return expected ? quick_wait_ : absl::ZeroDuration();
}

void Runtime::QuickEnded(const std::string& job_id) {
  if (quick_.id.empty() || job_id != quick_.id) return;
  quick_.ended = clock_->Now();
  quick_.expected = quick_.ended - quick_.submitted <= quick_wait_ / 2;
  quick_.id.clear();
}

void Runtime::Cancel(const std::string& job_id, JobCallback done) {
  if (absl::Status refused = faults_.Refusal(/*new_work=*/false); !refused.ok()) {
    done(refused);
    return;
  }
  if (InStoreOnly(job_id)) {
    // Finished, and in the store only: nothing to cancel; the job as it is
    // (as for a finished job in memory).
    done(GetJob(job_id));
    return;
  }
  std::shared_ptr<PendingCall> call =
      TrackCall(std::move(done), "CancelJob", job_id, true);
  absl::StatusOr<JobView> job;
  {
    absl::MutexLock lock(&mu_);
    Actions actions;
    job = core_.Cancel(job_id, CoreNow(), actions);
    Execute(std::move(actions), AnswerAfterCommit(job, call));
  }
  if (!job.ok()) {
    call->Answer(job.status());
    return;
  }
  spdlog::info("job={} cancel requested; state={}", job_id,
               std::string(JobStateName(job->state)));
}

void Runtime::RetryFailedShards(const std::string& job_id, JobCallback done) {
  if (absl::Status refused = faults_.Refusal(/*new_work=*/true); !refused.ok()) {
    done(refused);
    return;
  }
  // Not taken until the barrier below: a call that times out before is dropped.
  std::shared_ptr<PendingCall> call =
      TrackCall(std::move(done), "RetryFailedShards", job_id, false);
  // Results accepted before the job ended may still be queued for the store:
  // read them after everything queued so far is committed.
  AfterCommit([this, job_id, call] { RetryFailedShardsNow(job_id, call); });
}

void Runtime::RetryFailedShardsNow(const std::string& job_id,
                                   const std::shared_ptr<PendingCall>& call) {
  if (call->answered()) return;  // timed out: told that nothing was changed
  absl::StatusOr<std::vector<StoredResult>> results = store_->LoadResults(job_id);
  if (!results.ok()) {
    call->Answer(results.status());
    return;
  }
  // A finished job held in the store only comes back into memory. (After the
  // barrier's commit a finished job's records change only when it retires,
  // and a retired job is no longer the core's: RetryFailedShards below, under
  // the lock, finds it gone.)
  bool in_store;
  {
    absl::MutexLock lock(&mu_);
    in_store = core_.InStoreOnly(job_id);
  }
  std::optional<JobRecord> stored;
  if (in_store) {
    absl::StatusOr<std::optional<JobRecord>> r = store_->LoadJob(job_id);
    if (!r.ok()) {
      call->Answer(r.status());
      return;
    }
    stored = *std::move(r);
  }
  absl::StatusOr<JobView> job;
  {
    absl::MutexLock lock(&mu_);
    if (!call->Accept()) return;
    Actions actions;
    job = core_.RetryFailedShards(job_id, *results, CoreNow(), actions,
                                  stored ? &*stored : nullptr);
    Execute(std::move(actions), AnswerAfterCommit(job, call));
  }
  if (!job.ok()) {
    call->Answer(job.status());
    return;
  }
  spdlog::info("job={} retrying its failed shards ({} results kept)", job_id,
               results->size());
}

void Runtime::UpdateJob(const std::string& job_id, const JobUpdate& update,
                        JobCallback done) {
  if (absl::Status refused = faults_.Refusal(/*new_work=*/false); !refused.ok()) {
    done(refused);
    return;
  }
  if (InStoreOnly(job_id)) {
    absl::StatusOr<JobView> job = GetJob(job_id);
    if (!job.ok()) {
      done(job.status());
    } else {
      done(absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " is ", JobStateName(job->state),
                       "; only queued or running jobs can be updated")));
    }
    return;
  }
  std::shared_ptr<PendingCall> call =
      TrackCall(std::move(done), "UpdateJob", job_id, true);
  absl::StatusOr<JobView> job;
  {
    absl::MutexLock lock(&mu_);
    Actions actions;
    job = core_.UpdateJob(job_id, update, CoreNow(), actions);
    Execute(std::move(actions), AnswerAfterCommit(job, call));
  }
  if (!job.ok()) {
    call->Answer(job.status());
    return;
  }
  spdlog::info("job={} updated: max_parallel={} rate_limit={}", job_id,
               job->spec.max_parallel, job->spec.rate_limit);
}

std::vector<ExecutorView> Runtime::ListExecutors() {
  absl::MutexLock lock(&mu_);
  return core_.ListExecutors();
}

bool Runtime::InStoreOnly(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  return core_.InStoreOnly(job_id);
}

size_t Runtime::JobsInMemory() {
  absl::MutexLock lock(&mu_);
  return core_.JobsHeld();
}

QueueStats Runtime::Stats() {
  absl::MutexLock lock(&mu_);
  return core_.Stats();
}

absl::Status Runtime::CheckIdentity(const ExecutorHello& hello) {
  absl::MutexLock lock(&mu_);
  return core_.CheckIdentity(hello);
}

absl::StatusOr<ExecutorConn> Runtime::Connect(const ExecutorHello& hello,
                                              ExecutorStream* stream) {
  ExecutorConn conn;
  {
    // The stream is registered before the core's assignments go out.
    absl::MutexLock lock(&mu_);
    if (absl::Status s = core_.CheckIdentity(hello); !s.ok()) {
      spdlog::warn("executor={} refused: {}", hello.executor_id,
                   std::string(s.message()));
      return s;
    }
    Actions actions;
    conn = core_.Connect(hello, CoreNow(), actions);
    // The same executor id on a second stream: the core took the old
    // stream's shards back, and the registry closes that stream.
    streams_.Replace(conn, stream);
    Execute(std::move(actions));
  }
  spdlog::info("executor={} connected name={} identity={} slots={} tasks={} held={}",
               hello.executor_id, hello.name,
               hello.identity.empty() ? "anonymous" : hello.identity, hello.slots,
               absl::StrJoin(hello.tasks, ","), hello.held.size());
  return conn;
}

void Runtime::Disconnect(const ExecutorConn& conn) {
  absl::MutexLock lock(&mu_);
  Actions actions;
  core_.Disconnect(conn, CoreNow(), actions);
  if (streams_.Unregister(conn))
    spdlog::info("executor={} disconnected", conn.executor_id);
  Execute(std::move(actions));
}

void Runtime::Heartbeat(const ExecutorConn& conn) {
  absl::MutexLock lock(&mu_);
  core_.Heartbeat(conn, CoreNow());
}

void Runtime::Progress(const ExecutorConn& conn, const std::string& lease_id,
                       int64_t done) {
  absl::MutexLock lock(&mu_);
  core_.Progress(conn, lease_id, done, CoreNow());
}

void Runtime::Results(const ExecutorConn& conn, std::vector<ExecutorResult> results) {
  Transition([&](absl::Time now, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (ExecutorResult& r : results) {
      core_.Result(conn, r.lease_id, r.job_id, r.shard, std::move(r.result_json), now,
                   actions, r.run_time);
    }
  });
}

void Runtime::Failure(const ExecutorConn& conn, const std::string& lease_id,
                      const std::string& message, bool retryable) {
  Transition([&](absl::Time now, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    core_.Failure(conn, lease_id, message, retryable, now, actions);
  });
  spdlog::warn("executor={} lease={} failed (retryable={}): {}", conn.executor_id,
               lease_id, retryable, message);
}

void Runtime::Release(const ExecutorConn& conn,
                      const std::vector<std::string>& lease_ids) {
  Transition([&](absl::Time now, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    core_.Release(conn, lease_ids, now, actions);
  });
}

void Runtime::Draining(const ExecutorConn& conn) {
  Transition([&](absl::Time now, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    core_.Draining(conn, now, actions);
  });
  spdlog::info("executor={} is draining", conn.executor_id);
}

void Runtime::NotifyFinished(const std::string& job_id) {
  absl::MutexLock lock(&pollers_mu_);
  for (Poller* p : pollers_) p->JobFinished(job_id);
}

void Runtime::AddPoller(Poller* poller) {
  absl::MutexLock lock(&pollers_mu_);
  pollers_.insert(poller);
}

void Runtime::RemovePoller(Poller* poller) {
  absl::MutexLock lock(&pollers_mu_);
  pollers_.erase(poller);
}

void Runtime::Execute(Actions actions, std::optional<CallReply> reply,
                      absl::Duration may_wait) {
  // Called with mu_ held, so that messages reach each executor in the order
  // the core decided them (an assignment is never overtaken by its cancel).
  // Sends only queue; nothing here blocks.
  if (actions.empty() && !reply) return;
  metrics_->Record(actions);
  for (const RejectedClaim& r : actions.rejected) {
    spdlog::warn("executor={} name={} lease={} refused ({}): {}", r.conn.executor_id,
                 r.executor_name, r.lease_id, r.reason,
                 r.reason == "unknown_lease"
                     ? "this scheduler never issued that lease for the shard"
                     : "another executor holds the shard's lease");
  }
  // Each executor's assignments in one call: its stream cuts the messages.
  std::map<std::pair<std::string, uint64_t>, std::vector<Assignment>> assigns;
  for (AssignAction& a : actions.assigns) {
    assigns[{a.conn.executor_id, a.conn.generation}].push_back(std::move(a.assignment));
  }
  // A missing stream has closed; its Disconnect requeues these shards.
  for (auto& entry : assigns) {
    std::vector<Assignment>& batch = entry.second;
    streams_.Send({entry.first.first, entry.first.second},
                  [&batch](ExecutorStream& s) { s.SendAssignments(std::move(batch)); });
  }
  for (const CancelAction& c : actions.cancels) {
    streams_.Send(c.conn, [&](ExecutorStream& s) { s.SendCancel(c.lease_id); });
  }
  for (const CloseAction& c : actions.closes) {
    spdlog::warn("executor={} closed: {}", c.conn.executor_id, c.reason);
    streams_.Close(c.conn, c.reason);
  }
  if (actions.durable.empty() && !reply) return;
  std::vector<DurableWriter::Entry> entries;
  entries.reserve(actions.durable.size() + 1);
  bool urgent = false;
  bool durable = false;
  for (DurableOp& op : actions.durable) {
    if (auto* p = std::get_if<PersistAction>(&op)) {
      // Staged now; published once the "finalizing" record before it is
      // durable (result_publisher.h).
      std::string job_id = p->job_id;
      QuickEnded(job_id);
      entries.push_back(
          DurableWriter::AfterCommit{std::move(job_id), publisher_.Begin(std::move(*p))});
      urgent = durable = true;
      continue;
    }
    urgent = urgent || !MayLinger(op);
    const auto* save = std::get_if<SaveJobOp>(&op);
    std::string finished =
        save != nullptr && IsTerminal(save->record().state) ? save->record().id : "";
    if (!finished.empty()) QuickEnded(finished);
    entries.push_back(std::move(op));
    // Watchers learn of the end as soon as it is committed, not at the next tick.
    if (!finished.empty()) {
      entries.push_back(DurableWriter::AfterCommit{
          "", [this, finished](const DurableWriter::Outcome& o) {
            if (!o.abandoned) NotifyFinished(finished);
          }});
    }
  }
  // In the same breath as the records it waits for, so that it is answered
  // with their batch, not the next one.
  if (reply) {
    std::string job_id = reply->view.id;
    entries.push_back(DurableWriter::AfterCommit{
        std::move(job_id),
        [r = *std::move(reply)](const DurableWriter::Outcome& o) mutable {
          if (o.abandoned) {
            r.call->Answer(absl::UnavailableError(
                absl::StrCat("the scheduler stopped before the change was durable (",
                             o.status.message(), "); it did not take effect")));
          } else if (!o.status.ok() && o.whole) {
            r.call->Answer(o.status);
          } else {
            r.call->Answer(std::move(r.view));
          }
        }});
    urgent = true;
  }
  writer_.Add(std::move(entries), urgent, durable, may_wait);
}

void Runtime::AfterCommit(std::function<void()> fn) {
  writer_.Add(
      DurableWriter::AfterCommit{"",
                                 [fn = std::move(fn)](const DurableWriter::Outcome& o) {
                                   if (!o.abandoned) fn();
                                 }},
      /*urgent=*/true);
}

void Runtime::TickLoop() {
  while (true) {
    {
      absl::MutexLock lock(&stop_mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(stop_mu_) { return stopping_; };
      if (AwaitFor(&stop_mu_, stop_cv_, stop, absl::Milliseconds(100))) return;
    }
    // First what bounds the calls' waits: nothing below may hold it up.
    const absl::Time now = clock_->Now();
    faults_.Check(now);
    ExpireCalls(now);
    {
      absl::MutexLock lock(&pollers_mu_);
      for (Poller* p : pollers_) p->Poll();
    }
    absl::MutexLock lock(&mu_);
    Actions actions;
    core_.Tick(CoreNow(), actions);
    Execute(std::move(actions));
  }
}

DurableWriter::Hooks Runtime::WriterHooks() {
  DurableWriter::Hooks hooks;
  hooks.taken = [this](DurableWriter::Batch& batch) { BatchTaken(batch); };
  hooks.before_commit = [this](const StoreWrite& write) {
    return publisher_.SyncBeforeCommit(write);
  };
  // A job whose record the store refused for good fails (the record of its
  // failure is the next batch's); its result is not written.
  hooks.refused = [this](const std::string& job_id, const absl::Status& error) {
    Transition([&](absl::Time now, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      core_.StoreRefused(job_id, std::string(error.message()), now, actions);
    });
  };
  hooks.committed = [this](DurableWriter::Batch& batch,
                           const DurableWriter::Refusals& refused) {
    BatchCommitted(batch, refused);
  };
  return hooks;
}

void Runtime::BatchTaken(DurableWriter::Batch& batch) {
  // A retired job held in the store only: its result's location is in its
  // record (read only when results go with their jobs).
  if (!delete_results_with_jobs_) return;
  for (DurableWriter::Entry& entry : batch) {
    auto* op = std::get_if<DurableOp>(&entry);
    auto* r = op != nullptr ? std::get_if<RetireJobOp>(op) : nullptr;
    if (r == nullptr || !r->result_location.empty()) continue;
    if (absl::StatusOr<std::optional<JobRecord>> rec = store_->LoadJob(r->job_id);
        rec.ok() && rec->has_value()) {
      r->result_location = (*rec)->location;
    }
  }
}

void Runtime::BatchCommitted(DurableWriter::Batch& batch,
                             const DurableWriter::Refusals& refused) {
  // One ack message per executor per commit. A result of a refused job is
  // acked too: it is no longer needed.
  std::map<std::pair<std::string, uint64_t>, std::vector<std::string>> acks;
  std::vector<std::string> retired_results;
  bool finished = false;
  for (DurableWriter::Entry& entry : batch) {
    auto* op = std::get_if<DurableOp>(&entry);
    if (op == nullptr) continue;
    if (auto* a = std::get_if<AckOp>(op)) {
      acks[{a->conn.executor_id, a->conn.generation}].push_back(std::move(a->lease_id));
    } else if (const auto* r = std::get_if<RetireJobOp>(op)) {
      if (delete_results_with_jobs_ && !r->result_location.empty()) {
        retired_results.push_back(r->result_location);
      }
    } else if (const auto* save = std::get_if<SaveJobOp>(op)) {
      finished = finished || IsTerminal(save->record().state);
    }
  }
  if (!retired_results.empty()) DeleteRetiredResults(retired_results);
  // Finished jobs whose last record is now in the store leave memory.
  if (finished) {
    absl::MutexLock lock(&mu_);
    for (const DurableWriter::Entry& entry : batch) {
      const auto* op = std::get_if<DurableOp>(&entry);
      const auto* save = op != nullptr ? std::get_if<SaveJobOp>(op) : nullptr;
      if (save != nullptr && IsTerminal(save->record().state) &&
          !refused.count(save->record().id)) {
        core_.Committed(*save);
      }
    }
  }
  for (auto& entry : acks) {
    std::vector<std::string>& ids = entry.second;
    streams_.Send({entry.first.first, entry.first.second},
                  [&ids](ExecutorStream& s) { s.SendAcks(std::move(ids)); });
  }
}

void Runtime::ResultWritten(const PersistAction& p,
                            const absl::StatusOr<PersistedResult>& written) {
  Transition([&](absl::Time now, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (written.ok()) {
      core_.Persisted(p.job_id, written->location, written->sha256, now, actions);
    } else {
      core_.PersistFailed(p.job_id, std::string(written.status().message()), now,
                          actions);
    }
  });
  // The job has succeeded (its "done" record is queued): watchers need not
  // wait for that commit nor for the sink's Sync before it. A restart after a
  // crash finds the same bytes in the sink; after a power cut that took the
  // file away, it writes them again from the durable "finalizing" record. A
  // failure reaches watchers once committed (a restart could still succeed).
  if (written.ok()) NotifyFinished(p.job_id);
}

CoreSnapshot Runtime::Snapshot() {
  CoreSnapshot snap;
  {
    absl::MutexLock lock(&mu_);
    snap.jobs = core_.JobCountsByQueue();
    snap.stats = core_.Stats();
    snap.counters = core_.counters();
  }
  snap.sink_writes = sink_->writes();
  return snap;
}

}  // namespace tessera::scheduler
