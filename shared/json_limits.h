// Bounds on JSON from peers and users, checked before anything copies, folds
// or dumps a value: nlohmann::json copies and dumps recursively, so a value
// nested 100,000 deep would overflow the stack. Header-only (the pure cores
// use it); the text scan never recurses.
#ifndef TESSERA_SHARED_JSON_LIMITS_H_
#define TESSERA_SHARED_JSON_LIMITS_H_

#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tessera {

// Deepest nesting of arrays and objects a JSON document may have (--max-json-depth).
inline constexpr int kDefaultMaxJsonDepth = 64;

// The nesting depth of the arrays and objects in JSON `text` ("1" is 0,
// "[1]" is 1), counted outside strings in one pass; stops counting once
// past `stop_after` (returns stop_after + 1). Malformed text gives a number
// too: the parser refuses it later.
inline int JsonTextDepth(absl::string_view text, int stop_after) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > stop_after) return deepest;
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    }
  }
  return deepest;
}

// The same for a parsed value, without recursion.
inline int JsonValueDepth(const nlohmann::json& value, int stop_after) {
  int deepest = 0;
  std::vector<std::pair<const nlohmann::json*, int>> stack = {{&value, 0}};
  while (!stack.empty()) {
    auto [v, depth] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    if (depth + 1 > deepest) {
      deepest = depth + 1;
      if (deepest > stop_after) return deepest;
    }
    for (const nlohmann::json& child : *v) stack.push_back({&child, depth + 1});
  }
  return deepest;
}

}  // namespace tessera

#endif  // TESSERA_SHARED_JSON_LIMITS_H_
