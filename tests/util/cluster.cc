#include "tests/util/cluster.h"

#include <signal.h>

#include <chrono>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tessera::testing {

std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

absl::StatusOr<std::unique_ptr<v1::JobService::Stub>> WaitForScheduler(
    const std::string& address, Process& scheduler, absl::Duration timeout,
    absl::Duration poll) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = v1::JobService::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    v1::GetQueueStatsResponse stats;
    if (stub->GetQueueStats(ContextWithDeadline(absl::Seconds(1)).get(),
                            v1::GetQueueStatsRequest(), &stats)
            .ok()) {
      return stub;
    }
    if (!scheduler.running()) {
      return absl::UnavailableError("the scheduler exited:\n" + scheduler.Log());
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the scheduler did not answer within ",
                       absl::FormatDuration(timeout), ":\n", scheduler.Log()));
    }
    absl::SleepFor(poll);
  }
}

double ProcStatusMiB(pid_t pid, const std::string& key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string k;
  double kib = 0;
  while (in >> k) {
    if (k == key + ":") {
      in >> kib;
      break;
    }
  }
  return kib / 1024;
}

namespace {

std::vector<std::string> Wrapped(const std::vector<std::string>& wrapper,
                                 std::vector<std::string> argv) {
  argv.insert(argv.begin(), wrapper.begin(), wrapper.end());
  return argv;
}

}  // namespace

LocalCluster::LocalCluster(Options options)
    : options_(std::move(options)),
      own_dir_(options_.dir.empty() ? std::make_optional<TempDir>("tessera-cluster")
                                    : std::nullopt),
      dir_(own_dir_ ? own_dir_->path() : options_.dir),
      port_(FreePort()),
      metrics_port_(options_.metrics_port ? FreePort() : 0),
      address_(absl::StrCat("127.0.0.1:", port_)),
      jobs_(v1::JobService::NewStub(
          grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()))) {}

LocalCluster::~LocalCluster() { StopAll(); }  // before own_dir_ is removed

void LocalCluster::StopAll() {
  executors_.clear();  // SIGKILL
  scheduler_.reset();
}

absl::StatusOr<absl::Duration> LocalCluster::StartScheduler(
    const std::vector<std::string>& extra, absl::Duration timeout) {
  std::vector<std::string> argv = {
      options_.scheduler_bin, "--listen=" + address_,
      options_.metrics_port ? absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port_)
                            : "--metrics-listen=",
      "--data-dir=" + dir_ + "/data"};
  if (!options_.log_level.empty()) argv.push_back("--log-level=" + options_.log_level);
  argv.insert(argv.end(), options_.scheduler_flags.begin(),
              options_.scheduler_flags.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  const absl::Time t0 = absl::Now();
  for (int attempt = 1;; ++attempt) {
    scheduler_ = std::make_unique<Process>(Wrapped(options_.scheduler_wrapper, argv),
                                           dir_ + "/scheduler.log");
    auto stub = WaitForScheduler(address_, *scheduler_, timeout, options_.ready_poll);
    if (stub.ok()) {
      served_ = true;
      jobs_ = *std::move(stub);
      return absl::Now() - t0;
    }
    const bool port_taken =
        absl::StrContains(stub.status().message(), "cannot listen on");
    if (!port_taken || served_ || !executors_.empty() || attempt == 3) {
      return stub.status();
    }
    const std::string old_listen = "--listen=" + address_;
    const std::string old_metrics =
        absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port_);
    port_ = FreePort();
    address_ = absl::StrCat("127.0.0.1:", port_);
    if (options_.metrics_port) metrics_port_ = FreePort();
    for (std::string& arg : argv) {
      if (arg == old_listen) arg = "--listen=" + address_;
      if (options_.metrics_port && arg == old_metrics) {
        arg = absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port_);
      }
    }
  }
}

absl::Status LocalCluster::KillScheduler() {
  if (scheduler_ == nullptr) return absl::FailedPreconditionError("no scheduler");
  scheduler_->Signal(SIGKILL);
  if (scheduler_->Wait(absl::Seconds(10)) != 128 + SIGKILL) {
    return absl::InternalError("the scheduler did not end on SIGKILL");
  }
  return absl::OkStatus();
}

Process* LocalCluster::StartExecutor(const std::string& name, int slots,
                                     const std::vector<std::string>& extra) {
  const std::string& scheduler =
      executor_scheduler_.empty() ? address_ : executor_scheduler_;
  std::vector<std::string> argv = {options_.executor_bin, "--scheduler=" + scheduler,
                                   absl::StrCat("--slots=", slots), "--name=" + name,
                                   "--metrics-listen="};
  if (!options_.log_level.empty()) argv.push_back("--log-level=" + options_.log_level);
  argv.insert(argv.end(), options_.executor_flags.begin(), options_.executor_flags.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  executors_.push_back(std::make_unique<Process>(Wrapped(options_.executor_wrapper, argv),
                                                 dir_ + "/" + name + ".log"));
  return executors_.back().get();
}

absl::Status LocalCluster::WaitExecutors(int n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (Stats().executors() >= n) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError(absl::StrCat(n, " executors did not connect"));
}

v1::GetQueueStatsResponse LocalCluster::Stats() {
  v1::GetQueueStatsResponse r;
  jobs_->GetQueueStats(ContextWithDeadline(absl::Seconds(5)).get(),
                       v1::GetQueueStatsRequest(), &r);
  return r;
}

v1::Job LocalCluster::Get(const std::string& id) {
  v1::GetJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  jobs_->GetJob(ContextWithDeadline(absl::Seconds(5)).get(), req, &job);
  return job;
}

std::string LocalCluster::Logs() const {
  std::string out = "--- scheduler\n" + (scheduler_ ? scheduler_->Log() : "");
  for (const auto& e : executors_) out += "--- executor\n" + e->Log();
  return out;
}

}  // namespace tessera::testing
