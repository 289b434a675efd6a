// Registration of the weir subcommands. Each face of the binary (agent, bpf, lab) adds its
// own subcommands to the CLI11 app; a subcommand's callback stores its exit code in `rc`.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace weir::cli {

// Options every subcommand shares.
struct GlobalOptions {
  std::string pin_root = "/sys/fs/bpf/weir";  // where maps and links are pinned
  std::string log_level = "info";             // trace, debug, info, warn, error
};

void add_agent_command(CLI::App& app, GlobalOptions& g, int& rc);  // src/agent
void add_bpf_commands(CLI::App& app, GlobalOptions& g, int& rc);   // src/cli
void add_lab_commands(CLI::App& app, GlobalOptions& g, int& rc);   // src/lab

}  // namespace weir::cli
