#include "executor/service/shard_runner.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "executor/core/progress_throttle.h"
#include "spdlog/spdlog.h"

namespace tessera::executor {
namespace {

// Forwards a handler's reports to the listener, throttled; silent once cancelled.
class ThrottledReporter : public ProgressReporter {
 public:
  ThrottledReporter(const Assignment& a, const Clock* clock, const CancelToken& token,
                    ShardRunner::Listener* listener)
      : a_(a),
        clock_(clock),
        token_(token),
        listener_(listener),
        throttle_(clock->Now()) {}

  void Report(int64_t done, int64_t total) override {
    if (token_.cancelled()) return;
    if (throttle_.ShouldSend(clock_->Now(), done, total)) {
      listener_->OnProgress(a_, done, total);
    }
  }

 private:
  const Assignment& a_;
  const Clock* clock_;
  const CancelToken& token_;
  ShardRunner::Listener* listener_;
  ProgressThrottle throttle_;
};

absl::StatusOr<nlohmann::json> RunHandler(Handler& handler, const Assignment& a,
                                          ProgressReporter& progress,
                                          const CancelToken& cancel) {
  int64_t span = 0;
  if (a.end < a.start || __builtin_sub_overflow(a.end, a.start, &span)) {
    return absl::InvalidArgumentError(absl::StrCat("shard range [", a.start, ", ", a.end,
                                                   ") is reversed or too large"));
  }
  ShardTask task;
  task.job_id = a.job_id;
  task.shard = a.shard;
  task.start = a.start;
  task.end = a.end;
  task.attempt = a.attempt;
  if (!a.items_json.empty()) {
    task.has_items = true;
    task.items = nlohmann::json::parse(a.items_json, nullptr, /*allow_exceptions=*/false);
    if (task.items.is_discarded() || !task.items.is_array()) {
      return absl::InvalidArgumentError("items_json must be a JSON array");
    }
  }
  if (!a.params_json.empty()) {
    task.params =
        nlohmann::json::parse(a.params_json, nullptr, /*allow_exceptions=*/false);
    if (task.params.is_discarded() || !task.params.is_object()) {
      return absl::InvalidArgumentError("params_json must be a JSON object");
    }
  }
  try {
    absl::StatusOr<nlohmann::json> result = handler.Run(task, progress, cancel);
    if (result.ok() && !result->is_object()) {
      return absl::FailedPreconditionError(
          absl::StrCat("task ", a.task, " returned a result that is not a JSON object: ",
                       result->dump().substr(0, 200)));
    }
    return result;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("task ", a.task, " threw: ", e.what()));
  }
}

ShardOutcome OutcomeFor(const Assignment& a) {
  ShardOutcome o;
  o.lease_id = a.lease_id;
  o.job_id = a.job_id;
  o.shard = a.shard;
  o.task = a.task;
  return o;
}

}  // namespace

ShardRunner::ShardRunner(const HandlerRegistry* registry, int slots, Listener* listener,
                         const Clock* clock, ExecutorMetrics* metrics,
                         std::string executor_id)
    : registry_(registry),
      slots_(std::max(slots, 1)),
      listener_(listener),
      clock_(clock),
      metrics_(metrics),
      executor_id_(std::move(executor_id)),
      pool_(slots_) {
  if (metrics_ != nullptr) {
    metrics_->SetSlots(slots_);
    metrics_->SetSlotsBusy(0);
  }
}

ShardRunner::~ShardRunner() { Stop(); }

void ShardRunner::Start() {
  if (!workers_.empty()) return;
  for (int i = 0; i < slots_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

std::vector<std::string> ShardRunner::Offer(std::vector<Assignment> assignments) {
  std::vector<std::string> released;
  std::vector<ShardOutcome> rejected;
  {
    absl::MutexLock lock(&mu_);
    for (Assignment& a : assignments) {
      if (stopping_) {
        released.push_back(std::move(a.lease_id));
        continue;
      }
      if (registry_->Find(a.task) == nullptr) {
        ShardOutcome o = OutcomeFor(a);
        o.kind = ShardOutcome::Kind::kFailed;
        o.retryable = false;
        o.message =
            absl::StrCat("this executor has no handler for task \"", a.task,
                         "\" (it has: ", absl::StrJoin(registry_->Names(), ", "), ")");
        rejected.push_back(std::move(o));
        continue;
      }
      spdlog::debug("executor={} job={} shard={} lease={} task={} assigned (attempt {})",
                    executor_id_, a.job_id, a.shard, a.lease_id, a.task, a.attempt);
      SlotActions actions = pool_.Offer(std::move(a));
      released.insert(released.end(), actions.release.begin(), actions.release.end());
      StartLocked(actions);
    }
  }
  for (const ShardOutcome& o : rejected) {
    spdlog::warn("executor={} job={} shard={} lease={} failed: {}", executor_id_,
                 o.job_id, o.shard, o.lease_id, o.message);
    listener_->OnFinished(o);
  }
  return released;
}

bool ShardRunner::Cancel(const std::string& lease_id) {
  absl::MutexLock lock(&mu_);
  switch (pool_.Cancel(lease_id)) {
    case SlotPool::CancelResult::kDequeued:
      SignalIfIdleLocked();
      return true;
    case SlotPool::CancelResult::kRunning: {
      Running& r = running_.at(lease_id);
      if (r.delivering) return false;
      r.token->Cancel();
      return true;
    }
    case SlotPool::CancelResult::kUnknown:
      break;
  }
  return false;
}

std::vector<std::string> ShardRunner::DropQueued() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> dropped = pool_.DropQueued();
  SignalIfIdleLocked();
  return dropped;
}

std::vector<std::string> ShardRunner::StopAccepting() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> released = pool_.Drain().release;
  SignalIfIdleLocked();
  return released;
}

std::vector<std::string> ShardRunner::CancelRunning() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> leases;
  for (auto& [lease, r] : running_) {
    if (r.delivering || r.token->cancelled()) continue;
    r.token->Cancel();
    leases.push_back(lease);
  }
  std::sort(leases.begin(), leases.end());
  return leases;
}

bool ShardRunner::Idle() const {
  absl::MutexLock lock(&mu_);
  return IdleLocked();
}

bool ShardRunner::WaitIdle(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return AwaitFor(
      &mu_, idle_cv_,
      [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return IdleLocked(); }, timeout);
}

int ShardRunner::running() const {
  absl::MutexLock lock(&mu_);
  return pool_.running();
}

int ShardRunner::pending() const {
  absl::MutexLock lock(&mu_);
  return pool_.running() + pool_.queued();
}

std::vector<Assignment> ShardRunner::RunningAssignments() const {
  absl::MutexLock lock(&mu_);
  std::vector<Assignment> out;
  for (const auto& [lease, r] : running_) {
    if (!r.token->cancel_requested()) out.push_back(r.assignment);
  }
  return out;
}

void ShardRunner::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    pool_.Drain();
    for (auto& [lease, r] : running_) r.token->Cancel();
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void ShardRunner::WorkerLoop() {
  while (true) {
    Assignment a;
    std::shared_ptr<CancelToken> token;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &ShardRunner::HasWorkLocked));
      if (ready_.empty()) return;  // stopping, nothing left to wind down
      const Running& r = running_.at(ready_.front());
      ready_.pop_front();
      a = r.assignment;
      token = r.token;
    }
    if (a.timeout > absl::ZeroDuration())
      token->SetDeadline(clock_->Now() + a.timeout, clock_);
    Execute(a, *token);
  }
}

void ShardRunner::Execute(const Assignment& a, const CancelToken& token) {
  const absl::Time started = clock_->Now();
  absl::StatusOr<nlohmann::json> result = absl::CancelledError("cancelled before start");
  if (!token.cancelled()) {
    Handler* handler = registry_->Find(a.task);  // checked in Offer
    ThrottledReporter progress(a, clock_, token, listener_);
    result = RunHandler(*handler, a, progress, token);
  }
  const absl::Duration took = clock_->Now() - started;

  bool deliver = false;
  {
    absl::MutexLock lock(&mu_);
    // A result that arrives after Cancel is unwanted; a timeout is a failure.
    deliver = !token.cancel_requested();
    running_.at(a.lease_id).delivering = deliver;
  }
  ShardOutcome outcome = OutcomeFor(a);
  outcome.run_time = took;
  std::string label = "cancelled";
  if (!deliver) {
    spdlog::info("executor={} job={} shard={} lease={} cancelled after {}", executor_id_,
                 a.job_id, a.shard, a.lease_id, absl::FormatDuration(took));
  } else if (token.expired()) {
    label = "failed";
    outcome.kind = ShardOutcome::Kind::kFailed;
    outcome.message =
        absl::StrCat("shard timed out after ", absl::FormatDuration(a.timeout));
    outcome.retryable = true;
    spdlog::warn("executor={} job={} shard={} lease={} {}", executor_id_, a.job_id,
                 a.shard, a.lease_id, outcome.message);
  } else if (result.ok()) {
    label = "succeeded";
    outcome.result_json = result->dump();
    // One line per shard is for debugging: at 100,000 shards a second the
    // default level logs jobs and failures, not every success.
    if (spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("executor={} job={} shard={} lease={} succeeded in {}", executor_id_,
                    a.job_id, a.shard, a.lease_id, absl::FormatDuration(took));
    }
  } else {
    label = "failed";
    outcome.kind = ShardOutcome::Kind::kFailed;
    outcome.message = std::string(result.status().message());
    outcome.retryable = !IsPermanentError(result.status());
    spdlog::warn("executor={} job={} shard={} lease={} failed ({}) after {}: {}",
                 executor_id_, a.job_id, a.shard, a.lease_id,
                 outcome.retryable ? "retryable" : "permanent",
                 absl::FormatDuration(took), outcome.message);
  }
  if (metrics_ != nullptr) metrics_->ShardFinished(a.task, label, took);
  if (deliver) listener_->OnFinished(outcome);

  absl::MutexLock lock(&mu_);
  running_.erase(a.lease_id);
  SlotActions actions = pool_.Finish(a.lease_id);
  StartLocked(actions);
}

void ShardRunner::StartLocked(SlotActions& actions) {
  for (Assignment& a : actions.start) {
    std::string lease = a.lease_id;
    running_[lease] = Running{std::move(a), std::make_shared<CancelToken>(), false};
    ready_.push_back(std::move(lease));
  }
  UpdateBusyLocked();
}

void ShardRunner::UpdateBusyLocked() {
  if (metrics_ != nullptr) metrics_->SetSlotsBusy(pool_.running());
  SignalIfIdleLocked();
}

void ShardRunner::SignalIfIdleLocked() {
  if (IdleLocked()) idle_cv_.SignalAll();
}

bool ShardRunner::HasWorkLocked() const {
  return stopping_ || (!paused_ && !ready_.empty());
}

void ShardRunner::Pause() {
  absl::MutexLock lock(&mu_);
  paused_ = true;
}

void ShardRunner::Resume() {
  absl::MutexLock lock(&mu_);
  paused_ = false;
}

bool ShardRunner::IdleLocked() const { return pool_.idle(); }

}  // namespace tessera::executor
