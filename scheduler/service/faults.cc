#include "scheduler/service/faults.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tessera::scheduler {
namespace {

constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);

bool DiskFull(const absl::Status& s) {
  return s.code() == absl::StatusCode::kResourceExhausted;
}

}  // namespace

absl::Duration FaultBackoff(int failures) {
  absl::Duration d = kFirstBackoff;
  for (int i = 1; i < failures && d < kMaxBackoff; ++i) d *= 2;
  return std::min(d, kMaxBackoff);
}

void FaultState::SetListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

void FaultState::SetCommitTimeout(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  commit_timeout_ = timeout;
}

void FaultState::CommitStarted(absl::Time now) {
  absl::MutexLock lock(&mu_);
  commit_started_ = now;
}

int FaultState::CommitFailed(const absl::Status& error) {
  absl::MutexLock lock(&mu_);
  commit_started_ = absl::InfiniteFuture();
  commit_stuck_ = false;
  commit_error_ = error;
  ++commit_failures_;
  PublishLocked();
  return commit_failures_;
}

int FaultState::CommitSucceeded() {
  absl::MutexLock lock(&mu_);
  commit_started_ = absl::InfiniteFuture();
  commit_stuck_ = false;
  const int failures = commit_failures_;
  commit_failures_ = 0;
  commit_error_ = absl::OkStatus();
  PublishLocked();
  return failures;
}

void FaultState::SinkFailed(int failures, const absl::Status& error) {
  absl::MutexLock lock(&mu_);
  sink_error_ = error;
  if (failures == kFailuresBeforeRefusing) ++sinks_failing_;
  PublishLocked();
}

void FaultState::SinkRetriesEnded(int failures) {
  absl::MutexLock lock(&mu_);
  if (failures >= kFailuresBeforeRefusing) --sinks_failing_;
  if (sinks_failing_ == 0) sink_error_ = absl::OkStatus();
  PublishLocked();
}

void FaultState::Check(absl::Time now) {
  absl::MutexLock lock(&mu_);
  commit_stuck_ = now - commit_started_ > commit_timeout_;
  PublishLocked();
}

absl::Status FaultState::Refusal(bool new_work) {
  absl::MutexLock lock(&mu_);
  return RefusalLocked(new_work);
}

absl::Status FaultState::StoreError() {
  absl::MutexLock lock(&mu_);
  if (commit_failures_ > 0) return commit_error_;
  if (commit_stuck_) {
    return absl::UnavailableError(absl::StrCat("a store commit has run for over ",
                                               absl::FormatDuration(commit_timeout_)));
  }
  return absl::OkStatus();
}

absl::Status FaultState::RefusalLocked(bool new_work) {
  if (commit_failures_ >= kFailuresBeforeRefusing) {
    if (DiskFull(commit_error_)) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the scheduler's disk is full (", commit_error_.message(),
                       "); nothing was changed; try again once space is freed"));
    }
    return absl::UnavailableError(
        absl::StrCat("the scheduler cannot write to its store (", commit_error_.message(),
                     "); nothing was changed; try again later"));
  }
  if (commit_stuck_) {
    return absl::UnavailableError(absl::StrCat("a store commit has run for over ",
                                               absl::FormatDuration(commit_timeout_),
                                               "; nothing was changed; try again later"));
  }
  if (new_work && sinks_failing_ > 0) {
    return absl::Status(
        DiskFull(sink_error_) ? absl::StatusCode::kResourceExhausted
                              : absl::StatusCode::kUnavailable,
        absl::StrCat("the scheduler cannot write results (", sink_error_.message(),
                     "); no new work is taken until it can; nothing was changed"));
  }
  return absl::OkStatus();
}

void FaultState::PublishLocked() {
  absl::Status now = RefusalLocked(/*new_work=*/true);
  // Only a change of state is news, not a new message for the same one.
  if (now.code() == published_.code()) return;
  published_ = now;
  if (listener_) listener_(now);
}

PendingCall::PendingCall(Callback done, std::string method, std::string job_id,
                         absl::Time deadline, bool accepted)
    : done_(std::move(done)),
      method_(std::move(method)),
      job_id_(std::move(job_id)),
      deadline_(deadline),
      accepted_(accepted) {}

bool PendingCall::Accept() {
  absl::MutexLock lock(&mu_);
  if (!done_) return false;
  accepted_ = true;
  return true;
}

void PendingCall::SetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  job_id_ = job_id;
}

bool PendingCall::Answer(absl::StatusOr<JobView> result) {
  Callback done;
  {
    absl::MutexLock lock(&mu_);
    if (!done_) return false;
    done = std::move(done_);
    done_ = nullptr;
  }
  done(std::move(result));
  return true;
}

bool PendingCall::Expire(absl::Time now, const absl::Status& cause,
                         absl::Duration waited) {
  std::string message;
  {
    absl::MutexLock lock(&mu_);
    if (!done_) return true;
    if (now < deadline_) return false;
    const std::string why = cause.ok()
                                ? std::string("the commit is still under way")
                                : absl::StrCat("the store fails: ", cause.message());
    if (!accepted_) {
      message = absl::StrCat(method_, " of job ", job_id_, " waited ",
                             absl::FormatDuration(waited), " for the store (", why,
                             "); nothing was changed; try again later");
    } else {
      message = absl::StrCat(
          method_, " of job ", job_id_, " is not durable after ",
          absl::FormatDuration(waited), " (", why,
          "). It may still take effect: it is held in memory and committed once the "
          "store recovers, unless the scheduler stops first");
      if (method_ == "SubmitJob") {
        absl::StrAppend(&message,
                        "; a resubmit with the same idempotency_key returns this job "
                        "instead of making a second one");
      }
    }
  }
  Answer(absl::UnavailableError(message));
  return true;
}

bool PendingCall::answered() {
  absl::MutexLock lock(&mu_);
  return !done_;
}

}  // namespace tessera::scheduler
