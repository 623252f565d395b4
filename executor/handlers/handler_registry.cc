#include "absl/strings/str_cat.h"
#include "executor/handlers/handler.h"

namespace tessera::executor {

absl::Status HandlerRegistry::Register(const std::string& name,
                                       std::unique_ptr<Handler> handler) {
  if (name.empty()) return absl::InvalidArgumentError("handler name must not be empty");
  if (handler == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("handler \"", name, "\" is null"));
  }
  if (!handlers_.emplace(name, std::move(handler)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("a handler named \"", name, "\" is already registered"));
  }
  return absl::OkStatus();
}

Handler* HandlerRegistry::Find(absl::string_view name) const {
  auto it = handlers_.find(name);
  return it == handlers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> HandlerRegistry::Names() const {
  std::vector<std::string> names;
  names.reserve(handlers_.size());
  for (const auto& [name, handler] : handlers_) names.push_back(name);
  return names;
}

}  // namespace tessera::executor
