// The operations behind `weir bpf ...`, usable without the CLI (tests, `weir doctor` later).
// They read or change the pinned maps / TC hooks; formatting is in format.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/format.h"
#include "maps/pin_layout.h"
#include "maps/weir_maps.h"
#include "util/result.h"

namespace weir::cli {

// CLOCK_MONOTONIC now in ns: the timebase of the conntrack timestamps (bpf_ktime_get_coarse_ns),
// so conntrack ages compare.
uint64_t monotonic_now_ns();

// Every NAT frontend with the backends of its service id.
Result<std::vector<NatFrontend>> read_nat(maps::WeirMaps& m);
// Every conntrack entry.
Result<std::vector<CtEntry>> read_conntrack(maps::WeirMaps& m);
// Occupancy and statistics of the conntrack table: entries counted by streaming the map in
// fixed-size chunks (nothing kept), weir_ct_stats1 summed over CPUs, and the "failed to create
// conntrack" drops summed over every interface and hook.
Result<CtStatsReport> read_ct_stats(maps::WeirMaps& m);
// Counters summed over CPUs, one IfaceCounters per interface that has counters or an
// ifstate entry (ingress/egress of ifstate interfaces count as present, zero). `iface` ""
// = all; otherwise resolved through the ifstate names then netlink, with an Error naming it
// when unknown or not managed by weir.
Result<std::vector<IfaceCounters>> read_counters(maps::WeirMaps& m, const std::string& iface);
// Zero the counters (all, or of `iface`); returns how many (ifindex, hook) sets were zeroed.
Result<size_t> flush_counters(maps::WeirMaps& m, const std::string& iface);
Result<std::vector<RouteEntry>> read_routes(maps::WeirMaps& m);
// One ArpEntry per next hop of the routes map's remote routes, with the kernel's neighbour entry
// for it (this network namespace's).
Result<std::vector<ArpEntry>> read_arp(maps::WeirMaps& m);
Result<std::vector<IfstateEntry>> read_ifstate(maps::WeirMaps& m);
// Every IP set member: the keys of weir_ipsets1 and those of weir_ipsetx1 (ipset_key_of).
Result<std::vector<weir_ipset_key>> read_ipsets(maps::PolicyMaps& m);
// Versions and the attach mode probe_tc_mode() picks (needs root; else "unknown (...)").
Result<VersionInfo> version_info();

struct CleanupReport {
  std::vector<std::string> removed;  // one human-readable line per thing removed
  std::vector<std::string> left;     // one line per foreign thing left under a weir pin root
};
// Remove what weir created in this network namespace and under layout.root, and nothing else.
// First, before any change, the pin root is checked and its contents sorted: when it exists it
// must be a directory on a bpffs that is not the bpffs mount point itself, holding weir's marker
// (maps::write_pin_marker) or at least one weir map under maps/ (a name of maps::all_map_names(),
// a map of that kernel name and of the embedded object's type for it); otherwise an Error names
// the path and the reason and nothing is removed. Then: weir's tcx links pinned under
// <root>/links (tcx links holding a weir_* program) are detached, every weir_* program on every
// interface of the namespace is removed (tcx and cls_bpf; programs of others stay), clsact
// qdiscs left empty by that are deleted, weir's pins are unpinned (the marker last) and weir's
// directories removed when that left them empty. Anything else under the pin root stays, with a
// `left` line each. A missing pin root is fine (only the namespace and state files are cleaned).
// A second run reports nothing (or, when foreign pins were left, refuses: no weir state is
// left there). When `state_dir` is given, cleanup_state_files too.
Result<CleanupReport> cleanup(const maps::PinLayout& layout, const std::string& state_dir = "");

// The agent's files under `state_dir`: regular files policy/*.json and policy/*.json.tmp (what
// dataplane::write_policy_info writes), then policy/, the state dir and /run/weir when left empty.
// Never throws, never removes anything else; what it removed is appended to `r`.
void cleanup_state_files(const std::string& state_dir, CleanupReport& r);

}  // namespace weir::cli
