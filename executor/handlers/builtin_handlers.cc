// The handlers every executor has. To add one: write `<name>_handler.cc`
// defining a factory, declare it here and register it below.
#include "executor/handlers/handler.h"
#include "shared/status_macros.h"

namespace tessera::executor {

std::unique_ptr<Handler> NewNoopHandler();    // noop_handler.cc
std::unique_ptr<Handler> NewPrimesHandler();  // primes_handler.cc
std::unique_ptr<Handler> NewSleepHandler();   // sleep_handler.cc
std::unique_ptr<Handler> NewSquareHandler();  // square_handler.cc

absl::Status RegisterBuiltinHandlers(HandlerRegistry& registry) {
  TESSERA_RETURN_IF_ERROR(registry.Register("noop", NewNoopHandler()));
  TESSERA_RETURN_IF_ERROR(registry.Register("primes", NewPrimesHandler()));
  TESSERA_RETURN_IF_ERROR(registry.Register("sleep", NewSleepHandler()));
  TESSERA_RETURN_IF_ERROR(registry.Register("square", NewSquareHandler()));
  return absl::OkStatus();
}

}  // namespace tessera::executor
