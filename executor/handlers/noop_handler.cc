// `noop`: does nothing and counts the items of its range. For tests and
// benchmarks of the machinery around handlers.
#include "executor/handlers/handler.h"

namespace tessera::executor {
namespace {

class NoopHandler : public Handler {
 public:
  absl::StatusOr<nlohmann::json> Run(const ShardTask& task, ProgressReporter&,
                                     const CancelToken&) override {
    return nlohmann::json{{"items", task.end - task.start}};
  }
};

}  // namespace

std::unique_ptr<Handler> NewNoopHandler() { return std::make_unique<NoopHandler>(); }

}  // namespace tessera::executor
