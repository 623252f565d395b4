#!/usr/bin/env bash
# The Quick start demo: installs what is missing, builds (release preset),
# starts a scheduler (data dir .demo/data) and two executors on loopback,
# lists the executors, submits primes over [0, 5*10^9) in 64 shards (a few
# seconds of work on two cores, so that the CLI's live progress bar can be
# watched), prints the result, checks it and shows the result file, then stops
# what it started.
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

# ...and both executors have connected (so the job starts on both at once).
for _ in $(seq 1 50); do
  n=$("$BIN/cli/tessera" executors 2>/dev/null | grep -c demo-executor- || true)
  [[ "$n" == 2 ]] && break
  sleep 0.1
done

echo "demo: $("$BIN/cli/tessera" --version); scheduler on 127.0.0.1:$PORT" \
  "(metrics http://127.0.0.1:$METRICS_PORT/metrics)"
echo "demo: tessera executors"
"$BIN/cli/tessera" executors
echo "demo: tessera submit --task primes --range 0:5000000000 --shards 64 --wait"
out=.demo/logs/submit.out
"$BIN/cli/tessera" submit --name demo --task primes --range 0:5000000000 --shards 64 \
  --wait | tee "$out"
# 234,954,223 primes below 5*10^9: the known value of pi(5*10^9).
if grep -q '"primes": 234954223$' "$out"; then
  echo "demo: 234954223 primes below 5*10^9, as it should be"
else
  echo "demo: WRONG ANSWER (expected 234954223 primes)" >&2
  exit 1
fi
file=$(sed -n 's/^result: \([^ ]*\) .*/\1/p' "$out")
echo "demo: $file: $(wc -c <"$file") bytes, sha256 $(sha256sum "$file" | cut -c1-16)…"
echo "demo: logs in .demo/logs; stopping the scheduler and executors"
