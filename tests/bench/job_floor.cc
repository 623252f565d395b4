#include "tests/bench/job_floor.h"

#include <sqlite3.h>
#include <time.h>

#include <algorithm>
#include <functional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tessera/v1/executor.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"

namespace tessera::bench {
namespace {

namespace v1 = tessera::v1;

constexpr char kJobId[] = "3f9c1e0a7b2d4c51";

class WatchEnd : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  WatchEnd() {
    event_.mutable_job()->set_id(kJobId);
    event_.mutable_job()->set_state(v1::JOB_STATE_SUCCEEDED);
    event_.mutable_result()->set_job_id(kJobId);
    event_.mutable_result()->set_result_json(
        "{\"items\":1,\"_metadata\":{\"job_id\":\"3f9c1e0a7b2d4c51\",\"shards\":1}}");
    StartWrite(&event_);
  }
  void OnWriteDone(bool) override { Finish(grpc::Status::OK); }
  void OnDone() override { delete this; }

 private:
  v1::JobEvent event_;
};

class FloorJobService : public v1::JobService::CallbackService {
  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest*,
                                      v1::Job* job) override {
    job->set_id(kJobId);
    job->set_state(v1::JOB_STATE_QUEUED);
    job->mutable_shards()->set_total(1);
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext*,
                                                   const v1::WatchJobRequest*) override {
    return new WatchEnd();
  }
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::unique_ptr<grpc::Service> MakeFloorJobService() {
  return std::make_unique<FloorJobService>();
}

absl::StatusOr<GrpcJobFloor> MeasureGrpcJobFloor(
    const std::string& address, const std::function<double()>& server_cpu, int64_t jobs) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // The client's and the executor's channels, as in a cluster.
  auto client =
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  auto executor =
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  auto jobs_stub = v1::JobService::NewStub(client);
  auto exec_stub = v1::ExecutorService::NewStub(executor);
  grpc::ClientContext stream_ctx;
  auto stream = exec_stub->Connect(&stream_ctx);
  v1::ExecutorMessage result;
  result.mutable_result()->set_lease_id(absl::StrCat(kJobId, "-00000001"));
  result.mutable_result()->set_job_id(kJobId);
  result.mutable_result()->set_result_json("{\"items\":1}");
  result.mutable_result()->set_shard(-2);  // the echo answers: an assignment, an ack
  auto one_job = [&]() -> absl::Status {
    v1::SubmitJobRequest req;
    req.mutable_spec()->set_task("noop");
    req.mutable_spec()->mutable_range()->set_end(1);
    v1::Job job;
    grpc::ClientContext ctx;
    if (grpc::Status s = jobs_stub->SubmitJob(&ctx, req, &job); !s.ok()) {
      return absl::UnavailableError("floor SubmitJob: " + s.error_message());
    }
    v1::SchedulerMessage assign, ack;
    if (!stream->Write(result) || !stream->Read(&assign) || !stream->Read(&ack) ||
        !assign.has_assign() || !ack.has_ack()) {
      return absl::UnavailableError("floor executor stream ended");
    }
    grpc::ClientContext wctx;
    v1::WatchJobRequest wreq;
    wreq.set_job_id(job.id());
    auto watch = jobs_stub->WatchJob(&wctx, wreq);
    v1::JobEvent event;
    bool ended = false;
    while (watch->Read(&event)) ended = event.job().state() == v1::JOB_STATE_SUCCEEDED;
    if (grpc::Status s = watch->Finish(); !s.ok() || !ended) {
      return absl::UnavailableError("floor WatchJob: " + s.error_message());
    }
    return absl::OkStatus();
  };
  for (int i = 0; i < 50; ++i) {  // warm-up: connections, allocators
    if (absl::Status s = one_job(); !s.ok()) return s;
  }
  std::vector<double> us;
  const double cpu0 = server_cpu();
  for (int64_t i = 0; i < jobs; ++i) {
    const absl::Time t0 = absl::Now();
    if (absl::Status s = one_job(); !s.ok()) return s;
    us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
  }
  GrpcJobFloor f;
  f.server_cpu_us = 1e6 * (server_cpu() - cpu0) / static_cast<double>(jobs);
  f.p50_us = Percentile(us, 0.5);
  stream->WritesDone();
  stream->Finish();
  return f;
}

absl::StatusOr<StoreCommitFloor> MeasureStoreCommitFloor(
    const std::string& dir, int64_t commits, const std::function<void()>& alongside,
    const std::function<void()>& between) {
  sqlite3* db = nullptr;
  const std::string path = dir + "/floor.db";
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return absl::InternalError("floor: cannot open " + path);
  }
  auto exec = [db](const char* sql) -> absl::Status {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      absl::Status s = absl::InternalError(absl::StrCat("floor: ", sql, ": ", err));
      sqlite3_free(err);
      return s;
    }
    return absl::OkStatus();
  };
  sqlite3_stmt* insert = nullptr;
  absl::Status status = exec("PRAGMA journal_mode=WAL");
  if (status.ok()) status = exec("PRAGMA synchronous=FULL");
  if (status.ok()) status = exec("CREATE TABLE jobs (id TEXT PRIMARY KEY, record BLOB)");
  if (status.ok() && sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO jobs VALUES (?, ?)",
                                        -1, &insert, nullptr) != SQLITE_OK) {
    status = absl::InternalError("floor: prepare insert");
  }
  const std::string record(300, 'r');
  auto commit = [&](int64_t i) {
    const std::string id = absl::StrCat("job-", i % 64);  // rows updated, as jobs are
    absl::Status s = exec("BEGIN");
    sqlite3_bind_text(insert, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_blob(insert, 2, record.data(), static_cast<int>(record.size()),
                      SQLITE_STATIC);
    if (s.ok() && sqlite3_step(insert) != SQLITE_DONE) {
      s = absl::InternalError("floor: insert");
    }
    sqlite3_reset(insert);
    if (s.ok()) s = exec("COMMIT");
    return s;
  };
  std::vector<double> ms;
  double cpu = 0;
  // As many again first: the WAL file grows until its first checkpoint, and
  // a scheduler that has run a while writes into a WAL of full size.
  for (int64_t i = 0; status.ok() && i < 2 * commits; ++i) {
    const absl::Time t0 = absl::Now();
    const double c0 = ThreadCpuSeconds();
    status = commit(i);
    if (i >= commits) {
      cpu += ThreadCpuSeconds() - c0;
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    }
  }
  StoreCommitFloor f;
  if (status.ok() && alongside) {
    // A helper thread that waits for each go, runs `alongside`, says so, and
    // then runs `between`.
    absl::Mutex mu;
    int64_t go = 0;
    int64_t done = 0;
    int64_t idle = 0;  // `between` has run after this many
    bool quit = false;
    std::thread helper([&] {
      for (int64_t n = 1;; ++n) {
        {
          absl::MutexLock lock(&mu);
          auto ready = [&] { return go >= n || quit; };
          mu.Await(absl::Condition(&ready));
          if (go < n) return;
        }
        alongside();
        {
          absl::MutexLock lock(&mu);
          done = n;
        }
        if (between) between();
        absl::MutexLock lock(&mu);
        idle = n;
      }
    });
    std::vector<double> together;
    for (int64_t i = 0; status.ok() && i < commits; ++i) {
      {
        // The last `between` is over before the next pair starts.
        absl::MutexLock lock(&mu);
        auto helper_idle = [&] { return idle >= i; };
        mu.Await(absl::Condition(&helper_idle));
      }
      const absl::Time t0 = absl::Now();
      {
        absl::MutexLock lock(&mu);
        go = i + 1;
      }
      status = commit(i);
      absl::MutexLock lock(&mu);
      auto finished = [&] { return done >= i + 1; };
      mu.Await(absl::Condition(&finished));
      together.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    }
    {
      absl::MutexLock lock(&mu);
      quit = true;
    }
    helper.join();
    if (!together.empty()) f.with_alongside_p50_ms = Percentile(together, 0.5);
    // And one after the other, on this thread.
    std::vector<double> serial;
    for (int64_t i = 0; status.ok() && i < commits; ++i) {
      const absl::Time t0 = absl::Now();
      status = commit(i);
      alongside();
      serial.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      if (between) between();
    }
    if (!serial.empty()) f.then_alongside_p50_ms = Percentile(serial, 0.5);
  }
  sqlite3_finalize(insert);
  sqlite3_close(db);
  if (!status.ok()) return status;
  f.cpu_us = 1e6 * cpu / static_cast<double>(commits);
  f.p50_ms = Percentile(ms, 0.5);
  return f;
}

}  // namespace tessera::bench
