#include "scheduler/service/result_publisher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/service/scheduler_metrics.h"
#include "scheduler/sink/result_sink.h"
#include "shared/logging.h"

namespace tessera::scheduler {
namespace {

// Sink writes at once: each is mostly waiting for fsyncs, which overlap.
constexpr int kWorkers = 4;

// Recent keeps this many results of at most this size.
constexpr size_t kRecentResults = 64;
constexpr size_t kRecentResultBytes = 256 << 10;

// A result whose "finalizing" record will never commit is not written.
void LogNeverCommitted(const PersistAction& p) {
  spdlog::warn("job={} result v{} not written: its record was never committed", p.job_id,
               p.version);
}

}  // namespace

// A result between Begin and its publication.
struct ResultPublisher::Ticket {
  PersistAction action;
  absl::Time began;
  absl::Mutex mu;
  bool committed ABSL_GUARDED_BY(mu) = false;
  // Its "finalizing" record will never commit (refused, or the writer gave
  // up at shutdown): the result must not be published.
  bool abandoned ABSL_GUARDED_BY(mu) = false;
  // Staged before the commit was settled, with no worker waiting for it (a
  // sink that publishes quickly): the commit's callback publishes it.
  std::optional<absl::StatusOr<StagedResult>> parked ABSL_GUARDED_BY(mu);
  // That publication failed with an error that may pass: a worker retries.
  std::optional<absl::StatusOr<PersistedResult>> failed ABSL_GUARDED_BY(mu);
};

ResultPublisher::ResultPublisher(const Clock* clock, ResultSink* sink,
                                 DurableWriter* writer, FaultState* faults,
                                 SchedulerMetrics* metrics, Written written)
    : clock_(clock),
      sink_(sink),
      writer_(writer),
      faults_(faults),
      metrics_(metrics),
      written_(std::move(written)),
      quick_(sink->PublishesQuickly()) {}

ResultPublisher::~ResultPublisher() {
  Stop();
  Join();
}

void ResultPublisher::Start() {
  for (int i = 0; i < kWorkers; ++i) workers_.emplace_back([this] { Loop(); });
}

DurableWriter::Callback ResultPublisher::Begin(PersistAction action) {
  // Held until the job's end is queued, so that the writer commits it too.
  if (!writer_->Hold()) {
    spdlog::warn("job={} result v{} not written: stopping; the next start writes it",
                 action.job_id, action.version);
    return [](const DurableWriter::Outcome&) {};
  }
  auto ticket = std::make_shared<Ticket>();
  ticket->action = std::move(action);
  ticket->began = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(ticket);
  }
  return [this, ticket](const DurableWriter::Outcome& outcome) {
    absl::StatusOr<StagedResult> staged;
    {
      absl::MutexLock lock(&ticket->mu);
      ticket->committed = outcome.status.ok();
      ticket->abandoned = !outcome.status.ok();
      if (!ticket->parked.has_value()) return;  // a worker stages it or waits
      staged = *std::move(ticket->parked);
      ticket->parked.reset();
    }
    PublishParked(ticket, std::move(staged), outcome.status.ok());
  };
}

void ResultPublisher::PublishParked(const std::shared_ptr<Ticket>& ticket,
                                    absl::StatusOr<StagedResult> staged, bool committed) {
  // Here, on the thread that heard of the commit: no worker wakes up between
  // the commit and the job's end.
  const PersistAction& p = ticket->action;
  if (!committed) {
    LogNeverCommitted(p);
    writer_->Release();
    return;
  }
  absl::StatusOr<PersistedResult> written = Publish(staged);
  if (!written.ok() && SinkErrorMayPass(written.status())) {
    // The retries wait out backoffs: a worker's to do.
    {
      absl::MutexLock lock(&ticket->mu);
      ticket->failed = std::move(written);
    }
    absl::MutexLock lock(&mu_);
    queue_.push_front(ticket);
    return;
  }
  const bool published = Finish(*ticket, written);
  writer_->Release();
  if (!published) return;
  // A worker syncs the sink and prepares the next spare (Loop).
  absl::MutexLock lock(&mu_);
  queue_.push_back(nullptr);
}

absl::Status ResultPublisher::SyncBeforeCommit(const StoreWrite& write) {
  // A job's "done" record (it names the result's location) commits only
  // once the result would survive a power cut: one directory fsync here
  // covers every result published since the last. The done record drops the
  // "finalizing" bytes a restart would rewrite the file from, so a failed
  // sync holds the batch back like a failed commit.
  const bool names_result =
      std::any_of(write.jobs.begin(), write.jobs.end(),
                  [](const JobRecord* j) { return !j->location.empty(); });
  if (!names_result) return absl::OkStatus();
  absl::Status status = sink_->Sync();
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat("result sink sync: ", status.message()));
}

std::optional<std::string> ResultPublisher::Recent(const std::string& job_id,
                                                   int32_t version) {
  absl::MutexLock lock(&recent_mu_);
  for (auto it = recent_.rbegin(); it != recent_.rend(); ++it) {
    if (it->job_id != job_id) continue;
    if (it->version != version) return std::nullopt;
    return it->bytes;
  }
  return std::nullopt;
}

void ResultPublisher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
  }
  // A sink waiting out a store that is down gives up: its jobs stay
  // "finalizing" and the next start writes them.
  sink_->Cancel();
}

void ResultPublisher::Join() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

bool ResultPublisher::Idle() {
  absl::MutexLock lock(&mu_);
  return queue_.empty();
}

bool ResultPublisher::WaitUnlessStopping(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  return !AwaitFor(&mu_, stop_cv_, stopping, d);
}

void ResultPublisher::Loop() {
  while (true) {
    std::shared_ptr<Ticket> ticket;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || closing_;
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;
      ticket = std::move(queue_.front());
      queue_.pop_front();
    }
    bool published = true;
    if (ticket != nullptr) {  // else a result was published after its commit
      std::optional<bool> persisted = Persist(*ticket);
      if (!persisted.has_value()) continue;  // parked
      published = *persisted;
      writer_->Release();
    }
    // The job has ended and its watchers were told: while they read it, the
    // sink's Sync that its "done" record's commit waits for (SyncBeforeCommit)
    // is done here, off the writer, so that the next commit (e.g. the next
    // job's submit) seldom finds it still to do. Only when no other result
    // waits: under load one Sync in the writer's batch covers many results.
    // An error is the writer's to see and retry when it syncs itself.
    if (published && Idle()) (void)sink_->Sync();
    sink_->Prepare();  // e.g. the file sink's spare files, for the next results
  }
}

std::optional<bool> ResultPublisher::Persist(Ticket& ticket) {
  const PersistAction& p = ticket.action;
  std::optional<absl::StatusOr<PersistedResult>> failed;
  {
    absl::MutexLock lock(&ticket.mu);
    failed.swap(ticket.failed);
  }
  // Back from a publication after the commit that failed: retried here.
  if (failed.has_value()) return Finish(ticket, Write(p, *std::move(failed)));
  absl::StatusOr<StagedResult> staged = sink_->Stage(p.job_id, p.version, p.bytes);
  {
    // The "finalizing" record must outlive even a power cut once the sink
    // has the result, or a restart could write a second, different result:
    // publish (and report either outcome) only after the durable commit.
    absl::MutexLock lock(&ticket.mu);
    const bool settled = ticket.committed || ticket.abandoned;
    if (!settled && quick_ && persist_delay_ == absl::ZeroDuration()) {
      ticket.parked = std::move(staged);  // the commit's callback goes on
      return std::nullopt;
    }
    auto is_settled = [&ticket]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ticket.mu) {
      return ticket.committed || ticket.abandoned;
    };
    ticket.mu.Await(absl::Condition(&is_settled));
    if (ticket.abandoned) {
      LogNeverCommitted(p);
      return false;
    }
  }
  return Finish(ticket, Write(p, Publish(staged)));
}

bool ResultPublisher::Finish(Ticket& ticket,
                             const absl::StatusOr<PersistedResult>& written) {
  const PersistAction& p = ticket.action;
  if (!written.ok() && SinkErrorMayPass(written.status())) {
    // Stopped while retrying: the durable "finalizing" record makes the next
    // start write the same bytes.
    spdlog::warn(
        "job={} result v{} not written before stopping ({}); the next start "
        "writes it",
        p.job_id, p.version, written.status().ToString());
    return false;
  }
  if (metrics_ != nullptr) {
    metrics_->ResultPersisted(clock_->Now() - ticket.began, written.ok());
  }
  if (persist_delay_ > absl::ZeroDuration()) {
    // The whole delay, stopping or not: it stands for a hung disk.
    absl::MutexLock lock(&mu_);
    AwaitFor(
        &mu_, stop_cv_, [] { return false; }, persist_delay_);
  }
  // Kept before the owner is told: watchers told of the end read it here.
  if (written.ok() && p.bytes.size() <= kRecentResultBytes) {
    absl::MutexLock lock(&recent_mu_);
    recent_.push_back({p.job_id, p.version, p.bytes});
    if (recent_.size() > kRecentResults) recent_.pop_front();
  }
  written_(p, written);
  if (written.ok()) {
    spdlog::info("job={} finished; result v{} persisted to {} sha256={}", p.job_id,
                 p.version, written->location, written->sha256);
  } else {
    spdlog::error("job={} failed: persisting the result: {}", p.job_id,
                  written.status().ToString());
  }
  return written.ok();
}

absl::StatusOr<PersistedResult> ResultPublisher::Publish(
    const absl::StatusOr<StagedResult>& staged) {
  if (!staged.ok()) return staged.status();
  return sink_->Publish(*staged);
}

absl::StatusOr<PersistedResult> ResultPublisher::Write(
    const PersistAction& p, absl::StatusOr<PersistedResult> written) {
  int failures = 0;
  while (!written.ok() && SinkErrorMayPass(written.status())) {
    ++failures;
    if (metrics_ != nullptr) metrics_->ResultWriteRetried();
    faults_->SinkFailed(failures, written.status());
    const absl::Duration backoff = FaultBackoff(failures);
    if (failures == 1 || failures == kFailuresBeforeRefusing || failures % 30 == 0) {
      spdlog::error(
          "job={} writing result v{} failed ({} in a row), retrying in {}{}: {}",
          p.job_id, p.version, failures, absl::FormatDuration(backoff),
          failures >= kFailuresBeforeRefusing
              ? "; refusing new work and NOT_SERVING until it passes"
              : "",
          written.status().ToString());
    }
    if (!WaitUnlessStopping(backoff)) break;
    // The same bytes: staged again (a failed write leaves nothing behind, or
    // these very bytes, which Stage then finds in place).
    absl::StatusOr<StagedResult> staged = sink_->Stage(p.job_id, p.version, p.bytes);
    written = Publish(staged);
  }
  if (failures > 0) {
    faults_->SinkRetriesEnded(failures);
    if (written.ok()) {
      spdlog::info("job={} result v{} written after {} failed attempts", p.job_id,
                   p.version, failures);
    }
  }
  return written;
}

}  // namespace tessera::scheduler
