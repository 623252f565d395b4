#include "scheduler/service/job_service.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "scheduler/service/convert.h"
#include "shared/grpc_util.h"
#include "shared/json_limits.h"
#include "shared/logging.h"

namespace tessera::scheduler {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;
// The deepest result read back that is sent as a Struct (protobuf's own JSON
// parser stops at 100 too).
constexpr int kMaxResultReadDepth = 100;
// WatchJob sends at most one event per this interval.
constexpr absl::Duration kWatchInterval = absl::Milliseconds(200);

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// Finishes `reactor` with the job (once the change is durable) or the error,
// and logs who asked for the change (never their credentials); a taken
// SubmitJob is logged by the runtime as it is taken, off the writer's thread.
Runtime::JobCallback Reply(grpc::ServerUnaryReactor* reactor, v1::Job* resp,
                           absl::string_view method, const Identity& caller,
                           std::string job_id = "") {
  return [reactor, resp, method = std::string(method), caller = caller.name,
          job_id = std::move(job_id)](absl::StatusOr<JobView> job) {
    if (job.ok()) {
      JobToProto(*job, resp);
      if (method != "SubmitJob") {
        spdlog::info("audit: {} job={} by {}", method, job->id, caller);
      }
    } else {
      spdlog::info("audit: {} job={} by {} refused: {}", method, job_id, caller,
                   job.status().ToString());
    }
    reactor->Finish(ToGrpcStatus(job.status()));
  };
}

// Fills `resp` from a result read back; leaves its content out when the
// response would not fit in a message of `max_bytes`.
absl::Status ResultToProto(const std::string& job_id, absl::StatusOr<ResultBytes>& result,
                           int max_bytes, v1::GetResultResponse* resp) {
  if (!result.ok()) return result.status();
  resp->set_job_id(job_id);
  resp->set_location(result->job.result_location);
  resp->set_sha256(result->job.result_sha256);
  resp->set_version(result->job.result_version);
  resp->set_size_bytes(result->size);
  if (!result->omitted) {
    // Parsed only when no deeper than protobuf's own JSON parser would take
    // (the bytes may have been read back from the sink).
    nlohmann::json doc;
    if (JsonTextDepth(result->bytes, kMaxResultReadDepth) <= kMaxResultReadDepth) {
      doc = nlohmann::json::parse(result->bytes, nullptr, /*allow_exceptions=*/false);
    }
    if (!doc.is_object()) {
      return absl::DataLossError(
          absl::StrCat("result of job ", job_id,
                       " is not a JSON object of depth <= ", kMaxResultReadDepth));
    }
    JsonToStruct(doc, resp->mutable_result());
    resp->set_result_json(std::move(result->bytes));
  }
  // The content goes twice (as a Struct too, which can be several times the
  // JSON's size): a result that fits alone may still not fit so.
  if (resp->ByteSizeLong() > static_cast<size_t>(max_bytes) - 1024) {
    resp->clear_result();
    resp->clear_result_json();
    resp->set_content_omitted(true);
  }
  return absl::OkStatus();
}

absl::Status RequireJobId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("job_id is required");
  return absl::OkStatus();
}

// Streams a job's progress: polled by the runtime's ticker, sends the job
// whenever it changed (at most every kWatchInterval; its end at once) and ends
// after the first event in a finished state. Deletes itself in OnDone.
class WatchReactor : public grpc::ServerWriteReactor<v1::JobEvent>, public Poller {
 public:
  // `open` counts open streams; this one is already counted and uncounts
  // itself when done.
  // `max_bytes`: the largest message the stream may send (its end event
  // carries the result when it fits).
  WatchReactor(Runtime* runtime, std::string job_id, std::atomic<int>* open,
               int max_bytes)
      : runtime_(runtime),
        job_id_(std::move(job_id)),
        open_(open),
        max_bytes_(max_bytes) {
    runtime_->AddPoller(this);
    Poll();  // the job as it is now, without waiting for the ticker
  }

  void Poll() override {
    absl::MutexLock lock(&mu_);
    PollLocked(/*finished=*/false);
  }

  void JobFinished(const std::string& job_id) override {
    if (job_id != job_id_) return;
    absl::MutexLock lock(&mu_);
    // The end goes out at once, or right after the write under way.
    finish_pending_ = writing_;
    PollLocked(/*finished=*/true);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
    } else if (cancelled_) {
      FinishLocked(grpc::Status::CANCELLED);
    } else if (finish_pending_) {
      finish_pending_ = false;
      PollLocked(/*finished=*/true);
    }
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    runtime_->RemovePoller(this);
    open_->fetch_sub(1);
    delete this;
  }

 private:
  // Sends the job if it changed; within kWatchInterval of the last event only
  // when `finished` (the job's end is never held back).
  void PollLocked(bool finished) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finishing_) return;
    const absl::Time now = runtime_->clock().Now();
    if (!finished && now - last_sent_ < kWatchInterval) return;
    absl::StatusOr<JobView> job = runtime_->GetJob(job_id_);
    if (!job.ok()) {
      FinishLocked(ToGrpcStatus(job.status()));
      return;
    }
    if (sent_any_ && job->version == last_version_) return;
    sent_any_ = true;
    last_version_ = job->version;
    last_sent_ = now;
    const bool terminal = IsTerminal(job->state);
    event_.Clear();
    JobToProto(*job, event_.mutable_job());
    writing_ = true;
    // The end event and the stream's status go out in one write.
    finishing_ = terminal;
    if (terminal && !job->result_location.empty()) {
      // The end event carries the result: the bytes just written when the
      // runtime still has them, else read back (and checked against its
      // sha256) on a reader thread, as the sink may be remote.
      const int room = max_bytes_ - static_cast<int>(event_.job().ByteSizeLong());
      if (std::optional<ResultBytes> recent = runtime_->RecentResult(job_id_, room)) {
        absl::StatusOr<ResultBytes> r = *std::move(recent);
        WriteEndWithResult(r, room);
        return;
      }
      runtime_->ReadResult(job_id_, room, [this, room](absl::StatusOr<ResultBytes> r) {
        WriteEndWithResult(r, room);
      });
      return;
    }
    SendEvent(terminal);
  }

  // The event in event_; the last one with the stream's status (OnDone
  // follows, no OnWriteDone).
  void SendEvent(bool last) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (last) {
      StartWriteAndFinish(&event_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&event_);
    }
  }

  // Runs on a reader thread, or at once inside PollLocked (mu_ held) when the
  // runtime is stopping, so it takes no lock: while writing_ is set, event_
  // is this write's alone (nothing else touches it, nor finishes the stream).
  void WriteEndWithResult(absl::StatusOr<ResultBytes>& r,
                          int room) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    v1::GetResultResponse* result = event_.mutable_result();
    if (absl::Status s = ResultToProto(job_id_, r, room, result); !s.ok()) {
      spdlog::warn("job={} end event sent without its result: {}", job_id_, s.ToString());
      event_.clear_result();
    }
    SendEvent(/*last=*/true);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_) return;
    finishing_ = true;
    Finish(std::move(status));
  }

  Runtime* const runtime_;
  const std::string job_id_;
  std::atomic<int>* const open_;
  const int max_bytes_;
  absl::Mutex mu_;
  v1::JobEvent event_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_pending_ ABSL_GUARDED_BY(mu_) = false;  // ended during a write
  uint64_t last_version_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_sent_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

class ErrorWriteReactor : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  explicit ErrorWriteReactor(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<Identity> JobServiceImpl::JobChanger(grpc::CallbackServerContext* ctx,
                                                    const std::string& job_id,
                                                    absl::string_view method) {
  absl::StatusOr<Identity> who =
      auth_->Check(*ctx, Permission::kSubmit, method, std::nullopt);
  if (!who.ok() || !auth_->Required(Permission::kSubmit)) return who;
  absl::StatusOr<JobView> job = runtime_->GetJob(job_id);
  if (!job.ok()) return job.status();
  if (absl::Status s = Authorize(*who, Permission::kSubmit, method, job->spec.queue);
      !s.ok()) {
    return s;
  }
  return who;
}

grpc::ServerUnaryReactor* JobServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                    const v1::SubmitJobRequest* req,
                                                    v1::Job* resp) {
  // Credentials first: a caller without them learns nothing about the spec.
  absl::StatusOr<Identity> who =
      auth_->Check(*ctx, Permission::kSubmit, "SubmitJob", std::nullopt);
  if (!who.ok()) return Done(ctx, who.status());
  if (!req->has_spec()) return Done(ctx, absl::InvalidArgumentError("spec is required"));
  absl::StatusOr<JobSpec> spec = SpecFromProto(req->spec());
  if (!spec.ok()) return Done(ctx, spec.status());
  if (auth_->Required(Permission::kSubmit)) {
    absl::Status s = Authorize(*who, Permission::kSubmit, "SubmitJob", spec->queue);
    if (!s.ok()) return Done(ctx, s);
  }
  auto* reactor = ctx->DefaultReactor();
  runtime_->Submit(*spec, Reply(reactor, resp, "SubmitJob", *who), who->name);
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                 const v1::GetJobRequest* req,
                                                 v1::Job* resp) {
  if (absl::StatusOr<Identity> who = auth_->Check(*ctx, Permission::kRead, "GetJob");
      !who.ok()) {
    return Done(ctx, who.status());
  }
  if (absl::Status s = RequireJobId(req->job_id()); !s.ok()) return Done(ctx, s);
  // A finished job may be read from the store: on a reader thread.
  auto* reactor = ctx->DefaultReactor();
  runtime_->ReadJob(req->job_id(), [reactor, resp](absl::StatusOr<JobView> job) {
    if (job.ok()) JobToProto(*job, resp);
    reactor->Finish(ToGrpcStatus(job.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                   const v1::ListJobsRequest* req,
                                                   v1::ListJobsResponse* resp) {
  if (absl::StatusOr<Identity> who = auth_->Check(*ctx, Permission::kRead, "ListJobs");
      !who.ok()) {
    return Done(ctx, who.status());
  }
  if (req->page_size() < 0 || req->page_size() > kMaxPageSize) {
    return Done(ctx, absl::InvalidArgumentError(
                         absl::StrCat("page_size must be between 0 and ", kMaxPageSize,
                                      " (got ", req->page_size(), ")")));
  }
  int64_t before = -1;
  if (!req->page_token().empty() &&
      (!absl::SimpleAtoi(req->page_token(), &before) || before < 0)) {
    return Done(ctx, absl::InvalidArgumentError(
                         absl::StrCat("page_token \"", req->page_token(),
                                      "\" is not one returned by ListJobs")));
  }
  absl::StatusOr<std::optional<JobState>> state = StateFromProto(req->state());
  if (!state.ok()) return Done(ctx, state.status());
  const int limit = req->page_size() == 0 ? kDefaultPageSize : req->page_size();
  JobFilter filter;
  filter.state = *state;
  filter.queue = req->queue();
  filter.labels.insert(req->labels().begin(), req->labels().end());
  // Finished jobs are read from the store: on a reader thread.
  auto* reactor = ctx->DefaultReactor();
  runtime_->ReadJobs(
      filter, before, limit,
      [reactor, resp](absl::StatusOr<std::vector<JobView>> jobs, int64_t next) {
        if (jobs.ok()) {
          for (const JobView& j : *jobs) JobToProto(j, resp->add_jobs());
          if (next >= 0) resp->set_next_page_token(absl::StrCat(next));
        }
        reactor->Finish(ToGrpcStatus(jobs.status()));
      });
  return reactor;
}

grpc::ServerWriteReactor<v1::JobEvent>* JobServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* req) {
  if (absl::StatusOr<Identity> who = auth_->Check(*ctx, Permission::kRead, "WatchJob");
      !who.ok()) {
    return new ErrorWriteReactor(who.status());
  }
  if (absl::Status s = RequireJobId(req->job_id()); !s.ok()) {
    return new ErrorWriteReactor(s);
  }
  if (absl::StatusOr<JobView> job = runtime_->GetJob(req->job_id()); !job.ok()) {
    return new ErrorWriteReactor(job.status());
  }
  if (watchers_.fetch_add(1) >= max_watchers_) {
    watchers_.fetch_sub(1);
    return new ErrorWriteReactor(absl::ResourceExhaustedError(
        absl::StrCat("too many WatchJob streams open (", max_watchers_,
                     ", --max-watchers); poll GetJob or try again later")));
  }
  return new WatchReactor(runtime_, req->job_id(), &watchers_, max_message_bytes_);
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                    const v1::CancelJobRequest* req,
                                                    v1::Job* resp) {
  if (absl::Status s = RequireJobId(req->job_id()); !s.ok()) return Done(ctx, s);
  absl::StatusOr<Identity> who = JobChanger(ctx, req->job_id(), "CancelJob");
  if (!who.ok()) return Done(ctx, who.status());
  auto* reactor = ctx->DefaultReactor();
  runtime_->Cancel(req->job_id(), Reply(reactor, resp, "CancelJob", *who, req->job_id()));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::UpdateJob(grpc::CallbackServerContext* ctx,
                                                    const v1::UpdateJobRequest* req,
                                                    v1::Job* resp) {
  if (absl::Status s = RequireJobId(req->job_id()); !s.ok()) return Done(ctx, s);
  absl::StatusOr<Identity> who = JobChanger(ctx, req->job_id(), "UpdateJob");
  if (!who.ok()) return Done(ctx, who.status());
  if (req->update_mask().paths_size() == 0) {
    return Done(ctx, absl::InvalidArgumentError(
                         "update_mask must name the fields to change: max_parallel, "
                         "rate_limit"));
  }
  JobUpdate update;
  for (const std::string& path : req->update_mask().paths()) {
    if (path == "max_parallel" || path == "maxParallel") {
      update.max_parallel = req->update().max_parallel();
    } else if (path == "rate_limit" || path == "rateLimit") {
      update.rate_limit = req->update().rate_limit();
    } else {
      return Done(ctx, absl::InvalidArgumentError(absl::StrCat(
                           "update_mask: \"", path,
                           "\" cannot be changed (only max_parallel, rate_limit)")));
    }
  }
  auto* reactor = ctx->DefaultReactor();
  runtime_->UpdateJob(req->job_id(), update,
                      Reply(reactor, resp, "UpdateJob", *who, req->job_id()));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::RetryFailedShards(
    grpc::CallbackServerContext* ctx, const v1::RetryFailedShardsRequest* req,
    v1::Job* resp) {
  if (absl::Status s = RequireJobId(req->job_id()); !s.ok()) return Done(ctx, s);
  absl::StatusOr<Identity> who = JobChanger(ctx, req->job_id(), "RetryFailedShards");
  if (!who.ok()) return Done(ctx, who.status());
  auto* reactor = ctx->DefaultReactor();
  runtime_->RetryFailedShards(
      req->job_id(), Reply(reactor, resp, "RetryFailedShards", *who, req->job_id()));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetResult(grpc::CallbackServerContext* ctx,
                                                    const v1::GetResultRequest* req,
                                                    v1::GetResultResponse* resp) {
  if (absl::StatusOr<Identity> who = auth_->Check(*ctx, Permission::kRead, "GetResult");
      !who.ok()) {
    return Done(ctx, who.status());
  }
  if (absl::Status s = RequireJobId(req->job_id()); !s.ok()) return Done(ctx, s);
  auto* reactor = ctx->DefaultReactor();
  const int max_bytes = max_message_bytes_;
  runtime_->ReadResult(
      req->job_id(), max_bytes,
      [reactor, resp, max_bytes, id = req->job_id()](absl::StatusOr<ResultBytes> result) {
        reactor->Finish(ToGrpcStatus(ResultToProto(id, result, max_bytes, resp)));
      });
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::ListExecutors(grpc::CallbackServerContext* ctx,
                                                        const v1::ListExecutorsRequest*,
                                                        v1::ListExecutorsResponse* resp) {
  if (absl::StatusOr<Identity> who =
          auth_->Check(*ctx, Permission::kRead, "ListExecutors");
      !who.ok()) {
    return Done(ctx, who.status());
  }
  for (const ExecutorView& e : runtime_->ListExecutors()) {
    ExecutorToProto(e, resp->add_executors());
  }
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* JobServiceImpl::GetQueueStats(grpc::CallbackServerContext* ctx,
                                                        const v1::GetQueueStatsRequest*,
                                                        v1::GetQueueStatsResponse* resp) {
  if (absl::StatusOr<Identity> who =
          auth_->Check(*ctx, Permission::kRead, "GetQueueStats");
      !who.ok()) {
    return Done(ctx, who.status());
  }
  QueueStatsToProto(runtime_->Stats(), resp);
  return Done(ctx, absl::OkStatus());
}

}  // namespace tessera::scheduler
