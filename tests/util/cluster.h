// One harness for real tessera-scheduler and tessera-executor processes on
// loopback, shared by the end-to-end tests (tests/e2e/cluster.h) and the
// benchmarks (tests/bench): start a scheduler and wait until it serves, start
// executors, reach the JobService, read a process's memory from /proc. No
// gtest: failures are returned as statuses, for a test to assert on or a
// benchmark to print. Only processes the harness started are ever signalled.
#ifndef TESSERA_TESTS_UTIL_CLUSTER_H_
#define TESSERA_TESTS_UTIL_CLUSTER_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/util/process.h"
#include "tests/util/temp_dir.h"

namespace tessera::testing {

// A client context whose deadline is `timeout` from now.
std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration timeout);

// Waits until the scheduler at `address` answers GetQueueStats, polling every
// `poll` while `scheduler` runs; returns a stub on the channel that answered.
// Each try uses a fresh channel: one that saw an earlier scheduler die would
// wait out its reconnect backoff and make the start look slower than it is.
absl::StatusOr<std::unique_ptr<v1::JobService::Stub>> WaitForScheduler(
    const std::string& address, Process& scheduler, absl::Duration timeout,
    absl::Duration poll = absl::Milliseconds(5));

// A field of /proc/<pid>/status in MiB ("VmRSS", "VmHWM"); 0 if unreadable.
double ProcStatusMiB(pid_t pid, const std::string& key);

// A scheduler (started and restarted on the same port and data dir) and its
// executors. Thread-compatible; the processes die with it, and then the temp
// dir it made (none is made if Options::dir names one: its owner removes it).
class LocalCluster {
 public:
  struct Options {
    std::string scheduler_bin;
    std::string executor_bin;
    std::string dir;  // empty: a new temp dir, removed with the cluster
    // Prefixed to every scheduler's and executor's argv (profilers).
    std::vector<std::string> scheduler_wrapper;
    std::vector<std::string> executor_wrapper;
    std::string log_level;  // empty: the binaries' default
    // Given to every scheduler (executor), before the flags of each start.
    std::vector<std::string> scheduler_flags;
    std::vector<std::string> executor_flags;
    bool metrics_port = true;  // the scheduler serves /metrics on metrics_port()
    // How often StartScheduler asks whether the scheduler serves yet.
    absl::Duration ready_poll = absl::Milliseconds(5);
  };

  explicit LocalCluster(Options options);
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Starts (or restarts) the scheduler with `extra` flags and waits until it
  // serves; returns how long that took, or the error with the scheduler's log.
  // A port picked free can be taken by another process before the scheduler
  // binds it: until a scheduler has served and while no executor was started,
  // a start that cannot listen is tried again on fresh ports (twice at most).
  absl::StatusOr<absl::Duration> StartScheduler(
      const std::vector<std::string>& extra = {},
      absl::Duration timeout = absl::Seconds(60));
  // SIGKILLs the scheduler and waits for it to end.
  absl::Status KillScheduler();
  // SIGKILLs the scheduler if it still runs and forgets it: scheduler() is
  // null until the next StartScheduler.
  void StopScheduler() { scheduler_.reset(); }
  // Starts an executor named `name` with `slots` and `extra` flags.
  Process* StartExecutor(const std::string& name, int slots,
                         const std::vector<std::string>& extra = {});
  // SIGKILLs the executors and the scheduler (the data dir stays).
  void StopAll();
  // Waits until the scheduler counts at least `n` executors.
  absl::Status WaitExecutors(int n, absl::Duration timeout = absl::Seconds(60));

  v1::GetQueueStatsResponse Stats();
  v1::Job Get(const std::string& id);

  // The scheduler's log and each executor's.
  std::string Logs() const;

  const std::string& dir() const { return dir_; }
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  Process* scheduler() { return scheduler_.get(); }
  const Process* scheduler() const { return scheduler_.get(); }
  std::vector<std::unique_ptr<Process>>& executors() { return executors_; }
  const std::vector<std::unique_ptr<Process>>& executors() const { return executors_; }
  // The stub of the last scheduler that answered.
  v1::JobService::Stub& jobs() { return *jobs_; }
  // JobService calls go through `jobs` from now on (a scheduler this cluster
  // did not start, e.g. one of several replicas).
  void set_jobs(std::unique_ptr<v1::JobService::Stub> jobs) { jobs_ = std::move(jobs); }
  // Executors started from now on are given `--scheduler=<address>` rather
  // than address() (several replicas, or one this cluster did not start).
  void set_executor_scheduler(std::string address) {
    executor_scheduler_ = std::move(address);
  }

 private:
  const Options options_;
  // Declared before the processes, so they have ended when it is removed.
  const std::optional<TempDir> own_dir_;  // if options_.dir was empty
  const std::string dir_;
  // Fixed once a scheduler has served or an executor was pointed at them.
  int port_;
  int metrics_port_;
  std::string address_;
  bool served_ = false;             // a scheduler of this cluster has served
  std::string executor_scheduler_;  // empty: address_
  std::unique_ptr<Process> scheduler_;
  std::vector<std::unique_ptr<Process>> executors_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

}  // namespace tessera::testing

#endif  // TESSERA_TESTS_UTIL_CLUSTER_H_
