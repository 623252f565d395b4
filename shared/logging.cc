#include "shared/logging.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace tessera {
namespace {

// The fields lifted out of a message, in the order they are written.
constexpr absl::string_view kFieldKeys[] = {"job", "shard", "executor", "lease"};

class JsonFormatter : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string service) : service_(std::move(service)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const absl::Time t = absl::FromChrono(msg.time);
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    std::string line =
        FormatJsonLogLine(t, absl::string_view(level.data(), level.size()), service_,
                          absl::string_view(msg.payload.data(), msg.payload.size()));
    line.push_back('\n');
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(service_);
  }

 private:
  const std::string service_;
};

}  // namespace

std::string FormatJsonLogLine(absl::Time time, absl::string_view level,
                              absl::string_view service, absl::string_view msg) {
  nlohmann::ordered_json j;
  j["time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  j["level"] = std::string(level);
  j["service"] = std::string(service);
  j["msg"] = std::string(msg);
  for (absl::string_view key : kFieldKeys) {
    for (absl::string_view token : absl::StrSplit(msg, ' ', absl::SkipEmpty())) {
      if (!absl::ConsumePrefix(&token, key) || !absl::ConsumePrefix(&token, "="))
        continue;
      while (!token.empty() &&
             absl::string_view(",;:").find(token.back()) != absl::string_view::npos) {
        token.remove_suffix(1);
      }
      if (!token.empty()) j[std::string(key)] = std::string(token);
      break;
    }
  }
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

absl::Status LogConfig::Validate() const {
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-format must be text or json (got \"", format, "\")"));
  }
  if (spdlog::level::from_str(level) == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-level must be trace, debug, info, warn, error or off (got \"",
                     level, "\")"));
  }
  return absl::OkStatus();
}

absl::Status InitLogging(const LogConfig& config, const std::string& service) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  auto logger = spdlog::stderr_logger_mt(service);
  if (config.format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>(service));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %n: %v");
  }
  logger->set_level(spdlog::level::from_str(config.level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace tessera
