// A SchedulerConnection with no network: the test plays the scheduler, message
// by message, and decides when sessions open, break and end.
#ifndef TESSERA_TESTS_EXECUTOR_FAKE_SCHEDULER_CONNECTION_H_
#define TESSERA_TESTS_EXECUTOR_FAKE_SCHEDULER_CONNECTION_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "executor/service/scheduler_connection.h"
#include "shared/steady_wait.h"
#include "tessera/v1/executor.pb.h"

namespace tessera::executor {

// Thread-safe. Sessions are numbered from 1 in the order they open; the test's
// side (Send, EndSession, BreakWrites) acts on the newest. The executor
// half-closing a session ends it, as the real scheduler does. Must outlive
// the sessions it opens (the client under test).
class FakeSchedulerConnection : public SchedulerConnection {
 public:
  absl::StatusOr<std::unique_ptr<SchedulerSession>> Open(
      const std::string& address) override {
    absl::MutexLock lock(&mu_);
    ++attempts_;
    addresses_.push_back(address);
    cv_.SignalAll();
    if (!reachable_) return absl::UnavailableError("cannot connect to " + address);
    sessions_.emplace_back();
    return std::make_unique<Session>(this, static_cast<int>(sessions_.size()));
  }

  // While unreachable, Open fails with UNAVAILABLE.
  void SetReachable(bool reachable) {
    absl::MutexLock lock(&mu_);
    reachable_ = reachable;
  }
  // Waits until Open has been called `n` times in all.
  bool WaitForAttempts(int n) {
    return Await([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return attempts_ >= n; });
  }
  std::vector<std::string> addresses() {
    absl::MutexLock lock(&mu_);
    return addresses_;
  }

  // The next message the executor wrote (heartbeats counted and skipped,
  // result batches split into one ShardResult each), or nullopt after `timeout`.
  std::optional<v1::ExecutorMessage> Next(absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    if (!AwaitFor(
            &mu_, cv_,
            [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !written_.empty(); },
            timeout)) {
      return std::nullopt;
    }
    v1::ExecutorMessage msg = std::move(written_.front());
    written_.pop_front();
    return msg;
  }
  // Skips progress messages.
  std::optional<v1::ExecutorMessage> NextNonProgress() {
    while (true) {
      std::optional<v1::ExecutorMessage> msg = Next();
      if (!msg || !msg->has_progress()) return msg;
    }
  }
  // Messages written and not yet taken by Next.
  size_t pending() {
    absl::MutexLock lock(&mu_);
    return written_.size();
  }
  bool WaitForHeartbeats(int n) {
    return Await([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return heartbeats_ >= n; });
  }
  int heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  // Writes the executor tried on a session whose writes were broken.
  bool WaitForFailedWrites(int n) {
    return Await([&]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return failed_writes_ >= n; });
  }

  // Queues `msg` for the executor on the newest open session (waiting for one).
  bool Send(v1::SchedulerMessage msg) {
    absl::MutexLock lock(&mu_);
    const auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !sessions_.empty() && !sessions_.back().ended;
    };
    if (!AwaitFor(&mu_, cv_, open, absl::Seconds(10))) return false;
    sessions_.back().inbox.push_back(std::move(msg));
    cv_.SignalAll();
    return true;
  }
  // Waits until the executor has handled every message sent on the newest
  // session (it is reading again, or the session ended).
  bool WaitHandled() {
    return Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      const SessionState& s = sessions_.back();
      return s.ended || (s.inbox.empty() && s.reading);
    });
  }
  // The scheduler ends the newest session with `status` (it went away).
  void EndSession(absl::Status status = absl::UnavailableError("scheduler went away")) {
    absl::MutexLock lock(&mu_);
    EndLocked(sessions_.back(), std::move(status));
  }
  // The newest session's writes fail from now on, as on a broken stream whose
  // reader has not noticed yet.
  void BreakWrites() {
    absl::MutexLock lock(&mu_);
    sessions_.back().writes_broken = true;
  }
  // Sessions ended (by either side).
  bool WaitEnded(int n) {
    return Await([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      int ended = 0;
      for (const SessionState& s : sessions_) ended += s.ended ? 1 : 0;
      return ended >= n;
    });
  }
  int ended() {
    absl::MutexLock lock(&mu_);
    int ended = 0;
    for (const SessionState& s : sessions_) ended += s.ended ? 1 : 0;
    return ended;
  }
  // How the newest session ended from the executor's side: it half-closed
  // (CloseWrites) or cancelled.
  bool closed_writes() {
    absl::MutexLock lock(&mu_);
    return !sessions_.empty() && sessions_.back().writes_closed;
  }

 private:
  struct SessionState {
    std::deque<v1::SchedulerMessage> inbox;
    bool reading = false;  // the executor is blocked in Read
    bool ended = false;
    bool writes_closed = false;
    bool writes_broken = false;
    absl::Status status;
  };

  class Session : public SchedulerSession {
   public:
    Session(FakeSchedulerConnection* fake, int id) : fake_(fake), id_(id) {}
    bool Write(const v1::ExecutorMessage& msg) override { return fake_->Write(id_, msg); }
    bool Read(v1::SchedulerMessage* msg) override { return fake_->Read(id_, msg); }
    void CloseWrites() override { fake_->CloseWrites(id_); }
    void Cancel() override { fake_->Cancel(id_); }
    absl::Status Finish() override { return fake_->Finish(id_); }

   private:
    FakeSchedulerConnection* const fake_;
    const int id_;
  };

  template <typename Pred>
  bool Await(Pred pred) {
    absl::MutexLock lock(&mu_);
    return AwaitFor(&mu_, cv_, pred, absl::Seconds(10));
  }

  SessionState& state(int id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return sessions_[id - 1];
  }
  void EndLocked(SessionState& s, absl::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (s.ended) return;
    s.ended = true;
    s.status = std::move(status);
    cv_.SignalAll();
  }

  bool Write(int id, const v1::ExecutorMessage& msg) {
    absl::MutexLock lock(&mu_);
    SessionState& s = state(id);
    if (s.writes_broken) {
      ++failed_writes_;
      cv_.SignalAll();
      return false;
    }
    if (s.ended || s.writes_closed) return false;
    if (msg.has_heartbeat()) {
      ++heartbeats_;
    } else if (msg.has_result_batch()) {
      for (const v1::ShardResult& r : msg.result_batch().results()) {
        v1::ExecutorMessage one;
        *one.mutable_result() = r;
        written_.push_back(std::move(one));
      }
    } else {
      written_.push_back(msg);
    }
    cv_.SignalAll();
    return true;
  }
  bool Read(int id, v1::SchedulerMessage* msg) {
    absl::MutexLock lock(&mu_);
    SessionState& s = state(id);
    s.reading = true;
    cv_.SignalAll();
    while (s.inbox.empty() && !s.ended) cv_.Wait(&mu_);
    s.reading = false;
    if (s.ended) return false;
    *msg = std::move(s.inbox.front());
    s.inbox.pop_front();
    return true;
  }
  void CloseWrites(int id) {
    absl::MutexLock lock(&mu_);
    SessionState& s = state(id);
    s.writes_closed = true;
    EndLocked(s, absl::OkStatus());  // the scheduler ends the call in turn
  }
  void Cancel(int id) {
    absl::MutexLock lock(&mu_);
    EndLocked(state(id), absl::CancelledError("cancelled by the executor"));
  }
  absl::Status Finish(int id) {
    absl::MutexLock lock(&mu_);
    return state(id).status;
  }

  absl::Mutex mu_;
  SteadyCondVar cv_;
  bool reachable_ ABSL_GUARDED_BY(mu_) = true;
  int attempts_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> addresses_ ABSL_GUARDED_BY(mu_);
  std::deque<SessionState> sessions_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::ExecutorMessage> written_ ABSL_GUARDED_BY(mu_);
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tessera::executor

#endif  // TESSERA_TESTS_EXECUTOR_FAKE_SCHEDULER_CONNECTION_H_
