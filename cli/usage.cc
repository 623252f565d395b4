// The text of `tessera --help`; keep it in step with ParseArgs (args_test checks
// that every command and flag is mentioned).
#include "cli/args.h"

namespace tessera::cli {
namespace {

constexpr char kUsage[] = R"(usage: tessera [--scheduler ADDR] [--json] <command> [args]

Client for the Tessera batch scheduler (JobService over gRPC, insecure channel).

Global flags (accepted before or after the command):
  --scheduler ADDR   scheduler address host:port; default $TESSERA_SCHEDULER,
                     else 127.0.0.1:50051
  --json             print responses as JSON (one document per line)
  -h, --help         print this help

Commands:
  submit             submit a range job
      --task T                 handler to run, e.g. primes, sleep, noop (required)
      --range START:END        half-open range [START, END) of integers (required)
      --shards N               cut the range into N shards, or
      --shard-size N           into shards of N numbers (exactly one is required)
      --name NAME              a name for people
      --params JSON            handler parameters, a JSON object, e.g. '{"ms":5}'
      --aggregate FIELD=REDUCER
                               fold FIELD with REDUCER (auto, sum, merge, concat,
                               min, max, first); repeatable
      --default-reducer R      reducer for other fields (default auto)
      --max-parallel N         at most N shards in flight (default 0: no cap)
      --wait                   follow the job like `watch`, then print its result
    prints the job id (--json: the Job)
  get JOB_ID         show a job (--json: the Job)
  watch JOB_ID       follow a job's progress until it ends; prints the result
                     if it succeeded
  result JOB_ID      print a finished job's result JSON on stdout and its location
                     on stderr (--json: the whole GetResultResponse)
  list               list jobs, newest first
      --state S                queued|running|succeeded|failed|cancelled
      --page-size N            jobs per page (default 50, at most 1000)
      --page-token T           next page, as printed by the previous call
  cancel JOB_ID      cancel a queued or running job
  executors          list connected executors
  queue              show queue depth and executor slots
  help               print this help

Progress (submit --wait, watch) goes to stderr: a live bar when stderr is a
terminal, otherwise a plain line at most once per second.

Exit status: 0 success (for --wait/watch: the job SUCCEEDED), 1 the job FAILED
or was CANCELLED, 2 usage error, 3 RPC error.
)";

}  // namespace

const char* UsageText() { return kUsage; }

}  // namespace tessera::cli
