#include "scheduler/core/fold.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;

absl::Status FieldError(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("field \"", path.empty() ? "<root>" : path, "\": ", what));
}

std::string Child(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

bool FitsInt64(const json& v) {
  return v.is_number_integer() &&
         (!v.is_number_unsigned() ||
          v.get<uint64_t>() <=
              static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

// Integers stay integers (nlohmann parses non-negative ones as unsigned);
// on overflow, or with a fraction anywhere, the sum is a double.
json AddNumbers(const json& a, const json& b) {
  if (FitsInt64(a) && FitsInt64(b)) {
    int64_t out;
    if (!__builtin_add_overflow(a.get<int64_t>(), b.get<int64_t>(), &out)) return out;
  }
  if (a.is_number_unsigned() && b.is_number_unsigned()) {
    uint64_t out;
    if (!__builtin_add_overflow(a.get<uint64_t>(), b.get<uint64_t>(), &out)) return out;
  }
  return a.get<double>() + b.get<double>();
}

class Combiner {
 public:
  explicit Combiner(const AggregateSpec& spec) : spec_(spec) {}

  Reducer For(const std::string& path, Reducer inherited) const {
    auto it = spec_.fields.find(path);
    if (it != spec_.fields.end()) return it->second;
    return inherited;
  }

  // The value when `path` is seen for the first time.
  absl::StatusOr<json> First(const json& b, Reducer r, const std::string& path) const {
    if (r == Reducer::kConcat) return b.is_array() ? b : json::array({b});
    if (b.is_object() && (r == Reducer::kAuto || r == Reducer::kSum)) {
      json out = json::object();
      for (const auto& [k, v] : b.items()) {
        const std::string p = Child(path, k);
        auto sub = First(v, For(p, r), p);
        if (!sub.ok()) return sub.status();
        out[k] = *std::move(sub);
      }
      return out;
    }
    if (r == Reducer::kSum && !b.is_number()) {
      return FieldError(path,
                        absl::StrCat("sum needs numbers (got ", b.type_name(), ")"));
    }
    if (r == Reducer::kMerge && !b.is_object()) {
      return FieldError(path,
                        absl::StrCat("merge needs objects (got ", b.type_name(), ")"));
    }
    if ((r == Reducer::kMin || r == Reducer::kMax) && !b.is_number() && !b.is_string()) {
      return FieldError(path,
                        absl::StrCat(ReducerName(r), " needs numbers or strings (got ",
                                     b.type_name(), ")"));
    }
    return b;
  }

  // Takes the accumulator by value and returns it changed in place, so each
  // fold costs the size of one shard's result, not of everything so far.
  absl::StatusOr<json> Combine(json a, const json& b, Reducer r,
                               const std::string& path) const {
    switch (r) {
      case Reducer::kFirst:
        return a;
      case Reducer::kConcat: {
        if (b.is_array()) {
          for (const auto& e : b) a.push_back(e);
        } else {
          a.push_back(b);
        }
        return a;
      }
      case Reducer::kMerge: {
        if (!b.is_object()) {
          return FieldError(
              path, absl::StrCat("merge needs objects (got ", b.type_name(), ")"));
        }
        for (const auto& [k, v] : b.items()) {
          if (a.contains(k)) {
            return FieldError(
                path, absl::StrCat("key \"", k, "\" produced by two shards (merge)"));
          }
          a[k] = v;
        }
        return a;
      }
      case Reducer::kMin:
      case Reducer::kMax: {
        const bool numbers = a.is_number() && b.is_number();
        const bool strings = a.is_string() && b.is_string();
        if (!numbers && !strings) {
          return FieldError(path, absl::StrCat(ReducerName(r), " cannot compare ",
                                               a.type_name(), " with ", b.type_name()));
        }
        const bool b_less = b < a;
        if (r == Reducer::kMin) return b_less ? b : a;
        return (a < b) ? b : a;
      }
      case Reducer::kSum:
      case Reducer::kAuto:
        break;
    }
    if (a.is_number() && b.is_number()) return AddNumbers(a, b);
    if (a.is_object() && b.is_object()) return CombineObjects(std::move(a), b, r, path);
    if (r == Reducer::kSum) {
      return FieldError(path,
                        absl::StrCat("sum needs numbers or objects of numbers (got ",
                                     a.type_name(), " and ", b.type_name(), ")"));
    }
    if (a.is_array() && b.is_array()) {
      for (const auto& e : b) a.push_back(e);
      return a;
    }
    if (a.is_null()) return b;
    if (b.is_null()) return a;
    if (a.type() == b.type() && (a.is_string() || a.is_boolean())) {
      if (a == b) return a;
      return FieldError(path, absl::StrCat("conflicting values ", a.dump(), " and ",
                                           b.dump(), " (set a reducer for this field)"));
    }
    return FieldError(path,
                      absl::StrCat("cannot fold ", a.type_name(), " with ", b.type_name(),
                                   " (set a reducer for this field)"));
  }

  absl::StatusOr<json> CombineObjects(json a, const json& b, Reducer r,
                                      const std::string& path) const {
    for (const auto& [k, v] : b.items()) {
      const std::string p = Child(path, k);
      const Reducer cr = For(p, r);
      auto it = a.find(k);
      absl::StatusOr<json> next =
          it == a.end() ? First(v, cr, p) : Combine(std::move(*it), v, cr, p);
      if (!next.ok()) return next.status();
      a[k] = *std::move(next);
    }
    return a;
  }

 private:
  const AggregateSpec& spec_;
};

}  // namespace

absl::StatusOr<Reducer> ParseReducer(absl::string_view name) {
  if (name.empty() || name == "auto") return Reducer::kAuto;
  if (name == "sum") return Reducer::kSum;
  if (name == "merge") return Reducer::kMerge;
  if (name == "concat") return Reducer::kConcat;
  if (name == "min") return Reducer::kMin;
  if (name == "max") return Reducer::kMax;
  if (name == "first") return Reducer::kFirst;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown reducer \"", name,
                   "\" (one of auto, sum, merge, concat, min, max, first)"));
}

absl::string_view ReducerName(Reducer reducer) {
  switch (reducer) {
    case Reducer::kAuto:
      return "auto";
    case Reducer::kSum:
      return "sum";
    case Reducer::kMerge:
      return "merge";
    case Reducer::kConcat:
      return "concat";
    case Reducer::kMin:
      return "min";
    case Reducer::kMax:
      return "max";
    case Reducer::kFirst:
      return "first";
  }
  return "auto";
}

absl::Status Folder::Add(int64_t shard, const nlohmann::json& result) {
  if (!error_.ok()) return error_;
  if (!result.is_object()) {
    error_ = absl::InvalidArgumentError(
        absl::StrCat("shard ", shard, ": result must be a JSON object (got ",
                     result.type_name(), ")"));
    return error_;
  }
  Combiner c(spec_);
  const Reducer root = spec_.default_reducer;
  absl::StatusOr<json> next = json();
  if (root == Reducer::kAuto || root == Reducer::kSum) {
    next = c.CombineObjects(std::move(acc_), result, root, "");
  } else if (root == Reducer::kMerge) {
    // The shard results themselves are united: a key from two shards is an
    // error, whatever its values (the promo-code map of the user stories).
    next = c.Combine(std::move(acc_), result, Reducer::kMerge, "");
  } else {
    // Other default reducers apply field by field at the top level.
    json out = std::move(acc_);
    for (const auto& [k, v] : result.items()) {
      const Reducer r = c.For(k, root);
      auto it = out.find(k);
      auto sub = it == out.end() ? c.First(v, r, k) : c.Combine(std::move(*it), v, r, k);
      if (!sub.ok()) {
        next = sub.status();
        break;
      }
      out[k] = *std::move(sub);
    }
    if (next.ok()) next = std::move(out);
  }
  if (!next.ok()) {
    error_ = absl::InvalidArgumentError(
        absl::StrCat("shard ", shard, ": ", next.status().message()));
    acc_ = json();
    return error_;
  }
  acc_ = *std::move(next);
  return absl::OkStatus();
}

}  // namespace tessera::scheduler
