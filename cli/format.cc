#include "cli/format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/progress.h"

namespace tessera::cli {
namespace {

bool IsSet(const google::protobuf::Timestamp& ts) {
  return ts.seconds() != 0 || ts.nanos() != 0;
}

absl::Time ToAbslTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

// An empty JobSpec.queue means the default queue.
std::string QueueName(const std::string& queue) {
  return queue.empty() ? "default" : queue;
}

}  // namespace

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  auto render = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      bool last = i + 1 == row.size() || i + 1 == widths.size();
      absl::StrAppend(&line, row[i]);
      if (!last) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    return line + "\n";
  };
  std::string out = render(header);
  for (const auto& row : rows) out += render(row);
  return out;
}

std::string FormatTimestamp(const google::protobuf::Timestamp& ts, absl::TimeZone tz) {
  if (!IsSet(ts)) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", ToAbslTime(ts), tz);
}

std::string FormatAgo(const google::protobuf::Timestamp& ts, absl::Time now) {
  if (!IsSet(ts)) return "-";
  int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(now - ToAbslTime(ts)));
  if (s < 60) return absl::StrCat(s, "s ago");
  if (s < 3600) return absl::StrCat(s / 60, "m ago");
  if (s < 86400) return absl::StrCat(s / 3600, "h ago");
  return absl::StrCat(s / 86400, "d ago");
}

std::string FormatJobsTable(const tessera::v1::ListJobsResponse& response,
                            absl::TimeZone tz) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& job : response.jobs()) {
    rows.push_back({job.id(), StateName(job.state()), OrDash(job.spec().name()),
                    job.spec().task(), QueueName(job.spec().queue()),
                    absl::StrCat(job.shards().succeeded(), "/", job.shards().total()),
                    FormatTimestamp(job.create_time(), tz)});
  }
  return FormatTable({"ID", "STATE", "NAME", "TASK", "QUEUE", "SHARDS", "CREATED"}, rows);
}

std::string FormatExecutorsTable(const tessera::v1::ListExecutorsResponse& response,
                                 absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : response.executors()) {
    rows.push_back({e.id(), OrDash(e.name()), OrDash(absl::StrJoin(e.tasks(), ",")),
                    OrDash(absl::StrJoin(e.queues(), ",")), absl::StrCat(e.slots()),
                    absl::StrCat(e.assigned()), e.draining() ? "yes" : "no",
                    OrDash(e.version()), FormatAgo(e.last_seen_time(), now)});
  }
  return FormatTable({"ID", "NAME", "TASKS", "QUEUES", "SLOTS", "ASSIGNED", "DRAINING",
                      "VERSION", "LAST SEEN"},
                     rows);
}

std::string FormatJobDetail(const tessera::v1::Job& job, absl::TimeZone tz) {
  const auto& spec = job.spec();
  const auto& shards = job.shards();
  std::string out;
  auto line = [&](absl::string_view key, absl::string_view value) {
    absl::StrAppendFormat(&out, "%-13s %s\n", absl::StrCat(key, ":"), value);
  };
  line("id", job.id());
  line("name", OrDash(spec.name()));
  line("task", spec.task());
  line("state", StateName(job.state()));
  if (spec.has_range()) {
    const auto& r = spec.range();
    std::string cut = r.shard_count() > 0 ? absl::StrCat(r.shard_count(), " shards")
                                          : absl::StrCat("shard size ", r.shard_size());
    line("range", absl::StrCat("[", r.start(), ", ", r.end(), "), ", cut));
  }
  if (spec.has_items()) {
    const auto& items = spec.items();
    // Jobs do not echo their items; item_count says how many there were.
    int64_t count = items.item_count() > 0 ? items.item_count() : items.items_size();
    line("input", absl::StrCat(count, " item", count == 1 ? "" : "s", ", batch size ",
                               items.batch_size()));
  }
  line("queue", QueueName(spec.queue()));
  line("priority", absl::StrCat(spec.priority()));
  line("max parallel", FormatMaxParallel(spec.max_parallel()));
  line("rate limit", FormatRateLimit(spec.rate_limit()));
  if (!spec.concurrency_key().empty()) {
    line("concurrency", absl::StrCat(spec.concurrency_key(), " (at most ",
                                     std::max(1, spec.concurrency_limit()), " running)"));
  }
  if (!spec.idempotency_key().empty()) line("idempotency", spec.idempotency_key());
  line("labels", FormatLabels(spec.labels()));
  line("shards",
       absl::StrFormat("%d total, %d pending, %d running, %d succeeded, %d failed",
                       shards.total(), shards.pending(), shards.running(),
                       shards.succeeded(), shards.failed()));
  ProgressSnapshot snapshot = MakeSnapshot(job, std::nullopt);
  line("items", absl::StrFormat("%d/%d (%d%%)", job.items_done(), job.items_total(),
                                PercentDone(snapshot)));
  line("created", FormatTimestamp(job.create_time(), tz));
  line("started", FormatTimestamp(job.start_time(), tz));
  line("ended", FormatTimestamp(job.end_time(), tz));
  if (!job.message().empty()) line("message", job.message());
  if (!job.result_location().empty()) {
    line("result", absl::StrCat(job.result_location(), " (sha256 ", job.result_sha256(),
                                job.result_version() > 0
                                    ? absl::StrCat(", version ", job.result_version())
                                    : "",
                                ")"));
  }
  if (job.errors_size() > 0) {
    out += "errors:\n";
    for (const auto& e : job.errors()) {
      absl::StrAppendFormat(&out, "  shard %d [%d, %d) on %s: %s\n", e.shard(), e.start(),
                            e.end(), OrDash(e.executor()), e.message());
    }
  }
  out += FormatFailedShards(job);
  return out;
}

std::string FormatFailedShards(const tessera::v1::Job& job, int max_shards) {
  if (job.failed_shards_size() == 0) return "";
  std::string out = "failed shards:\n";
  int shown = 0;
  for (const auto& f : job.failed_shards()) {
    if (max_shards > 0 && shown == max_shards) break;
    ++shown;
    absl::StrAppendFormat(&out, "  shard %d [%d, %d) after %d attempt%s: %s\n", f.shard(),
                          f.start(), f.end(), f.attempts(), f.attempts() == 1 ? "" : "s",
                          OrDash(f.last_error()));
  }
  if (shown < job.failed_shards_size()) {
    absl::StrAppendFormat(&out, "  ... and %d more (tessera get %s)\n",
                          job.failed_shards_size() - shown, job.id());
  }
  return out;
}

std::string FormatJobSummary(const tessera::v1::Job& job) {
  std::string out =
      absl::StrFormat("job %s %s  %d/%d shards", job.id(), StateName(job.state()),
                      job.shards().succeeded(), job.shards().total());
  if (job.shards().failed() > 0)
    absl::StrAppend(&out, " (", job.shards().failed(), " failed)");
  absl::StrAppend(&out, "  ", job.items_done(), " items");
  if (IsSet(job.start_time()) && IsSet(job.end_time())) {
    double seconds =
        absl::ToDoubleSeconds(ToAbslTime(job.end_time()) - ToAbslTime(job.start_time()));
    absl::StrAppend(&out, absl::StrFormat("  in %.1fs", std::max(0.0, seconds)));
  }
  out += "\n";
  if (job.state() != tessera::v1::JOB_STATE_SUCCEEDED) {
    if (!job.message().empty()) absl::StrAppend(&out, "  ", job.message(), "\n");
    if (job.state() == tessera::v1::JOB_STATE_PARTIAL) return out;
    for (const auto& e : job.errors()) {
      absl::StrAppendFormat(&out, "  shard %d [%d, %d) on %s: %s\n", e.shard(), e.start(),
                            e.end(), OrDash(e.executor()), e.message());
    }
  }
  return out;
}

std::string FormatMaxParallel(int32_t max_parallel) {
  return max_parallel > 0 ? absl::StrCat(max_parallel) : "no cap";
}

std::string FormatRateLimit(double rate_limit) {
  return rate_limit > 0 ? absl::StrCat(rate_limit, " shards/s") : "no limit";
}

std::string FormatLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  if (labels.empty()) return "-";
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  return absl::StrJoin(sorted, ", ", absl::PairFormatter("="));
}

std::string FormatQueueStats(const tessera::v1::GetQueueStatsResponse& s) {
  return absl::StrFormat(
      "jobs:      %d queued, %d running\n"
      "shards:    %d pending, %d running\n"
      "executors: %d\n"
      "slots:     %d/%d busy\n",
      s.jobs_queued(), s.jobs_running(), s.shards_pending(), s.shards_running(),
      s.executors(), s.slots_busy(), s.slots_total());
}

absl::StatusOr<std::string> PrettyResultJson(const tessera::v1::GetResultResponse& r) {
  if (r.content_omitted()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("job ", r.job_id(), ": the result (", r.size_bytes(),
                     " bytes) is too large for one message; read it at ", r.location(),
                     " (sha256 ", r.sha256(), ")"));
  }
  std::string text = r.result_json();
  if (text.empty()) {
    if (!google::protobuf::util::MessageToJsonString(r.result(), &text).ok()) {
      return absl::InternalError("cannot render the result Struct as JSON");
    }
  }
  // ordered_json keeps the persisted key order; numbers keep their precision.
  auto parsed = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::DataLossError(
        absl::StrCat("job ", r.job_id(), ": the persisted result is not valid JSON"));
  }
  return parsed.dump(2);
}

std::string FormatResultLocation(absl::string_view location, absl::string_view sha256,
                                 int32_t version) {
  return absl::StrCat("result: ", location.empty() ? "-" : location, " (sha256 ",
                      sha256.empty() ? "-" : sha256,
                      version > 1 ? absl::StrCat(", version ", version) : "", ")");
}

std::string ToJsonLine(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    return "{}";
  }
  return out;
}

}  // namespace tessera::cli
