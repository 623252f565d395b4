#include "executor/handlers/exec_task_config.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "shared/duration.h"

namespace tessera::executor {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxTaskNameBytes = 100;  // spec.task's limit on the scheduler

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

bool ValidTaskName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxTaskNameBytes) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' &&
        c != '.') {
      return false;
    }
  }
  return true;
}

absl::StatusOr<absl::Duration> DurationField(const json& v, const std::string& field,
                                             bool allow_zero) {
  std::optional<absl::Duration> parsed;
  if (v.is_string()) parsed = ParseFiniteDuration(v.get<std::string>());
  if (!parsed) {
    return FieldError(
        field, absl::StrCat(v.dump(), " is not a duration (e.g. \"600s\", \"10m\")"));
  }
  const absl::Duration d = *parsed;
  if (d < absl::ZeroDuration() || (!allow_zero && d == absl::ZeroDuration())) {
    return FieldError(field, absl::StrCat("must be ", allow_zero ? ">= 0" : "> 0",
                                          " (got ", v.dump(), ")"));
  }
  return d;
}

absl::StatusOr<int64_t> SizeField(const json& v, const std::string& field,
                                  bool allow_zero) {
  absl::StatusOr<int64_t> n = absl::InvalidArgumentError("");
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      n = static_cast<int64_t>(u);
    }
  } else if (v.is_number_integer()) {
    n = v.get<int64_t>();
  } else if (v.is_string()) {
    n = ParseByteSize(v.get<std::string>());
  }
  if (!n.ok() || *n < 0) {
    return FieldError(
        field,
        absl::StrCat(v.dump(), " is not a size in bytes (e.g. 1048576, \"512MiB\")"));
  }
  if (!allow_zero && *n == 0) return FieldError(field, "must be > 0");
  return *n;
}

absl::StatusOr<ExecTaskConfig> ParseTask(const std::string& name, const json& spec,
                                         const std::string& base_dir) {
  const std::string prefix = absl::StrCat("tasks.", name);
  if (!ValidTaskName(name)) {
    return FieldError(prefix, absl::StrCat("a task name is 1-", kMaxTaskNameBytes,
                                           " of [A-Za-z0-9_.-]"));
  }
  if (!spec.is_object()) return FieldError(prefix, "must be an object");
  ExecTaskConfig task;
  task.name = name;
  task.workdir = base_dir;
  bool has_command = false;
  for (const auto& [key, v] : spec.items()) {
    const std::string field = absl::StrCat(prefix, ".", key);
    if (key == "command") {
      if (!v.is_array() || v.empty()) {
        return FieldError(field, "must be a non-empty array of strings (argv; no shell)");
      }
      for (const json& arg : v) {
        if (!arg.is_string()) return FieldError(field, "must hold strings only");
        task.command.push_back(arg.get<std::string>());
      }
      const std::string& prog = task.command[0];
      if (prog.empty()) return FieldError(field + "[0]", "the program must not be empty");
      if (prog.find('/') != std::string::npos && prog[0] != '/') {
        return FieldError(field + "[0]",
                          absl::StrCat("\"", prog,
                                       "\" is a relative path; give an absolute path or "
                                       "a bare name found on PATH"));
      }
      has_command = true;
    } else if (key == "workdir") {
      if (!v.is_string() || v.get<std::string>().empty()) {
        return FieldError(field, "must be a non-empty string");
      }
      std::filesystem::path p(v.get<std::string>());
      if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
      task.workdir = p.lexically_normal().string();
    } else if (key == "env") {
      if (!v.is_object()) return FieldError(field, "must be an object of strings");
      for (const auto& [var, value] : v.items()) {
        const std::string vf = absl::StrCat(field, ".", var);
        if (var.empty() || var.find('=') != std::string::npos ||
            var.find('\0') != std::string::npos) {
          return FieldError(vf, "is not a valid environment variable name");
        }
        if (absl::StartsWith(var, "TESSERA_")) {
          return FieldError(vf, "TESSERA_* variables are set by the executor");
        }
        if (!value.is_string()) return FieldError(vf, "must be a string");
        task.env[var] = value.get<std::string>();
      }
    } else if (key == "timeout") {
      auto d = DurationField(v, field, /*allow_zero=*/false);
      if (!d.ok()) return d.status();
      task.timeout = *d;
    } else if (key == "kill_grace") {
      auto d = DurationField(v, field, /*allow_zero=*/true);
      if (!d.ok()) return d.status();
      task.kill_grace = *d;
    } else if (key == "max_memory_bytes") {
      auto n = SizeField(v, field, /*allow_zero=*/true);
      if (!n.ok()) return n.status();
      task.max_memory_bytes = *n;
    } else if (key == "max_output_bytes") {
      auto n = SizeField(v, field, /*allow_zero=*/false);
      if (!n.ok()) return n.status();
      task.max_output_bytes = *n;
    } else if (key == "stderr_tail_bytes") {
      auto n = SizeField(v, field, /*allow_zero=*/true);
      if (!n.ok()) return n.status();
      task.stderr_tail_bytes = *n;
    } else if (key == "max_log_bytes") {
      auto n = SizeField(v, field, /*allow_zero=*/true);
      if (!n.ok()) return n.status();
      task.max_log_bytes = *n;
    } else {
      return FieldError(field,
                        "unknown field (known: command, workdir, env, timeout, "
                        "kill_grace, max_memory_bytes, max_output_bytes, "
                        "stderr_tail_bytes, max_log_bytes)");
    }
  }
  if (!has_command) return FieldError(prefix + ".command", "is required");
  return task;
}

}  // namespace

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < s.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(s[digits]))) {
    ++digits;
  }
  int64_t n = 0;
  if (digits == 0 || !absl::SimpleAtoi(s.substr(0, digits), &n)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a size"));
  }
  const std::string unit =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.substr(digits)));
  int shift = 0;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    shift = 10;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    shift = 20;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    shift = 30;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" has an unknown unit"));
  }
  if (n > (std::numeric_limits<int64_t>::max() >> shift)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is too large"));
  }
  return n << shift;
}

absl::StatusOr<std::vector<ExecTaskConfig>> ParseExecTasks(absl::string_view text,
                                                           const std::string& base_dir) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!doc.is_object()) return absl::InvalidArgumentError("must be a JSON object");
  for (const auto& [key, v] : doc.items()) {
    if (key != "tasks") return FieldError(key, "unknown field (known: tasks)");
  }
  auto it = doc.find("tasks");
  if (it == doc.end() || !it->is_object()) {
    return FieldError("tasks", "is required: an object of task name -> definition");
  }
  std::vector<ExecTaskConfig> tasks;
  for (const auto& [name, spec] : it->items()) {
    absl::StatusOr<ExecTaskConfig> task = ParseTask(name, spec, base_dir);
    if (!task.ok()) return task.status();
    tasks.push_back(std::move(task).value());
  }
  return tasks;
}

absl::StatusOr<std::vector<ExecTaskConfig>> LoadExecTasksFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("tasks file ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  const std::string base = ec ? std::string(".") : abs.parent_path().string();
  absl::StatusOr<std::vector<ExecTaskConfig>> tasks = ParseExecTasks(text.str(), base);
  if (!tasks.ok()) {
    return absl::Status(tasks.status().code(), absl::StrCat("tasks file ", path, ": ",
                                                            tasks.status().message()));
  }
  return tasks;
}

}  // namespace tessera::executor
