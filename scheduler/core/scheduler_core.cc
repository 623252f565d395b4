#include "scheduler/core/scheduler_core.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "shared/status_macros.h"

namespace tessera::scheduler {

using json = nlohmann::json;

namespace {

// Item counts of ranges wider than INT64_MAX saturate instead of wrapping.
int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t out;
  return __builtin_add_overflow(a, b, &out) ? std::numeric_limits<int64_t>::max() : out;
}

// Deterministic jitter in [0, 1): the core has no randomness of its own.
double JitterUnit(const std::string& job, int64_t shard, int32_t attempt) {
  const size_t h = absl::HashOf(job, shard, attempt);
  return static_cast<double>(h % 1'000'003) / 1'000'003.0;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

// Limits for a record read back: accepted once, accepted again.
CoreConfig Unlimited(CoreConfig config) {
  config.max_shards_per_job = std::numeric_limits<int64_t>::max();
  config.max_items_per_job = std::numeric_limits<int64_t>::max();
  config.max_json_depth = 1000;
  config.max_item_bytes = std::numeric_limits<int64_t>::max();
  return config;
}

// Items done of a finished record; one written before records kept the
// count derives it from the state.
int64_t FinishedItemsDone(const JobRecord& r, const RangePartition& p) {
  if (r.items_done >= 0) return r.items_done;
  if (r.state != JobState::kSucceeded && r.state != JobState::kPartial) return 0;
  int64_t done = p.TotalItems();
  for (const FailedShard& f : r.failed) {
    if (f.shard >= 0 && f.shard < p.num_shards()) done -= p.Items(f.shard);
  }
  return done;
}

}  // namespace

struct SchedulerCore::Job {
  JobRecord record;  // what is stored (state, times, errors...)
  RangePartition partition;
  std::string params_json;
  int64_t next_shard = 0;  // [next_shard, n) never dispatched
  struct Pending {
    int32_t attempts = 0;  // assignments so far
    absl::Time not_before = absl::InfinitePast();
  };
  std::map<int64_t, Pending> retry;     // shards to dispatch again, lowest first
  std::map<int64_t, int32_t> failures;  // shard -> failed attempts (open shards)
  std::map<int64_t, int32_t> losses;    // shard -> executors lost while running it
  // Shards whose executor went away (stream closed, heartbeats missed) while
  // running them: held for it to re-attach until the time given, and only
  // then counted as a loss and dispatched again.
  struct Detached {
    absl::Time until;
    std::string executor_id;
  };
  std::map<int64_t, Detached> detached;
  std::map<int64_t, std::string> running;  // shard -> lease id
  std::map<int64_t, json> buffered;        // results waiting for the fold prefix
  std::map<int64_t, FailedShard> failed;   // out of attempts (continue policy)
  int64_t folded = 0;                      // [0, folded) are folded or failed
  Folder folder;
  int64_t succeeded = 0;
  int64_t items_completed = 0;
  int64_t assignments = 0;
  std::set<std::string> executors_used;
  bool persisting = false;
  absl::Time hold_until = absl::InfinitePast();  // re-attach grace after restore
  // When the job was submitted, on the monotonic clock (record.created is wall
  // time); restored jobs count from their restore less their wall-clock age.
  absl::Time created_mono = absl::InfinitePast();
  double tokens = 1;  // rate limit: shards that may start now
  absl::Time tokens_at = absl::InfinitePast();
  uint64_t version = 0;
  // Moving average of the run times executors report (0: none yet); sizes
  // the prefetch for this job's shards.
  double run_seconds = 0;
  // What Index last counted: the state, and the key in finished_ if any.
  std::optional<JobState> counted;
  std::optional<absl::Time> retire_at;
  // The record of the last Save (identity only): when the store has
  // committed it and the job is finished, the job leaves memory.
  const void* last_saved = nullptr;
  // Finished at some point while held: the store may hold a finished record.
  bool once_finished = false;
};

struct SchedulerCore::Executor {
  ExecutorConn conn;
  ExecutorHello hello;
  std::set<std::string> tasks;
  std::set<std::string> queues;
  std::set<std::string> leases;
  bool draining = false;
  // Being topped up to its slots plus the prefetch (see WantsMore).
  bool refilling = false;
  absl::Time connected;
  absl::Time last_seen;
  int64_t completed = 0;
};

struct SchedulerCore::Lease {
  std::string id;
  Job* job = nullptr;
  int64_t shard = 0;
  Executor* executor = nullptr;
  int32_t attempt = 0;
  int64_t progress = 0;
  absl::Time assigned;
  absl::Time deadline = absl::InfiniteFuture();
};

SchedulerCore::SchedulerCore(CoreConfig config) : config_(std::move(config)) {}
SchedulerCore::~SchedulerCore() = default;

// ---- jobs ----

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
  job->partition = partition;
  job->params_json = spec.params.dump();
  job->folder = Folder(spec.aggregate);
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

void SchedulerCore::Restore(
    const std::vector<JobRecord>& records,
    const std::map<std::string, std::vector<StoredResult>>& results, absl::Time now,
    Actions& out, const std::map<std::string, std::vector<FailedShard>>& failed) {
  static const std::vector<StoredResult> kNone;
  for (const JobRecord& r : records) {
    CoreConfig unlimited = config_;  // accepted once, accepted again
    unlimited.max_shards_per_job = std::numeric_limits<int64_t>::max();
    unlimited.max_items_per_job = std::numeric_limits<int64_t>::max();
    unlimited.max_json_depth = 1000;
    unlimited.max_item_bytes = std::numeric_limits<int64_t>::max();
    auto partition = MakePartition(r.spec, unlimited);
    if (!partition.ok() || jobs_.count(r.id)) continue;
    auto job = std::make_unique<Job>();
    job->record = r;
    job->partition = *partition;
    job->params_json = r.spec.params.dump();
    job->created_mono = now - std::max(absl::ZeroDuration(), Wall(now) - r.created);
    Job* j = job.get();
    jobs_.emplace(r.id, std::move(job));
    if (!by_seq_.emplace(r.seq, j).second) {
      // Two records with one submission number (a damaged store): the later
      // one gets a fresh number, so that listing shows both.
      j->record.seq = by_seq_.rbegin()->first + 1;
      by_seq_.emplace(j->record.seq, j);
    }
    next_seq_ = std::max(next_seq_, j->record.seq + 1);
    if (!r.spec.idempotency_key.empty() &&
        Wall(now) - r.created < config_.idempotency_retention) {
      idempotency_[r.spec.idempotency_key] = {r.id, r.created};
      idempotency_by_time_.emplace(r.created, r.spec.idempotency_key);
    }
    auto keep_failed = [&](const FailedShard& f) {
      // A damaged record may name a shard the job does not have (found by
      // tests/fuzz): Rebuild would count up to it.
      if (f.shard >= 0 && f.shard < j->partition.num_shards()) j->failed[f.shard] = f;
    };
    for (const FailedShard& f : r.failed) keep_failed(f);
    // An unfinished job's failed shards are rows of their own.
    if (auto it = failed.find(r.id); it != failed.end() && !IsTerminal(r.state)) {
      for (const FailedShard& f : it->second) keep_failed(f);
    }
    j->record.failed.clear();  // j->failed is the list from here on
    Index(*j);
    if (IsTerminal(r.state)) {
      j->next_shard = j->partition.num_shards();
      j->folded = j->partition.num_shards();
      j->succeeded = r.shards_succeeded;
      j->items_completed = FinishedItemsDone(r, j->partition);
      j->once_finished = true;
      continue;
    }
    auto it = results.find(r.id);
    absl::Status rebuilt = Rebuild(*j, it == results.end() ? kNone : it->second);
    if (!rebuilt.ok() && !r.finalizing) {
      FailJob(*j, std::string(rebuilt.message()), now, out);
      continue;
    }
    if (r.finalizing) {
      // The sink may or may not have the bytes: persist them again (the
      // writer skips the write when the sink already holds them).
      j->persisting = true;
      j->folder = Folder();
      out.durable.push_back(
          PersistAction{r.id, std::max(1, r.result_version + 1), r.final_bytes});
    }
    j->hold_until = now + config_.reattach_grace;
    active_.push_back(j);
  }
  for (Job* j : active_) {
    if (!j->persisting) FoldPrefix(*j, now, out);
  }
  CheckInvariants();
}

void SchedulerCore::RestoreFinished(const std::vector<FinishedJob>& finished,
                                    int64_t max_seq, absl::Time now) {
  next_seq_ = std::max(next_seq_, max_seq + 1);
  for (const FinishedJob& f : finished) {
    next_seq_ = std::max(next_seq_, f.seq + 1);
    if (!IsTerminal(f.state) || jobs_.count(f.id) || finished_info_.count(f.id)) continue;
    auto& by_state = counts_[f.queue];
    ++by_state[f.state];
    JobRecord times;
    times.created = f.created;
    times.ended = f.ended;
    const absl::Time retire_at = RetireAt(times);
    finished_.insert({retire_at, f.id});
    finished_info_.emplace(
        f.id, FinishedEntry{retire_at, &counts_.find(f.queue)->first, f.state});
    if (!f.idempotency_key.empty() &&
        Wall(now) - f.created < config_.idempotency_retention) {
      auto k = idempotency_.find(f.idempotency_key);
      if (k == idempotency_.end() || k->second.created < f.created) {
        idempotency_[f.idempotency_key] = {f.id, f.created};
        idempotency_by_time_.emplace(f.created, f.idempotency_key);
      }
    }
  }
}

bool SchedulerCore::Committed(const SaveJobOp& op) {
  Job* j = FindJob(op.record().id);
  if (j == nullptr || j->last_saved != op.ptr.get() || !IsTerminal(j->record.state) ||
      j->persisting || !j->running.empty() || !j->retire_at.has_value()) {
    return false;
  }
  // Finished, no leases, not active: nothing points at it but these maps.
  if (auto it = by_seq_.find(j->record.seq); it != by_seq_.end() && it->second == j) {
    by_seq_.erase(it);
  }
  jobs_.erase(op.record().id);
  ++version_;
  return true;
}

int64_t SchedulerCore::SeqOf(const std::string& job_id) const {
  const Job* j = FindJob(job_id);
  return j == nullptr ? -1 : j->record.seq;
}

bool SchedulerCore::InStoreOnly(const std::string& job_id) const {
  return finished_info_.count(job_id) > 0 && jobs_.count(job_id) == 0;
}

std::vector<std::string> SchedulerCore::HeldOnceFinished() const {
  std::vector<std::string> out;
  for (const auto& [id, j] : jobs_) {
    if (j->once_finished) out.push_back(id);
  }
  return out;
}

std::optional<std::string> SchedulerCore::IdempotentJobInStore(const JobSpec& spec,
                                                               absl::Time now) const {
  if (spec.idempotency_key.empty()) return std::nullopt;
  auto it = idempotency_.find(spec.idempotency_key);
  if (it == idempotency_.end() ||
      Wall(now) - it->second.created >= config_.idempotency_retention ||
      !InStoreOnly(it->second.job_id)) {
    return std::nullopt;
  }
  return it->second.job_id;
}

JobView SchedulerCore::FinishedView(const JobRecord& r) {
  static const CoreConfig kUnlimited = Unlimited(CoreConfig());
  JobView v;
  v.id = r.id;
  v.spec = r.spec;
  v.state = r.state;
  absl::StatusOr<RangePartition> partition = MakePartition(r.spec, kUnlimited);
  if (partition.ok()) {
    v.shards.total = partition->num_shards();
    v.items_total = partition->TotalItems();
    v.items_done = FinishedItemsDone(r, *partition);
  }
  v.shards.succeeded = r.shards_succeeded;
  v.shards.failed = static_cast<int64_t>(r.failed.size());
  v.create_time = r.created;
  v.start_time = r.started;
  v.end_time = r.ended;
  v.message = r.message;
  v.errors = r.errors;
  v.result_location = r.location;
  v.result_sha256 = r.sha256;
  v.result_version = r.result_version;
  v.failed_shards = r.failed;
  return v;
}

SchedulerCore::Job* SchedulerCore::Adopt(const JobRecord& r, absl::Time now) {
  auto info = finished_info_.find(r.id);
  if (info == finished_info_.end() || jobs_.count(r.id) || !IsTerminal(r.state)) {
    return nullptr;
  }
  absl::StatusOr<RangePartition> partition = MakePartition(r.spec, Unlimited(config_));
  if (!partition.ok()) return nullptr;
  auto job = std::make_unique<Job>();
  Job* j = job.get();
  j->record = r;
  j->partition = *partition;
  j->params_json = r.spec.params.dump();
  j->created_mono = now - std::max(absl::ZeroDuration(), Wall(now) - r.created);
  for (const FailedShard& f : r.failed) {
    if (f.shard >= 0 && f.shard < j->partition.num_shards()) j->failed[f.shard] = f;
  }
  j->record.failed.clear();
  j->next_shard = j->partition.num_shards();
  j->folded = j->partition.num_shards();
  j->succeeded = r.shards_succeeded;
  j->items_completed = FinishedItemsDone(r, j->partition);
  // Counted and in finished_ already (RestoreFinished, or Index before it left).
  j->counted = info->second.state;
  j->retire_at = info->second.retire_at;
  j->once_finished = true;
  jobs_.emplace(r.id, std::move(job));
  by_seq_.emplace(r.seq, j);
  Index(*j);
  Touch(*j);
  return j;
}

absl::Status SchedulerCore::Rebuild(Job& j, const std::vector<StoredResult>& results) {
  int64_t unreadable_shard = -1;
  j.folder = Folder(j.record.spec.aggregate);
  j.folded = 0;
  j.buffered.clear();
  j.retry.clear();
  j.failures.clear();
  j.losses.clear();
  j.detached.clear();
  j.succeeded = 0;
  j.items_completed = 0;
  int64_t max_done = -1;
  for (const StoredResult& r : results) {
    if (r.shard < 0 || r.shard >= j.partition.num_shards()) continue;
    // A stored result is bounded like one that arrives (it may predate the
    // limits); one that cannot be read fails its job instead of the start.
    json parsed;
    if (JsonTextDepth(r.result_json, config_.max_json_depth) <= config_.max_json_depth) {
      parsed = json::parse(r.result_json, nullptr, /*allow_exceptions=*/false);
    } else {
      parsed = json(json::value_t::discarded);
    }
    if (parsed.is_discarded() || !parsed.is_object()) {
      unreadable_shard = r.shard;
      break;
    }
    if (j.buffered.emplace(r.shard, std::move(parsed)).second) {
      ++j.succeeded;
      j.items_completed = SaturatingAdd(j.items_completed, j.partition.Items(r.shard));
      max_done = std::max(max_done, r.shard);
    }
  }
  if (unreadable_shard >= 0) {
    return absl::DataLossError(
        absl::StrCat("the stored result of shard ", unreadable_shard,
                     " cannot be read back (not a JSON object, or nested deeper than ",
                     config_.max_json_depth, " levels)"));
  }
  for (const auto& [shard, f] : j.failed) max_done = std::max(max_done, shard);
  j.next_shard = max_done + 1;
  for (int64_t s = 0; s < j.next_shard; ++s) {
    if (!j.buffered.count(s) && !j.failed.count(s)) j.retry[s] = {};
  }
  return absl::OkStatus();
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
  std::map<int64_t, int32_t> attempts;  // attempt numbers go on from there
  for (const auto& [shard, f] : j->failed) attempts[shard] = f.attempts;
  j->failed.clear();
  j->record.failed.clear();
  if (absl::Status rebuilt = Rebuild(*j, results); !rebuilt.ok()) {
    FailJob(*j, std::string(rebuilt.message()), now, out);
    return rebuilt;
  }
  for (const auto& [shard, n] : attempts) {
    if (auto it = j->retry.find(shard); it != j->retry.end()) it->second.attempts = n;
  }
  j->next_shard = std::max<int64_t>(j->next_shard, 0);
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
  j->tokens = TokensAt(*j, now);
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

// ---- executors ----

bool SchedulerCore::Issued(const std::string& lease_id, const std::string& job_id,
                           int64_t shard, const std::string& holder) const {
  if (lease_ids_ != nullptr) return lease_ids_->Issued(lease_id, job_id, shard, holder);
  return absl::StartsWith(lease_id, absl::StrCat(job_id, ".", shard, "."));
}

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
    if (!Issued(h.lease_id, h.job_id, h.shard, hello.identity)) {
      // A claim on a shard this scheduler never leased out: refused, and the
      // executor told to stop it.
      ++counters_.results_rejected_unknown_lease;
      out.rejected.push_back({e.conn, e.hello.name, h.lease_id, "unknown_lease"});
      out.cancels.push_back({e.conn, h.lease_id});
      continue;
    }
    Job* j = FindJob(h.job_id);
    const bool open = j != nullptr && !IsTerminal(j->record.state) && !j->persisting &&
                      h.shard >= 0 && h.shard < j->partition.num_shards() &&
                      !IsDone(*j, h.shard) && !j->running.count(h.shard) &&
                      !leases_.count(h.lease_id);
    if (!open) {
      out.cancels.push_back({e.conn, h.lease_id});
      continue;
    }
    ClaimPending(*j, h.shard);
    AddLease(*j, e, h.shard, std::max(1, h.attempt), h.lease_id, now, out);
  }
  // Shards it ran before and does not claim now are not coming back: lost at
  // once, not after the grace.
  std::vector<Job*> left_behind;
  for (Job* j : active_) {
    bool any = false;
    for (auto& [shard, d] : j->detached) {
      if (d.executor_id != hello.executor_id) continue;
      d.until = now;
      if (auto r = j->retry.find(shard); r != j->retry.end()) r->second.not_before = now;
      any = true;
    }
    if (any) left_behind.push_back(j);
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
  Lease* l = FindLease(conn, lease_id);
  if (l == nullptr) return;
  l->executor->last_seen = now;
  l->progress = std::clamp<int64_t>(done, 0, l->job->partition.Items(l->shard));
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
  if (Lease* l = FindLease(conn, lease_id)) {
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
                      shard >= 0 && shard < j->partition.num_shards() &&
                      !IsDone(*j, shard);
    if (!open) {
      ++counters_.results_dropped;
      out.durable.push_back(AckOp{conn, lease_id});  // no longer needed
      return;
    }
    const char* refused = nullptr;
    if (!Issued(lease_id, job_id, shard, e->hello.identity)) {
      // Not a lease this scheduler ever issued for this shard: forged.
      ++counters_.results_rejected_unknown_lease;
      refused = "unknown_lease";
    } else if (j->running.count(shard)) {
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
    ClaimPending(*j, shard);
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
  Lease* l = FindLease(conn, lease_id);
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
    Lease* l = FindLease(conn, id);
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
  j->record.state = j->failed.empty() ? JobState::kSucceeded : JobState::kPartial;
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
  std::vector<std::string> overdue;
  for (const auto& [id, l] : leases_) {
    if (now > l->deadline) overdue.push_back(id);
  }
  for (const std::string& id : overdue) {
    Lease* l = leases_.at(id).get();
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

absl::Time SchedulerCore::RetireAt(const JobRecord& r) const {
  // A finished record without an end (written by an old scheduler) counts
  // from its creation.
  const absl::Time ended = r.ended == absl::InfinitePast() ? r.created : r.ended;
  return ended + config_.job_retention;
}

void SchedulerCore::Retire(absl::Time now, Actions& out) {
  if (config_.job_retention <= absl::ZeroDuration()) return;
  for (int n = 0; n < config_.max_retired_per_tick && !finished_.empty(); ++n) {
    auto first = finished_.begin();
    if (first->first > Wall(now)) break;  // retention is counted in wall time
    const std::string id = first->second;
    finished_.erase(first);
    auto info = finished_info_.find(id);
    auto it = jobs_.find(id);
    std::string location;  // a job held in the store only: the writer reads it
    if (it != jobs_.end()) {
      Job& j = *it->second;
      // Finished: no leases, not active, nothing persisting (Index says so).
      const std::string& key = j.record.spec.idempotency_key;
      if (auto k = idempotency_.find(key);
          k != idempotency_.end() && k->second.job_id == id) {
        idempotency_.erase(k);
      }
      if (j.counted.has_value()) --counts_[j.record.spec.queue][*j.counted];
      if (auto s = by_seq_.find(j.record.seq); s != by_seq_.end() && s->second == &j) {
        by_seq_.erase(s);
      }
      location = j.record.location;
      jobs_.erase(it);
    } else if (info != finished_info_.end()) {
      // Its idempotency key, if any, is dropped by Submit or by its own expiry.
      --counts_[*info->second.queue][info->second.state];
    } else {
      continue;
    }
    if (info != finished_info_.end()) finished_info_.erase(info);
    out.durable.push_back(RetireJobOp{id, location});
    if (config_.retired_ids_kept > 0) {
      retired_.insert(id);
      retired_order_.push_back(id);
      while (retired_order_.size() > static_cast<size_t>(config_.retired_ids_kept)) {
        retired_.erase(retired_order_.front());
        retired_order_.pop_front();
      }
    }
    ++version_;
  }
}

void SchedulerCore::ExpireIdempotencyKeys(absl::Time now) {
  while (!idempotency_by_time_.empty()) {
    auto first = idempotency_by_time_.begin();
    if (Wall(now) - first->first < config_.idempotency_retention) break;
    auto k = idempotency_.find(first->second);
    // The key may have been taken again since (by a newer job).
    if (k != idempotency_.end() && k->second.created == first->first) {
      idempotency_.erase(k);
    }
    idempotency_by_time_.erase(first);
  }
}

absl::Status SchedulerCore::NotFound(const std::string& job_id) const {
  if (retired_.count(job_id)) {
    return absl::NotFoundError(
        absl::StrCat("job ", job_id, " was retired: it finished more than ",
                     absl::FormatDuration(config_.job_retention),
                     " ago (--job-retention) and its record was deleted"));
  }
  if (config_.job_retention > absl::ZeroDuration()) {
    return absl::NotFoundError(absl::StrCat("job ", job_id,
                                            " not found (finished jobs are retired ",
                                            absl::FormatDuration(config_.job_retention),
                                            " after they end, --job-retention)"));
  }
  return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
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
    s.shards_running += static_cast<int64_t>(j->running.size());
    const int64_t pending =
        j->partition.num_shards() - j->next_shard + static_cast<int64_t>(j->retry.size());
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

// ---- private ----

SchedulerCore::Job* SchedulerCore::FindJob(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

SchedulerCore::Executor* SchedulerCore::FindExecutor(const ExecutorConn& conn) {
  auto it = executors_.find(conn.executor_id);
  if (it == executors_.end() || it->second->conn.generation != conn.generation) {
    return nullptr;
  }
  return it->second.get();
}

SchedulerCore::Lease* SchedulerCore::FindLease(const ExecutorConn& conn,
                                               const std::string& lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return nullptr;
  Lease* l = it->second.get();
  if (l->executor->conn.executor_id != conn.executor_id ||
      l->executor->conn.generation != conn.generation) {
    return nullptr;
  }
  return l;
}

bool SchedulerCore::IsDone(const Job& j, int64_t shard) const {
  return shard < j.folded || j.buffered.count(shard) || j.failed.count(shard);
}

bool SchedulerCore::HasWork(const Job& j, absl::Time now) const {
  if (IsTerminal(j.record.state) || j.persisting || now < j.hold_until) return false;
  if (j.record.spec.max_parallel > 0 &&
      static_cast<int64_t>(j.running.size()) >= j.record.spec.max_parallel) {
    return false;
  }
  if (j.record.state == JobState::kQueued && BlockedBy(j) != nullptr) return false;
  if (j.record.spec.rate_limit > 0 && TokensAt(j, now) < 1.0) return false;
  if (j.next_shard < j.partition.num_shards() && !PausedForFold(j)) return true;
  for (const auto& [shard, p] : j.retry) {
    if (p.not_before <= now) return true;
  }
  return false;
}

bool SchedulerCore::PausedForFold(const Job& j) const {
  // Retries are never held back: they are below next_shard, inside the window.
  return j.next_shard - j.folded >= config_.fold_window;
}

const SchedulerCore::Job* SchedulerCore::BlockedBy(const Job& j) const {
  const std::string& key = j.record.spec.concurrency_key;
  if (key.empty()) return nullptr;
  // Every running job with the key counts, wherever it sits; queued ones
  // count when they are ahead (submission order).
  int32_t ahead = 0;
  const Job* first = nullptr;
  bool before = true;
  for (const Job* other : active_) {
    if (other == &j) {
      before = false;
      continue;
    }
    if (other->record.spec.concurrency_key != key) continue;
    if (!before && other->record.state == JobState::kQueued) continue;
    if (first == nullptr) first = other;
    ++ahead;
  }
  return ahead >= j.record.spec.concurrency_limit ? first : nullptr;
}

double SchedulerCore::TokensAt(const Job& j, absl::Time now) const {
  const double rate = j.record.spec.rate_limit;
  if (rate <= 0) return std::numeric_limits<double>::infinity();
  // The bucket holds a tenth of a second of shards (at least one), so that
  // the 100 ms ticker can keep the pace without bursts.
  const double burst = std::max(1.0, rate / 10.0);
  if (j.tokens_at == absl::InfinitePast()) return burst;
  return std::min(burst, j.tokens + rate * absl::ToDoubleSeconds(now - j.tokens_at));
}

SchedulerCore::Job* SchedulerCore::NextJobFor(const Executor& e, absl::Time now) {
  // Within the executor's queues the highest priority wins; equal priorities
  // take turns (round robin from the cursor).
  const size_t n = active_.size();
  Job* best = nullptr;
  size_t best_idx = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t idx = (rr_cursor_ + k) % n;
    Job* j = active_[idx];
    const JobSpec& spec = j->record.spec;
    if (best != nullptr && spec.priority <= best->record.spec.priority) continue;
    if (!e.tasks.count(spec.task) || !e.queues.count(spec.queue) || !HasWork(*j, now)) {
      continue;
    }
    best = j;
    best_idx = idx;
  }
  if (best != nullptr) rr_cursor_ = best_idx + 1;
  return best;
}

int64_t SchedulerCore::Prefetch(double run_seconds, int32_t slots) const {
  if (run_seconds <= 0) return config_.prefetch;
  const double keep_busy =
      slots * absl::ToDoubleSeconds(config_.prefetch_window) / run_seconds;
  return std::clamp<int64_t>(static_cast<int64_t>(std::min(keep_busy, 1e9)),
                             config_.prefetch, config_.max_prefetch);
}

bool SchedulerCore::WantsMore(Executor& e, int64_t prefetch) {
  const int64_t held = static_cast<int64_t>(e.leases.size());
  if (held >= e.hello.slots + prefetch) {
    e.refilling = false;
    return false;
  }
  // Topping a long queue up by one shard per result would cost a message per
  // shard: an executor holding many short shards is refilled once it has run
  // half of its prefetch down, and then all the way, in one message. A free
  // slot is always filled; a minimal prefetch is topped up shard by shard.
  if (e.refilling || prefetch <= config_.prefetch ||
      held <= e.hello.slots + prefetch / 2) {
    e.refilling = true;
    return true;
  }
  return false;
}

void SchedulerCore::Dispatch(absl::Time now, Actions& out) {
  // Shards whose executor's grace is over count their loss before they can be
  // handed out again (the crash-loop guard), whatever event dispatches them.
  std::vector<Job*> with_detached;
  for (Job* j : active_) {
    for (const auto& [shard, d] : j->detached) {
      if (d.until <= now) {
        with_detached.push_back(j);
        break;
      }
    }
  }
  for (Job* j : with_detached) LoseDetached(*j, now, out);
  // The most any active job lets an executor hold: executors holding that
  // many are passed over without looking for a job (with 1,000 executors,
  // most are).
  double shortest = 0;
  for (const Job* j : active_) {
    if (j->run_seconds > 0 && (shortest == 0 || j->run_seconds < shortest)) {
      shortest = j->run_seconds;
    }
  }
  bool assigned = true;
  while (assigned && !active_.empty()) {
    assigned = false;
    for (auto& [id, e] : executors_) {
      if (e->draining || !WantsMore(*e, Prefetch(shortest, e->hello.slots))) continue;
      const size_t cursor = rr_cursor_;
      Job* j = NextJobFor(*e, now);
      if (j == nullptr) continue;
      if (!WantsMore(*e, Prefetch(j->run_seconds, e->hello.slots))) {
        rr_cursor_ = cursor;  // not this executor's turn after all
        continue;
      }
      AssignOne(*j, *e, now, out);
      assigned = true;
    }
  }
}

void SchedulerCore::AssignOne(Job& j, Executor& e, absl::Time now, Actions& out) {
  int64_t shard = -1;
  int32_t attempt = 1;
  for (auto it = j.retry.begin(); it != j.retry.end(); ++it) {
    if (it->second.not_before <= now) {
      shard = it->first;
      attempt = it->second.attempts + 1;
      j.retry.erase(it);
      break;
    }
  }
  if (shard < 0) shard = j.next_shard++;
  // The incarnation keeps default ids unique across scheduler restarts, when
  // attempt numbers of re-queued shards start again.
  const std::string id =
      lease_ids_ != nullptr
          ? lease_ids_->Mint(j.record.id, shard, attempt, e.hello.identity)
          : absl::StrCat(j.record.id, ".", shard, ".", attempt, incarnation_);
  if (j.record.spec.rate_limit > 0) {
    j.tokens = TokensAt(j, now) - 1.0;
    j.tokens_at = now;
  }
  AddLease(j, e, shard, attempt, id, now, out);
  ++j.assignments;
  ++counters_.shards_dispatched;
  const ShardBounds bounds = j.partition.Bounds(shard);
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
  auto lease = std::make_unique<Lease>();
  lease->id = id;
  lease->job = &j;
  lease->shard = shard;
  lease->executor = &e;
  lease->attempt = attempt;
  lease->assigned = now;
  if (j.record.spec.shard_timeout > absl::ZeroDuration()) {
    lease->deadline = now + j.record.spec.shard_timeout + config_.lease_grace;
  }
  j.executors_used.insert(e.hello.name);
  j.running[shard] = id;
  e.leases.insert(id);
  leases_.emplace(id, std::move(lease));
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
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  Lease* l = it->second.get();
  l->executor->leases.erase(lease_id);
  Job* j = l->job;
  j->running.erase(l->shard);
  if (requeue && !IsTerminal(j->record.state) && !IsDone(*j, l->shard)) {
    j->retry[l->shard] = {l->attempt, absl::InfinitePast()};
  }
  Touch(*j);
  leases_.erase(it);
}

void SchedulerCore::ClaimPending(Job& j, int64_t shard) {
  j.retry.erase(shard);
  j.detached.erase(shard);  // its executor is back: no loss
  if (shard >= j.next_shard) {
    for (int64_t s = j.next_shard; s < shard; ++s) j.retry[s] = {};
    j.next_shard = shard + 1;
  }
}

void SchedulerCore::Accept(Job& j, int64_t shard, json result, absl::Time now,
                           Actions& out) {
  ++j.succeeded;
  ++counters_.shards_succeeded;
  j.items_completed = SaturatingAdd(j.items_completed, j.partition.Items(shard));
  j.failures.erase(shard);
  j.losses.erase(shard);
  j.buffered.emplace(shard, std::move(result));
  FoldPrefix(j, now, out);
}

void SchedulerCore::FoldPrefix(Job& j, absl::Time now, Actions& out) {
  // Fold the contiguous prefix in shard order: the bytes never depend on the
  // order results arrive in, and memory holds only the out-of-order window.
  // Failed shards (continue policy) are skipped.
  while (j.folded < j.partition.num_shards()) {
    auto it = j.buffered.find(j.folded);
    if (it != j.buffered.end()) {
      absl::Status s = j.folder.Add(it->first, it->second);
      j.buffered.erase(it);
      if (!s.ok()) {
        FailJob(j, absl::StrCat("aggregate: ", s.message()), now, out);
        return;
      }
    } else if (!j.failed.count(j.folded)) {
      break;
    }
    ++j.folded;
  }
  if (j.folded == j.partition.num_shards() && !j.persisting &&
      !IsTerminal(j.record.state)) {
    Finish(j, now, out);
  }
}

void SchedulerCore::AttemptFailed(Job& j, int64_t shard, int32_t attempt,
                                  const std::string& executor, const std::string& message,
                                  bool retryable, absl::Time now, Actions& out) {
  ++counters_.shards_failed;
  if (j.record.errors.size() < static_cast<size_t>(config_.max_errors_kept)) {
    j.record.errors.push_back({shard, j.partition.Bounds(shard), executor, message});
  }
  const int32_t failures = ++j.failures[shard];
  if (retryable && failures < j.record.spec.retry.max_attempts) {
    const absl::Duration wait = RetryBackoff(j.record.spec.retry, failures,
                                             JitterUnit(j.record.id, shard, attempt));
    j.retry[shard] = {attempt, now + wait};
    ++counters_.shards_retried;
    Touch(j);
    return;
  }
  ShardOutOfAttempts(j, shard, attempt, message, now, out);
}

void SchedulerCore::ShardOutOfAttempts(Job& j, int64_t shard, int32_t attempts,
                                       const std::string& message, absl::Time now,
                                       Actions& out) {
  j.failures.erase(shard);
  j.losses.erase(shard);
  j.retry.erase(shard);
  const FailedShard& failed = j.failed[shard] =
      FailedShard{shard, j.partition.Bounds(shard), attempts, message};
  const std::string why =
      absl::StrCat("shard ", shard, " failed after ", attempts,
                   attempts == 1 ? " attempt: " : " attempts: ", message);
  if (static_cast<int64_t>(j.failed.size()) > j.record.spec.max_failed_shards) {
    FailJob(j,
            j.record.spec.max_failed_shards == 0
                ? why
                : absl::StrCat(j.failed.size(), " shards failed (more than ",
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
  json result = j.folder.value();
  json range = {{"start", j.record.spec.range.start}, {"end", j.record.spec.range.end}};
  if (j.record.spec.range.shard_size > 0)
    range["shard_size"] = j.record.spec.range.shard_size;
  if (j.record.spec.range.shard_count > 0) {
    range["shard_count"] = j.record.spec.range.shard_count;
  }
  json failed = json::array();
  for (const auto& [s, f] : j.failed) {
    failed.push_back({{"shard", s},
                      {"start", f.bounds.start},
                      {"end", f.bounds.end},
                      {"attempts", f.attempts},
                      {"error", f.last_error}});
  }
  result["_metadata"] = {
      {"job_id", j.record.id},
      {"name", j.record.spec.name},
      {"task", j.record.spec.task},
      {j.record.spec.has_items ? "items" : "range",
       j.record.spec.has_items ? json{{"count", j.record.spec.items.size()},
                                      {"batch_size", j.record.spec.batch_size}}
                               : range},
      {"shards",
       {{"total", j.partition.num_shards()},
        {"succeeded", j.succeeded},
        {"failed", static_cast<int64_t>(j.failed.size())}}},
      {"failed_shards", failed},
      {"attempts", j.assignments},
      {"executors",
       std::vector<std::string>(j.executors_used.begin(), j.executors_used.end())},
      {"result_version", j.record.result_version + 1},
      {"created_at", Rfc3339(j.record.created)},
      {"started_at", Rfc3339(j.record.started)},
      {"finished_at", Rfc3339(Wall(now))},
  };
  std::string bytes = result.dump(2) + "\n";
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
  j.folder = Folder();  // the bytes are all that is needed from here on
  Save(j, out);         // "finalizing" is durable before the sink is written
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
  j.buffered.clear();
  j.retry.clear();
  j.failures.clear();
  j.losses.clear();
  j.detached.clear();
  j.folder = Folder();
  auto it = std::find(active_.begin(), active_.end(), &j);
  if (it != active_.end()) active_.erase(it);
  Touch(j);
}

void SchedulerCore::CancelLeases(Job& j, Actions& out) {
  std::vector<std::string> ids;
  for (const auto& [shard, id] : j.running) ids.push_back(id);
  for (const std::string& id : ids) {
    out.cancels.push_back({leases_.at(id)->executor->conn, id});
    EndLease(id, /*requeue=*/false);
  }
}

void SchedulerCore::Save(Job& j, Actions& out) {
  j.record.shards_succeeded = j.succeeded;
  // An unfinished job's failed shards are rows of their own (one per
  // failure); its finished record lists them, once.
  if (IsTerminal(j.record.state)) {
    for (const auto& [shard, f] : j.failed) j.record.failed.push_back(f);
  }
  j.record.items_done = j.items_completed;
  out.durable.push_back(SaveJobOp{j.record});
  j.last_saved = std::get<SaveJobOp>(out.durable.back()).ptr.get();
  j.record.failed.clear();
  Index(j);
  Touch(j);
}

void SchedulerCore::Index(Job& j) {
  const JobState state = j.record.state;
  if (j.counted != state) {
    auto& by_state = counts_[j.record.spec.queue];
    if (j.counted.has_value()) --by_state[*j.counted];
    ++by_state[state];
    j.counted = state;
  }
  std::optional<absl::Time> retire_at;
  if (IsTerminal(state)) retire_at = RetireAt(j.record);
  if (j.retire_at != retire_at) {
    if (j.retire_at.has_value()) finished_.erase({*j.retire_at, j.record.id});
    if (retire_at.has_value()) finished_.insert({*retire_at, j.record.id});
    j.retire_at = retire_at;
  }
  if (retire_at.has_value()) {
    j.once_finished = true;
    finished_info_[j.record.id] =
        FinishedEntry{*retire_at, &counts_.find(j.record.spec.queue)->first, state};
  } else if (j.once_finished) {
    finished_info_.erase(j.record.id);
  }
}

void SchedulerCore::Touch(Job& j) { j.version = ++version_; }

void SchedulerCore::DropExecutor(Executor& e, absl::Time now, Actions& out) {
  std::vector<std::string> ids(e.leases.begin(), e.leases.end());
  for (const std::string& id : ids) {
    Lease* l = leases_.at(id).get();
    Job* j = l->job;
    const int64_t shard = l->shard;
    const int32_t attempt = l->attempt;
    ++counters_.shards_requeued;
    EndLease(id, /*requeue=*/true);
    // A reconnect is not a loss: the shard waits for its executor to
    // re-attach (its hello claims it, or its result comes) within the grace;
    // LoseDetached counts the loss after that.
    if (auto r = j->retry.find(shard); r != j->retry.end()) {
      r->second.not_before = now + config_.reattach_grace;
      r->second.attempts = attempt;
      j->detached[shard] = {now + config_.reattach_grace, e.conn.executor_id};
    }
  }
  executors_.erase(e.conn.executor_id);
  ++version_;
}

void SchedulerCore::LoseDetached(Job& j, absl::Time now, Actions& out) {
  std::vector<std::pair<int64_t, int32_t>> lost;
  for (auto it = j.detached.begin(); it != j.detached.end();) {
    if (now < it->second.until) {
      ++it;
      continue;
    }
    auto r = j.retry.find(it->first);
    lost.push_back({it->first, r == j.retry.end() ? 1 : r->second.attempts});
    it = j.detached.erase(it);
  }
  for (const auto& [shard, attempt] : lost) {
    // Losing an executor costs no attempt, but a shard that keeps losing
    // them is likely what kills them.
    if (++j.losses[shard] >= config_.max_executor_losses && !IsTerminal(j.record.state) &&
        j.retry.count(shard)) {
      j.retry.erase(shard);
      ShardOutOfAttempts(
          j, shard, attempt,
          absl::StrCat("lost ", j.losses[shard],
                       " executors while running this shard (crash loop?)"),
          now, out);
    }
  }
}

std::string SchedulerCore::WaitReason(const Job& j, absl::Time now) const {
  // Said only when results wait: a full window of shards merely running is
  // normal progress.
  if (j.record.state == JobState::kRunning && !j.persisting && PausedForFold(j) &&
      !j.buffered.empty() && j.next_shard < j.partition.num_shards()) {
    return absl::StrCat("dispatch paused: ", j.buffered.size(),
                        " results wait to be folded in order behind shard ", j.folded,
                        " (at most ", config_.fold_window,
                        " shards ahead, --fold-window)");
  }
  if (j.record.state != JobState::kQueued) return j.record.message;
  if (now < j.hold_until) {
    return "waiting for executors to re-attach after a scheduler restart";
  }
  if (const Job* blocker = BlockedBy(j)) {
    return absl::StrCat("waiting for job ", blocker->record.id, " (concurrency key \"",
                        j.record.spec.concurrency_key, "\", at most ",
                        j.record.spec.concurrency_limit, " running)");
  }
  for (const auto& [id, e] : executors_) {
    if (e->tasks.count(j.record.spec.task) && e->queues.count(j.record.spec.queue) &&
        !e->draining) {
      return absl::StrCat("waiting for a free executor slot in queue \"",
                          j.record.spec.queue, "\"");
    }
  }
  if (!known_tasks_.count(j.record.spec.task) &&
      now - j.created_mono >= config_.unknown_task_grace) {
    return absl::StrCat(
        "no executor has advertised task \"", j.record.spec.task, "\" in ",
        absl::FormatDuration(now - j.created_mono), "; tasks advertised: ",
        known_tasks_.empty() ? "none" : absl::StrJoin(known_tasks_, ", "));
  }
  return absl::StrCat("waiting for an executor that runs task \"", j.record.spec.task,
                      "\"");
}

JobView SchedulerCore::View(const Job& j, absl::Time now) const {
  JobView v;
  const JobRecord& r = j.record;
  v.id = r.id;
  v.spec = r.spec;
  v.state = r.state;
  v.shards.total = j.partition.num_shards();
  v.shards.running = static_cast<int64_t>(j.running.size());
  v.shards.succeeded = j.succeeded;
  v.shards.failed = static_cast<int64_t>(j.failed.size());
  v.shards.pending = IsTerminal(r.state) ? 0
                                         : v.shards.total - v.shards.succeeded -
                                               v.shards.failed - v.shards.running;
  v.items_total = j.partition.TotalItems();
  v.items_done = j.items_completed;
  for (const auto& [shard, id] : j.running) {
    v.items_done = SaturatingAdd(v.items_done, leases_.at(id)->progress);
  }
  v.create_time = r.created;
  v.start_time = r.started;
  v.end_time = r.ended;
  v.message = WaitReason(j, now);
  v.errors = r.errors;
  v.result_location = r.location;
  v.result_sha256 = r.sha256;
  v.result_version = r.result_version;
  v.failed_shards.reserve(j.failed.size());
  for (const auto& [shard, f] : j.failed) v.failed_shards.push_back(f);
  v.version = j.version;
  return v;
}

void SchedulerCore::CheckInvariants() const {
#ifndef NDEBUG
  size_t running = 0;
  for (const Job* j : active_) {
    assert(!IsTerminal(j->record.state));
    running += j->running.size();
    assert(j->folded <= j->partition.num_shards());
    assert(j->next_shard <= j->partition.num_shards());
    for (const auto& [shard, id] : j->running) {
      const Lease& l = *leases_.at(id);
      assert(l.job == j && l.shard == shard);
      assert(l.executor->leases.count(id) == 1);
      assert(j->retry.count(shard) == 0);
      assert(!IsDone(*j, shard));
    }
  }
  assert(running == leases_.size());
#endif
}

}  // namespace tessera::scheduler
