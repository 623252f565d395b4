// The runtime's calls that wait for a commit (see faults.h): answered within
// the store timeout, whatever the store does.
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

}  // namespace tessera::scheduler
