// The text of `tessera --help`, written by hand rather than CLI11's generated
// help so that it can group the submit flags and explain exit codes; args_test
// holds it to every command and flag the parser knows (KnownWords()).
#include "cli/args.h"

namespace tessera::cli {
namespace {

constexpr char kUsage[] = R"(usage: tessera [--scheduler ADDR] [--json] <command> [args]

Client for the Tessera batch scheduler (JobService over gRPC).

Global flags (accepted before or after the command):
  --scheduler ADDR   scheduler address host:port, or replicas a,b,... (the one
                     that leads is used); default $TESSERA_SCHEDULER, else
                     127.0.0.1:50051
  --tls-ca PATH      use TLS, verifying the scheduler against this PEM CA;
                     default $TESSERA_TLS_CA, else plaintext
  --token-file PATH  send the bearer token in this file (auth on); else
                     $TESSERA_TOKEN
  --token TOKEN      the bearer token itself (shows in ps; prefer the above)
  --json             print responses as JSON (one document per line)
  -h, --help         print this help
  --version          print the version: tessera X.Y.Z (commit abc1234)

Commands:
  submit             submit a range job or an items job
      --task T                 handler to run, e.g. primes, sleep, noop (required)
    the input, a range (--range with --shards or --shard-size) or items:
      --range START:END        half-open range [START, END) of integers
      --shards N               cut the range into N shards, or
      --shard-size N           into shards of N numbers (exactly one is required)
      --items-file PATH        the items: a JSON array, or JSON lines (one JSON
                               value per line); - reads stdin
      --batch-size N           items per shard (required with --items-file)
      --name NAME              a name for people
      --params JSON            handler parameters, a JSON object, e.g. '{"ms":5}'
      --aggregate FIELD=REDUCER
                               fold FIELD with REDUCER (auto, sum, merge, concat,
                               min, max, first); repeatable
      --default-reducer R      reducer for other fields (default auto)
      --max-parallel N         at most N shards in flight (default 0: no cap)
      --max-attempts N         attempts per shard, the first included (default 3,
                               at most 100)
      --backoff DURATION       wait before a shard's 2nd attempt (default 1s),
                               doubled for each further attempt
      --max-backoff DURATION   never wait longer than this (default 60s)
      --shard-timeout DURATION
                               a shard running longer fails that attempt
                               (default: no limit)
      --max-failed-shards N    continue while at most N shards are out of
                               attempts; the job then ends PARTIAL (default 0:
                               the first such shard fails the job)
      --queue Q                run on executors serving queue Q (default
                               "default")
      --priority N             -1000..1000; higher dispatches first within its
                               queue (default 0)
      --rate-limit R           start at most R shards per second across the
                               cluster (default 0: no limit)
      --concurrency-key K      at most --concurrency-limit jobs with key K run
      --concurrency-limit N    at once; later ones wait QUEUED (default 1)
      --idempotency-key K      submitting again with K and the same spec returns
                               the same job (a different spec is refused)
      --label KEY=VALUE        a label for `list --label`; repeatable
      --wait                   follow the job like `watch`, then print its result
    prints the job id (--json: the Job)
    DURATION is a number with a unit: 500ms, 2s, 1m, 1m30s, 1h.
  get JOB_ID         show a job: its input, queue, priority, limits, labels,
                     result version and failed shards (--json: the Job)
  watch JOB_ID       follow a job's progress until it ends; prints a summary,
                     the result if it SUCCEEDED or ended PARTIAL, and the
                     failed shards
  result JOB_ID      print the latest result JSON of a SUCCEEDED or PARTIAL job on
                     stdout and its location on stderr (--json: the whole
                     GetResultResponse)
  list               list jobs, newest first
      --state S                queued|running|succeeded|failed|cancelled|partial
      --page-size N            jobs per page (default 50, at most 1000)
      --page-token T           next page, as printed by the previous call
      --queue Q                only jobs in queue Q
      --label KEY=VALUE        only jobs with this label; repeatable (all must
                               match)
  cancel JOB_ID      cancel a queued or running job
  retry JOB_ID       re-run only the failed shards of a PARTIAL or FAILED job;
                     the other shards' results are kept and a new result
                     version is persisted (--json: the Job)
      --wait                   follow the job like `watch`
  update JOB_ID      change a queued or running job; prints its new values
                     (--json: the Job). At least one of:
      --max-parallel N         at most N shards in flight (0: no cap)
      --rate-limit R           at most R shards started per second (0: no limit)
  executors          list connected executors, their versions and the queues
                     they serve
  queue              show queue depth and executor slots
  help               print this help

Progress (submit --wait, watch) goes to stderr: a live bar when stderr is a
terminal, otherwise a plain line at most once per second.

A PARTIAL job finished with some shards out of attempts (see
--max-failed-shards): its result folds the shards that succeeded.

Exit status: 0 success (for --wait/watch: only when the job SUCCEEDED), 1 the
job FAILED, was CANCELLED or ended PARTIAL, 2 usage error, 3 RPC error.
)";

}  // namespace

const char* UsageText() { return kUsage; }

}  // namespace tessera::cli
