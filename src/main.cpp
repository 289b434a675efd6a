// weir: one binary, several faces (agent, bpf inspection, lab). See docs/ and README.md.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"weir: an eBPF dataplane for Kubernetes nodes"};
  app.require_subcommand(1);
  weir::cli::GlobalOptions g;
  app.add_option("--pin-root", g.pin_root, "bpffs directory where weir pins its maps and links")
      ->capture_default_str();
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.parse_complete_callback([&] { spdlog::set_level(spdlog::level::from_str(g.log_level)); });

  int rc = 0;
  weir::cli::add_agent_command(app, g, rc);
  weir::cli::add_bpf_commands(app, g, rc);
  weir::cli::add_lab_commands(app, g, rc);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return rc;
}
