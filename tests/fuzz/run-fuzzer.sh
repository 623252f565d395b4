#!/usr/bin/env bash
# Runs one fuzz target for a bounded time, as ctest's fuzz.<target>.run does.
# Usage: run-fuzzer.sh <fuzzer binary> <tests/fuzz dir> <target> <work dir> <seconds>
# The seeds are copied to <work dir>/<target>/corpus, so new inputs libFuzzer
# keeps never land in the repository; a crashing input is saved as
# <work dir>/<target>/crash-* (or leak-*, timeout-*, oom-*) and fails the run.
# TESSERA_FUZZ_SECONDS in the environment overrides <seconds>.
set -euo pipefail
fuzzer=$1 src=$2 target=$3 work=$4/$3 seconds=${TESSERA_FUZZ_SECONDS:-$5}

rm -rf "$work"
mkdir -p "$work/corpus"
cp "$src/corpus/$target"/* "$work/corpus/"
options=(
  -max_total_time="$seconds" -seed=1 -rss_limit_mb=2048 -timeout=20
  # 64 KiB inputs: enough for every shape, fast to run
  -max_len=65536 -print_final_stats=1 -print_funcs=0 -artifact_prefix="$work/"
)
if [[ -f "$src/dict/$target.dict" ]]; then options+=(-dict="$src/dict/$target.dict"); fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
"$fuzzer" "${options[@]}" "$work/corpus" "$src/regressions/$target" \
  >"$work/log" 2>&1 || status=$?
tail -n 25 "$work/log"
if ((status != 0)); then
  echo "run-fuzzer: $target failed (exit $status); input(s): $(ls "$work" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | sed "s|^|$work/|" | tr '\n' ' ')" >&2
  echo "run-fuzzer: replay with: $fuzzer <input>; keep it in tests/fuzz/regressions/$target/" >&2
  exit "$status"
fi
