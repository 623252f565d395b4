// How the runtime copes with a failing store or result sink: FaultState says
// whether writes and new work are refused now, and why; PendingCall answers a
// call that waits for its commit within a bound, whatever the store does.
#ifndef TESSERA_SCHEDULER_SERVICE_FAULTS_H_
#define TESSERA_SCHEDULER_SERVICE_FAULTS_H_

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/core/types.h"

namespace tessera::scheduler {

// A store or sink error this many times in a row (the first retry failed
// too) refuses work; one blip that the first retry gets past does not.
inline constexpr int kFailuresBeforeRefusing = 2;

// The wait before retrying a commit or a result write that failed `failures`
// times in a row: 50 ms, doubling, at most 2 s (a disk that has space again is
// noticed within 2 s).
absl::Duration FaultBackoff(int failures);

// The health of the store and the sink as the store writer and the persist
// workers see it, and what a caller is told while they fail:
// - store commits (and the sink syncs they wait for) failing
//   kFailuresBeforeRefusing times in a row, or one commit running longer than
//   the commit timeout: every write is refused (UNAVAILABLE, or
//   RESOURCE_EXHAUSTED for a full disk) until a commit succeeds;
// - a result write failing that often: new work (submissions, retries) is
//   refused until it is written.
// Either way health checks say NOT_SERVING. Thread-safe.
class FaultState {
 public:
  // Told OK or the refusal of new work whenever that changes; called with
  // this object's lock held (so never twice at once): it must not call back.
  using Listener = std::function<void(const absl::Status& refusal)>;

  explicit FaultState(absl::Duration commit_timeout) : commit_timeout_(commit_timeout) {}
  void SetListener(Listener listener);
  void SetCommitTimeout(absl::Duration timeout);

  // The store writer around each commit. CommitFailed returns how many
  // failed in a row, CommitSucceeded how many had before it.
  void CommitStarted(absl::Time now);
  int CommitFailed(const absl::Status& error);
  int CommitSucceeded();
  // A persist worker: its result's write failed `failures` times in a row
  // (and is retried), or its retries ended after `failures` failures.
  void SinkFailed(int failures, const absl::Status& error);
  void SinkRetriesEnded(int failures);
  // Time passing (the ticker): a commit stuck past the timeout counts as failing.
  void Check(absl::Time now);

  // OK, or the error to refuse a call with: `new_work` (a submission or a
  // retry of failed shards) is refused for sink faults too. The message says
  // nothing was changed.
  absl::Status Refusal(bool new_work);
  // The store's error while commits fail (for the answer of a call that
  // waited), or OK.
  absl::Status StoreError();

 private:
  absl::Status RefusalLocked(bool new_work) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the listener when the refusal of new work changed.
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  Listener listener_ ABSL_GUARDED_BY(mu_);
  absl::Duration commit_timeout_ ABSL_GUARDED_BY(mu_);
  int commit_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status commit_error_ ABSL_GUARDED_BY(mu_);
  absl::Time commit_started_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool commit_stuck_ ABSL_GUARDED_BY(mu_) = false;
  int sinks_failing_ ABSL_GUARDED_BY(mu_) = 0;  // results retried past the threshold
  absl::Status sink_error_ ABSL_GUARDED_BY(mu_);
  absl::Status published_ ABSL_GUARDED_BY(mu_);
};

// A call waiting for its change to be committed. Answered exactly once: by
// the store writer once the change is durable (or refused), or at its
// deadline with UNAVAILABLE. A call whose change the core has taken says in
// that answer that the change may still take effect (it is held in memory and
// committed if the store recovers before the scheduler stops); one whose
// change was not taken yet is dropped (Accept fails) and says so. Thread-safe.
class PendingCall {
 public:
  using Callback = std::function<void(absl::StatusOr<JobView>)>;

  // `method` names the call in answers, e.g. "SubmitJob". `accepted`: the
  // core takes the change at once (else see Accept).
  PendingCall(Callback done, std::string method, std::string job_id, absl::Time deadline,
              bool accepted);

  // The core is about to take the change; false when the call was answered
  // already, and then the change must be dropped.
  bool Accept();
  // The job the change is about (a submission learns it from the core).
  void SetJob(const std::string& job_id);
  // Answers unless the call was answered already (then false).
  bool Answer(absl::StatusOr<JobView> result);
  // Answers UNAVAILABLE when `now` is past the deadline; `cause` is the
  // store's error (OK: the commit is merely slow). True once answered.
  bool Expire(absl::Time now, const absl::Status& cause, absl::Duration waited);
  bool answered();

 private:
  absl::Mutex mu_;
  Callback done_ ABSL_GUARDED_BY(mu_);  // empty once answered
  const std::string method_;
  std::string job_id_ ABSL_GUARDED_BY(mu_);
  const absl::Time deadline_;
  bool accepted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_SERVICE_FAULTS_H_
