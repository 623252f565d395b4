// The `tessera` command line on CLI11. The app below knows the commands, their
// flags and the global flags; CLI11 finds them in argv (globals before or after
// the command, `--name value` or `--name=value`) and flag_values.cc judges what
// they say. CLI11's own messages and help are not shown: every usage error
// keeps the form "--flag: what is wrong" (never a flag's value, so no token
// leaks into an error), and --help prints UsageText().
#include "cli/args.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/flag_values.h"
#include "shared/status_macros.h"

namespace tessera::cli {
namespace {

struct CommandInfo {
  const char* name;
  CommandKind kind;
  bool takes_job_id;
  std::vector<const char*> flags;  // without "--"
};

const std::vector<CommandInfo>& Commands() {
  static const auto* commands = new std::vector<CommandInfo>{
      {"submit",
       CommandKind::kSubmit,
       false,
       {"task",
        "range",
        "shards",
        "shard-size",
        "name",
        "params",
        "aggregate",
        "default-reducer",
        "max-parallel",
        "max-attempts",
        "backoff",
        "max-backoff",
        "shard-timeout",
        "max-failed-shards",
        "wait",
        "items-file",
        "batch-size",
        "idempotency-key",
        "concurrency-key",
        "concurrency-limit",
        "queue",
        "priority",
        "rate-limit",
        "label"}},
      {"get", CommandKind::kGet, true, {}},
      {"watch", CommandKind::kWatch, true, {}},
      {"result", CommandKind::kResult, true, {}},
      {"list",
       CommandKind::kList,
       false,
       {"state", "page-size", "page-token", "queue", "label"}},
      {"cancel", CommandKind::kCancel, true, {}},
      {"retry", CommandKind::kRetry, true, {"wait"}},
      {"update", CommandKind::kUpdate, true, {"max-parallel", "rate-limit"}},
      {"executors", CommandKind::kExecutors, false, {}},
      {"queue", CommandKind::kQueue, false, {}},
      {"help", CommandKind::kHelp, false, {}},
  };
  return *commands;
}

// Global flags that take a value; each may be given once.
constexpr const char* kGlobalValueFlags[] = {"scheduler", "tls-ca", "token",
                                             "token-file"};

// Flags that take no value; every other flag takes exactly one.
bool IsSwitch(absl::string_view name) {
  return name == "json" || name == "wait" || name == "help" || name == "version";
}

bool IsRepeatable(absl::string_view name) {
  return name == "aggregate" || name == "label";
}

bool IsFlagLike(absl::string_view arg) { return arg.size() > 1 && arg[0] == '-'; }

// "--name=value" -> "name"; "-x" -> "x".
std::string FlagName(absl::string_view arg) {
  arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
  return std::string(arg.substr(0, arg.find('=')));
}

// The CLI11 app for one parse (CLI11 keeps results in the app).
class Parser {
 public:
  Parser() {
    app_.set_help_flag();  // ours: UsageText(), and it wins wherever it stands
    app_.allow_extras();   // unknown words come back from remaining(), judged below
    app_.fallthrough();    // global flags after the command
    app_.require_subcommand(0, 1);
    app_.add_flag("-h,--help");
    for (const char* name : {"version", "json"}) AddSwitch(app_, name);
    for (const char* name : kGlobalValueFlags) AddValueFlag(app_, name);
    for (const CommandInfo& info : Commands()) {
      CLI::App* sub = app_.add_subcommand(info.name);
      for (const char* flag : info.flags) {
        IsSwitch(flag) ? AddSwitch(*sub, flag) : AddValueFlag(*sub, flag);
        known_flags_.insert(flag);
      }
      if (info.takes_job_id) sub->add_option("JOB_ID");
    }
  }

  CLI::App& app() { return app_; }
  bool IsCommandFlag(absl::string_view name) const {
    return known_flags_.count(std::string(name)) > 0;
  }

 private:
  static CLI::Option* AddSwitch(CLI::App& app, absl::string_view name) {
    return app.add_flag(absl::StrCat("--", name));
  }
  static CLI::Option* AddValueFlag(CLI::App& app, absl::string_view name) {
    // Every use is kept, so "given more than once" is ours to say.
    return app.add_option(absl::StrCat("--", name))
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }

  CLI::App app_{"tessera"};
  std::set<std::string> known_flags_;
};

// What CLI11 should see: "--name=" with nothing after '=' becomes "--name" ""
// (CLI11 would take the next word as the value), and a switch given a value
// is refused here.
absl::StatusOr<std::vector<std::string>> Normalize(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  out.reserve(args.size() + 1);
  for (const std::string& arg : args) {
    const size_t eq = arg.find('=');
    if (!absl::StartsWith(arg, "--") || eq == std::string::npos) {
      out.push_back(arg);
      continue;
    }
    const std::string name = FlagName(arg);
    if (IsSwitch(name)) return UsageError(absl::StrCat("--", name), "takes no value");
    if (eq + 1 == arg.size()) {
      out.push_back(arg.substr(0, eq));
      out.emplace_back();
    } else {
      out.push_back(arg);
    }
  }
  return out;
}

const CommandInfo& InfoOf(const CLI::App& sub) {
  return *std::find_if(Commands().begin(), Commands().end(),
                       [&](const CommandInfo& c) { return sub.get_name() == c.name; });
}

}  // namespace

std::string ResolveSchedulerAddress(absl::string_view flag, const char* env) {
  if (!flag.empty()) return std::string(flag);
  if (env != nullptr && env[0] != '\0') return env;
  return kDefaultSchedulerAddress;
}

std::vector<std::string> KnownWords() {
  std::vector<std::string> words = {"--help", "--version", "--json"};
  for (const char* name : kGlobalValueFlags) words.push_back(absl::StrCat("--", name));
  for (const CommandInfo& info : Commands()) {
    words.push_back(info.name);
    for (const char* flag : info.flags) words.push_back(absl::StrCat("--", flag));
  }
  return words;
}

absl::StatusOr<Command> ParseArgs(const std::vector<std::string>& args) {
  TESSERA_ASSIGN_OR_RETURN(std::vector<std::string> words, Normalize(args));
  Parser parser;
  CLI::App& app = parser.app();
  std::reverse(words.begin(), words.end());  // CLI11 takes them last first
  try {
    app.parse(words);
  } catch (const CLI::ArgumentMismatch& e) {
    // "--task: 1 required TEXT missing": the words ran out before its value.
    const std::string what = e.what();
    return UsageError(what.substr(0, what.find(':')), "missing value");
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }

  // Words no command knows: a flag of no command is an error straight away,
  // positionals and other commands' flags once the command is known.
  const std::vector<std::string> extras = app.remaining(/*recurse=*/true);
  std::optional<std::string> first_positional;
  std::optional<std::string> other_commands_flag;
  for (const std::string& word : extras) {
    if (!IsFlagLike(word)) {
      if (!first_positional) first_positional = word;
      continue;
    }
    if (!absl::StartsWith(word, "--")) {
      return UsageError(word, "unknown flag (flags are spelled --name)");
    }
    const std::string name = FlagName(word);
    if (!parser.IsCommandFlag(name)) {
      return UsageError(absl::StrCat("--", name), "unknown flag (see tessera --help)");
    }
    if (!other_commands_flag) other_commands_flag = name;
  }

  Command cmd;
  for (const char* name : kGlobalValueFlags) {
    const CLI::Option* opt = app.get_option(absl::StrCat("--", name));
    if (opt->count() == 0) continue;
    const std::string flag = opt->get_name();
    if (opt->count() > 1) return UsageError(flag, "given more than once");
    const std::string& value = opt->results().front();
    if (value.empty()) return UsageError(flag, "must not be empty");
    std::string& field = flag == "--scheduler" ? cmd.scheduler
                         : flag == "--tls-ca"  ? cmd.tls_ca
                         : flag == "--token"   ? cmd.token
                                               : cmd.token_file;
    field = value;
  }
  cmd.json = app.get_option("--json")->count() > 0;
  const std::vector<CLI::App*> chosen = app.get_subcommands();
  CLI::App* sub = chosen.empty() ? nullptr : chosen.front();
  FlagValues flags;
  if (sub != nullptr) {
    for (const CLI::Option* opt : sub->get_options()) {
      if (opt->get_lnames().empty()) continue;  // JOB_ID
      const std::string& name = opt->get_lnames().front();
      if (!IsRepeatable(name) && opt->count() > 1) {
        return UsageError(opt->get_name(), "given more than once");
      }
      for (const std::string& value : opt->results()) {
        flags.emplace(name, IsSwitch(name) ? "" : value);
      }
    }
  }

  if (!cmd.token.empty() && !cmd.token_file.empty()) {
    return UsageError("--token", "and --token-file are exclusive");
  }
  // --help wins over --version, and both over a command (even an unknown one).
  if (app.get_option("--help")->count() > 0) {
    cmd.kind = CommandKind::kHelp;
    return cmd;
  }
  if (app.get_option("--version")->count() > 0) {
    cmd.kind = CommandKind::kVersion;
    return cmd;
  }
  if (sub == nullptr) {
    // The first word no command knows is the command asked for.
    if (!extras.empty() && !IsFlagLike(extras.front())) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown command \"", extras.front(), "\" (see tessera --help)"));
    }
    return absl::InvalidArgumentError("no command given (see tessera --help)");
  }
  const CommandInfo& info = InfoOf(*sub);
  cmd.kind = info.kind;
  if (other_commands_flag) {
    return UsageError(absl::StrCat("--", *other_commands_flag),
                      absl::StrCat("not a flag of \"", info.name, "\""));
  }
  if (cmd.kind == CommandKind::kHelp) return cmd;
  if (info.takes_job_id) {
    const CLI::Option* job_id = sub->get_option("JOB_ID");
    if (job_id->count() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          info.name, ": JOB_ID is required (tessera ", info.name, " JOB_ID)"));
    }
    cmd.job_id = job_id->results().front();
  }
  if (first_positional) {
    return absl::InvalidArgumentError(
        absl::StrCat(info.name, ": unexpected argument \"", *first_positional, "\""));
  }
  if (info.takes_job_id && cmd.job_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(info.name, ": JOB_ID is empty"));
  }
  switch (cmd.kind) {
    case CommandKind::kSubmit:
      TESSERA_RETURN_IF_ERROR(BuildSubmit(flags, cmd));
      break;
    case CommandKind::kRetry:
      cmd.wait = flags.count("wait") > 0;
      break;
    case CommandKind::kList:
      TESSERA_RETURN_IF_ERROR(BuildList(flags, cmd));
      break;
    case CommandKind::kUpdate:
      TESSERA_RETURN_IF_ERROR(BuildUpdate(flags, cmd));
      break;
    default:
      break;
  }
  return cmd;
}

}  // namespace tessera::cli
