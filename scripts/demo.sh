#!/usr/bin/env bash
# The Quick start demo: installs what is missing, builds (release preset),
# starts a scheduler (data dir .demo/data) and two executors on loopback,
# submits primes over [0, 10000000) in 64 shards with the CLI's progress bar,
# prints the result and the result file's path, then stops what it started.
# Ports: TESSERA_DEMO_PORT (gRPC, default 50051) and TESSERA_DEMO_METRICS_PORT
# (default 9090).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"

BIN=build/release
PORT="${TESSERA_DEMO_PORT:-50051}"
METRICS_PORT="${TESSERA_DEMO_METRICS_PORT:-9090}"
DATA=.demo/data
mkdir -p "$DATA" .demo/logs

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

"$BIN/scheduler/tessera-scheduler" --listen="127.0.0.1:$PORT" \
  --metrics-listen="127.0.0.1:$METRICS_PORT" --data-dir="$DATA" \
  >.demo/logs/scheduler.log 2>&1 &
pids+=($!)
for i in 1 2; do
  "$BIN/executor/tessera-executor" --scheduler="127.0.0.1:$PORT" --name="demo-executor-$i" \
    --metrics-listen="127.0.0.1:$((METRICS_PORT + i))" >".demo/logs/executor-$i.log" 2>&1 &
  pids+=($!)
done

export TESSERA_SCHEDULER="127.0.0.1:$PORT"
# Wait until the scheduler answers (it is up within a second).
for _ in $(seq 1 50); do
  "$BIN/cli/tessera" queue >/dev/null 2>&1 && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "demo: the scheduler did not start; see .demo/logs/scheduler.log:" >&2
    tail -5 .demo/logs/scheduler.log >&2
    exit 1
  fi
  sleep 0.1
done

echo "demo: scheduler on 127.0.0.1:$PORT (metrics http://127.0.0.1:$METRICS_PORT/metrics), 2 executors"
echo "demo: tessera submit --task primes --range 0:10000000 --shards 64 --wait"
"$BIN/cli/tessera" submit --name demo --task primes --range 0:10000000 --shards 64 --wait
echo "demo: logs in .demo/logs; stopping the scheduler and executors"
