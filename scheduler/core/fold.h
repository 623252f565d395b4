// Folds shard results (JSON objects) into one result, by reducer per field.
#ifndef TESSERA_SCHEDULER_CORE_FOLD_H_
#define TESSERA_SCHEDULER_CORE_FOLD_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tessera::scheduler {

// kAuto: numbers add, objects merge key by key with the same rule, arrays
// concatenate, equal strings/booleans stay, anything else is a conflict.
// kSum: numbers add (recursively through objects). kMerge: object union, a
// key from two shards is an error. kConcat: arrays (or single values) in shard
// order. kMin/kMax: numbers or strings. kFirst: the lowest shard's value.
// As the default reducer, kMerge unites the shard results' top-level keys;
// the others apply to each top-level field.
enum class Reducer { kAuto, kSum, kMerge, kConcat, kMin, kMax, kFirst };

// "" and "auto" mean kAuto. Unknown names are INVALID_ARGUMENT.
absl::StatusOr<Reducer> ParseReducer(absl::string_view name);
absl::string_view ReducerName(Reducer reducer);

struct AggregateSpec {
  Reducer default_reducer = Reducer::kAuto;
  // Overrides by field path ("primes", "stats.count").
  std::map<std::string, Reducer> fields;
};

// Deterministic by construction when fed in shard order: the core buffers
// out-of-order results and calls Add with increasing shard indexes, so the
// folded bytes never depend on the order shards finish in.
// Thread-compatible.
class Folder {
 public:
  explicit Folder(AggregateSpec spec = {}) : spec_(std::move(spec)) {}

  // Folds one shard's result; it must be a JSON object. The fold happens in
  // place, so after an error (its message names the shard and the field) the
  // value is gone and every later Add returns the same error.
  absl::Status Add(int64_t shard, const nlohmann::json& result);

  const nlohmann::json& value() const { return acc_; }

 private:
  AggregateSpec spec_;
  nlohmann::json acc_ = nlohmann::json::object();
  absl::Status error_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_SCHEDULER_CORE_FOLD_H_
