// The task handler interface and the registry of handlers an executor runs.
// Adding a handler: one file (see noop_handler.cc) plus one line in
// builtin_handlers.cc.
#ifndef TESSERA_EXECUTOR_HANDLERS_HANDLER_H_
#define TESSERA_EXECUTOR_HANDLERS_HANDLER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "executor/core/cancel_token.h"
#include "executor/core/shard_task.h"
#include "nlohmann/json.hpp"

namespace tessera::executor {

// Runs one shard of a task. Run is called concurrently from several slots, so
// implementations must be thread-safe (most keep no state at all).
//
// Returns a JSON object on success. Errors say what the scheduler should do
// next: kInvalidArgument and kFailedPrecondition are permanent (retrying cannot
// help: bad params, bad input); every other code is retryable. A handler that
// sees `cancel` set should stop soon and return absl::CancelledError (its
// outcome is dropped anyway).
class Handler {
 public:
  virtual ~Handler() = default;
  virtual absl::StatusOr<nlohmann::json> Run(const ShardTask& task,
                                             ProgressReporter& progress,
                                             const CancelToken& cancel) = 0;
};

// Task name -> handler. Filled at startup, read-only afterwards (then safe to
// share between threads). Owns its handlers.
class HandlerRegistry {
 public:
  // AlreadyExists if `name` is taken; InvalidArgument if it is empty.
  absl::Status Register(const std::string& name, std::unique_ptr<Handler> handler);
  // nullptr when no handler has that name.
  Handler* Find(absl::string_view name) const;
  // Sorted; what Hello advertises.
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, std::unique_ptr<Handler>, std::less<>> handlers_;
};

// Registers noop, sleep and primes.
absl::Status RegisterBuiltinHandlers(HandlerRegistry& registry);

// True for codes a retry cannot fix (see Handler).
inline bool IsPermanentError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kFailedPrecondition;
}

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_HANDLERS_HANDLER_H_
