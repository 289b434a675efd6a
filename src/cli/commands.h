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
  std::string state_dir;                      // files beside the pins (policy dump info)

  // --state-dir, else /run/weir/<last component of the pin root>.
  std::string effective_state_dir() const {
    if (!state_dir.empty()) return state_dir;
    std::string root = pin_root;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    auto slash = root.rfind('/');
    return "/run/weir/" + (slash == std::string::npos ? root : root.substr(slash + 1));
  }
};

void add_agent_command(CLI::App& app, GlobalOptions& g, int& rc);  // src/agent
void add_bpf_commands(CLI::App& app, GlobalOptions& g, int& rc);   // src/cli
void add_lab_commands(CLI::App& app, GlobalOptions& g, int& rc);   // src/lab
// `weir bpf policy ...` (src/cli/policy_commands.cpp), under the `bpf` subcommand.
void add_policy_commands(CLI::App* bpf, GlobalOptions& g, int& rc);

}  // namespace weir::cli
