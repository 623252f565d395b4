#!/usr/bin/env bash
# Writes the seed corpus of spec_fuzzer (binary SubmitJobRequest messages)
# from the text below: run it after changing a seed or jobs.proto.
set -euo pipefail
cd "$(dirname "$0")"
out=corpus/spec_fuzzer
seed() {  # seed <name> <text format>
  protoc --proto_path=../../proto --proto_path=/usr/include \
    --encode=tessera.v1.SubmitJobRequest tessera/v1/jobs.proto <<<"$2" >"$out/$1.binpb"
}
mkdir -p "$out"
seed range-shard-count 'spec { name: "primes" task: "primes"
  range { start: 0 end: 10000000 shard_count: 64 } }'
seed range-shard-size-params 'spec { task: "sleep"
  params { fields { key: "ms" value { number_value: 5 } } }
  range { start: -9223372036854775808 end: 9223372036854775807 shard_size: 4611686018427387904 } }'
seed items-batches 'spec { task: "square"
  items { items { number_value: 1 } items { string_value: "x" }
          items { list_value { values { bool_value: true } } }
          items { struct_value { fields { key: "k" value { null_value: NULL_VALUE } } } }
          batch_size: 3 } }'
seed aggregate-retry-timeout 'spec { task: "noop" range { start: 0 end: 100 shard_size: 7 }
  aggregate { default_reducer: "merge" fields { key: "stats.count" value: "sum" }
              fields { key: "codes" value: "concat" } }
  retry { max_attempts: 5 initial_backoff { seconds: 1 nanos: 500000000 }
          max_backoff { seconds: 30 } multiplier: 1.5 jitter: 0.1 }
  shard_timeout { seconds: 60 } failure_policy { max_failed_shards: 3 } max_parallel: 4 }'
seed job-control 'spec { task: "noop" range { start: 5 end: 6 shard_count: 1 }
  idempotency_key: "nightly-2024-01-01" concurrency_key: "db" concurrency_limit: 2
  queue: "batch" priority: -1000 rate_limit: 0.5
  labels { key: "team" value: "data" } labels { key: "env/stage" value: "" } }'
seed durations-at-the-limit 'spec { task: "noop" range { start: 0 end: 3 shard_size: 1 }
  retry { initial_backoff { seconds: 9223372036 nanos: 854775807 }
          max_backoff { seconds: 9223372036 nanos: 854775807 } }
  shard_timeout { seconds: 9223372036 nanos: 854775807 } }'
