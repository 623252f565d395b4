// SchedulerCore's executor side: connections, results and failures, leases,
// time passing, and dispatch (the policy decides, this applies).
#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/core/scheduler_core.h"
#include "shared/json_limits.h"

namespace tessera::scheduler {

using json = nlohmann::json;

absl::Status SchedulerCore::CheckIdentity(const ExecutorHello& hello) const {
  auto it = executor_identity_.find(hello.executor_id);
  if (it == executor_identity_.end() || it->second == hello.identity) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "executor id \"", hello.executor_id, "\" belongs to \"", it->second, "\"; \"",
      hello.identity.empty() ? "anonymous" : hello.identity,
      "\" may not take it over (use another --name or its own credentials)"));
}

ExecutorConn SchedulerCore::Connect(const ExecutorHello& hello, absl::Time now,
                                    Actions& out) {
  if (!hello.identity.empty()) {
    // Names learned from peers are bounded: past the cap, the oldest-sorting
    // binding of an executor that is not connected is forgotten.
    constexpr size_t kMaxBindings = 65536;
    if (executor_identity_.size() >= kMaxBindings &&
        !executor_identity_.count(hello.executor_id)) {
      for (auto b = executor_identity_.begin(); b != executor_identity_.end(); ++b) {
        if (!executors_.count(b->first)) {
          executor_identity_.erase(b);
          break;
        }
      }
    }
    executor_identity_[hello.executor_id] = hello.identity;
  }
  auto it = executors_.find(hello.executor_id);
  if (it != executors_.end()) {
    // The same executor on a new stream: the old stream is gone or going.
    DropExecutor(*it->second, now, out);
  }
  auto owned = std::make_unique<Executor>();
  Executor& e = *owned;
  e.conn = ExecutorConn{hello.executor_id, next_generation_++};
  e.hello = hello;
  e.tasks.insert(hello.tasks.begin(), hello.tasks.end());
  e.queues.insert(hello.queues.begin(), hello.queues.end());
  if (e.queues.empty()) e.queues.insert("default");
  e.connected = now;
  e.last_seen = now;
  // Every task ever advertised, for "no executor runs task X" messages;
  // bounded, as it is learned from peers.
  constexpr size_t kMaxKnownTasks = 4096;
  for (const std::string& t : hello.tasks) {
    if (known_tasks_.size() >= kMaxKnownTasks) break;
    known_tasks_.insert(t);
  }
  executors_[hello.executor_id] = std::move(owned);
  ++version_;
  // Shards it still runs: adopted when open and unclaimed, else cancelled.
  for (const HeldShard& h : hello.held) {
    if (!leases_.Issued(h.lease_id, h.job_id, h.shard, hello.identity)) {
      // A claim on a shard this scheduler never leased out: refused, and the
      // executor told to stop it.
      ++counters_.results_rejected_unknown_lease;
      out.rejected.push_back({e.conn, e.hello.name, h.lease_id, "unknown_lease"});
      out.cancels.push_back({e.conn, h.lease_id});
      continue;
    }
    Job* j = FindJob(h.job_id);
    const bool open = j != nullptr && !IsTerminal(j->record.state) && !j->persisting &&
                      h.shard >= 0 && h.shard < j->shards.num_shards() &&
                      !j->shards.IsDone(h.shard) && !j->shards.running().count(h.shard) &&
                      !leases_.contains(h.lease_id);
    if (!open) {
      out.cancels.push_back({e.conn, h.lease_id});
      continue;
    }
    j->shards.Claim(h.shard);
    AddLease(*j, e, h.shard, std::max(1, h.attempt), h.lease_id, now, out);
  }
  // Shards it ran before and does not claim now are not coming back: lost at
  // once, not after the grace.
  std::vector<Job*> left_behind;
  for (Job* j : active_) {
    if (j->shards.AbandonDetached(hello.executor_id, now)) left_behind.push_back(j);
  }
  for (Job* j : left_behind) LoseDetached(*j, now, out);
  Dispatch(now, out);
  CheckInvariants();
  return e.conn;
}

void SchedulerCore::Disconnect(const ExecutorConn& conn, absl::Time now, Actions& out) {
  Executor* e = FindExecutor(conn);
  if (e == nullptr) return;
  DropExecutor(*e, now, out);
  Dispatch(now, out);
  CheckInvariants();
}

void SchedulerCore::Heartbeat(const ExecutorConn& conn, absl::Time now) {
  if (Executor* e = FindExecutor(conn)) e->last_seen = now;
}

void SchedulerCore::Progress(const ExecutorConn& conn, const std::string& lease_id,
                             int64_t done, absl::Time now) {
  Lease* l = leases_.Find(conn, lease_id);
  if (l == nullptr) return;
  l->executor->last_seen = now;
  l->progress = std::clamp<int64_t>(done, 0, l->job->shards.partition().Items(l->shard));
  Touch(*l->job);
}

void SchedulerCore::Result(const ExecutorConn& conn, const std::string& lease_id,
                           const std::string& job_id, int64_t shard,
                           std::string result_json, absl::Time now, Actions& out,
                           absl::Duration reported_run_time) {
  Executor* e = FindExecutor(conn);
  if (e == nullptr) {
    ++counters_.results_dropped;  // a replaced connection; the executor re-sends
    return;
  }
  e->last_seen = now;
  Job* j = nullptr;
  int32_t attempt = 1;
  std::optional<absl::Duration> run_time;
  if (Lease* l = leases_.Find(conn, lease_id)) {
    j = l->job;
    shard = l->shard;
    attempt = l->attempt;
    run_time = now - l->assigned;
    EndLease(lease_id, /*requeue=*/false);
  } else {
    // No live lease: accept it if the shard is still open (work done while
    // the scheduler restarted or the stream was down is not redone).
    j = FindJob(job_id);
    const bool open = j != nullptr && !IsTerminal(j->record.state) && !j->persisting &&
                      shard >= 0 && shard < j->shards.num_shards() &&
                      !j->shards.IsDone(shard);
    if (!open) {
      ++counters_.results_dropped;
      out.durable.push_back(AckOp{conn, lease_id});  // no longer needed
      return;
    }
    const char* refused = nullptr;
    if (!leases_.Issued(lease_id, job_id, shard, e->hello.identity)) {
      // Not a lease this scheduler ever issued for this shard: forged.
      ++counters_.results_rejected_unknown_lease;
      refused = "unknown_lease";
    } else if (j->shards.running().count(shard)) {
      // Another executor holds the shard's lease: its lease is never cancelled
      // for a result that comes without one.
      ++counters_.results_rejected_leased_to_another;
      refused = "leased_to_another";
    }
    if (refused != nullptr) {
      // Acked, so that an honest sender forgets it.
      out.rejected.push_back({conn, e->hello.name, lease_id, refused});
      out.durable.push_back(AckOp{conn, lease_id});
      return;
    }
    j->shards.Claim(shard);
    ++counters_.results_adopted;
  }
  ++e->completed;
  // A job with a shard timeout keeps the minimal prefetch: its timeout runs
  // from the assignment, so a long queue on the executor would eat into it.
  if (reported_run_time > absl::ZeroDuration() &&
      j->record.spec.shard_timeout == absl::ZeroDuration()) {
    // The executor's own measure, without the time the shard waited in its
    // prefetch queue (which the lease time includes). A slower shard counts at
    // once (fewer are handed out ahead); faster ones only bit by bit.
    const double x = absl::ToDoubleSeconds(reported_run_time);
    j->run_seconds = x > j->run_seconds ? x : 0.9 * j->run_seconds + 0.1 * x;
  }
  // Acked either way: the executor must forget it (after the commit of what
  // the core decided, as every ack).
  // Bounded before anything parses, copies or folds it.
  std::string refused;
  json parsed;
  if (static_cast<int64_t>(result_json.size()) > config_.max_result_bytes) {
    refused = absl::StrCat("result is ", result_json.size(), " bytes; the limit is ",
                           config_.max_result_bytes, " (--max-result-bytes)");
  } else if (JsonTextDepth(result_json, config_.max_json_depth) >
             config_.max_json_depth) {
    refused = absl::StrCat("result nests deeper than ", config_.max_json_depth,
                           " levels (the limit, --max-json-depth)");
  } else {
    parsed = json::parse(result_json, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      refused = "result is not a JSON object";
    }
  }
  if (!refused.empty()) {
    if (run_time) out.shard_events.push_back({j->record.spec.task, "failed", *run_time});
    out.durable.push_back(AckOp{conn, lease_id});
    AttemptFailed(*j, shard, attempt, e->hello.name, refused, /*retryable=*/false, now,
                  out);
  } else {
    if (run_time)
      out.shard_events.push_back({j->record.spec.task, "succeeded", *run_time});
    out.durable.push_back(SaveResultOp{j->record.id, shard, std::move(result_json)});
    out.durable.push_back(AckOp{conn, lease_id});
    Accept(*j, shard, std::move(parsed), now, out);
  }
  Dispatch(now, out);
  CheckInvariants();
}

void SchedulerCore::Failure(const ExecutorConn& conn, const std::string& lease_id,
                            const std::string& message, bool retryable, absl::Time now,
                            Actions& out) {
  Lease* l = leases_.Find(conn, lease_id);
  if (l == nullptr) {
    ++counters_.results_dropped;
    return;
  }
  Job* j = l->job;
  const int64_t shard = l->shard;
  const int32_t attempt = l->attempt;
  l->executor->last_seen = now;
  const std::string executor = l->executor->hello.name;
  out.shard_events.push_back({j->record.spec.task, "failed", now - l->assigned});
  EndLease(lease_id, /*requeue=*/false);
  AttemptFailed(*j, shard, attempt, executor, message, retryable, now, out);
  Dispatch(now, out);
  CheckInvariants();
}

void SchedulerCore::Release(const ExecutorConn& conn, const std::vector<std::string>& ids,
                            absl::Time now, Actions& out) {
  for (const std::string& id : ids) {
    Lease* l = leases_.Find(conn, id);
    if (l == nullptr) continue;
    ++counters_.shards_requeued;
    // Released shards go back at once; only failures use up attempts.
    EndLease(id, /*requeue=*/true);
  }
  Dispatch(now, out);
  CheckInvariants();
}

void SchedulerCore::Draining(const ExecutorConn& conn, absl::Time now, Actions& out) {
  if (Executor* e = FindExecutor(conn)) {
    e->draining = true;
    e->last_seen = now;
    ++version_;
  }
  Dispatch(now, out);
}

void SchedulerCore::Tick(absl::Time now, Actions& out) {
  std::vector<Executor*> expired;
  for (auto& [id, e] : executors_) {
    if (now - e->last_seen > config_.heartbeat_timeout) expired.push_back(e.get());
  }
  for (Executor* e : expired) {
    out.closes.push_back(
        {e->conn,
         absl::StrCat("no heartbeat for ", absl::FormatDuration(now - e->last_seen))});
    ++counters_.executors_expired;
    DropExecutor(*e, now, out);
  }
  // Detached shards past their grace count their loss in Dispatch, below.
  for (const std::string& id : leases_.Overdue(now)) {
    Lease* l = &leases_.at(id);
    Job* j = l->job;
    const int64_t shard = l->shard;
    const int32_t attempt = l->attempt;
    const std::string executor = l->executor->hello.name;
    out.cancels.push_back({l->executor->conn, id});
    out.shard_events.push_back({j->record.spec.task, "timed_out", now - l->assigned});
    ++counters_.leases_expired;
    EndLease(id, /*requeue=*/false);
    AttemptFailed(*j, shard, attempt, executor,
                  absl::StrCat("shard timed out after ",
                               absl::FormatDuration(j->record.spec.shard_timeout)),
                  /*retryable=*/true, now, out);
  }
  Dispatch(now, out);
  Retire(now, out);
  ExpireIdempotencyKeys(now);
  CheckInvariants();
}

std::vector<ExecutorView> SchedulerCore::ListExecutors() const {
  std::vector<ExecutorView> out;
  for (const auto& [id, e] : executors_) {
    out.push_back({e->conn.executor_id, e->hello.name,
                   std::vector<std::string>(e->tasks.begin(), e->tasks.end()),
                   e->hello.slots, static_cast<int32_t>(e->leases.size()),
                   e->hello.version, e->draining, Wall(e->connected), Wall(e->last_seen),
                   e->completed,
                   std::vector<std::string>(e->queues.begin(), e->queues.end())});
  }
  return out;
}

QueueStats SchedulerCore::Stats() const {
  QueueStats s;
  for (const Job* j : active_) {
    (j->record.state == JobState::kQueued ? s.jobs_queued : s.jobs_running)++;
    s.shards_running += static_cast<int64_t>(j->shards.running().size());
    const int64_t pending = j->shards.pending();
    s.shards_pending += pending;
    s.pending_by_queue[j->record.spec.queue] += pending;
  }
  for (const auto& [id, e] : executors_) {
    ++s.executors;
    s.slots_total += e->hello.slots;
    s.slots_busy +=
        std::min<int32_t>(e->hello.slots, static_cast<int32_t>(e->leases.size()));
  }
  return s;
}

CoreExecutor* SchedulerCore::FindExecutor(const ExecutorConn& conn) {
  auto it = executors_.find(conn.executor_id);
  if (it == executors_.end() || it->second->conn.generation != conn.generation) {
    return nullptr;
  }
  return it->second.get();
}

void SchedulerCore::Dispatch(absl::Time now, Actions& out) {
  // Shards whose executor's grace is over count their loss before they can be
  // handed out again (the crash-loop guard), whatever event dispatches them.
  std::vector<Job*> with_detached;
  for (Job* j : active_) {
    if (j->shards.HasLost(now)) with_detached.push_back(j);
  }
  for (Job* j : with_detached) LoseDetached(*j, now, out);
  // The most any active job lets an executor hold: executors holding that
  // many are passed over without looking for a job (with 1,000 executors,
  // most are).
  const double shortest = DispatchPolicy::ShortestRunSeconds(active_);
  bool assigned = true;
  while (assigned && !active_.empty()) {
    assigned = false;
    for (auto& [id, e] : executors_) {
      if (e->draining || !WantsMore(*e, policy_.Prefetch(shortest, e->hello.slots)))
        continue;
      const size_t cursor = rr_cursor_;
      Job* j = NextJobFor(*e, now);
      if (j == nullptr) continue;
      if (!WantsMore(*e, policy_.Prefetch(j->run_seconds, e->hello.slots))) {
        rr_cursor_ = cursor;  // not this executor's turn after all
        continue;
      }
      AssignOne(*j, *e, now, out);
      assigned = true;
    }
  }
}

CoreJob* SchedulerCore::NextJobFor(const Executor& e, absl::Time now) {
  std::optional<DispatchPolicy::Pick> pick =
      policy_.NextJobFor(e, active_, rr_cursor_, now);
  if (!pick.has_value()) return nullptr;
  rr_cursor_ = pick->cursor;
  return active_[pick->index];
}

bool SchedulerCore::WantsMore(Executor& e, int64_t prefetch) {
  const DispatchPolicy::Want want = policy_.WantsMore(e, prefetch);
  e.refilling = want.refilling;
  return want.more;
}

void SchedulerCore::AssignOne(Job& j, Executor& e, absl::Time now, Actions& out) {
  const auto [shard, attempt] = j.shards.TakeNext(now);
  const std::string id = leases_.Mint(j.record.id, shard, attempt, e.hello.identity);
  if (j.record.spec.rate_limit > 0) {
    j.tokens = policy_.TokensAt(j, now) - 1.0;
    j.tokens_at = now;
  }
  AddLease(j, e, shard, attempt, id, now, out);
  ++j.assignments;
  ++counters_.shards_dispatched;
  const ShardBounds bounds = j.shards.partition().Bounds(shard);
  std::string items_json;
  if (j.record.spec.has_items) {
    json batch = json::array();
    for (int64_t i = bounds.start; i < bounds.end; ++i)
      batch.push_back(j.record.spec.items[i]);
    items_json = batch.dump();
  }
  out.assigns.push_back(
      {e.conn,
       {id, j.record.id, shard, j.record.spec.task, j.params_json, bounds, attempt,
        j.record.spec.shard_timeout, std::move(items_json)}});
}

void SchedulerCore::AddLease(Job& j, Executor& e, int64_t shard, int32_t attempt,
                             const std::string& id, absl::Time now, Actions& out) {
  leases_.Add(id, j, shard, e, attempt, now);
  if (j.record.state == JobState::kQueued) {
    j.record.state = JobState::kRunning;
    if (j.record.started == absl::InfinitePast()) j.record.started = Wall(now);
    out.job_starts.push_back(
        {j.record.spec.task, j.record.spec.queue, now - j.created_mono});
    Save(j, out);
  }
  Touch(j);
}

void SchedulerCore::EndLease(const std::string& lease_id, bool requeue) {
  if (Job* j = leases_.End(lease_id, requeue)) Touch(*j);
}

void SchedulerCore::DropExecutor(Executor& e, absl::Time now, Actions& out) {
  std::vector<std::string> ids(e.leases.begin(), e.leases.end());
  for (const std::string& id : ids) {
    Lease* l = &leases_.at(id);
    Job* j = l->job;
    const int64_t shard = l->shard;
    const int32_t attempt = l->attempt;
    ++counters_.shards_requeued;
    EndLease(id, /*requeue=*/true);
    // A reconnect is not a loss: the shard waits for its executor to
    // re-attach (its hello claims it, or its result comes) within the grace;
    // LoseDetached counts the loss after that.
    j->shards.Detach(shard, attempt, now + config_.reattach_grace, e.conn.executor_id);
  }
  executors_.erase(e.conn.executor_id);
  ++version_;
}

void SchedulerCore::LoseDetached(Job& j, absl::Time now, Actions& out) {
  for (const auto& [shard, attempt] : j.shards.TakeLost(now)) {
    // Losing an executor costs no attempt, but a shard that keeps losing
    // them is likely what kills them.
    const int32_t losses = j.shards.CountLoss(shard);
    if (losses >= config_.max_executor_losses && !IsTerminal(j.record.state) &&
        j.shards.QueuedAgain(shard)) {
      ShardOutOfAttempts(
          j, shard, attempt,
          absl::StrCat("lost ", losses,
                       " executors while running this shard (crash loop?)"),
          now, out);
    }
  }
}

}  // namespace tessera::scheduler
