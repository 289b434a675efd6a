// One typed view per weir map (bpf/include/weir/maps.h), shared by the agent, the conntrack
// scanner and the CLI.
#pragma once

#include <string>
#include <vector>

#include "bpf/map.h"
#include "maps/pin_layout.h"
#include "util/result.h"
#include "weir/conntrack.h"
#include "weir/counters.h"
#include "weir/ifstate.h"
#include "weir/maps.h"
#include "weir/nat.h"
#include "weir/policy.h"
#include "weir/routes.h"

namespace weir::maps {

using NatFrontendMap = bpf::Map<weir_nat_fe_key, weir_nat_fe_val>;
using NatBackendMap = bpf::Map<weir_nat_be_key, weir_nat_be_val>;
using ConntrackMap = bpf::Map<weir_ct_key, weir_ct_val>;
using RoutesMap = bpf::Map<weir_route_key, weir_route_val>;
using IfstateMap = bpf::Map<__u32, weir_ifstate_val>;
using CountersMap = bpf::PerCpuMap<weir_counters_key, weir_counters_val>;
// Conntrack statistics (weir/conntrack.h): index WEIR_CT_STATS_DATAPATH written by the TC
// programs, WEIR_CT_STATS_AGENT by the agent's conntrack scanner; one value per CPU.
using CtStatsMap = bpf::PerCpuMap<__u32, weir_ct_stats>;
// Policy maps (weir/policy.h). The jump map is a PROG_ARRAY: updates take a program fd,
// lookups (from userspace) return the program id.
using JumpMap = bpf::Map<__u32, __u32>;
using PolicyStateMap = bpf::PerCpuMap<__u32, weir_pol_state>;
using IpsetsMap = bpf::Map<weir_ipset_key, __u32>;
using IpsetExactMap = bpf::Map<weir_ipset_exact_key, __u32>;
using RuleCountersMap = bpf::PerCpuMap<weir_rule_cnt_key, weir_rule_cnt_val>;

// Names of every map, in a stable order (the order of docs/maps.md): the six core maps of
// WeirMaps, then the five of PolicyMaps, then the conntrack statistics (in WeirMaps too).
const std::vector<std::string>& all_map_names();
// Names of maps an older agent pinned whose layout changed (WEIR_MAPS_RETIRED): the loader
// unpins them once their successors are pinned, `weir bpf cleanup` removes them.
const std::vector<std::string>& retired_map_names();

// Raw fds of every map, for WeirMaps::from_fds (e.g. bpf_map__fd(skel->maps.weir_ct1)). The
// fds are borrowed: from_fds duplicates them.
struct MapFds {
  int nat_fe = -1;
  int nat_be = -1;
  int ct = -1;
  int routes = -1;
  int ifstate = -1;
  int counters = -1;
  int ct_stats = -1;
};

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
  // Build from already-open map fds (borrowed; duplicated). Sizes are checked as above.
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

// Raw fds of the policy maps, for PolicyMaps::from_fds (borrowed; duplicated).
struct PolicyMapFds {
  int jump = -1;
  int pstate = -1;
  int ipsets = -1;
  int ipset_exact = -1;
  int rule_cnt = -1;
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
  static Result<PolicyMaps> from_fds(const PolicyMapFds& fds);

  JumpMap jump;
  PolicyStateMap pstate;
  IpsetsMap ipsets;         // CIDR members shorter than /32 (LPM trie)
  IpsetExactMap ipset_exact; // /32 and named-port members (hash)
  RuleCountersMap rule_cnt;

 private:
  PolicyMaps() = default;
};

}  // namespace weir::maps
