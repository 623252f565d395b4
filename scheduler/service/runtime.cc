#include "scheduler/service/runtime.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/service/convert.h"
#include "scheduler/service/signed_lease_ids.h"
#include "shared/ids.h"
#include "shared/logging.h"
#include "shared/metrics.h"
#include "shared/sha256.h"

namespace tessera::scheduler {
namespace {

// Sink writes at once: each is mostly waiting for fsyncs, which overlap.
constexpr int kPersistWorkers = 4;
// Reads at once: GetResult (may wait on a remote sink), and GetJob and
// ListJobs of finished jobs (read from the store).
constexpr int kReaders = 4;

// RecentResult keeps this many results of at most this size.
constexpr size_t kRecentResults = 64;
constexpr size_t kRecentResultBytes = 256 << 10;

// A lingering batch (see SetCommitLinger) is committed at once when it holds
// this many items (executors keep at most ~1,000 unacked results each).
constexpr size_t kLingerItems = 512;

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

// What is done with a failed commit (store.h): how it is logged.
std::string CommitError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kResourceExhausted ? "disk full" : "failed";
}

}  // namespace

Runtime::Runtime(CoreConfig config, const Clock* clock, Store* store, ResultSink* sink)
    : config_(config),
      clock_(clock),
      store_(store),
      sink_(sink),
      core_(std::move(config)) {}

Runtime::~Runtime() { Stop(); }

absl::Status Runtime::Recover() {
  // Unfinished jobs whole; finished ones as a few bytes each (their records
  // stay in the store and are read from there when asked for).
  const absl::Time t0 = MonoNow();
  absl::StatusOr<StoredState> state = store_->LoadUnfinished();
  if (!state.ok()) return state.status();
  const absl::Duration load_time = MonoNow() - t0;
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
      state->finished.size(), absl::FormatDuration(MonoNow() - t0),
      absl::FormatDuration(load_time));
  metrics_.JobsRecovered(state->jobs);
  Execute(std::move(actions));
  return absl::OkStatus();
}

void Runtime::Start() {
  ticker_ = std::thread([this] { TickLoop(); });
  writer_ = std::thread([this] { WriterLoop(); });
  for (int i = 0; i < kPersistWorkers; ++i) {
    persisters_.emplace_back([this] { PersistLoop(); });
  }
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
}

absl::Time Runtime::CoreNow() {
  const absl::Time now = clock_->Now();
  core_.SetWallOffset(clock_->WallNow() - now);
  return now;
}

void Runtime::BeginShutdown() {
  absl::MutexLock lock(&writer_mu_);
  shutting_down_ = true;
}

void Runtime::Stop() {
  {
    absl::MutexLock lock(&writer_mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
    linger_cv_.SignalAll();
  }
  // A sink waiting out a store that is down gives up: its jobs stay
  // "finalizing" and the next start writes them (and reads still queued end
  // at once with UNAVAILABLE).
  sink_->Cancel();
  {
    absl::MutexLock lock(&reads_mu_);
    reading_ = false;
  }
  for (std::thread& t : readers_) t.join();
  readers_.clear();
  if (ticker_.joinable()) ticker_.join();
  if (writer_.joinable()) writer_.join();
  for (std::thread& t : persisters_) t.join();
  persisters_.clear();
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
    absl::MutexLock lock(&writer_mu_);
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
    job = core_.Submit(spec, id, CoreNow(), actions, stored ? &*stored : nullptr);
    if (job.ok()) call->SetJob(job->id);  // an idempotent resubmission's is older
    Execute(std::move(actions), AnswerAfterCommit(job, call));
  }
  if (!job.ok()) {
    call->Answer(job.status());
    return;
  }
  spdlog::info("audit: SubmitJob job={} by {} task={} shards={} queue={} name=\"{}\"",
               job->id, caller, spec.task, job->shards.total, spec.queue, spec.name);
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
  // A finished job held in the store only comes back into memory. (This is
  // the writer's thread: nothing commits meanwhile, so the record read is the
  // last one.)
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

absl::StatusOr<JobView> Runtime::GetJob(const std::string& job_id) {
  for (int attempt = 0;; ++attempt) {
    {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<JobView> job = core_.GetJob(job_id, CoreNow());
      if (job.ok() || !core_.InStoreOnly(job_id) || attempt == 2) return job;
    }
    // A finished job: its record is in the store (and retirement may delete
    // it meanwhile: then the core says so).
    absl::StatusOr<std::optional<JobRecord>> r = store_->LoadJob(job_id);
    if (!r.ok()) return r.status();
    // Not finished there: retried since and back in memory; ask the core again.
    if (r->has_value() && IsTerminal((*r)->state)) {
      return SchedulerCore::FinishedView(**r);
    }
  }
}

void Runtime::ReadJob(const std::string& job_id, JobCallback done) {
  // A job in memory (or unknown) is answered at once; a finished one held in
  // the store only is read on a reader thread.
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<JobView> job = core_.GetJob(job_id, CoreNow());
    if (job.ok() || !core_.InStoreOnly(job_id)) {
      done(std::move(job));
      return;
    }
  }
  if (!OnReader([this, job_id, done] { done(GetJob(job_id)); })) {
    done(absl::UnavailableError("the scheduler is not running; ask again shortly"));
  }
}

bool Runtime::OnReader(std::function<void()> fn) {
  absl::MutexLock lock(&reads_mu_);
  if (!reading_) return false;
  reads_.push_back(std::move(fn));
  return true;
}

absl::StatusOr<std::vector<JobView>> Runtime::ListJobs(const JobFilter& filter,
                                                       int64_t before, int limit,
                                                       int64_t* next) {
  *next = -1;
  if (limit <= 0) return std::vector<JobView>();
  // The core's jobs (unfinished ones, and finished ones not yet committed or
  // retried since) and the store's finished records, merged newest first.
  // Submission numbers order both and never change, so a page token stays
  // valid across restarts and while jobs leave memory.
  std::vector<JobView> held;
  int64_t held_next = -1;
  std::set<std::string> superseded;  // the core's view wins over the store's
  bool any_finished;
  std::map<std::string, int64_t> held_seq;  // JobView has no seq
  {
    absl::MutexLock lock(&mu_);
    held = core_.ListJobs(filter, before, limit, CoreNow(), &held_next);
    for (const JobView& v : held) held_seq[v.id] = core_.SeqOf(v.id);
    for (std::string& id : core_.HeldOnceFinished()) superseded.insert(std::move(id));
    any_finished = core_.JobsFinished() > 0;
  }
  std::vector<std::pair<int64_t, JobView>> stored;  // (seq, view), newest first
  int64_t stored_next = -1;                         // the store is unread from here down
  if (any_finished && (!filter.state.has_value() || IsTerminal(*filter.state))) {
    int64_t cursor = before;
    while (true) {
      absl::StatusOr<std::vector<JobRecord>> page =
          store_->ListFinishedJobs(filter, cursor, limit);
      if (!page.ok()) return page.status();
      for (const JobRecord& r : *page) {
        if (!superseded.count(r.id)) {
          stored.emplace_back(r.seq, SchedulerCore::FinishedView(r));
        }
      }
      if (static_cast<int>(page->size()) < limit || page->back().seq <= 1) break;
      cursor = page->back().seq - 1;
      if (static_cast<int>(stored.size()) >= limit) {
        stored_next = cursor;
        break;
      }
    }
  }
  std::vector<std::pair<int64_t, JobView>> merged;
  std::set<std::string> seen;
  for (JobView& v : held) {
    seen.insert(v.id);
    merged.emplace_back(held_seq[v.id], std::move(v));
  }
  for (auto& [seq, v] : stored) {
    if (seen.insert(v.id).second) merged.emplace_back(seq, std::move(v));
  }
  std::sort(merged.begin(), merged.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  // Only what both sources have read down to is certain.
  const int64_t unread = std::max(held_next, stored_next);
  std::vector<JobView> out;
  size_t i = 0;
  for (; i < merged.size() && static_cast<int>(out.size()) < limit; ++i) {
    if (merged[i].first <= unread) break;
    out.push_back(std::move(merged[i].second));
  }
  if (static_cast<int>(out.size()) >= limit) {
    if (i < merged.size() || unread >= 0) *next = merged[i - 1].first - 1;
  } else if (unread >= 0) {
    *next = unread;
  }
  if (*next < 1) *next = -1;
  return out;
}

void Runtime::ReadJobs(
    const JobFilter& filter, int64_t before, int limit,
    std::function<void(absl::StatusOr<std::vector<JobView>>, int64_t)> done) {
  if (!OnReader([this, filter, before, limit, done] {
        int64_t next = -1;
        absl::StatusOr<std::vector<JobView>> jobs =
            ListJobs(filter, before, limit, &next);
        done(std::move(jobs), next);
      })) {
    done(absl::UnavailableError("the scheduler is not running; ask again shortly"), -1);
  }
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

absl::StatusOr<ResultBytes> Runtime::GetResult(const std::string& job_id,
                                               int64_t max_bytes) {
  absl::StatusOr<JobView> job = GetJob(job_id);
  if (!job.ok()) return job.status();
  if (job->result_location.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " is ", JobStateName(job->state),
        "; its result is available once it has SUCCEEDED (or ended PARTIAL)"));
  }
  absl::StatusOr<int64_t> size = sink_->Size(job->result_location);
  if (!size.ok()) return size.status();
  if (*size > max_bytes) return ResultBytes{*std::move(job), "", *size, true};
  absl::StatusOr<std::string> bytes = sink_->Read(job->result_location);
  if (!bytes.ok()) return bytes.status();
  if (Sha256Hex(*bytes) != job->result_sha256) {
    return absl::DataLossError(absl::StrCat("result of job ", job_id, " at ",
                                            job->result_location,
                                            " does not match its sha256"));
  }
  const auto read = static_cast<int64_t>(bytes->size());
  return ResultBytes{*std::move(job), *std::move(bytes), read, false};
}

void Runtime::ReadResult(const std::string& job_id, int64_t max_bytes,
                         std::function<void(absl::StatusOr<ResultBytes>)> done) {
  {
    absl::MutexLock lock(&reads_mu_);
    if (reading_) {
      reads_.push_back([this, job_id, max_bytes, done = std::move(done)] {
        done(GetResult(job_id, max_bytes));
      });
      return;
    }
  }
  done(absl::UnavailableError("the scheduler is not running; ask again shortly"));
}

void Runtime::DeleteRetiredResults(const std::vector<std::string>& locations) {
  absl::MutexLock lock(&reads_mu_);
  if (!reading_) return;  // stopping: the files stay (logged by no one; rare)
  reads_.push_back([this, locations] {
    for (const std::string& location : locations) {
      if (absl::Status s = sink_->Delete(location); !s.ok()) {
        spdlog::warn("retired job's result {} not deleted: {}", location, s.ToString());
      }
    }
  });
}

std::optional<ResultBytes> Runtime::RecentResult(const std::string& job_id,
                                                 int64_t max_bytes) {
  absl::StatusOr<JobView> job = GetJob(job_id);
  if (!job.ok() || job->result_location.empty()) return std::nullopt;
  absl::MutexLock lock(&recent_mu_);
  for (auto it = recent_.rbegin(); it != recent_.rend(); ++it) {
    if (it->job_id != job_id) continue;
    if (it->version != job->result_version) return std::nullopt;
    const auto size = static_cast<int64_t>(it->bytes.size());
    if (size > max_bytes) return ResultBytes{*std::move(job), "", size, true};
    return ResultBytes{*std::move(job), it->bytes, size, false};
  }
  return std::nullopt;
}

void Runtime::ReadLoop() {
  while (true) {
    std::function<void()> read;
    {
      absl::MutexLock lock(&reads_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(reads_mu_) {
        return !reads_.empty() || !reading_;
      };
      reads_mu_.Await(absl::Condition(&ready));
      if (reads_.empty()) return;  // stopping, and nothing is left
      read = std::move(reads_.front());
      reads_.pop_front();
    }
    read();
  }
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
    {
      absl::MutexLock slock(&streams_mu_);
      auto it = streams_.find(conn.executor_id);
      if (it != streams_.end()) {
        // The same executor id on a second stream: the core took the old
        // stream's shards back, so that stream must not run anything more.
        it->second.stream->Close("replaced by a newer connection of the same executor");
      }
      streams_[conn.executor_id] = {conn.generation, stream};
    }
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
  {
    absl::MutexLock slock(&streams_mu_);
    auto it = streams_.find(conn.executor_id);
    if (it != streams_.end() && it->second.generation == conn.generation) {
      streams_.erase(it);
      spdlog::info("executor={} disconnected", conn.executor_id);
    }
  }
  Execute(std::move(actions));
}

void Runtime::OnMessage(const ExecutorConn& conn, v1::ExecutorMessage& m) {
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = CoreNow();
    Actions actions;
    switch (m.msg_case()) {
      case v1::ExecutorMessage::kHeartbeat:
        core_.Heartbeat(conn, now);
        break;
      case v1::ExecutorMessage::kProgress:
        core_.Progress(conn, m.progress().lease_id(), m.progress().done(), now);
        break;
      case v1::ExecutorMessage::kResult:
        core_.Result(conn, m.result().lease_id(), m.result().job_id(), m.result().shard(),
                     std::move(*m.mutable_result()->mutable_result_json()), now, actions,
                     absl::Microseconds(m.result().run_micros()));
        break;
      case v1::ExecutorMessage::kResultBatch:
        for (v1::ShardResult& r : *m.mutable_result_batch()->mutable_results()) {
          core_.Result(conn, r.lease_id(), r.job_id(), r.shard(),
                       std::move(*r.mutable_result_json()), now, actions,
                       absl::Microseconds(r.run_micros()));
        }
        break;
      case v1::ExecutorMessage::kFailure:
        core_.Failure(conn, m.failure().lease_id(), m.failure().message(),
                      m.failure().retryable(), now, actions);
        break;
      case v1::ExecutorMessage::kRelease:
        core_.Release(conn,
                      {m.release().lease_ids().begin(), m.release().lease_ids().end()},
                      now, actions);
        break;
      case v1::ExecutorMessage::kDraining:
        core_.Draining(conn, now, actions);
        break;
      case v1::ExecutorMessage::kHello:
      case v1::ExecutorMessage::MSG_NOT_SET:
        break;
    }
    Execute(std::move(actions));
  }
  if (m.has_failure()) {
    spdlog::warn("executor={} lease={} failed (retryable={}): {}", conn.executor_id,
                 m.failure().lease_id(), m.failure().retryable(), m.failure().message());
  } else if (m.has_draining()) {
    spdlog::info("executor={} is draining", conn.executor_id);
  }
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

void Runtime::Execute(Actions actions, std::optional<CallReply> reply) {
  // Called with mu_ held, so that messages reach each executor in the order
  // the core decided them (an assignment is never overtaken by its cancel).
  // Sends only queue; nothing here blocks.
  if (actions.empty() && !reply) return;
  metrics_.Record(actions);
  for (const RejectedClaim& r : actions.rejected) {
    spdlog::warn("executor={} name={} lease={} refused ({}): {}", r.conn.executor_id,
                 r.executor_name, r.lease_id, r.reason,
                 r.reason == "unknown_lease"
                     ? "this scheduler never issued that lease for the shard"
                     : "another executor holds the shard's lease");
  }
  // One Assign message per executor, cut where it would pass about
  // kMaxAssignMessageBytes.
  struct Outgoing {
    std::vector<v1::SchedulerMessage> messages;
    size_t bytes = 0;  // in messages.back()
  };
  std::map<std::pair<std::string, uint64_t>, Outgoing> assigns;
  for (const AssignAction& a : actions.assigns) {
    Outgoing& o = assigns[{a.conn.executor_id, a.conn.generation}];
    v1::Assignment proto;
    AssignmentToProto(a.assignment, &proto);
    const size_t bytes = ApproxBytes(proto);
    if (o.messages.empty() || (o.bytes > 0 && o.bytes + bytes > kMaxAssignMessageBytes)) {
      o.messages.emplace_back();
      o.bytes = 0;
    }
    o.bytes += bytes;
    *o.messages.back().mutable_assign()->add_assignments() = std::move(proto);
  }
  {
    absl::MutexLock lock(&streams_mu_);
    auto stream_for = [&](const ExecutorConn& c)
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(streams_mu_) -> ExecutorStream* {
      auto it = streams_.find(c.executor_id);
      if (it == streams_.end() || it->second.generation != c.generation) return nullptr;
      return it->second.stream;
    };
    for (auto& [key, outgoing] : assigns) {
      // A missing stream has closed; its Disconnect requeues these shards.
      if (ExecutorStream* s = stream_for({key.first, key.second})) {
        for (v1::SchedulerMessage& msg : outgoing.messages) s->Send(std::move(msg));
      }
    }
    for (const CancelAction& c : actions.cancels) {
      if (ExecutorStream* s = stream_for(c.conn)) {
        v1::SchedulerMessage msg;
        msg.mutable_cancel()->set_lease_id(c.lease_id);
        s->Send(std::move(msg));
      }
    }
    for (const CloseAction& c : actions.closes) {
      spdlog::warn("executor={} closed: {}", c.conn.executor_id, c.reason);
      if (ExecutorStream* s = stream_for(c.conn)) s->Close(c.reason);
      auto it = streams_.find(c.conn.executor_id);
      if (it != streams_.end() && it->second.generation == c.conn.generation) {
        streams_.erase(it);
      }
    }
  }
  if (!actions.durable.empty() || reply) {
    absl::MutexLock lock(&writer_mu_);
    for (DurableOp& op : actions.durable) {
      writer_urgent_ = writer_urgent_ || !MayLinger(op);
      const auto* save = std::get_if<SaveJobOp>(&op);
      const std::string finished =
          save != nullptr && IsTerminal(save->record().state) ? save->record().id : "";
      writer_queue_.push_back(std::move(op));
      // Watchers learn of the end as soon as it is committed, not at the next tick.
      if (!finished.empty()) {
        writer_queue_.push_back([this, finished] { NotifyFinished(finished); });
      }
    }
    // In the same breath as the records it waits for, so that it is answered
    // with their batch, not the next one.
    if (reply) {
      writer_queue_.push_back(*std::move(reply));
      writer_urgent_ = true;
    }
    if (writer_urgent_ || writer_queue_.size() >= kLingerItems) linger_cv_.Signal();
  }
}

void Runtime::AfterCommit(std::function<void()> fn) {
  absl::MutexLock lock(&writer_mu_);
  writer_queue_.push_back(std::move(fn));
  writer_urgent_ = true;
  linger_cv_.Signal();
}

void Runtime::TickLoop() {
  while (true) {
    {
      absl::MutexLock lock(&writer_mu_);
      auto stop = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) { return stopping_; };
      if (AwaitFor(&writer_mu_, stop_cv_, stop, absl::Milliseconds(100))) return;
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

void Runtime::WriterLoop() {
  int failures = 0;  // commits failed in a row
  absl::Time last_compact = clock_->Now();
  // Backoff waited since the shutdown began: Stop gives up on a failing store
  // once it passes the store timeout.
  absl::Duration waited_in_shutdown = absl::ZeroDuration();
  while (true) {
    std::deque<WriterItem> batch;
    {
      absl::MutexLock lock(&writer_mu_);
      // When stopping, the results being persisted still queue their jobs' ends.
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
        return !writer_queue_.empty() || (stopping_ && persists_in_flight_ == 0);
      };
      writer_mu_.Await(absl::Condition(&ready));
      if (writer_queue_.empty()) {  // stopping, and everything is written
        writer_done_ = true;
        return;
      }
      if (!writer_urgent_ && !stopping_ && commit_linger_ > absl::ZeroDuration()) {
        auto flush = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
          return writer_urgent_ || stopping_ || writer_queue_.size() >= kLingerItems;
        };
        AwaitFor(&writer_mu_, linger_cv_, flush, commit_linger_);
      }
      batch.swap(writer_queue_);
      writer_urgent_ = false;
    }
    // Results to persist go to a worker now, to be staged while this batch
    // commits; each is published only once its "finalizing" record (and every
    // result folded into it) would survive a power cut: the commit is durable.
    // (Staging before the writer takes the batch gains nothing: the two
    // fsyncs share one disk.) A batch that failed before holds its tickets.
    bool durable = false;
    for (WriterItem& item : batch) {
      auto* op = std::get_if<DurableOp>(&item);
      if (op != nullptr && std::holds_alternative<PersistAction>(*op)) {
        auto ticket = std::make_shared<PersistTicket>();
        ticket->action = std::get<PersistAction>(std::move(*op));
        item = ticket;
        absl::MutexLock lock(&writer_mu_);
        persist_queue_.push_back(std::move(ticket));
        ++persists_in_flight_;
      }
      durable = durable || std::holds_alternative<std::shared_ptr<PersistTicket>>(item);
    }
    // A retired job held in the store only: its result's location is in its
    // record (read only when results go with their jobs).
    if (delete_results_with_jobs_) {
      for (WriterItem& item : batch) {
        auto* op = std::get_if<DurableOp>(&item);
        auto* r = op != nullptr ? std::get_if<RetireJobOp>(op) : nullptr;
        if (r == nullptr || !r->result_location.empty()) continue;
        if (absl::StatusOr<std::optional<JobRecord>> rec = store_->LoadJob(r->job_id);
            rec.ok() && rec->has_value()) {
          r->result_location = (*rec)->location;
        }
      }
    }
    std::map<std::string, RefusedJob> refused;
    faults_.CommitStarted(clock_->Now());
    absl::Status status = CommitBatch(batch, durable, refused);
    if (!status.ok()) {
      // Nothing is acknowledged until it is durable: keep the batch and try
      // again (executors keep their results meanwhile, callers are answered
      // at their deadline).
      failures = faults_.CommitFailed(status);
      const absl::Duration backoff = FaultBackoff(failures);
      bool stopping;
      {
        absl::MutexLock lock(&writer_mu_);
        stopping = stopping_;
        if (shutting_down_ || stopping_) waited_in_shutdown += backoff;
      }
      if (stopping && waited_in_shutdown > store_timeout_) {
        Abandon(batch, status);
        continue;
      }
      if (failures == 1 || failures == kFailuresBeforeRefusing || failures % 30 == 0) {
        spdlog::error("store commit {} ({} in a row), retrying in {}{}: {}",
                      CommitError(status), failures, absl::FormatDuration(backoff),
                      failures >= kFailuresBeforeRefusing
                          ? "; refusing writes and NOT_SERVING until it passes"
                          : "",
                      status.ToString());
      }
      {
        absl::MutexLock lock(&writer_mu_);
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          writer_queue_.push_front(std::move(*it));
        }
        writer_urgent_ = true;  // it has waited long enough
      }
      WaitUnlessStopping(backoff);
      continue;
    }
    if (const int before = faults_.CommitSucceeded(); before > 0) {
      spdlog::info("store commits succeed again after {} failures", before);
    }
    failures = 0;
    // A job whose record the store refused for good fails (the record of
    // its failure is the next batch's); a call whose change was left out is
    // told why; the job's result is not written.
    for (const auto& [job_id, r] : refused) {
      absl::MutexLock lock(&mu_);
      Actions actions;
      core_.StoreRefused(job_id, std::string(r.error.message()), CoreNow(), actions);
      Execute(std::move(actions));
    }
    // Then what waited for the commit, in order.
    std::map<std::pair<std::string, uint64_t>, v1::SchedulerMessage> acks;
    std::vector<std::string> retired_results;
    for (WriterItem& item : batch) {
      if (auto* fn = std::get_if<std::function<void()>>(&item)) {
        (*fn)();
      } else if (auto* r = std::get_if<CallReply>(&item)) {
        auto it = refused.find(r->view.id);
        if (it != refused.end() && it->second.whole) {
          r->call->Answer(it->second.error);
        } else {
          r->call->Answer(std::move(r->view));
        }
      } else if (auto* t = std::get_if<std::shared_ptr<PersistTicket>>(&item)) {
        const bool dropped = refused.count((*t)->action.job_id) > 0;
        absl::MutexLock lock(&(*t)->mu);
        (*t)->committed = !dropped;
        (*t)->abandoned = dropped;
      } else if (const auto* a = std::get_if<AckOp>(&std::get<DurableOp>(item))) {
        // A result of a refused job is acked too: it is no longer needed.
        acks[{a->conn.executor_id, a->conn.generation}].mutable_ack()->add_lease_ids(
            a->lease_id);
      } else if (const auto* r = std::get_if<RetireJobOp>(&std::get<DurableOp>(item))) {
        if (delete_results_with_jobs_ && !r->result_location.empty()) {
          retired_results.push_back(r->result_location);
        }
      }
    }
    if (!retired_results.empty()) DeleteRetiredResults(retired_results);
    // Finished jobs whose last record is now in the store leave memory.
    {
      absl::MutexLock lock(&mu_);
      for (const WriterItem& item : batch) {
        const auto* op = std::get_if<DurableOp>(&item);
        const auto* save = op != nullptr ? std::get_if<SaveJobOp>(op) : nullptr;
        if (save != nullptr && IsTerminal(save->record().state) &&
            !refused.count(save->record().id)) {
          core_.Committed(*save);
        }
      }
    }
    // The space of deleted rows (compacted results, retired jobs) goes back
    // now and then; SQLite reuses free pages meanwhile anyway.
    if (compact_interval_ > absl::ZeroDuration() &&
        clock_->Now() - last_compact >= compact_interval_) {
      last_compact = clock_->Now();
      if (absl::Status s = store_->Compact(); !s.ok()) {
        spdlog::warn("store compaction failed (retried later): {}", s.ToString());
      }
    }
    if (!acks.empty()) {
      absl::MutexLock lock(&streams_mu_);
      for (auto& [key, msg] : acks) {
        auto it = streams_.find(key.first);
        if (it != streams_.end() && it->second.generation == key.second) {
          it->second.stream->Send(std::move(msg));
        }
      }
    }
  }
}

void Runtime::PersistLoop() {
  while (true) {
    std::shared_ptr<PersistTicket> ticket;
    {
      absl::MutexLock lock(&writer_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
        return !persist_queue_.empty() || writer_done_;
      };
      writer_mu_.Await(absl::Condition(&ready));
      if (persist_queue_.empty()) return;
      ticket = std::move(persist_queue_.front());
      persist_queue_.pop_front();
    }
    Persist(*ticket);
    {
      absl::MutexLock lock(&writer_mu_);
      --persists_in_flight_;
    }
    sink_->Prepare();  // e.g. the file sink's spare files, for the next results
  }
}

void Runtime::Persist(PersistTicket& ticket) {
  const PersistAction& p = ticket.action;
  const absl::Time t0 = MonoNow();
  absl::StatusOr<StagedResult> staged = sink_->Stage(p.job_id, p.version, p.bytes);
  {
    // The "finalizing" record must outlive even a power cut once the sink
    // has the result, or a restart could write a second, different result:
    // publish (and report either outcome) only after the durable commit.
    absl::MutexLock lock(&ticket.mu);
    auto settled = [&ticket]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ticket.mu) {
      return ticket.committed || ticket.abandoned;
    };
    ticket.mu.Await(absl::Condition(&settled));
    if (ticket.abandoned) {
      spdlog::warn("job={} result v{} not written: its record was never committed",
                   p.job_id, p.version);
      return;
    }
  }
  absl::StatusOr<PersistedResult> written = WriteResult(p, staged);
  if (!written.ok() && SinkErrorMayPass(written.status())) {
    // Stopped while retrying: the durable "finalizing" record makes the next
    // start write the same bytes.
    spdlog::warn(
        "job={} result v{} not written before stopping ({}); the next start "
        "writes it",
        p.job_id, p.version, written.status().ToString());
    return;
  }
  metrics_.ResultPersisted(MonoNow() - t0, written.ok());
  if (persist_delay_ > absl::ZeroDuration()) absl::SleepFor(persist_delay_);
  {
    absl::MutexLock lock(&mu_);
    Actions actions;
    if (written.ok()) {
      core_.Persisted(p.job_id, written->location, written->sha256, CoreNow(), actions);
    } else {
      core_.PersistFailed(p.job_id, std::string(written.status().message()), CoreNow(),
                          actions);
    }
    Execute(std::move(actions));
  }
  // The job has succeeded (its "done" record is queued): watchers need not
  // wait for that commit nor for the sink's Sync before it. A restart after a
  // crash finds the same bytes in the sink; after a power cut that took the
  // file away, it writes them again from the durable "finalizing" record. A
  // failure reaches watchers once committed (a restart could still succeed).
  if (written.ok() && p.bytes.size() <= kRecentResultBytes) {
    absl::MutexLock lock(&recent_mu_);
    recent_.push_back({p.job_id, p.version, p.bytes});
    if (recent_.size() > kRecentResults) recent_.pop_front();
  }
  if (written.ok()) NotifyFinished(p.job_id);
  if (written.ok()) {
    spdlog::info("job={} finished; result v{} persisted to {} sha256={}", p.job_id,
                 p.version, written->location, written->sha256);
  } else {
    spdlog::error("job={} failed: persisting the result: {}", p.job_id,
                  written.status().ToString());
  }
}

std::vector<prometheus::MetricFamily> Runtime::CollectMetrics() {
  CoreSnapshot snap;
  {
    absl::MutexLock lock(&mu_);
    snap.jobs = core_.JobCountsByQueue();
    snap.stats = core_.Stats();
    snap.counters = core_.counters();
  }
  snap.sink_writes = sink_->writes();
  std::vector<prometheus::MetricFamily> families = metrics_.Collect(snap);
  for (prometheus::MetricFamily& f : sink_->CollectMetrics())
    families.push_back(std::move(f));
  return families;
}

}  // namespace tessera::scheduler
