// One typed view per weir map (bpf/include/weir/maps.h), shared by the agent, the conntrack
// scanner and the CLI.
#pragma once

#include <string>
#include <vector>

#include "bpf/map.h"
#include "maps/map_table.h"
#include "maps/pin_layout.h"
#include "util/result.h"

namespace weir::maps {

using NatFrontendMap = MapView<MapId::NAT_FE>;
using NatBackendMap = MapView<MapId::NAT_BE>;
using ConntrackMap = MapView<MapId::CT>;
using RoutesMap = MapView<MapId::ROUTES>;
using IfstateMap = MapView<MapId::IFSTATE>;
using CountersMap = MapView<MapId::COUNTERS>;
// Conntrack statistics (weir/conntrack.h): index WEIR_CT_STATS_DATAPATH written by the TC
// programs, WEIR_CT_STATS_AGENT by the agent's conntrack scanner; one value per CPU.
using CtStatsMap = MapView<MapId::CT_STATS>;
// Policy maps (weir/policy.h). The jump map is a PROG_ARRAY: updates take a program fd,
// lookups (from userspace) return the program id.
using JumpMap = MapView<MapId::JUMP>;
using PolicyStateMap = MapView<MapId::PSTATE>;
using IpsetsMap = MapView<MapId::IPSETS>;
using IpsetExactMap = MapView<MapId::IPSET_X>;
using RuleCountersMap = MapView<MapId::RULE_CNT>;
// VXLAN between nodes (weir/tunnel.h): this node's tunnel configuration (one entry), the other
// nodes' underlay addresses, and the one-slot PROG_ARRAY holding the encapsulation program.
using TunnelMap = MapView<MapId::TUNNEL>;
using VtepsMap = MapView<MapId::VTEPS>;
using TunJumpMap = MapView<MapId::TUN_JUMP>;
// The BPF debug log (weir/log.h): what each interface logs (level, pcap filter slot), the
// per-CPU state of the packet being logged, and the PROG_ARRAY of the log variant's main
// programs and the pcap filters.
using LogIfMap = MapView<MapId::LOG_IF>;
using LogStateMap = MapView<MapId::LOG_ST>;
using LogJumpMap = MapView<MapId::LOG_JMP>;

// Names of every map, in the table's order (WEIR_MAPS, the order of docs/maps.md).
const std::vector<std::string>& all_map_names();
// Names of maps an older agent pinned whose layout changed (WEIR_MAPS_RETIRED): the loader
// unpins them once their successors are pinned, `weir bpf cleanup` removes them.
const std::vector<std::string>& retired_map_names();

class WeirMaps {
 public:
  WeirMaps(WeirMaps&&) noexcept = default;
  WeirMaps& operator=(WeirMaps&&) noexcept = default;
  WeirMaps(const WeirMaps&) = delete;
  WeirMaps& operator=(const WeirMaps&) = delete;

  // Open every map pinned under layout.maps_dir(). When the root or a map is missing:
  // Error{ENOENT, "no weir state under <root> (maps/<name> not found): the agent may not be
  // running or has never run on this node; see `weir --pin-root`"}. A map whose key/value
  // size differs from this binary's layout is an Error naming the map.
  static Result<WeirMaps> open_pinned(const PinLayout& layout);
  // Build from already-open map fds (borrowed; duplicated; only the ones of these maps are
  // used). Sizes are checked as above.
  static Result<WeirMaps> from_fds(const MapFds& fds);

  NatFrontendMap nat_fe;
  NatBackendMap nat_be;
  ConntrackMap ct;
  RoutesMap routes;
  IfstateMap ifstate;
  CountersMap counters;
  CtStatsMap ct_stats;

 private:
  WeirMaps() = default;
};

// The maps of the policy path (jump slots, per-CPU state, IP sets, rule counters). Separate from
// WeirMaps so that users of the core maps (service syncer, conntrack scanner, most CLI commands)
// do not need them.
class PolicyMaps {
 public:
  PolicyMaps(PolicyMaps&&) noexcept = default;
  PolicyMaps& operator=(PolicyMaps&&) noexcept = default;
  PolicyMaps(const PolicyMaps&) = delete;
  PolicyMaps& operator=(const PolicyMaps&) = delete;

  // As WeirMaps::open_pinned (same "no weir state under ..." error when a pin is missing).
  static Result<PolicyMaps> open_pinned(const PinLayout& layout);
  static Result<PolicyMaps> from_fds(const MapFds& fds);

  JumpMap jump;
  PolicyStateMap pstate;
  IpsetsMap ipsets;         // CIDR members shorter than /32 (LPM trie)
  IpsetExactMap ipset_exact; // /32 and named-port members (hash)
  RuleCountersMap rule_cnt;

 private:
  PolicyMaps() = default;
};

// The maps of VXLAN between nodes. Separate from WeirMaps so that the CLI commands and the
// managers that never touch the tunnel do not need them (nor fail on a pin root an older weir,
// without them, left).
class TunnelMaps {
 public:
  TunnelMaps(TunnelMaps&&) noexcept = default;
  TunnelMaps& operator=(TunnelMaps&&) noexcept = default;
  TunnelMaps(const TunnelMaps&) = delete;
  TunnelMaps& operator=(const TunnelMaps&) = delete;

  // As WeirMaps::open_pinned (same "no weir state under ..." error when a pin is missing).
  static Result<TunnelMaps> open_pinned(const PinLayout& layout);
  static Result<TunnelMaps> from_fds(const MapFds& fds);

  TunnelMap tunnel;     // weir_tunnel1[0]: struct weir_tunnel_val
  VtepsMap vteps;       // weir_vteps1: underlay address (network order) -> WEIR_VTEP_F_*
  TunJumpMap tun_jump;  // weir_tun_jump1: slot -> program fd (reads back the program id)

 private:
  TunnelMaps() = default;
};

// The maps of the BPF debug log. Separate for the same reason as TunnelMaps.
class LogMaps {
 public:
  LogMaps(LogMaps&&) noexcept = default;
  LogMaps& operator=(LogMaps&&) noexcept = default;
  LogMaps(const LogMaps&) = delete;
  LogMaps& operator=(const LogMaps&) = delete;

  static Result<LogMaps> open_pinned(const PinLayout& layout);
  static Result<LogMaps> from_fds(const MapFds& fds);

  LogIfMap logif;    // weir_logif1: ifindex (0: every other interface) -> weir_log_if_val
  LogStateMap logst; // weir_logst2[0]: per-CPU weir_log_state
  LogJumpMap logjmp; // weir_logjmp1: WEIR_LOGJMP_* slot -> program fd (reads back the program id)

 private:
  LogMaps() = default;
};

}  // namespace weir::maps
