// `sleep`: waits params.ms milliseconds per item of its range (default 1).
// Stands in for slow I/O-bound work; honours cancellation within ~50 ms.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "executor/handlers/handler.h"
#include "shared/clock.h"

namespace tessera::executor {
namespace {

constexpr absl::Duration kStep = absl::Milliseconds(50);

class SleepHandler : public Handler {
 public:
  absl::StatusOr<nlohmann::json> Run(const ShardTask& task, ProgressReporter& progress,
                                     const CancelToken& cancel) override {
    double ms = 1;
    if (auto it = task.params.find("ms"); it != task.params.end()) {
      if (!it->is_number() || !(it->get<double>() >= 0) ||
          !std::isfinite(it->get<double>())) {
        return absl::InvalidArgumentError(
            absl::StrCat("params.ms must be a number >= 0 (got ", it->dump(), ")"));
      }
      ms = it->get<double>();
    }
    const int64_t items = task.end - task.start;
    const absl::Duration per_item = absl::Milliseconds(ms);
    const absl::Duration total = per_item * static_cast<double>(items);
    const absl::Time started = MonoNow();
    const absl::Time finish = started + total;
    for (absl::Time now = started; now < finish; now = MonoNow()) {
      if (cancel.WaitFor(std::min(kStep, finish - now))) {
        return absl::CancelledError("sleep cancelled");
      }
      if (per_item > absl::ZeroDuration()) {
        const auto done = static_cast<int64_t>((MonoNow() - started) / per_item);
        progress.Report(std::min(done, items), items);
      }
    }
    return nlohmann::json{{"items", items}};
  }
};

}  // namespace

std::unique_ptr<Handler> NewSleepHandler() { return std::make_unique<SleepHandler>(); }

}  // namespace tessera::executor
