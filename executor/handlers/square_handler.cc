// `square`: for items jobs, returns the square of each numeric item, in item
// order: {"squares": [...]}. Folded with `concat` it rebuilds the whole list
// in the original order, whatever order the batches finish in.
#include "absl/strings/str_cat.h"
#include "executor/handlers/handler.h"

namespace tessera::executor {
namespace {

class SquareHandler : public Handler {
 public:
  absl::StatusOr<nlohmann::json> Run(const ShardTask& task, ProgressReporter& progress,
                                     const CancelToken& cancel) override {
    if (!task.has_items) {
      return absl::InvalidArgumentError("task square needs an items job (spec.items)");
    }
    nlohmann::json squares = nlohmann::json::array();
    int64_t done = 0;
    for (const nlohmann::json& item : task.items) {
      if (cancel.cancelled()) return absl::CancelledError("cancelled");
      if (!item.is_number()) {
        return absl::InvalidArgumentError(
            absl::StrCat("task square: item ", task.start + done, " is not a number (",
                         item.dump(), ")"));
      }
      if (item.is_number_integer()) {
        const int64_t v = item.get<int64_t>();
        int64_t sq;
        if (__builtin_mul_overflow(v, v, &sq)) {
          squares.push_back(static_cast<double>(v) * static_cast<double>(v));
        } else {
          squares.push_back(sq);
        }
      } else {
        squares.push_back(item.get<double>() * item.get<double>());
      }
      progress.Report(++done, static_cast<int64_t>(task.items.size()));
    }
    return nlohmann::json{{"squares", std::move(squares)}};
  }
};

}  // namespace

std::unique_ptr<Handler> NewSquareHandler() { return std::make_unique<SquareHandler>(); }

}  // namespace tessera::executor
