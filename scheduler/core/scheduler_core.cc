#include "scheduler/core/scheduler_core.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "scheduler/core/job_report.h"
#include "shared/json_limits.h"
#include "shared/status_macros.h"

namespace tessera::scheduler {

using json = nlohmann::json;

namespace {

// Deterministic jitter in [0, 1): the core has no randomness of its own.
double JitterUnit(const std::string& job, int64_t shard, int32_t attempt) {
  const size_t h = absl::HashOf(job, shard, attempt);
  return static_cast<double>(h % 1'000'003) / 1'000'003.0;
}

}  // namespace

SchedulerCore::SchedulerCore(CoreConfig config)
    : config_(std::move(config)), policy_(config_), leases_(config_.lease_grace) {}
SchedulerCore::~SchedulerCore() = default;

absl::StatusOr<JobView> SchedulerCore::Submit(const JobSpec& spec,
                                              const std::string& job_id, absl::Time now,
                                              Actions& out, const JobRecord* stored) {
  TESSERA_RETURN_IF_ERROR(ValidateSpec(spec));
  TESSERA_RETURN_IF_ERROR(ValidateSpecLimits(spec, config_));
  TESSERA_ASSIGN_OR_RETURN(RangePartition partition, MakePartition(spec, config_));
  if (!spec.idempotency_key.empty()) {
    auto it = idempotency_.find(spec.idempotency_key);
    if (it != idempotency_.end() &&
        Wall(now) - it->second.created < config_.idempotency_retention) {
      const std::string& key_job = it->second.job_id;
      const Job* existing = FindJob(key_job);
      const JobRecord* record = existing != nullptr ? &existing->record
                                : stored != nullptr && stored->id == key_job ? stored
                                                                             : nullptr;
      if (record == nullptr && InStoreOnly(key_job)) {
        return absl::UnavailableError(
            absl::StrCat("job ", key_job, " (idempotency key \"", spec.idempotency_key,
                         "\") is being read from the store; submit again"));
      }
      if (record != nullptr) {
        // max_parallel and rate_limit may have been changed by UpdateJob since.
        JobSpec original = record->spec;
        original.max_parallel = spec.max_parallel;
        original.rate_limit = spec.rate_limit;
        if (SameSpec(original, spec)) {
          // The same submission again: the same job.
          return existing != nullptr ? View(*existing, now) : FinishedView(*record);
        }
        return absl::AlreadyExistsError(absl::StrCat(
            "spec.idempotency_key \"", spec.idempotency_key, "\" is already used by job ",
            key_job, " with a different spec"));
      }
      // Its job was retired: the key went with it.
      idempotency_.erase(it);
    }
  }
  if (jobs_.count(job_id)) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job_id, " already exists"));
  }
  auto job = std::make_unique<Job>();
  job->record.id = job_id;
  job->record.seq = next_seq_++;
  job->record.spec = spec;
  job->record.created = Wall(now);
  job->created_mono = now;
  job->shards = JobShards(std::move(partition), spec.aggregate);
  job->params_json = spec.params.dump();
  Job* j = job.get();
  jobs_.emplace(job_id, std::move(job));
  by_seq_.emplace(j->record.seq, j);
  active_.push_back(j);
  if (!spec.idempotency_key.empty()) {
    idempotency_[spec.idempotency_key] = {job_id, Wall(now)};
    idempotency_by_time_.emplace(Wall(now), spec.idempotency_key);
  }
  ++counters_.jobs_submitted;
  Save(*j, out);
  Dispatch(now, out);
  CheckInvariants();
  return View(*j, now);
}

absl::StatusOr<JobView> SchedulerCore::Cancel(const std::string& job_id, absl::Time now,
                                              Actions& out) {
  Job* j = FindJob(job_id);
  if (j == nullptr) return NotFound(job_id);
  // A job whose result is being persisted is finished in all but name.
  if (!IsTerminal(j->record.state) && !j->persisting) {
    CancelLeases(*j, out);
    j->record.state = JobState::kCancelled;
    j->record.ended = Wall(now);
    j->record.message = "cancelled";
    Deactivate(*j);
    Save(*j, out);
    Dispatch(now, out);
  }
  CheckInvariants();
  return View(*j, now);
}

absl::StatusOr<JobView> SchedulerCore::RetryFailedShards(
    const std::string& job_id, const std::vector<StoredResult>& results, absl::Time now,
    Actions& out, const JobRecord* stored) {
  Job* j = FindJob(job_id);
  if (j == nullptr && InStoreOnly(job_id)) {
    if (stored == nullptr || stored->id != job_id) {
      return absl::UnavailableError(absl::StrCat(
          "job ", job_id, " is being read from the store; ask again shortly"));
    }
    // Only the failed shards are retried; a job that could not be retried
    // anyway need not come back into memory.
    if (stored->state == JobState::kPartial || stored->state == JobState::kFailed) {
      j = Adopt(*stored, now);
    } else {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " is ", JobStateName(stored->state),
                       "; only PARTIAL or FAILED jobs have failed shards to retry"));
    }
  }
  if (j == nullptr) return NotFound(job_id);
  const JobState s = j->record.state;
  if (s != JobState::kPartial && s != JobState::kFailed) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is ", JobStateName(s),
                     "; only PARTIAL or FAILED jobs have failed shards to retry"));
  }
  // A stored result that cannot be read back refuses the call and changes
  // nothing (the job keeps its persisted result and state).
  for (const StoredResult& r : results) {
    if (JsonTextDepth(r.result_json, config_.max_json_depth) > config_.max_json_depth ||
        !json::accept(r.result_json)) {
      return absl::DataLossError(
          absl::StrCat("job ", job_id, ": the stored result of shard ", r.shard,
                       " cannot be read back; its failed shards cannot be retried"));
    }
  }
  j->record.failed.clear();
  if (absl::Status rebuilt = j->shards.RetryFailed(results, config_.max_json_depth,
                                                   j->record.spec.aggregate);
      !rebuilt.ok()) {
    FailJob(*j, std::string(rebuilt.message()), now, out);
    return rebuilt;
  }
  // Queued again: a concurrency key is honoured like for a new job.
  j->record.state = JobState::kQueued;
  j->record.ended = absl::InfinitePast();
  j->record.message.clear();
  j->record.errors.clear();
  j->persisting = false;
  active_.push_back(j);
  Save(*j, out);
  FoldPrefix(*j, now, out);
  Dispatch(now, out);
  CheckInvariants();
  return View(*j, now);
}

absl::StatusOr<JobView> SchedulerCore::UpdateJob(const std::string& job_id,
                                                 const JobUpdate& update, absl::Time now,
                                                 Actions& out) {
  Job* j = FindJob(job_id);
  if (j == nullptr) return NotFound(job_id);
  if (IsTerminal(j->record.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is ", JobStateName(j->record.state),
                     "; only queued or running jobs can be updated"));
  }
  JobSpec changed = j->record.spec;
  if (update.max_parallel.has_value()) changed.max_parallel = *update.max_parallel;
  if (update.rate_limit.has_value()) changed.rate_limit = *update.rate_limit;
  TESSERA_RETURN_IF_ERROR(ValidateSpec(changed));
  j->tokens = policy_.TokensAt(*j, now);
  j->tokens_at = now;
  j->record.spec = std::move(changed);
  Save(*j, out);
  Dispatch(now, out);
  CheckInvariants();
  return View(*j, now);
}

void SchedulerCore::StoreRefused(const std::string& job_id, const std::string& error,
                                 absl::Time now, Actions& out) {
  Job* j = FindJob(job_id);
  if (j == nullptr || IsTerminal(j->record.state)) return;
  j->persisting = false;
  j->record.finalizing = false;
  j->record.final_bytes.clear();
  FailJob(*j, absl::StrCat("the store cannot keep this job: ", error), now, out);
  Dispatch(now, out);
  CheckInvariants();
}

absl::StatusOr<JobView> SchedulerCore::GetJob(const std::string& job_id,
                                              absl::Time now) const {
  const Job* j = FindJob(job_id);
  if (j == nullptr) return NotFound(job_id);
  return View(*j, now);
}

std::vector<JobView> SchedulerCore::ListJobs(const JobFilter& filter, int64_t before,
                                             int limit, absl::Time now,
                                             int64_t* next) const {
  std::vector<JobView> out;
  *next = -1;
  if (by_seq_.empty()) return out;
  // From the newest job at or below `before`, down.
  auto it = before < 0 ? by_seq_.end() : by_seq_.upper_bound(before);
  while (it != by_seq_.begin()) {
    --it;
    if (static_cast<int>(out.size()) >= limit) {
      *next = it->first;
      break;
    }
    const Job* j = it->second;
    const JobSpec& spec = j->record.spec;
    if (filter.state.has_value() && j->record.state != *filter.state) continue;
    if (!filter.queue.empty() && spec.queue != filter.queue) continue;
    bool labels_match = true;
    for (const auto& [k, v] : filter.labels) {
      auto l = spec.labels.find(k);
      labels_match = labels_match && l != spec.labels.end() && l->second == v;
    }
    if (!labels_match) continue;
    out.push_back(View(*j, now));
  }
  return out;
}

void SchedulerCore::Persisted(const std::string& job_id, const std::string& location,
                              const std::string& sha256, absl::Time now, Actions& out) {
  Job* j = FindJob(job_id);
  if (j == nullptr || !j->persisting) return;
  j->persisting = false;
  j->record.location = location;
  j->record.sha256 = sha256;
  j->record.result_version += 1;
  j->record.finalizing = false;
  j->record.final_bytes.clear();
  j->record.state =
      j->shards.failed().empty() ? JobState::kSucceeded : JobState::kPartial;
  j->record.ended = Wall(now);
  ++counters_.results_persisted;
  Deactivate(*j);
  Save(*j, out);
  Dispatch(now, out);
  CheckInvariants();
}

void SchedulerCore::PersistFailed(const std::string& job_id, const std::string& error,
                                  absl::Time now, Actions& out) {
  Job* j = FindJob(job_id);
  if (j == nullptr || !j->persisting) return;
  j->persisting = false;
  j->record.finalizing = false;
  j->record.final_bytes.clear();
  FailJob(*j, absl::StrCat("persisting the result failed: ", error), now, out);
  CheckInvariants();
}

CoreJob* SchedulerCore::FindJob(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

void SchedulerCore::Accept(Job& j, int64_t shard, json result, absl::Time now,
                           Actions& out) {
  ++counters_.shards_succeeded;
  j.shards.Accept(shard, std::move(result));
  FoldPrefix(j, now, out);
}

void SchedulerCore::FoldPrefix(Job& j, absl::Time now, Actions& out) {
  // Memory holds only the out-of-order window.
  if (absl::Status s = j.shards.FoldPrefix(); !s.ok()) {
    FailJob(j, absl::StrCat("aggregate: ", s.message()), now, out);
    return;
  }
  if (j.shards.AllFolded() && !j.persisting && !IsTerminal(j.record.state)) {
    Finish(j, now, out);
  }
}

void SchedulerCore::AttemptFailed(Job& j, int64_t shard, int32_t attempt,
                                  const std::string& executor, const std::string& message,
                                  bool retryable, absl::Time now, Actions& out) {
  ++counters_.shards_failed;
  if (j.record.errors.size() < static_cast<size_t>(config_.max_errors_kept)) {
    j.record.errors.push_back(
        {shard, j.shards.partition().Bounds(shard), executor, message});
  }
  const int32_t failures = j.shards.CountFailure(shard);
  if (retryable && failures < j.record.spec.retry.max_attempts) {
    const absl::Duration wait = RetryBackoff(j.record.spec.retry, failures,
                                             JitterUnit(j.record.id, shard, attempt));
    j.shards.RetryAt(shard, attempt, now + wait);
    ++counters_.shards_retried;
    Touch(j);
    return;
  }
  ShardOutOfAttempts(j, shard, attempt, message, now, out);
}

void SchedulerCore::ShardOutOfAttempts(Job& j, int64_t shard, int32_t attempts,
                                       const std::string& message, absl::Time now,
                                       Actions& out) {
  const FailedShard& failed = j.shards.Fail(shard, attempts, message);
  const std::string why =
      absl::StrCat("shard ", shard, " failed after ", attempts,
                   attempts == 1 ? " attempt: " : " attempts: ", message);
  if (static_cast<int64_t>(j.shards.failed().size()) > j.record.spec.max_failed_shards) {
    FailJob(j,
            j.record.spec.max_failed_shards == 0
                ? why
                : absl::StrCat(j.shards.failed().size(), " shards failed (more than ",
                               j.record.spec.max_failed_shards, " allowed); last: ", why),
            now, out);
    return;
  }
  // One row, not the whole record again (a job may have many failed shards).
  out.durable.push_back(SaveFailedShardOp{j.record.id, failed});
  Touch(j);
  FoldPrefix(j, now, out);
}

void SchedulerCore::Finish(Job& j, absl::Time now, Actions& out) {
  std::string bytes = ResultDocument(j, Wall(now));
  if (static_cast<int64_t>(bytes.size()) > config_.max_folded_result_bytes) {
    FailJob(j,
            absl::StrCat("the folded result is ", bytes.size(), " bytes; the limit is ",
                         config_.max_folded_result_bytes, " (--max-folded-result-bytes)"),
            now, out);
    return;
  }
  j.persisting = true;
  j.record.finalizing = true;
  j.record.final_bytes = std::move(bytes);
  j.shards.DropFolder();  // the bytes are all that is needed from here on
  Save(j, out);           // "finalizing" is durable before the sink is written
  out.durable.push_back(
      PersistAction{j.record.id, j.record.result_version + 1, j.record.final_bytes});
  Touch(j);
}

void SchedulerCore::FailJob(Job& j, const std::string& message, absl::Time now,
                            Actions& out) {
  CancelLeases(j, out);
  j.record.state = JobState::kFailed;
  j.record.ended = Wall(now);
  j.record.message = message;
  Deactivate(j);
  Save(j, out);
}

void SchedulerCore::Deactivate(Job& j) {
  j.shards.Clear();
  auto it = std::find(active_.begin(), active_.end(), &j);
  if (it != active_.end()) active_.erase(it);
  Touch(j);
}

void SchedulerCore::CancelLeases(Job& j, Actions& out) {
  std::vector<std::string> ids;
  for (const auto& [shard, id] : j.shards.running()) ids.push_back(id);
  for (const std::string& id : ids) {
    out.cancels.push_back({leases_.at(id).executor->conn, id});
    EndLease(id, /*requeue=*/false);
  }
}

void SchedulerCore::Save(Job& j, Actions& out) {
  j.record.shards_succeeded = j.shards.succeeded();
  // An unfinished job's failed shards are rows of their own (one per
  // failure); its finished record lists them, once.
  if (IsTerminal(j.record.state)) {
    for (const auto& [shard, f] : j.shards.failed()) j.record.failed.push_back(f);
  }
  j.record.items_done = j.shards.items_completed();
  out.durable.push_back(SaveJobOp{j.record});
  j.last_saved = std::get<SaveJobOp>(out.durable.back()).ptr.get();
  j.record.failed.clear();
  Index(j);
  Touch(j);
}

void SchedulerCore::Touch(Job& j) { j.version = ++version_; }

JobView SchedulerCore::View(const Job& j, absl::Time now) const {
  const WaitFacts facts{config_, policy_, active_, executors_, known_tasks_};
  return ViewOf(j, leases_, WaitReason(j, facts, now));
}

void SchedulerCore::CheckInvariants() const {
#ifndef NDEBUG
  size_t running = 0;
  for (const Job* j : active_) {
    assert(!IsTerminal(j->record.state));
    running += j->shards.running().size();
    assert(j->shards.folded() <= j->shards.num_shards());
    assert(j->shards.next_shard() <= j->shards.num_shards());
    for (const auto& [shard, id] : j->shards.running()) {
      const Lease& l = leases_.at(id);
      assert(l.job == j && l.shard == shard);
      assert(l.executor->leases.count(id) == 1);
      assert(j->shards.retry().count(shard) == 0);
      assert(!j->shards.IsDone(shard));
    }
  }
  assert(running == leases_.size());
#endif
}

}  // namespace tessera::scheduler
