// `tessera`: the command-line client of the Tessera scheduler's JobService.
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/grpc_job_api.h"
#include "shared/clock.h"

namespace {

// Unary RPCs fail after this long; WatchJob runs until the job ends.
constexpr absl::Duration kUnaryDeadline = absl::Seconds(10);

bool ProgressOnTerminal() {
  const char* term = std::getenv("TERM");
  return isatty(STDERR_FILENO) && !(term != nullptr && std::strcmp(term, "dumb") == 0);
}

size_t TerminalColumns() {
  struct winsize size {};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) != 0) return 0;
  return size.ws_col;
}

// Ctrl-C while a bar is drawn: end its line so that the shell prompt starts
// clean. Only async-signal-safe calls here.
void OnInterrupt(int) {
  constexpr char kMessage[] =
      "\ntessera: interrupted; a watched job keeps running on the scheduler\n";
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  _exit(130);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  tessera::RealClock clock;
  tessera::cli::RunContext ctx{std::cout, std::cerr};
  ctx.in = &std::cin;
  if (ProgressOnTerminal()) {
    ctx.progress_mode = tessera::cli::ProgressMode::kTerminal;
    ctx.terminal_columns = TerminalColumns();
    std::signal(SIGINT, OnInterrupt);
  }
  ctx.clock = &clock;
  ctx.time_zone = absl::LocalTimeZone();
  tessera::cli::CliEnv env;
  env.scheduler = std::getenv("TESSERA_SCHEDULER");
  env.token = std::getenv("TESSERA_TOKEN");
  env.tls_ca = std::getenv("TESSERA_TLS_CA");
  int code = tessera::cli::RunCli(
      args, env,
      [](const tessera::cli::ConnectOptions& options)
          -> absl::StatusOr<std::unique_ptr<tessera::cli::JobApi>> {
        auto api = tessera::cli::GrpcJobApi::Connect(options, kUnaryDeadline);
        if (!api.ok()) return api.status();
        return std::unique_ptr<tessera::cli::JobApi>(*std::move(api));
      },
      ctx);
  std::cout.flush();
  return code;
}
