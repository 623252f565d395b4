#include "cli/progress.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace tessera::cli {

using tessera::v1::Job;
using tessera::v1::JobState;

void RateTracker::Add(absl::Time now, int64_t items_done) {
  if (!samples_.empty() &&
      (items_done < samples_.back().second || now < samples_.back().first)) {
    samples_.clear();
  }
  samples_.emplace_back(now, items_done);
  // Keep the newest sample at or before the window's start, so the window
  // stays full even when events are sparse.
  while (samples_.size() > 2 && samples_[1].first <= now - window_) {
    samples_.pop_front();
  }
}

std::optional<double> RateTracker::Rate() const {
  if (samples_.size() < 2) return std::nullopt;
  const auto& [t0, n0] = samples_.front();
  const auto& [t1, n1] = samples_.back();
  double seconds = absl::ToDoubleSeconds(t1 - t0);
  if (seconds <= 0) return std::nullopt;
  return static_cast<double>(n1 - n0) / seconds;
}

ProgressSnapshot MakeSnapshot(const Job& job, std::optional<double> rate) {
  ProgressSnapshot s;
  s.shards_done = job.shards().succeeded();
  s.shards_total = job.shards().total();
  s.shards_failed = job.shards().failed();
  s.items_done = job.items_done();
  s.items_total = job.items_total();
  s.items_per_second = rate;
  if (rate && *rate > 0 && s.items_total > 0) {
    double remaining =
        static_cast<double>(std::max<int64_t>(0, s.items_total - s.items_done));
    s.eta = absl::Seconds(remaining / *rate);
  }
  return s;
}

double FractionDone(const ProgressSnapshot& s) {
  double f = 0;
  if (s.items_total > 0) {
    f = static_cast<double>(s.items_done) / static_cast<double>(s.items_total);
  } else if (s.shards_total > 0) {
    f = static_cast<double>(s.shards_done) / static_cast<double>(s.shards_total);
  }
  return std::clamp(f, 0.0, 1.0);
}

int PercentDone(const ProgressSnapshot& s) {
  // Integer arithmetic, so that 29/100 shows 29% and not 28%.
  int64_t done = s.items_total > 0 ? s.items_done : s.shards_done;
  int64_t total = s.items_total > 0 ? s.items_total : s.shards_total;
  if (total <= 0 || done <= 0) return 0;
  if (done >= total) return 100;
  return static_cast<int>(static_cast<__int128>(done) * 100 / total);
}

std::string HumanCount(double value) {
  static constexpr const char* kSuffixes[] = {"", "k", "M", "G", "T", "P"};
  int unit = 0;
  double v = std::fabs(value);
  // Move to the next unit when rounding to one decimal would print "1000.0".
  while (v >= 999.95 && unit < 5) {
    v /= 1000;
    ++unit;
  }
  const char* sign = value < 0 ? "-" : "";
  if (unit == 0) {
    if (v < 10 && v != std::floor(v)) return absl::StrFormat("%s%.1f", sign, v);
    return absl::StrFormat("%s%.0f", sign, v);
  }
  return absl::StrFormat("%s%.1f%s", sign, v, kSuffixes[unit]);
}

std::string FormatEta(absl::Duration d) {
  int64_t total = absl::ToInt64Seconds(absl::Ceil(d, absl::Seconds(1)));
  if (total < 0) total = 0;
  if (total < 60) return absl::StrCat(total, "s");
  if (total < 3600) return absl::StrFormat("%dm%02ds", total / 60, total % 60);
  return absl::StrFormat("%dh%02dm", total / 3600, (total % 3600) / 60);
}

std::string StateName(JobState state) {
  std::string name = tessera::v1::JobState_Name(state);
  if (name.empty()) return absl::StrCat("STATE_", static_cast<int>(state));
  return std::string(absl::StripPrefix(name, "JOB_STATE_"));
}

bool IsTerminal(JobState state) {
  return state == tessera::v1::JOB_STATE_SUCCEEDED ||
         state == tessera::v1::JOB_STATE_FAILED ||
         state == tessera::v1::JOB_STATE_CANCELLED ||
         state == tessera::v1::JOB_STATE_PARTIAL;
}

namespace {

// "12.3M items/s  ETA 3s", with "--" for what is not known yet.
std::string RateAndEta(const ProgressSnapshot& s, absl::string_view sep) {
  std::string rate = s.items_per_second ? HumanCount(*s.items_per_second) : "--";
  std::string eta = s.eta ? FormatEta(*s.eta) : "--";
  return absl::StrCat(rate, " items/s", sep, "ETA ", eta);
}

}  // namespace

std::string FormatProgressBar(const ProgressSnapshot& s, int bar_width) {
  double fraction = FractionDone(s);
  int filled = static_cast<int>(std::floor(fraction * bar_width));
  std::string bar = absl::StrCat("[", std::string(filled, '#'),
                                 std::string(bar_width - filled, '.'), "]");
  std::string line = absl::StrFormat("%s  %d/%d shards  %d%%  %s", bar, s.shards_done,
                                     s.shards_total, PercentDone(s), RateAndEta(s, "  "));
  if (s.shards_failed > 0) absl::StrAppend(&line, "  ", s.shards_failed, " failed");
  return line;
}

std::string FormatProgressLine(absl::string_view job_id, JobState state,
                               const ProgressSnapshot& s) {
  std::string line =
      absl::StrFormat("job %s %s %d/%d shards %d%% %s", job_id, StateName(state),
                      s.shards_done, s.shards_total, PercentDone(s), RateAndEta(s, " "));
  if (s.shards_failed > 0) absl::StrAppend(&line, " ", s.shards_failed, " failed");
  return line;
}

std::string ProgressRenderer::OnEvent(const Job& job, absl::Time now) {
  rate_.Add(now, job.items_done());
  ProgressSnapshot snapshot = MakeSnapshot(job, rate_.Rate());
  bool state_changed = job.state() != last_state_;
  last_state_ = job.state();

  if (mode_ == ProgressMode::kPlain) {
    if (IsTerminal(job.state())) return "";
    if (!state_changed && last_print_ && now - *last_print_ < min_interval_) return "";
    last_print_ = now;
    return FormatProgressLine(job.id(), job.state(), snapshot) + "\n";
  }

  std::string line = FormatProgressBar(snapshot, bar_width_);
  if (job.state() != tessera::v1::JOB_STATE_RUNNING) {
    absl::StrAppend(&line, "  ", StateName(job.state()));
  }
  if (max_width_ > 0 && line.size() > max_width_) line.resize(max_width_);
  size_t width = line.size();
  // Blank out what is left of a longer previous line.
  if (width < last_width_) line.append(last_width_ - width, ' ');
  last_width_ = width;
  return "\r" + line;
}

std::string ProgressRenderer::Finish() {
  if (last_width_ == 0) return "";
  last_width_ = 0;
  return "\n";
}

}  // namespace tessera::cli
