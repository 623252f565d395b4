// The runtime's reads: jobs in memory from the core, finished ones from the
// store, results from the sink (checked against their sha256), and the
// reader threads that run the reads a gRPC callback must not wait for.
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "scheduler/service/runtime.h"
#include "scheduler/sink/result_sink.h"
#include "shared/logging.h"
#include "shared/sha256.h"

namespace tessera::scheduler {

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
  std::optional<std::string> bytes = publisher_.Recent(job_id, job->result_version);
  if (!bytes.has_value()) return std::nullopt;
  const auto size = static_cast<int64_t>(bytes->size());
  if (size > max_bytes) return ResultBytes{*std::move(job), "", size, true};
  return ResultBytes{*std::move(job), *std::move(bytes), size, false};
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

}  // namespace tessera::scheduler
