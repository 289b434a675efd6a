// What `weir bpf policy dump` needs besides the kernel state: for each interface and
// direction, the tiers, policies and rules of the program the agent installed, and its
// disassembly. The agent writes one JSON file per (interface, direction) when it installs a
// policy program and removes it when the interface loses its policy; the CLI reads it, and the
// rule counters from weir_rule_cnt1, so that the dump works while the agent is down.
//
//   <state dir>/policy/<ifname>_<ingress|egress>.json
//
// The state dir defaults to /run/weir/<basename of the pin root> (default_state_dir).
// These files are the dataplane's record of what it installed, not a map: they live here.
// Each file also records the program id installed as the entry point: the CLI compares it with
// what ifstate and the jump map hold now, and says so when they disagree (stale file).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calc/policy_ir.h"
#include "util/result.h"

namespace weir::dataplane {

struct PolicyInfoRule {
  uint64_t id = 0;
  std::string action;       // allow, deny, pass, log
  std::string description;  // see calc::pol::Rule::description
  std::vector<uint64_t> src_sets, dst_sets, dst_named_port_sets;  // IP sets the rule looks up
};

struct PolicyInfoPolicy {
  std::string name;
  std::vector<PolicyInfoRule> rules;
};

struct PolicyInfoTier {
  std::string name;
  std::string default_action;  // deny or pass
  std::vector<PolicyInfoPolicy> policies;
};

struct PolicyInfo {
  std::string iface;
  uint32_t ifindex = 0;
  std::string direction;  // "ingress" (runs at tc egress) or "egress" (runs at tc ingress)
  uint32_t entry_slot = 0;                // weir_jump1 slot named by ifstate
  uint32_t entry_prog_id = 0;             // kernel id of the entry program when installed
  std::vector<uint32_t> chunk_slots;      // every slot the program uses, entry first
  std::vector<std::string> program_names;  // their kernel names (bpftool prog show), same order
  std::vector<PolicyInfoTier> tiers;
  std::string asm_text;                   // disassembly with the compiler's comments
  // Non-empty when the endpoint's own policy could not be installed (why): the program
  // described here is then the deny-all of calc::pol::fail_closed_policy() (fail closed), or
  // the previous policy, still in force. Shown on the dump's Error line. JSON "install_error".
  std::string install_error;

  // "tc egress" for ingress policy (the host veth's egress hook), "tc ingress" for egress.
  std::string hook() const;
};

PolicyInfo policy_info_from(const calc::pol::EndpointPolicy& p, const std::string& iface,
                            uint32_t ifindex);

nlohmann::json to_json(const PolicyInfo& info);
Result<PolicyInfo> policy_info_from_json(const nlohmann::json& j);

// <state_dir>/policy
std::string policy_info_dir(const std::string& state_dir);
// <state_dir>/policy/<iface>_<direction>.json
std::string policy_info_path(const std::string& state_dir, const std::string& iface,
                             const std::string& direction);

// Atomic write (temporary file + rename). Creates the directory.
Status write_policy_info(const std::string& state_dir, const PolicyInfo& info);
// ENOENT when there is no file: the interface has no policy in that direction (or the agent
// never ran with this state dir).
Result<PolicyInfo> read_policy_info(const std::string& state_dir, const std::string& iface,
                                    const std::string& direction);
Status remove_policy_info(const std::string& state_dir, const std::string& iface,
                          const std::string& direction);

// /run/weir/<last component of the pin root>: the state dir when none is given.
std::string default_state_dir(const std::string& pin_root);

// The file name, and the path under `state_dir`, of the agent's `weir observe` socket
// (docs/observe.md): where the agent listens and the CLI connects unless told otherwise.
inline constexpr const char* kObserveSocketName = "observe.sock";
std::string observe_socket_path(const std::string& state_dir);

// Removes the agent's files under `state_dir`: regular files policy/*.json and
// policy/*.json.tmp (what write_policy_info writes), its status file, the observe.sock socket
// an agent killed left, then policy/, the state dir and /run/weir
// when that left them empty. Never throws, never removes anything else; returns one line per
// thing removed. An empty `state_dir` removes nothing.
std::vector<std::string> remove_state_files(const std::string& state_dir);

}  // namespace weir::dataplane
