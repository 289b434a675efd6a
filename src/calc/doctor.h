// `weir doctor`: the troubleshooting checks of the seed documents, run against a live node. The
// CLI (src/cli/doctor.cpp) gathers the facts (bpffs, kernel features, the agent's status file,
// the TC hooks of every interface weir manages, the pinned maps, iptables/nftables/IPVS, the
// agent's log); evaluate() turns them into one line per check. Pure: unit-tested on facts
// (tests/unit/doctor_test.cpp), and each check is provoked on a live lab in
// tests/e2e/doctor_test.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace weir::calc::doctor {

enum class Level { Ok, Warn, Fail };
std::string to_string(Level l);  // "OK", "WARN", "FAIL"

struct Check {
  std::string name;   // stable id: "bpffs", "kernel", "agent", "programs", ...
  Level level = Level::Ok;
  std::string found;  // what was found
  std::string fix;    // what to do (empty when OK)
};

// One program on a TC hook of an interface weir manages.
struct HookProgram {
  uint32_t id = 0;
  std::string name;
  std::string mode;  // "tcx" or "clsact"
  bool weir = false;
};

struct InterfaceFacts {
  std::string name;
  bool exists = true;  // the interface is there (ifstate may name one that went away)
  std::map<std::string, std::vector<HookProgram>> hooks;  // "ingress"/"egress" -> programs
  // The hooks weir attaches to here ("ingress", "egress"; none listed: both), each with the id
  // of the program the current agent attaches (from its status file; 0 = unknown).
  std::map<std::string, uint32_t> expected_ids;
  std::string xdp_mode;  // "", "native", "generic", "offload": an XDP program on the interface
};

// <state dir>/agent.json, written by the agent after each sync and each conntrack scan.
struct AgentStatus {
  int pid = 0;
  bool alive = false;           // kill(pid, 0) from the doctor's pid namespace
  double heartbeat_age_s = 0;   // now - the file's last write
  double heartbeat_period_s = 10;
  std::string last_sync_result;  // full, incremental, unchanged, rejected
  double last_success_age_s = -1;  // < 0: never
  std::string tc_mode;           // the mode the agent attaches with
  bool vxlan_enabled = false;    // DataplaneConfig's, as the agent last read it (ipipEnabled
                                 // is refused when the config is read: never in force)
  std::string underlay;          // the underlay interface (VXLAN), "" when none
  uint32_t conntrack_warn_percent = 90;
};

// The VXLAN port probe (dataplane/vxlan_probe.h) from this node to every other node.
struct VxlanPeer {
  std::string addr;  // the other node's underlay address
  bool answered = false;
  double rtt_ms = 0;
};
struct VxlanProbe {
  uint16_t port = 0;  // host order
  std::vector<VxlanPeer> peers;
  std::string error;  // the probe could not run (its socket); peers then empty
  double timeout_ms = 0;
};

struct MapSize {
  std::string name;
  uint32_t pinned = 0, configured = 0;
};

struct Facts {
  std::string bpffs_path;
  bool bpffs_mounted = false;
  std::vector<std::string> missing_features;  // required kernel features the probe did not find
  bool kernel_has_tcx = false;
  std::optional<AgentStatus> agent;  // nullopt: no status file
  std::vector<InterfaceFacts> interfaces;
  std::vector<std::string> kube_proxy_chains;  // KUBE-* chains found in iptables or nftables
  uint64_t ipvs_services = 0;                  // virtual services in /proc/net/ip_vs
  std::optional<bool> tunnel_map_enabled;      // weir_tunnel1's switch; nullopt: not readable
  std::optional<VxlanProbe> vxlan_probe;       // nullopt: VXLAN off on this node (not probed)
  uint64_t ct_entries = 0, ct_capacity = 0;
  std::vector<MapSize> map_sizes;              // pinned maps with a configured size
  std::vector<std::string> verifier_failures;  // lines of the agent's log
  std::string agent_log;                       // its path ("" when not given)
};

std::vector<Check> evaluate(const Facts& f);

// Worst level of `checks` (Ok when empty).
Level worst(const std::vector<Check>& checks);

// What the agent logs first when it starts (followed by its pid and node). A log may hold many
// runs of the agent: the verifier check reads the last one.
inline constexpr const char* kAgentStartMark = "weir agent starting";

// The lines of `log` that report a program the kernel refused to load (libbpf's "BPF program
// load failed", the agent's "loading BPF programs:", "loading policy program", "loading log
// filter program"), at most `max`, in the agent's last run: after the last line with
// kAgentStartMark (the whole log when none has it). A failure an earlier run logged and a
// restart since put right is not reported.
std::vector<std::string> verifier_failures_in(const std::string& log, size_t max = 5);

}  // namespace weir::calc::doctor
