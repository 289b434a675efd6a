// weir: one binary, several faces (agent, bpf inspection, lab). See docs/ and README.md.
#include <CLI/CLI.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "cli/commands.h"

namespace {

// %* in our pattern: the level as the seeds' log lines spell it (INFO, WARNING, ERROR, ...).
class UpperLevel : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr std::string_view kNames[] = {"TRACE",   "DEBUG", "INFO", "WARNING",
                                                  "ERROR",   "FATAL", "OFF"};
    auto name = kNames[static_cast<size_t>(msg.level) % std::size(kNames)];
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<UpperLevel>();
  }
};

int run(int argc, char** argv) {
  // Logs go to stderr: stdout carries command output (dumps, --json) that scripts parse. A
  // thread-safe sink: the etcd datastore watches on a thread of its own.
  // Line format after the seeds' log lines: `2025-09-22 22:39:59.801 [WARNING][10374] message`.
  auto logger = spdlog::stderr_color_mt("weir");
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<UpperLevel>('*').set_pattern("%Y-%m-%d %H:%M:%S.%e [%*][%P] %v");
  logger->set_formatter(std::move(formatter));
  spdlog::set_default_logger(logger);
  CLI::App app{"weir: an eBPF dataplane for Kubernetes nodes"};
  app.require_subcommand(1);
  weir::cli::GlobalOptions g;
  app.add_option("--pin-root", g.pin_root, "bpffs directory where weir pins its maps and links")
      ->capture_default_str();
  app.add_option("--state-dir", g.state_dir,
                 "directory for weir's files beside the pins (default /run/weir/<pin root name>)");
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.parse_complete_callback([&] { spdlog::set_level(spdlog::level::from_str(g.log_level)); });

  int rc = 0;
  weir::cli::add_agent_command(app, g, rc);
  weir::cli::add_bpf_commands(app, g, rc);
  weir::cli::add_lab_commands(app, g, rc);
  weir::cli::add_doctor_command(app, g, rc);
  weir::cli::add_resource_commands(app, rc);
  weir::cli::add_observe_command(app, g, rc);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return rc;
}

}  // namespace

// An exception out of a command (yaml-cpp, nlohmann::json, bad_alloc...) is a message and exit
// status 1, not std::terminate's abort.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weir: %s\n", e.what());
  } catch (...) {
    std::fputs("weir: unknown exception\n", stderr);
  }
  return 1;
}
