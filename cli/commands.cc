#include "cli/commands.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/format.h"
#include "shared/tls.h"
#include "shared/version.h"

namespace tessera::cli {
namespace {

namespace v1 = tessera::v1;

// `watch` lists this many failed shards; `tessera get` lists them all.
constexpr int kMaxFailedShardsShown = 20;

int ReportRpcError(const absl::Status& status, const std::string& address,
                   const RunContext& ctx) {
  ctx.err << "tessera: " << absl::StatusCodeToString(status.code()) << ": "
          << status.message();
  if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) {
    ctx.err << " (scheduler at " << address << ")";
  }
  ctx.err << "\n";
  return kExitRpc;
}

// --help and --version: answered without a scheduler.
int PrintAbout(CommandKind kind, const RunContext& ctx) {
  if (kind == CommandKind::kVersion) {
    ctx.out << VersionLine() << "\n";
  } else {
    ctx.out << UsageText();
  }
  return kExitOk;
}

class Runner {
 public:
  Runner(JobApi& api, const std::string& address, const RunContext& ctx)
      : api_(api), address_(address), ctx_(ctx) {}

  int Run(const Command& cmd) {
    json_ = cmd.json;
    switch (cmd.kind) {
      case CommandKind::kSubmit:
        return Submit(cmd);
      case CommandKind::kGet:
        return Get(cmd.job_id);
      case CommandKind::kWatch:
        return Follow(cmd.job_id);
      case CommandKind::kResult:
        return Result(cmd.job_id);
      case CommandKind::kList:
        return List(cmd.list);
      case CommandKind::kCancel:
        return Cancel(cmd.job_id);
      case CommandKind::kRetry:
        return Retry(cmd);
      case CommandKind::kUpdate:
        return Update(cmd.update);
      case CommandKind::kExecutors:
        return Executors();
      case CommandKind::kQueue:
        return Queue();
      case CommandKind::kHelp:
      case CommandKind::kVersion:
        return PrintAbout(cmd.kind, ctx_);
    }
    return kExitUsage;
  }

 private:
  int Fail(const absl::Status& status) { return ReportRpcError(status, address_, ctx_); }

  int Submit(const Command& cmd) {
    absl::StatusOr<v1::Job> job = api_.SubmitJob(cmd.spec);
    if (!job.ok()) return Fail(job.status());
    if (!cmd.wait) {
      ctx_.out << (json_ ? ToJsonLine(*job) : job->id()) << "\n";
      return kExitOk;
    }
    // The id goes to stderr first, so that a person can cancel while waiting.
    ctx_.err << "submitted job " << job->id() << "\n";
    return Follow(job->id());
  }

  // Watches until the job ends, then prints its summary, its result if it has
  // one (SUCCEEDED, PARTIAL) and its failed shards. Exit 0 only for SUCCEEDED.
  int Follow(const std::string& job_id) {
    // One column to spare: some terminals wrap when the last one is written.
    ProgressRenderer renderer(
        ctx_.progress_mode, /*bar_width=*/20,
        ctx_.terminal_columns > 1 ? ctx_.terminal_columns - 1 : ctx_.terminal_columns);
    std::optional<v1::Job> last;
    // The end event carries the result when the job has one (and the
    // scheduler could read it back): no GetResult call then.
    std::optional<v1::GetResultResponse> carried;
    absl::Status status = api_.WatchJob(job_id, [&](const v1::JobEvent& event) {
      last = event.job();
      if (event.has_result()) carried = event.result();
      ctx_.err << renderer.OnEvent(event.job(), ctx_.clock->WallNow()) << std::flush;
    });
    ctx_.err << renderer.Finish() << std::flush;
    if (!status.ok()) return Fail(status);
    if (!last || !IsTerminal(last->state())) {
      // The stream should end with the finished state; ask once before giving up.
      absl::StatusOr<v1::Job> job = api_.GetJob(job_id);
      if (!job.ok()) return Fail(job.status());
      if (!IsTerminal(job->state())) {
        return Fail(absl::UnavailableError(absl::StrCat(
            "the watch of job ", job_id, " ended before the job finished (state ",
            StateName(job->state()), "); run `tessera watch ", job_id,
            "` to follow it again")));
      }
      last = *std::move(job);
    }

    // PARTIAL has a persisted result too: print it, then the shards it lacks.
    const v1::JobState state = last->state();
    const bool has_result =
        state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_PARTIAL;
    ctx_.out << (json_ ? ToJsonLine(*last) + "\n" : FormatJobSummary(*last));
    int code = state == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitJobFailed;
    if (has_result) {
      absl::StatusOr<v1::GetResultResponse> result =
          carried ? *std::move(carried) : api_.GetResult(job_id);
      if (!result.ok()) {
        code = Fail(result.status());
      } else if (json_) {
        ctx_.out << ToJsonLine(*result) << "\n";
      } else {
        absl::StatusOr<std::string> pretty = PrettyResultJson(*result);
        if (!pretty.ok()) {
          code = Fail(pretty.status());
        } else {
          ctx_.out << *pretty << "\n"
                   << FormatResultLocation(result->location(), result->sha256(),
                                           result->version())
                   << "\n";
        }
      }
    }
    // The JSON Job above already lists the failed shards.
    if (!json_) ctx_.out << FormatFailedShards(*last, kMaxFailedShardsShown);
    if ((state == v1::JOB_STATE_PARTIAL || state == v1::JOB_STATE_FAILED) &&
        last->failed_shards_size() > 0) {
      ctx_.err << "run `tessera retry " << job_id << "` to re-run the failed shards\n";
    }
    return code;
  }

  int Retry(const Command& cmd) {
    // The job before the call: the returned one no longer lists its failed shards.
    absl::StatusOr<v1::Job> before = api_.GetJob(cmd.job_id);
    if (!before.ok()) return Fail(before.status());
    int64_t failed = before->failed_shards_size();
    if (failed == 0) failed = before->shards().failed();
    absl::StatusOr<v1::Job> job = api_.RetryFailedShards(cmd.job_id);
    if (!job.ok()) return Fail(job.status());
    std::string line =
        absl::StrCat("job ", cmd.job_id, " ", StateName(job->state()), ": retrying ",
                     failed, " failed shard", failed == 1 ? "" : "s");
    if (!cmd.wait) {
      ctx_.out << (json_ ? ToJsonLine(*job) : line) << "\n";
      return kExitOk;
    }
    ctx_.err << line << "\n";
    return Follow(cmd.job_id);
  }

  int Update(const v1::UpdateJobRequest& request) {
    absl::StatusOr<v1::Job> job = api_.UpdateJob(request);
    if (!job.ok()) return Fail(job.status());
    if (json_) {
      ctx_.out << ToJsonLine(*job) << "\n";
      return kExitOk;
    }
    ctx_.out << "job " << job->id() << " " << StateName(job->state()) << ": max parallel "
             << FormatMaxParallel(job->spec().max_parallel()) << ", rate limit "
             << FormatRateLimit(job->spec().rate_limit()) << "\n";
    return kExitOk;
  }

  int Get(const std::string& job_id) {
    absl::StatusOr<v1::Job> job = api_.GetJob(job_id);
    if (!job.ok()) return Fail(job.status());
    ctx_.out << (json_ ? ToJsonLine(*job) + "\n" : FormatJobDetail(*job, ctx_.time_zone));
    return kExitOk;
  }

  int Result(const std::string& job_id) {
    absl::StatusOr<v1::GetResultResponse> result = api_.GetResult(job_id);
    if (!result.ok()) return Fail(result.status());
    if (json_) {
      ctx_.out << ToJsonLine(*result) << "\n";
      return kExitOk;
    }
    absl::StatusOr<std::string> pretty = PrettyResultJson(*result);
    if (!pretty.ok()) return Fail(pretty.status());
    // stdout stays pure JSON so that it can be piped; the location is a hint.
    ctx_.out << *pretty << "\n";
    ctx_.err << FormatResultLocation(result->location(), result->sha256(),
                                     result->version())
             << "\n";
    return kExitOk;
  }

  int List(const v1::ListJobsRequest& request) {
    absl::StatusOr<v1::ListJobsResponse> response = api_.ListJobs(request);
    if (!response.ok()) return Fail(response.status());
    if (json_) {
      ctx_.out << ToJsonLine(*response) << "\n";
      return kExitOk;
    }
    ctx_.out << FormatJobsTable(*response, ctx_.time_zone);
    if (!response->next_page_token().empty()) {
      ctx_.err << "more jobs: tessera list --page-token " << response->next_page_token()
               << "\n";
    }
    return kExitOk;
  }

  int Cancel(const std::string& job_id) {
    absl::StatusOr<v1::Job> job = api_.CancelJob(job_id);
    if (!job.ok()) return Fail(job.status());
    if (json_) {
      ctx_.out << ToJsonLine(*job) << "\n";
    } else if (job->state() == v1::JOB_STATE_CANCELLED) {
      ctx_.out << "job " << job->id() << " CANCELLED\n";
    } else {
      ctx_.out << "job " << job->id() << " " << StateName(job->state())
               << (IsTerminal(job->state()) ? " (already finished, unchanged)" : "")
               << "\n";
    }
    return kExitOk;
  }

  int Executors() {
    absl::StatusOr<v1::ListExecutorsResponse> response = api_.ListExecutors();
    if (!response.ok()) return Fail(response.status());
    ctx_.out << (json_ ? ToJsonLine(*response) + "\n"
                       : FormatExecutorsTable(*response, ctx_.clock->WallNow()));
    return kExitOk;
  }

  int Queue() {
    absl::StatusOr<v1::GetQueueStatsResponse> response = api_.GetQueueStats();
    if (!response.ok()) return Fail(response.status());
    ctx_.out << (json_ ? ToJsonLine(*response) + "\n" : FormatQueueStats(*response));
    return kExitOk;
  }

  JobApi& api_;
  const std::string& address_;
  const RunContext& ctx_;
  bool json_ = false;
};

// Reads --items-file (or `in` for "-") into cmd.spec.items.
absl::Status LoadItems(Command& cmd, std::istream* in) {
  std::string text;
  if (cmd.items_file == "-") {
    if (in == nullptr) {
      return absl::InvalidArgumentError("--items-file: no stdin to read items from");
    }
    text.assign(std::istreambuf_iterator<char>(*in), std::istreambuf_iterator<char>());
    if (in->bad()) {
      return absl::InvalidArgumentError("--items-file: cannot read stdin");
    }
  } else {
    std::ifstream file(cmd.items_file, std::ios::binary);
    if (!file) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--items-file: cannot open \"", cmd.items_file, "\": ", std::strerror(errno)));
    }
    text.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    if (file.bad()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--items-file: cannot read \"", cmd.items_file, "\""));
    }
  }
  return ParseItems(text, *cmd.spec.mutable_items());
}

}  // namespace

int RunCommand(const Command& cmd, JobApi& api, const std::string& address,
               const RunContext& ctx) {
  return Runner(api, address, ctx).Run(cmd);
}

int RunCli(const std::vector<std::string>& args, const CliEnv& env,
           const ConnectFn& connect, const RunContext& ctx) {
  if (args.empty()) {
    ctx.err << UsageText();
    return kExitUsage;
  }
  absl::StatusOr<Command> cmd = ParseArgs(args);
  if (cmd.ok() && cmd->kind == CommandKind::kSubmit && !cmd->items_file.empty()) {
    if (absl::Status loaded = LoadItems(*cmd, ctx.in); !loaded.ok()) cmd = loaded;
  }
  if (!cmd.ok()) {
    ctx.err << "tessera: " << cmd.status().message() << "\n"
            << "Run 'tessera --help' for usage.\n";
    return kExitUsage;
  }
  if (cmd->kind == CommandKind::kHelp || cmd->kind == CommandKind::kVersion) {
    return PrintAbout(cmd->kind, ctx);
  }
  ConnectOptions options;
  options.address = ResolveSchedulerAddress(cmd->scheduler, env.scheduler);
  options.tls_ca = !cmd->tls_ca.empty()    ? cmd->tls_ca
                   : env.tls_ca != nullptr ? env.tls_ca
                                           : "";
  if (!cmd->token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(cmd->token_file, "--token-file");
    if (!token.ok()) {
      ctx.err << "tessera: " << token.status().message() << "\n";
      return kExitUsage;
    }
    options.token = *std::move(token);
  } else if (!cmd->token.empty()) {
    options.token = cmd->token;
  } else if (env.token != nullptr) {
    options.token = std::string(absl::StripAsciiWhitespace(env.token));
  }
  absl::StatusOr<std::unique_ptr<JobApi>> api = connect(options);
  if (!api.ok()) {
    ctx.err << "tessera: " << api.status().message() << "\n";
    return kExitUsage;
  }
  return RunCommand(*cmd, **api, options.address, ctx);
}

}  // namespace tessera::cli
