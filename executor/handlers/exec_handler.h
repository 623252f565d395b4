// `exec` tasks: runs an operator-defined program per shard (docs/tasks.md).
#ifndef TESSERA_EXECUTOR_HANDLERS_EXEC_HANDLER_H_
#define TESSERA_EXECUTOR_HANDLERS_EXEC_HANDLER_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "executor/handlers/exec_task_config.h"
#include "executor/handlers/handler.h"

namespace tessera::executor {

// One handler per configured task. Each Run spawns the program in its own
// process group (stdin /dev/null: item jobs do not exist yet), feeds its
// stdout JSON lines to the protocol, logs its stderr lines tagged with job,
// shard, attempt and task, and on timeout, cancellation, protocol error or
// too much output sends SIGTERM to the group and SIGKILL after kill_grace.
// Nothing of the group outlives Run (processes that leave it with setsid are
// beyond a process group's reach; see docs/tasks.md).
//
// Errors: FailedPrecondition (permanent) for a program that cannot start,
// breaks the protocol, writes too much, or reports {"retryable": false};
// DeadlineExceeded on timeout and Unavailable/Aborted for failed exits
// (retryable); Cancelled when `cancel` was set. Failure messages end with the
// tail of stderr. Thread-safe: Run keeps no shared state.
std::unique_ptr<Handler> NewExecHandler(ExecTaskConfig config);

// Registers one exec handler per task; AlreadyExists names a task that
// clashes with one already registered (a built-in).
absl::Status RegisterExecTasks(HandlerRegistry& registry,
                               const std::vector<ExecTaskConfig>& tasks);

}  // namespace tessera::executor

#endif  // TESSERA_EXECUTOR_HANDLERS_EXEC_HANDLER_H_
