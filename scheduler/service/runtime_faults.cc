// The runtime's answers to a failing store or sink (see faults.h): calls
// answered within the store timeout, commits without the records the store
// refuses for good, giving up at shutdown, and result writes retried.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "scheduler/service/runtime.h"
#include "shared/logging.h"

namespace tessera::scheduler {

std::shared_ptr<PendingCall> Runtime::TrackCall(JobCallback done,
                                                const std::string& method,
                                                const std::string& job_id,
                                                bool accepted) {
  auto call = std::make_shared<PendingCall>(std::move(done), method, job_id,
                                            clock_->Now() + store_timeout_, accepted);
  absl::MutexLock lock(&calls_mu_);
  calls_.push_back(call);
  return call;
}

void Runtime::ExpireCalls(absl::Time now) {
  std::vector<std::shared_ptr<PendingCall>> calls;
  {
    absl::MutexLock lock(&calls_mu_);
    if (calls_.empty()) return;
    calls = calls_;
  }
  const absl::Status cause = faults_.StoreError();
  std::set<PendingCall*> done;
  for (const std::shared_ptr<PendingCall>& call : calls) {
    if (call->Expire(now, cause, store_timeout_)) done.insert(call.get());
  }
  absl::MutexLock lock(&calls_mu_);
  calls_.erase(std::remove_if(calls_.begin(), calls_.end(),
                              [&done](const std::shared_ptr<PendingCall>& c) {
                                return done.count(c.get()) > 0;
                              }),
               calls_.end());
}

absl::Status Runtime::CommitBatch(const std::deque<WriterItem>& batch, bool durable,
                                  std::map<std::string, RefusedJob>& refused) {
  while (true) {
    // One transaction for every record in the batch (group commit); of a job
    // saved more than once only the last record, which the transaction would
    // keep anyway.
    StoreWrite write;
    std::vector<const JobRecord*>& jobs = write.jobs;
    std::map<std::string, size_t> job_at;
    std::vector<const SaveResultOp*>& results = write.results;
    for (const WriterItem& item : batch) {
      const auto* op = std::get_if<DurableOp>(&item);
      if (op == nullptr) continue;
      if (const auto* j = std::get_if<SaveJobOp>(op)) {
        auto r = refused.find(j->record().id);
        if (r != refused.end() && r->second.whole) continue;
        auto [at, added] = job_at.try_emplace(j->record().id, jobs.size());
        if (added) {
          jobs.push_back(&j->record());
        } else {
          jobs[at->second] = &j->record();
        }
      } else if (const auto* r = std::get_if<SaveResultOp>(op)) {
        if (refused.count(r->job_id) == 0) results.push_back(r);
      } else if (const auto* f = std::get_if<SaveFailedShardOp>(op)) {
        if (refused.count(f->job_id) == 0) write.failed.push_back(f);
      } else if (const auto* r = std::get_if<RetireJobOp>(op)) {
        write.retired.push_back(r->job_id);
      }
    }
    // A job's "done" record (it names the result's location) commits only
    // once the result would survive a power cut: one directory fsync here
    // covers every result published since the last (see Persist). The done
    // record drops the "finalizing" bytes a restart would rewrite the file
    // from, so a failed sync holds the batch back like a failed commit.
    const bool records_done =
        std::any_of(jobs.begin(), jobs.end(),
                    [](const JobRecord* j) { return !j->location.empty(); });
    absl::Status status = records_done ? sink_->Sync() : absl::OkStatus();
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("result sink sync: ", status.message()));
    }
    if (write.empty() && !durable) return absl::OkStatus();
    const absl::Time t0 = MonoNow();
    status = write.empty() ? store_->Flush() : store_->Commit(write, durable);
    metrics_.StoreCommitted(
        MonoNow() - t0,
        static_cast<int64_t>(jobs.size() + results.size() + write.failed.size() +
                             write.retired.size()),
        status.ok());
    // A record of one job that can never be stored: the others go on
    // without it. First without the job's shard results (so that its latest
    // state, e.g. a failure, is still kept), then without any of its records.
    std::optional<std::string> job = RecordErrorJob(status);
    if (!job.has_value()) return status;
    auto [it, first] = refused.try_emplace(*job, RefusedJob{false, status});
    if (!first) {
      if (it->second.whole) return status;  // the store blames a record not sent
      it->second = RefusedJob{true, status};
    }
    spdlog::error(
        "job={}: the store refuses a record of it for good; committing the "
        "rest without its {}, and failing it: {}",
        *job, first ? "shard results" : "records", status.ToString());
  }
}

void Runtime::Abandon(std::deque<WriterItem>& batch, const absl::Status& error) {
  int records = 0;
  for (WriterItem& item : batch) {
    if (auto* r = std::get_if<CallReply>(&item)) {
      r->call->Answer(absl::UnavailableError(
          absl::StrCat("the scheduler stopped before the change was durable (",
                       error.message(), "); it did not take effect")));
    } else if (auto* t = std::get_if<std::shared_ptr<PersistTicket>>(&item)) {
      absl::MutexLock lock(&(*t)->mu);
      (*t)->abandoned = true;
    } else if (const auto* op = std::get_if<DurableOp>(&item)) {
      records += !std::holds_alternative<AckOp>(*op) &&
                 !std::holds_alternative<PersistAction>(*op);
    }
  }
  spdlog::error(
      "stopping: gave up on {} records the store would not commit (none was "
      "acknowledged; executors keep their results): {}",
      records, error.ToString());
}

bool Runtime::WaitUnlessStopping(absl::Duration d) {
  absl::MutexLock lock(&writer_mu_);
  auto stopping = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) { return stopping_; };
  return !AwaitFor(&writer_mu_, stop_cv_, stopping, d);
}

absl::StatusOr<PersistedResult> Runtime::WriteResult(
    const PersistAction& p, const absl::StatusOr<StagedResult>& first) {
  absl::StatusOr<PersistedResult> written =
      first.ok() ? sink_->Publish(*first)
                 : absl::StatusOr<PersistedResult>(first.status());
  int failures = 0;
  while (!written.ok() && SinkErrorMayPass(written.status())) {
    ++failures;
    metrics_.ResultWriteRetried();
    faults_.SinkFailed(failures, written.status());
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
    written = staged.ok() ? sink_->Publish(*staged)
                          : absl::StatusOr<PersistedResult>(staged.status());
  }
  if (failures > 0) {
    faults_.SinkRetriesEnded(failures);
    if (written.ok()) {
      spdlog::info("job={} result v{} written after {} failed attempts", p.job_id,
                   p.version, failures);
    }
  }
  return written;
}

}  // namespace tessera::scheduler
