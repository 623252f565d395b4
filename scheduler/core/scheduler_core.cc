#include "scheduler/core/scheduler_core.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <utility>

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

}  // namespace

struct SchedulerCore::Job {
  std::string id;
  JobSpec spec;
  RangePartition partition;
  std::string params_json;
  JobState state = JobState::kQueued;
  absl::Time created;
  absl::Time started = absl::InfinitePast();
  absl::Time ended = absl::InfinitePast();
  int64_t next_shard = 0;               // [next_shard, n) never dispatched
  std::map<int64_t, int32_t> retry;     // shard -> assignments so far; dispatch first
  std::map<int64_t, int32_t> failures;  // shard -> reported failures (open shards only)
  std::map<int64_t, std::string> running;  // shard -> lease id
  std::map<int64_t, json> buffered;        // results waiting for the fold prefix
  int64_t folded = 0;                      // [0, folded) are folded
  Folder folder;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t items_completed = 0;
  int64_t assignments = 0;
  std::set<std::string> executors_used;
  std::string message;
  std::vector<ShardError> errors;
  bool persisting = false;
  std::string location;
  std::string sha256;
  uint64_t version = 0;
};

struct SchedulerCore::Executor {
  ExecutorConn conn;
  ExecutorHello hello;
  std::set<std::string> tasks;
  std::set<std::string> leases;
  bool draining = false;
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
};

absl::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

absl::Status CoreConfig::Validate() const {
  if (max_shards_per_job <= 0) {
    return absl::InvalidArgumentError("max_shards_per_job must be > 0");
  }
  if (prefetch < 0) return absl::InvalidArgumentError("prefetch must be >= 0");
  if (max_attempts < 1) return absl::InvalidArgumentError("max_attempts must be >= 1");
  if (heartbeat_interval <= absl::ZeroDuration() ||
      heartbeat_timeout <= heartbeat_interval) {
    return absl::InvalidArgumentError(
        "heartbeat_timeout must be greater than heartbeat_interval (both > 0)");
  }
  return absl::OkStatus();
}

absl::Status ValidateSpec(const JobSpec& spec) {
  if (spec.task.empty()) return absl::InvalidArgumentError("spec.task is required");
  if (spec.task.size() > 100) {
    return absl::InvalidArgumentError("spec.task must be at most 100 bytes");
  }
  if (spec.name.size() > 200) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.name must be at most 200 bytes (got ", spec.name.size(), ")"));
  }
  if (!spec.params.is_object()) {
    return absl::InvalidArgumentError("spec.params must be a JSON object");
  }
  if (spec.max_parallel < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.max_parallel must be >= 0 (got ", spec.max_parallel, ")"));
  }
  for (const auto& [path, reducer] : spec.aggregate.fields) {
    if (path.empty() || path.front() == '.' || path.back() == '.') {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.aggregate.fields: invalid field path \"", path, "\""));
    }
  }
  return absl::OkStatus();
}

SchedulerCore::SchedulerCore(CoreConfig config) : config_(std::move(config)) {}
SchedulerCore::~SchedulerCore() = default;

absl::StatusOr<JobView> SchedulerCore::Submit(const JobSpec& spec,
                                              const std::string& job_id, absl::Time now,
                                              Actions& out) {
  TESSERA_RETURN_IF_ERROR(ValidateSpec(spec));
  TESSERA_ASSIGN_OR_RETURN(
      RangePartition partition,
      RangePartition::Create(spec.range, config_.max_shards_per_job));
  if (jobs_.count(job_id)) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job_id, " already exists"));
  }
  auto job = std::make_unique<Job>();
  job->id = job_id;
  job->spec = spec;
  job->partition = partition;
  job->params_json = spec.params.dump();
  job->created = now;
  job->folder = Folder(spec.aggregate);
  Job* j = job.get();
  jobs_.emplace(job_id, std::move(job));
  job_order_.push_back(job_id);
  active_.push_back(j);
  ++counters_.jobs_submitted;
  Touch(*j);
  Dispatch(now, out);
  CheckInvariants();
  return View(*j, now);
}

absl::StatusOr<JobView> SchedulerCore::Cancel(const std::string& job_id, absl::Time now,
                                              Actions& out) {
  Job* j = FindJob(job_id);
  if (j == nullptr)
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  // A job whose result is being persisted is finished in all but name.
  if (!IsTerminal(j->state) && !j->persisting) {
    CancelLeases(*j, out);
    j->state = JobState::kCancelled;
    j->ended = now;
    j->message = "cancelled";
    j->buffered.clear();
    j->retry.clear();
    active_.erase(std::find(active_.begin(), active_.end(), j));
    Touch(*j);
    Dispatch(now, out);
  }
  CheckInvariants();
  return View(*j, now);
}

absl::StatusOr<JobView> SchedulerCore::GetJob(const std::string& job_id,
                                              absl::Time now) const {
  const Job* j = FindJob(job_id);
  if (j == nullptr)
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return View(*j, now);
}

std::vector<JobView> SchedulerCore::ListJobs(std::optional<JobState> state,
                                             int64_t before, int limit, absl::Time now,
                                             int64_t* next) const {
  std::vector<JobView> out;
  int64_t i = before < 0 ? static_cast<int64_t>(job_order_.size()) - 1
                         : std::min<int64_t>(before, job_order_.size() - 1);
  for (; i >= 0 && static_cast<int>(out.size()) < limit; --i) {
    const Job* j = FindJob(job_order_[i]);
    if (state.has_value() && j->state != *state) continue;
    out.push_back(View(*j, now));
  }
  *next = i;  // -1 when the scan reached the oldest job
  return out;
}

ExecutorConn SchedulerCore::Connect(const ExecutorHello& hello, absl::Time now,
                                    Actions& out) {
  auto it = executors_.find(hello.executor_id);
  if (it != executors_.end()) {
    // The same executor on a new stream: the old stream is gone or going.
    DropExecutor(*it->second);
  }
  auto e = std::make_unique<Executor>();
  e->conn = ExecutorConn{hello.executor_id, next_generation_++};
  e->hello = hello;
  e->tasks.insert(hello.tasks.begin(), hello.tasks.end());
  e->connected = now;
  e->last_seen = now;
  known_tasks_.insert(hello.tasks.begin(), hello.tasks.end());
  ExecutorConn conn = e->conn;
  executors_[hello.executor_id] = std::move(e);
  ++version_;
  Dispatch(now, out);
  CheckInvariants();
  return conn;
}

void SchedulerCore::Disconnect(const ExecutorConn& conn, absl::Time now, Actions& out) {
  Executor* e = FindExecutor(conn);
  if (e == nullptr) return;
  DropExecutor(*e);
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
  const int64_t items = l->job->partition.Items(l->shard);
  l->progress = std::clamp<int64_t>(done, 0, items);
  Touch(*l->job);
}

void SchedulerCore::Result(const ExecutorConn& conn, const std::string& lease_id,
                           const std::string& result_json, absl::Time now, Actions& out) {
  Lease* l = FindLease(conn, lease_id);
  if (l == nullptr) {
    // A second result for a lease, or one whose shard was taken back.
    ++counters_.results_dropped;
    return;
  }
  Job* j = l->job;
  const int64_t shard = l->shard;
  Executor* e = l->executor;
  e->last_seen = now;
  ++e->completed;
  EndLease(lease_id, /*requeue=*/false);
  json parsed = json::parse(result_json, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    if (j->errors.size() < static_cast<size_t>(config_.max_errors_kept)) {
      j->errors.push_back({shard, j->partition.Bounds(shard), e->hello.name,
                           "result is not a JSON object"});
    }
    ++j->failed;
    FailJob(*j, absl::StrCat("shard ", shard, ": result is not a JSON object"), now, out);
  } else {
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
  EndLease(lease_id, /*requeue=*/false);
  ++counters_.shards_failed;
  if (j->errors.size() < static_cast<size_t>(config_.max_errors_kept)) {
    j->errors.push_back({shard, j->partition.Bounds(shard), executor, message});
  }
  const int32_t failures = ++j->failures[shard];
  if (retryable && failures < config_.max_attempts) {
    j->retry[shard] = attempt;
  } else {
    j->failures.erase(shard);
    ++j->failed;
    FailJob(*j,
            absl::StrCat("shard ", shard, " failed after ", failures,
                         failures == 1 ? " attempt: " : " attempts: ", message),
            now, out);
  }
  Touch(*j);
  Dispatch(now, out);
  CheckInvariants();
}

void SchedulerCore::Release(const ExecutorConn& conn, const std::vector<std::string>& ids,
                            absl::Time now, Actions& out) {
  for (const std::string& id : ids) {
    if (FindLease(conn, id) == nullptr) continue;
    ++counters_.shards_requeued;
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
  j->location = location;
  j->sha256 = sha256;
  j->state = JobState::kSucceeded;
  j->ended = now;
  ++counters_.results_persisted;
  active_.erase(std::find(active_.begin(), active_.end(), j));
  Touch(*j);
  Dispatch(now, out);
  CheckInvariants();
}

void SchedulerCore::PersistFailed(const std::string& job_id, const std::string& error,
                                  absl::Time now, Actions& out) {
  Job* j = FindJob(job_id);
  if (j == nullptr || !j->persisting) return;
  j->persisting = false;
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
    DropExecutor(*e);
  }
  Dispatch(now, out);
  CheckInvariants();
}

std::vector<ExecutorView> SchedulerCore::ListExecutors() const {
  std::vector<ExecutorView> out;
  for (const auto& [id, e] : executors_) {
    out.push_back({e->conn.executor_id, e->hello.name,
                   std::vector<std::string>(e->tasks.begin(), e->tasks.end()),
                   e->hello.slots, static_cast<int32_t>(e->leases.size()),
                   e->hello.version, e->draining, e->connected, e->last_seen,
                   e->completed});
  }
  return out;
}

QueueStats SchedulerCore::Stats() const {
  QueueStats s;
  for (const Job* j : active_) {
    (j->state == JobState::kQueued ? s.jobs_queued : s.jobs_running)++;
    s.shards_running += static_cast<int64_t>(j->running.size());
    s.shards_pending +=
        j->partition.num_shards() - j->next_shard + static_cast<int64_t>(j->retry.size());
  }
  for (const auto& [id, e] : executors_) {
    ++s.executors;
    s.slots_total += e->hello.slots;
    s.slots_busy +=
        std::min<int32_t>(e->hello.slots, static_cast<int32_t>(e->leases.size()));
  }
  return s;
}

std::map<JobState, int64_t> SchedulerCore::JobCounts() const {
  std::map<JobState, int64_t> out;
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                     JobState::kFailed, JobState::kCancelled}) {
    out[s] = 0;
  }
  for (const auto& [id, j] : jobs_) ++out[j->state];
  return out;
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

bool SchedulerCore::HasWork(const Job& j) const {
  if (IsTerminal(j.state) || j.persisting) return false;
  if (j.spec.max_parallel > 0 &&
      static_cast<int64_t>(j.running.size()) >= j.spec.max_parallel) {
    return false;
  }
  return !j.retry.empty() || j.next_shard < j.partition.num_shards();
}

SchedulerCore::Job* SchedulerCore::NextJobFor(const Executor& e) {
  const size_t n = active_.size();
  for (size_t k = 0; k < n; ++k) {
    const size_t idx = (rr_cursor_ + k) % n;
    Job* j = active_[idx];
    if (HasWork(*j) && e.tasks.count(j->spec.task)) {
      rr_cursor_ = idx + 1;
      return j;
    }
  }
  return nullptr;
}

void SchedulerCore::Dispatch(absl::Time now, Actions& out) {
  bool assigned = true;
  while (assigned && !active_.empty()) {
    assigned = false;
    for (auto& [id, e] : executors_) {
      if (e->draining ||
          static_cast<int64_t>(e->leases.size()) >= e->hello.slots + config_.prefetch) {
        continue;
      }
      Job* j = NextJobFor(*e);
      if (j == nullptr) continue;
      AssignOne(*j, *e, now, out);
      assigned = true;
    }
  }
}

void SchedulerCore::AssignOne(Job& j, Executor& e, absl::Time now, Actions& out) {
  int64_t shard;
  int32_t attempt;
  if (!j.retry.empty()) {
    shard = j.retry.begin()->first;
    attempt = j.retry.begin()->second + 1;
    j.retry.erase(j.retry.begin());
  } else {
    shard = j.next_shard++;
    attempt = 1;
  }
  auto lease = std::make_unique<Lease>();
  lease->id = absl::StrCat(j.id, ".", shard, ".", attempt);
  lease->job = &j;
  lease->shard = shard;
  lease->executor = &e;
  lease->attempt = attempt;
  if (j.state == JobState::kQueued) {
    j.state = JobState::kRunning;
    j.started = now;
  }
  ++j.assignments;
  j.executors_used.insert(e.hello.name);
  j.running[shard] = lease->id;
  e.leases.insert(lease->id);
  ++counters_.shards_dispatched;
  out.assigns.push_back({e.conn,
                         {lease->id, j.id, shard, j.spec.task, j.params_json,
                          j.partition.Bounds(shard), attempt}});
  leases_.emplace(lease->id, std::move(lease));
  Touch(j);
}

void SchedulerCore::EndLease(const std::string& lease_id, bool requeue) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  Lease* l = it->second.get();
  l->executor->leases.erase(lease_id);
  Job* j = l->job;
  j->running.erase(l->shard);
  if (requeue && !IsTerminal(j->state)) j->retry[l->shard] = l->attempt;
  Touch(*j);
  leases_.erase(it);
}

void SchedulerCore::Accept(Job& j, int64_t shard, json result, absl::Time now,
                           Actions& out) {
  ++j.succeeded;
  ++counters_.shards_succeeded;
  j.items_completed = SaturatingAdd(j.items_completed, j.partition.Items(shard));
  j.failures.erase(shard);
  j.buffered.emplace(shard, std::move(result));
  // Fold the contiguous prefix in shard order: the bytes never depend on the
  // order results arrive in, and memory holds only the out-of-order window.
  for (auto it = j.buffered.begin(); it != j.buffered.end() && it->first == j.folded;
       it = j.buffered.erase(it)) {
    absl::Status s = j.folder.Add(it->first, it->second);
    if (!s.ok()) {
      FailJob(j, absl::StrCat("aggregate: ", s.message()), now, out);
      return;
    }
    ++j.folded;
  }
  if (j.folded == j.partition.num_shards()) Finish(j, now, out);
}

void SchedulerCore::Finish(Job& j, absl::Time now, Actions& out) {
  json result = j.folder.value();
  auto time = [](absl::Time t) {
    return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
  };
  json range = {{"start", j.spec.range.start}, {"end", j.spec.range.end}};
  if (j.spec.range.shard_size > 0) range["shard_size"] = j.spec.range.shard_size;
  if (j.spec.range.shard_count > 0) range["shard_count"] = j.spec.range.shard_count;
  result["_metadata"] = {
      {"job_id", j.id},
      {"name", j.spec.name},
      {"task", j.spec.task},
      {"range", range},
      {"shards",
       {{"total", j.partition.num_shards()},
        {"succeeded", j.succeeded},
        {"failed", j.failed}}},
      {"attempts", j.assignments},
      {"executors",
       std::vector<std::string>(j.executors_used.begin(), j.executors_used.end())},
      {"created_at", time(j.created)},
      {"started_at", time(j.started)},
      {"finished_at", time(now)},
  };
  j.persisting = true;
  out.persists.push_back({j.id, result.dump(2) + "\n"});
  j.folder = Folder();  // the bytes are all that is needed from here on
  Touch(j);
}

void SchedulerCore::FailJob(Job& j, const std::string& message, absl::Time now,
                            Actions& out) {
  CancelLeases(j, out);
  j.state = JobState::kFailed;
  j.ended = now;
  j.message = message;
  j.buffered.clear();
  j.retry.clear();
  j.failures.clear();
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

void SchedulerCore::Touch(Job& j) { j.version = ++version_; }

void SchedulerCore::DropExecutor(Executor& e) {
  std::vector<std::string> ids(e.leases.begin(), e.leases.end());
  for (const std::string& id : ids) {
    ++counters_.shards_requeued;
    EndLease(id, /*requeue=*/true);
  }
  executors_.erase(e.conn.executor_id);
  ++version_;
}

std::string SchedulerCore::WaitReason(const Job& j, absl::Time now) const {
  if (j.state != JobState::kQueued) return j.message;
  for (const auto& [id, e] : executors_) {
    if (e->tasks.count(j.spec.task) && !e->draining)
      return "waiting for a free executor slot";
  }
  if (!known_tasks_.count(j.spec.task) && now - j.created >= config_.unknown_task_grace) {
    return absl::StrCat(
        "no executor has advertised task \"", j.spec.task, "\" in ",
        absl::FormatDuration(now - j.created), "; tasks advertised: ",
        known_tasks_.empty() ? "none" : absl::StrJoin(known_tasks_, ", "));
  }
  return absl::StrCat("waiting for an executor that runs task \"", j.spec.task, "\"");
}

JobView SchedulerCore::View(const Job& j, absl::Time now) const {
  JobView v;
  v.id = j.id;
  v.spec = j.spec;
  v.state = j.state;
  v.shards.total = j.partition.num_shards();
  v.shards.running = static_cast<int64_t>(j.running.size());
  v.shards.succeeded = j.succeeded;
  v.shards.failed = j.failed;
  v.shards.pending = IsTerminal(j.state) ? 0
                                         : v.shards.total - v.shards.succeeded -
                                               v.shards.failed - v.shards.running;
  v.items_total = j.partition.TotalItems();
  v.items_done = j.items_completed;
  for (const auto& [shard, id] : j.running) {
    v.items_done = SaturatingAdd(v.items_done, leases_.at(id)->progress);
  }
  v.create_time = j.created;
  v.start_time = j.started;
  v.end_time = j.ended;
  v.message = WaitReason(j, now);
  v.errors = j.errors;
  v.result_location = j.location;
  v.result_sha256 = j.sha256;
  v.version = j.version;
  return v;
}

void SchedulerCore::CheckInvariants() const {
#ifndef NDEBUG
  size_t running = 0;
  for (const Job* j : active_) {
    assert(!IsTerminal(j->state));
    running += j->running.size();
    assert(j->folded <= j->partition.num_shards());
    assert(j->next_shard <= j->partition.num_shards());
    for (const auto& [shard, id] : j->running) {
      const Lease& l = *leases_.at(id);
      assert(l.job == j && l.shard == shard);
      assert(l.executor->leases.count(id) == 1);
      assert(j->retry.count(shard) == 0);
    }
  }
  assert(running == leases_.size());
  for (const auto& [id, e] : executors_) {
    assert(static_cast<int64_t>(e->leases.size()) <= e->hello.slots + config_.prefetch);
  }
#endif
}

}  // namespace tessera::scheduler
