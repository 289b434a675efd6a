// Registration of the weir subcommands: the CLI registers every face of the binary (agent, bpf,
// lab) here in src/cli/, calling the functions agent/, lab/ and the lower layers export. Each
// face adds its subcommands to the CLI11 app; a subcommand's callback stores its exit code in `rc`.
#pragma once

#include <string>

#include "dataplane/policy_info.h"

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
    return state_dir.empty() ? dataplane::default_state_dir(pin_root) : state_dir;
  }
};

void add_agent_command(CLI::App& app, GlobalOptions& g, int& rc);  // agent_command.cpp
void add_bpf_commands(CLI::App& app, GlobalOptions& g, int& rc);   // bpf_commands.cpp
void add_lab_commands(CLI::App& app, GlobalOptions& g, int& rc);   // lab_commands.cpp
void add_doctor_command(CLI::App& app, GlobalOptions& g, int& rc);  // doctor.cpp
void add_resource_commands(CLI::App& app, int& rc);  // apply, get, delete: resource_commands.cpp
void add_observe_command(CLI::App& app, GlobalOptions& g, int& rc);  // observe_command.cpp
// `weir bpf policy ...` (src/cli/policy_commands.cpp), under the `bpf` subcommand.
void add_policy_commands(CLI::App* bpf, GlobalOptions& g, int& rc);
// `weir bpf trace` (docs/bpf-trace.md).
void add_trace_command(CLI::App* bpf, GlobalOptions& g, int& rc);

}  // namespace weir::cli
