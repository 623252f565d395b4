#include "shared/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "shared/metrics.h"

namespace tessera {
namespace {

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Seconds since the epoch at boot, from /proc/stat's "btime" line; 0 if unknown.
double BootTime() {
  for (absl::string_view line : absl::StrSplit(ReadFile("/proc/stat"), '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      double t = 0;
      if (absl::SimpleAtod(line, &t)) return t;
    }
  }
  return 0;
}

int OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the descriptor opendir itself holds
}

}  // namespace

bool ParseProcStat(const std::string& stat, long ticks_per_second, ProcStat* out) {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
  // the fields are counted from the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || ticks_per_second <= 0) return false;
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(stat).substr(close + 1), ' ', absl::SkipEmpty());
  // f[0] is field 3 (state); utime is field 14, stime 15, starttime 22,
  // vsize 23, rss 24 (proc(5)).
  if (f.size() < 22) return false;
  double utime = 0, stime = 0;
  if (!absl::SimpleAtod(f[11], &utime) || !absl::SimpleAtod(f[12], &stime) ||
      !absl::SimpleAtod(f[19], &out->start_ticks) ||
      !absl::SimpleAtod(f[20], &out->virtual_bytes) ||
      !absl::SimpleAtod(f[21], &out->resident_pages)) {
    return false;
  }
  out->cpu_seconds = (utime + stime) / static_cast<double>(ticks_per_second);
  return true;
}

std::vector<prometheus::MetricFamily> CollectProcessMetrics() {
  std::vector<prometheus::MetricFamily> out;
  auto gauge = [&out](const char* name, const char* help, double v) {
    auto f = GaugeFamily(name, help);
    AddGaugeSample(f, v);
    out.push_back(std::move(f));
  };
  const long ticks = sysconf(_SC_CLK_TCK);
  ProcStat st;
  if (ParseProcStat(ReadFile("/proc/self/stat"), ticks, &st)) {
    auto cpu = CounterFamily("process_cpu_seconds_total",
                             "Total user and system CPU time spent in seconds.");
    AddCounterSample(cpu, st.cpu_seconds);
    out.push_back(std::move(cpu));
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
          st.resident_pages * static_cast<double>(sysconf(_SC_PAGESIZE)));
    gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
          st.virtual_bytes);
    static const double kBootTime = BootTime();
    if (kBootTime > 0) {
      gauge("process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            kBootTime + st.start_ticks / static_cast<double>(ticks));
    }
  }
  if (int fds = OpenFds(); fds >= 0) {
    gauge("process_open_fds", "Number of open file descriptors.", fds);
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    gauge("process_max_fds", "Maximum number of open file descriptors.",
          static_cast<double>(limit.rlim_cur));
  }
  return out;
}

}  // namespace tessera
