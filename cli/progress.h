// Progress rendering for `tessera watch` and `submit --wait`: a live one-line
// bar for terminals and throttled plain lines for logs. Pure: callers pass the
// time of each event and write the returned text themselves.
#ifndef TESSERA_CLI_PROGRESS_H_
#define TESSERA_CLI_PROGRESS_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::cli {

// What one progress line shows.
struct ProgressSnapshot {
  int64_t shards_done = 0;  // succeeded
  int64_t shards_total = 0;
  int64_t shards_failed = 0;
  int64_t items_done = 0;
  int64_t items_total = 0;
  std::optional<double> items_per_second;  // unknown until two samples
  std::optional<absl::Duration> eta;       // unknown while the rate is unknown or 0
};

// Items per second over a sliding window of recent samples, so that the rate
// follows the job without jumping at every event. Not thread-safe.
class RateTracker {
 public:
  explicit RateTracker(absl::Duration window = absl::Seconds(5)) : window_(window) {}

  // Records that `items_done` items were done at `now`. Samples must come in
  // time order; a count that goes down (a shard retried) restarts the window.
  void Add(absl::Time now, int64_t items_done);

  // Items per second between the oldest and newest sample in the window.
  std::optional<double> Rate() const;

 private:
  absl::Duration window_;
  std::deque<std::pair<absl::Time, int64_t>> samples_;
};

// Builds the snapshot of `job` with `rate` (items/s, if known).
ProgressSnapshot MakeSnapshot(const tessera::v1::Job& job, std::optional<double> rate);

// Fraction done in [0, 1]: by items when the job reports them, else by shards.
double FractionDone(const ProgressSnapshot& s);

// The same as a whole percentage, rounded down (100 only when all is done).
int PercentDone(const ProgressSnapshot& s);

// "[#########.........]  32/64 shards  45%  12.3M items/s  ETA 3s"
std::string FormatProgressBar(const ProgressSnapshot& s, int bar_width = 20);

// "job <id> RUNNING 32/64 shards 45% 12.3M items/s ETA 3s"
std::string FormatProgressLine(absl::string_view job_id, tessera::v1::JobState state,
                               const ProgressSnapshot& s);

// 950 -> "950", 2.5 -> "2.5", 12345678 -> "12.3M".
std::string HumanCount(double value);

// Rounded up to whole seconds: "3s", "1m05s", "2h03m".
std::string FormatEta(absl::Duration d);

// "JOB_STATE_RUNNING" -> "RUNNING".
std::string StateName(tessera::v1::JobState state);

// SUCCEEDED, FAILED, CANCELLED or PARTIAL: the job runs no more shards (until
// RetryFailedShards, for PARTIAL and FAILED).
bool IsTerminal(tessera::v1::JobState state);

enum class ProgressMode { kTerminal, kPlain };

// Turns a stream of job events into text for the progress stream (stderr).
// kTerminal redraws one line with '\r' on every event, cut to `max_width`
// columns (0: no limit) so that it never wraps; kPlain prints a line on
// the first event, on each state change and otherwise at most once per
// `min_interval`, and skips the finished state (the caller prints a summary).
class ProgressRenderer {
 public:
  explicit ProgressRenderer(ProgressMode mode, int bar_width = 20, size_t max_width = 0,
                            absl::Duration min_interval = absl::Seconds(1))
      : mode_(mode),
        bar_width_(bar_width),
        max_width_(max_width),
        min_interval_(min_interval) {}

  // Text to write for an event received at `now`; may be empty.
  std::string OnEvent(const tessera::v1::Job& job, absl::Time now);

  // Text that ends a drawn bar so that what follows starts on a fresh line.
  std::string Finish();

 private:
  ProgressMode mode_;
  int bar_width_;
  size_t max_width_;
  absl::Duration min_interval_;
  RateTracker rate_;
  std::optional<absl::Time> last_print_;
  tessera::v1::JobState last_state_ = tessera::v1::JOB_STATE_UNSPECIFIED;
  size_t last_width_ = 0;
};

}  // namespace tessera::cli

#endif  // TESSERA_CLI_PROGRESS_H_
