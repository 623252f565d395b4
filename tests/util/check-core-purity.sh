#!/usr/bin/env bash
# The cores (every */core/ folder) are pure: no gRPC, protobuf, spdlog or
# prometheus headers, no reading the real clock (absl::Now, MonoNow, sleeps) —
# time is given to them. The project headers a core includes from shared/ are
# held to the same rule. Prints each offence and exits 1 if there is one.
# Usage: check-core-purity.sh [root]   (default: the repository)
set -uo pipefail
root="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$root" || exit 2

forbidden_include='#include[[:space:]]*[<"](grpc|grpcpp|google/protobuf|spdlog|prometheus)/|#include[[:space:]]*"[^"]*\.pb\.h"'
forbidden_call='absl::Now\(|absl::SleepFor\(|std::chrono::(system|steady)_clock::now|[^:A-Za-z_]MonoNow\('

mapfile -t core_files < <(find . -path ./build -prune -o -path ./tests -prune -o \
  -path '*/core/*' \( -name '*.h' -o -name '*.cc' \) -print | sort)
if ((${#core_files[@]} == 0)); then
  echo "check-core-purity: no */core/ files under $root" >&2
  exit 2
fi
# shared/ headers the cores include, checked for includes only (shared/clock.h
# holds the real clock the services inject).
mapfile -t shared_headers < <(grep -ho '#include "shared/[^"]*"' "${core_files[@]}" |
  sed 's/#include "\(.*\)"/\1/' | sort -u)

status=0
if grep -nHE "$forbidden_include" "${core_files[@]}"; then
  echo "check-core-purity: a core file includes a transport, logging or metrics header (above)" >&2
  status=1
fi
if grep -nHE "$forbidden_call" "${core_files[@]}" | grep -vE ':[0-9]+:[[:space:]]*//'; then
  echo "check-core-purity: a core file reads the real clock or sleeps (above); take the time as an argument or a Clock" >&2
  status=1
fi
for h in "${shared_headers[@]}"; do
  [[ -f "$h" ]] || continue
  if grep -nHE "$forbidden_include" "$h"; then
    echo "check-core-purity: $h, included by a core, includes a transport, logging or metrics header (above)" >&2
    status=1
  fi
done
if ((status == 0)); then
  echo "check-core-purity: ${#core_files[@]} core files and ${#shared_headers[@]} shared headers are pure"
fi
exit "$status"
