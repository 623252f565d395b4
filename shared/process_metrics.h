// Standard process metrics (process_cpu_seconds_total, process_resident_memory_bytes,
// process_open_fds, ...) read from /proc/self at scrape time. Both services get
// them through MetricsServer. The names are the ones every Prometheus client
// library exports, so stock dashboards and alerts work unchanged.
#ifndef TESSERA_SHARED_PROCESS_METRICS_H_
#define TESSERA_SHARED_PROCESS_METRICS_H_

#include <string>
#include <vector>

#include "prometheus/metric_family.h"

namespace tessera {

// The families for this process. Cheap (a few small /proc reads); thread-safe.
// A figure that cannot be read (not Linux, /proc missing) is left out.
std::vector<prometheus::MetricFamily> CollectProcessMetrics();

// Parses the contents of /proc/<pid>/stat: user+system CPU seconds and the
// start time in clock ticks after boot. Exposed for tests.
struct ProcStat {
  double cpu_seconds = 0;
  double start_ticks = 0;
  double virtual_bytes = 0;
  double resident_pages = 0;
};
bool ParseProcStat(const std::string& stat, long ticks_per_second, ProcStat* out);

}  // namespace tessera

#endif  // TESSERA_SHARED_PROCESS_METRICS_H_
