#include "scheduler/service/durable_writer.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/service/scheduler_metrics.h"
#include "shared/logging.h"

namespace tessera::scheduler {
namespace {

// A lingering batch is committed at once when it holds this many entries
// (executors keep at most ~1,000 unacked results each).
constexpr size_t kLingerEntries = 512;

// What is done with a failed commit (store.h): how it is logged.
std::string CommitError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kResourceExhausted ? "disk full" : "failed";
}

}  // namespace

DurableWriter::DurableWriter(const Clock* clock, Store* store, FaultState* faults,
                             SchedulerMetrics* metrics, Hooks hooks)
    : clock_(clock),
      store_(store),
      faults_(faults),
      metrics_(metrics),
      hooks_(std::move(hooks)) {}

DurableWriter::~DurableWriter() {
  Stop();
  Join();
}

void DurableWriter::Start() {
  thread_ = std::thread([this] { Loop(); });
  callback_thread_ = std::thread([this] { CallbackLoop(); });
}

void DurableWriter::Add(Entry entry, bool urgent, bool durable) {
  std::vector<Entry> entries;
  entries.push_back(std::move(entry));
  Add(std::move(entries), urgent, durable);
}

void DurableWriter::Add(std::vector<Entry> entries, bool urgent, bool durable,
                        absl::Duration may_wait) {
  {
    absl::MutexLock lock(&mu_);
    if (!done_) {
      for (Entry& e : entries) queue_.push_back(std::move(e));
      durable_ = durable_ || durable;
      if (urgent && may_wait > absl::ZeroDuration() && linger_ > absl::ZeroDuration()) {
        const absl::Time by = MonoNow() + std::min(may_wait, linger_);
        if (by < soon_) {
          soon_ = by;
          linger_cv_.Signal();  // a lingering writer waits less now
        }
      } else {
        urgent_ = urgent_ || urgent;
      }
      if (urgent_ || queue_.size() >= kLingerEntries) linger_cv_.Signal();
      return;
    }
  }
  Batch late(std::make_move_iterator(entries.begin()),
             std::make_move_iterator(entries.end()));
  Abandon(late, absl::UnavailableError("the store writer has stopped"));
}

bool DurableWriter::Hold() {
  absl::MutexLock lock(&mu_);
  if (done_) return false;
  ++holds_;
  return true;
}

void DurableWriter::Release() {
  absl::MutexLock lock(&mu_);
  --holds_;
}

void DurableWriter::BeginShutdown() {
  absl::MutexLock lock(&mu_);
  if (shutdown_began_ == absl::InfiniteFuture()) shutdown_began_ = clock_->Now();
}

void DurableWriter::Stop() {
  absl::MutexLock lock(&mu_);
  if (shutdown_began_ == absl::InfiniteFuture()) shutdown_began_ = clock_->Now();
  stopping_ = true;
  stop_cv_.SignalAll();
  linger_cv_.SignalAll();
}

void DurableWriter::Join() {
  if (thread_.joinable()) thread_.join();
  if (callback_thread_.joinable()) callback_thread_.join();
}

bool DurableWriter::DueLocked() const {
  return !queue_.empty() && (urgent_ || stopping_ || linger_ <= absl::ZeroDuration() ||
                             queue_.size() >= kLingerEntries || MonoNow() >= soon_);
}

void DurableWriter::LingerLocked() {
  if (urgent_ || stopping_ || linger_ <= absl::ZeroDuration()) return;
  const absl::Time lingered = MonoNow() + linger_;
  while (true) {
    const absl::Time seen = soon_;
    const absl::Duration left = std::min(lingered, seen) - MonoNow();
    if (left <= absl::ZeroDuration()) return;
    auto go = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return urgent_ || stopping_ || queue_.size() >= kLingerEntries || soon_ != seen;
    };
    if (!AwaitFor(&mu_, linger_cv_, go, left)) return;  // waited it out
    if (soon_ == seen) return;                          // something must go now
  }
}

void DurableWriter::AfterBatch(absl::AnyInvocable<void() &&> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (calling_ || !callbacks_.empty() || DueLocked()) {
      callbacks_.push_back(std::move(fn));
      return;
    }
  }
  std::move(fn)();
}

void DurableWriter::CallbackLoop() {
  while (true) {
    absl::AnyInvocable<void() &&> fn;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !callbacks_.empty() || done_;
      };
      mu_.Await(absl::Condition(&ready));
      if (callbacks_.empty()) return;  // the writer has ended
      fn = std::move(callbacks_.front());
      callbacks_.pop_front();
      calling_ = true;
    }
    std::move(fn)();
    absl::MutexLock lock(&mu_);
    calling_ = false;
  }
}

void DurableWriter::Pause(absl::Duration backoff) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) {
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    AwaitFor(&mu_, stop_cv_, stopping, backoff);
    return;
  }
  // Stopping: retry until the store timeout has passed, not faster.
  const absl::Duration left = shutdown_began_ + store_timeout_ - clock_->Now();
  AwaitFor(
      &mu_, stop_cv_, [] { return false; }, std::min(backoff, left));
}

bool DurableWriter::ShutdownTimedOut() {
  absl::MutexLock lock(&mu_);
  return stopping_ && clock_->Now() - shutdown_began_ >= store_timeout_;
}

void DurableWriter::Loop() {
  int failures = 0;  // commits failed in a row
  absl::Time last_compact = clock_->Now();
  while (true) {
    Batch batch;
    bool durable;
    {
      absl::MutexLock lock(&mu_);
      // When stopping, the holders and the callbacks may still queue entries.
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() ||
               (stopping_ && holds_ == 0 && callbacks_.empty() && !calling_);
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) {  // stopping, and everything is written
        done_ = true;
        return;
      }
      LingerLocked();
      batch.swap(queue_);
      durable = durable_;
      urgent_ = durable_ = false;
      soon_ = absl::InfiniteFuture();
    }
    if (hooks_.taken) hooks_.taken(batch);
    Refusals refused;
    faults_->CommitStarted(clock_->Now());
    absl::Status status = Commit(batch, durable, refused);
    if (!status.ok()) {
      // Nothing is acknowledged until it is durable: keep the batch and try
      // again (executors keep their results meanwhile, callers are answered
      // at their deadline).
      failures = faults_->CommitFailed(status);
      if (ShutdownTimedOut()) {
        AfterBatch([this, batch = std::move(batch), status]() mutable {
          Abandon(batch, status);
        });
        continue;
      }
      const absl::Duration backoff = FaultBackoff(failures);
      if (failures == 1 || failures == kFailuresBeforeRefusing || failures % 30 == 0) {
        spdlog::error("store commit {} ({} in a row), retrying in {}{}: {}",
                      CommitError(status), failures, absl::FormatDuration(backoff),
                      failures >= kFailuresBeforeRefusing
                          ? "; refusing writes and NOT_SERVING until it passes"
                          : "",
                      status.ToString());
      }
      {
        absl::MutexLock lock(&mu_);
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          queue_.push_front(std::move(*it));
        }
        urgent_ = true;  // it has waited long enough
        durable_ = durable_ || durable;
      }
      Pause(backoff);
      continue;
    }
    if (const int before = faults_->CommitSucceeded(); before > 0) {
      spdlog::info("store commits succeed again after {} failures", before);
    }
    failures = 0;
    AfterBatch([this, batch = std::move(batch), refused = std::move(refused)]() mutable {
      if (hooks_.refused) {
        for (const auto& [job_id, r] : refused) hooks_.refused(job_id, r.status);
      }
      for (Entry& entry : batch) {
        auto* after = std::get_if<AfterCommit>(&entry);
        if (after == nullptr) continue;
        auto it = after->job_id.empty() ? refused.end() : refused.find(after->job_id);
        after->fn(it == refused.end() ? Outcome{} : it->second);
      }
      if (hooks_.committed) hooks_.committed(batch, refused);
    });
    // The space of deleted rows (compacted results, retired jobs) goes back
    // now and then; SQLite reuses free pages meanwhile anyway.
    if (compact_interval_ > absl::ZeroDuration() &&
        clock_->Now() - last_compact >= compact_interval_) {
      last_compact = clock_->Now();
      if (absl::Status s = store_->Compact(); !s.ok()) {
        spdlog::warn("store compaction failed (retried later): {}", s.ToString());
      }
    }
  }
}

int DurableWriter::SavesOf(const Batch& batch, const std::string& job_id) {
  int saves = 0;
  for (const Entry& entry : batch) {
    const auto* op = std::get_if<DurableOp>(&entry);
    const auto* j = op != nullptr ? std::get_if<SaveJobOp>(op) : nullptr;
    saves += j != nullptr && j->record().id == job_id;
  }
  return saves;
}

absl::Status DurableWriter::Commit(const Batch& batch, bool durable, Refusals& refused) {
  // Jobs of which only the first record in the batch is kept (a later one was
  // refused).
  std::set<std::string> first_only;
  while (true) {
    // One transaction for every record in the batch (group commit); of a job
    // saved more than once only the last record, which the transaction would
    // keep anyway.
    StoreWrite write;
    std::map<std::string, size_t> job_at;
    for (const Entry& entry : batch) {
      const auto* op = std::get_if<DurableOp>(&entry);
      if (op == nullptr) continue;
      if (const auto* j = std::get_if<SaveJobOp>(op)) {
        const std::string& id = j->record().id;
        auto r = refused.find(id);
        if (r != refused.end() && r->second.whole) continue;
        auto [at, added] = job_at.try_emplace(id, write.jobs.size());
        if (added) {
          write.jobs.push_back(&j->record());
        } else if (first_only.count(id) == 0) {
          write.jobs[at->second] = &j->record();
        }
      } else if (const auto* r = std::get_if<SaveResultOp>(op)) {
        if (refused.count(r->job_id) == 0) write.results.push_back(r);
      } else if (const auto* f = std::get_if<SaveFailedShardOp>(op)) {
        if (refused.count(f->job_id) == 0) write.failed.push_back(f);
      } else if (const auto* t = std::get_if<RetireJobOp>(op)) {
        write.retired.push_back(t->job_id);
      }
    }
    absl::Status status =
        hooks_.before_commit ? hooks_.before_commit(write) : absl::OkStatus();
    if (!status.ok()) return status;
    if (write.empty() && !durable) return absl::OkStatus();
    const absl::Time t0 = clock_->Now();
    status = write.empty() ? store_->Flush() : store_->Commit(write, durable);
    if (metrics_ != nullptr) {
      metrics_->StoreCommitted(
          clock_->Now() - t0,
          static_cast<int64_t>(write.jobs.size() + write.results.size() +
                               write.failed.size() + write.retired.size()),
          status.ok());
    }
    // A record of one job that can never be stored: the others go on
    // without it. First without the job's shard results (so that its latest
    // state, e.g. a failure, is still kept), then with only its first record
    // in the batch (e.g. a submit's, whose job's end in the same batch is
    // refused: the submission stands, and the job fails), then without any
    // of its records.
    std::optional<std::string> job = RecordErrorJob(status);
    if (!job.has_value()) return status;
    auto [it, first] = refused.try_emplace(*job, Outcome{status, false, false});
    const char* left_out = "shard results";
    if (!first) {
      if (it->second.whole) return status;  // the store blames a record not sent
      if (first_only.count(*job) == 0 && SavesOf(batch, *job) > 1) {
        first_only.insert(*job);
        it->second = Outcome{status, false, false};
        left_out = "records after the first";
      } else {
        it->second = Outcome{status, true, false};
        left_out = "records";
      }
    }
    spdlog::error(
        "job={}: the store refuses a record of it for good; committing the "
        "rest without its {}, and failing it: {}",
        *job, left_out, status.ToString());
  }
}

void DurableWriter::Abandon(Batch& batch, const absl::Status& error) {
  int records = 0;
  const Outcome abandoned{error, false, true};
  for (Entry& entry : batch) {
    if (auto* after = std::get_if<AfterCommit>(&entry)) {
      after->fn(abandoned);
    } else if (const auto* op = std::get_if<DurableOp>(&entry)) {
      records += !std::holds_alternative<AckOp>(*op) &&
                 !std::holds_alternative<PersistAction>(*op);
    }
  }
  if (records == 0) return;
  spdlog::error(
      "stopping: gave up on {} records the store would not commit (none was "
      "acknowledged; executors keep their results): {}",
      records, error.ToString());
}

}  // namespace tessera::scheduler
