#!/usr/bin/env python3
"""Promo-code generator: a Tessera exec task (see docs/tasks.md).

For each amount in [TESSERA_RANGE_START, TESSERA_RANGE_END) it makes
params.codes_per_amount codes, derived from params.seed alone, so any shard
split (or a single run over the whole range) gives the same codes. The result
is {"<amount>": [codes...]}; fold the shards with the "merge" reducer.

Params: {"seed": "...", "codes_per_amount": 3, "delay_ms": 0}
(delay_ms stands in for the slow browser session of the real generator).
Run it by hand over a range, as one process:
  TESSERA_RANGE_START=1 TESSERA_RANGE_END=1001 TESSERA_PARAMS='{"seed":"s"}' python3 promo.py
"""
import base64
import hashlib
import json
import os
import sys
import time


def emit(obj):
    # One JSON object per line on stdout, flushed: the executor reads it live.
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def codes_for(seed, amount, count):
    codes = []
    for i in range(count):
        digest = hashlib.sha256(f"{seed}:{amount}:{i}".encode()).digest()
        codes.append(base64.b32encode(digest).decode()[:12])
    return codes


def main():
    start = int(os.environ["TESSERA_RANGE_START"])
    end = int(os.environ["TESSERA_RANGE_END"])
    params = json.loads(os.environ.get("TESSERA_PARAMS") or "{}")
    seed = params.get("seed")
    if not isinstance(seed, str) or not seed:
        # Retrying cannot fix a bad param: a permanent failure.
        emit({"error": "params.seed must be a non-empty string", "retryable": False})
        return 1
    count = int(params.get("codes_per_amount", 3))
    delay = float(params.get("delay_ms", 0)) / 1000.0
    shard = os.environ.get("TESSERA_SHARD_INDEX", "-")
    print(f"shard {shard}: amounts [{start}, {end})", file=sys.stderr, flush=True)

    result = {}
    total = end - start
    for done, amount in enumerate(range(start, end), 1):
        if delay:
            time.sleep(delay)
        result[str(amount)] = codes_for(seed, amount, count)
        if done % 25 == 0 or done == total:
            emit({"progress": {"done": done, "total": total}})
    emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
