#!/usr/bin/env python3
"""Market-item import: a Tessera exec task over an items job (see docs/tasks.md).

Each shard gets one batch of items as JSON lines on stdin, e.g.
{"id": "sku-17", "price_cents": 1999}, and "imports" them one at a time
through a rate-limited API (params.delay_ms per call stands in for it). The
result is {"imported": n, "value_cents": total}; the default reducer adds
them up across batches. An item with "reject": true is refused by the API:
the whole batch fails permanently (retrying would not help), so a job with
max_failed_shards ends PARTIAL and lists the batch among its failed shards.

Params: {"delay_ms": 0}
Run it by hand:
  printf '{"id":"a","price_cents":5}\\n' | TESSERA_PARAMS='{}' python3 import_items.py
"""
import json
import os
import sys
import time


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main():
    params = json.loads(os.environ.get("TESSERA_PARAMS") or "{}")
    delay = float(params.get("delay_ms", 0)) / 1000.0
    items = [json.loads(line) for line in sys.stdin if line.strip()]
    imported = 0
    value = 0
    for done, item in enumerate(items, 1):
        if delay:
            time.sleep(delay)
        if item.get("reject"):
            print(f"the API refused item {item.get('id')}", file=sys.stderr, flush=True)
            emit({"error": f"item {item.get('id')} refused by the API", "retryable": False})
            return 1
        imported += 1
        value += int(item.get("price_cents", 0))
        emit({"progress": {"done": done, "total": len(items)}})
    emit({"result": {"imported": imported, "value_cents": value}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
