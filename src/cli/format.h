// Pure formatting of `weir bpf ...` output: functions from decoded map entries to strings or
// JSON. No syscalls, so everything here is unit-tested without root
// (tests/unit/cli_format_test.cpp). The text formats follow Calico's `calico-node -bpf`
// (see /work/shared/seeds/000_*.txt and docs/cli.md); JSON field names are stable.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/flow.h"
#include "weir/conntrack.h"
#include "weir/counters.h"
#include "weir/ifstate.h"
#include "weir/nat.h"
#include "weir/policy.h"
#include "weir/profile.h"
#include "weir/routes.h"

namespace weir::cli {

// ------------------------------------------------------------------ generic helpers

// Go's time.Duration.String() for a (possibly negative) number of nanoseconds:
// 0 -> "0s", 150000000 -> "150ms", 1500 -> "1.5µs", 4486606371 -> "4.486606371s",
// 75987585857 -> "1m15.987585857s", 3600e9 -> "1h0m0s".
std::string go_duration(int64_t ns);

// Split `text` into lines of at most `limit` display columns at spaces, minimising raggedness
// the way Go's tablewriter (used by calico-node -bpf) does: "NAT source collision resolution
// failed" at 30 -> {"NAT source collision", "resolution failed"}. A word longer than `limit`
// gets a line of its own. Empty text -> {""}.
std::vector<std::string> wrap_text(const std::string& text, size_t limit);

struct TableOptions {
  size_t wrap = 30;  // cells longer than this wrap onto continuation rows (tablewriter default)
};
// An ASCII table in tablewriter's default style:
//   +-----+------+
//   | HDR | HDR2 |      headers centred
//   +-----+------+
//   | a   |   12 |      numbers right-aligned, text left-aligned, wrapped cells continue on
//   +-----+------+      following lines with the other columns blank
// A column's width is the widest (wrapped) cell, but at least `wrap` when some cell had to
// be wrapped (as tablewriter does). Every line ends with '\n'.
std::string render_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows,
                         const TableOptions& opts = {});

// ------------------------------------------------------------------ nat

struct NatBackend {
  uint32_t ordinal = 0;
  uint32_t addr = 0;  // network order
  uint16_t port = 0;  // network order
};
struct NatFrontend {
  weir_nat_fe_key key{};
  weir_nat_fe_val val{};
  std::vector<NatBackend> backends;  // those found in the backend map for val.svc_id
};

// Sort frontends by (VIP, port, proto) numerically (host order) and backends by ordinal.
void sort_nat(std::vector<NatFrontend>& fes);
// `weir bpf nat dump`, one frontend line then one line per backend, indented with a tab:
//   10.96.0.10 port 53 proto 6 id 4 count 2 local 0
//   \t4:0 192.168.129.66:53
// Frontends sorted as sort_nat. An ordinal < count that is missing from the backend map is
// shown as "\t4:1 (missing backend)" so that a half-programmed service is visible. A
// non-zero affinity timeout / flags append " affinity <n>s" / " flags 0x<n>" to the frontend line.
std::string format_nat_dump(std::vector<NatFrontend> fes);
// JSON: [{"vip","port","proto","proto_name","id","count","local","affinity_timeout","flags",
//         "backends":[{"ordinal","ip","port"}], "missing_ordinals":[...]}]
nlohmann::json nat_dump_json(std::vector<NatFrontend> fes);

// ------------------------------------------------------------------ conntrack

struct CtEntry {
  weir_ct_key key{};
  weir_ct_val val{};
};

// One flow as shown by `weir bpf conntrack dump` (a NAT pair folded into one row).
struct CtFlow {
  uint8_t proto = 0;
  uint32_t client_addr = 0, server_addr = 0;  // network order; server = VIP for NAT flows
  uint16_t client_port = 0, server_port = 0;  // network order
  bool nat = false;
  uint32_t backend_addr = 0;                  // NAT flows only
  uint16_t backend_port = 0;
  bool has_fwd = false, has_rev = false;      // NAT flows: which halves exist
  uint64_t created_ns = 0;
  uint64_t last_seen_ns = 0;                  // max over the pair
  std::string state;                          // "" for non-TCP
  weir_ct_leg client_leg{}, server_leg{};
};

// Fold raw entries into flows: NORMAL entries one flow each (client first when
// WEIR_CT_F_A_IS_CLIENT says so, else side A first); a NAT_FWD entry and its NAT_REV twin
// (key (client, backend)) one flow; an orphan NAT_REV (no FWD twin) still one flow, with
// has_fwd = false. Result sorted by (proto, client, server, backend).
std::vector<CtFlow> fold_conntrack(const std::vector<CtEntry>& entries);
// `weir bpf conntrack dump` lines, `now_ns` = CLOCK_MONOTONIC now:
//   TCP 192.168.58.7:49178 -> 10.111.57.87:80 -> 192.168.105.136:80 Active ago 4.486606371s ESTABLISHED
//   TCP 10.128.1.194:41513 -> 10.128.1.192:179 Active ago 26.442759238s ESTABLISHED
//   UDP 127.0.0.1:48611 -> 127.0.0.53:53 Active ago 17.789851961s
// ICMP flows print the echo id as the port. An orphan NAT_REV ends with " (reverse only)".
std::string format_ct_dump(const std::vector<CtEntry>& entries, uint64_t now_ns);
// JSON: [{"proto","client","server","backend"(NAT only),"nat","age_ns","idle_ns",
//         "last_seen_ago","state","client_flags","server_flags","reverse_only"}]
nlohmann::json ct_dump_json(const std::vector<CtEntry>& entries, uint64_t now_ns);

// What `weir bpf conntrack stats` shows: the table's occupancy and weir_ct_stats1.
struct CtStatsReport {
  std::string map_name;        // "weir_ct1"
  uint64_t entries = 0;        // entries present (counted)
  uint64_t max_entries = 0;    // the map's capacity
  weir_ct_stats datapath{};    // index WEIR_CT_STATS_DATAPATH, summed over CPUs
  weir_ct_stats agent{};       // index WEIR_CT_STATS_AGENT, summed over CPUs
  uint64_t dropped_ct_create = 0;  // "failed to create conntrack", summed over interfaces and hooks
};
// `weir bpf conntrack stats`:
//   conntrack table weir_ct1: 3891 of 4096 entries (94.9% full)
//   since the table was created (summed over CPUs):
//     created                   12430  (a NAT flow creates 2)
//     creation failures             0
//     deleted by the datapath      12
//     deleted by the agent       8000
//     evicted (estimated)         527  = created - deleted by the datapath - deleted by the agent - present
//     mid-flow misses               3  (TCP packets of an established flow that found no entry)
//       re-NATed to a backend       3
//       answered with a reset       0
//   dropped "failed to create conntrack" (all interfaces and hooks): 0
// The percentage is rounded down (maps::ct_occupancy_permille); numbers are right-aligned.
std::string format_ct_stats(const CtStatsReport& r);
// JSON: {"map","entries","max_entries","occupancy_percent","created","create_failed",
//        "deleted_datapath","deleted_agent","evictions_estimated","evictions_formula",
//        "midflow_miss","midflow_renat","midflow_reset","dropped_ct_create"}
nlohmann::json ct_stats_json(const CtStatsReport& r);

// ------------------------------------------------------------------ counters

struct IfaceCounters {
  std::string ifname;
  uint32_t ifindex = 0;
  // Summed over CPUs; nullopt -> no program at that hook, shown as "N/A".
  std::array<std::optional<weir_counters_val>, WEIR_HOOK__MAX> hooks{};
};

// The seed's table for one interface:
//   | CATEGORY | TYPE | INGRESS | EGRESS | XDP |   with rows in counter_display_order(), the
// category only on the first row of its group, TYPE wrapped at 30 columns.
std::string format_counters_table(const IfaceCounters& c);
// Several interfaces: for each, a heading line "<ifname> (ifindex <n>)" then its table,
// separated by a blank line. A single interface (--iface) prints just the table.
std::string format_counters_dump(const std::vector<IfaceCounters>& ifaces, bool headings);
// JSON: [{"ifname","ifindex","hooks":{"ingress":{<json_name>:n,...}|null,"egress":...,"xdp":...}}]
nlohmann::json counters_json(const std::vector<IfaceCounters>& ifaces);

// ------------------------------------------------------------------ profiling

// One interface's profile (weir_prof1 summed over CPUs): v[hook][kind], hook WEIR_HOOK_INGRESS
// or WEIR_HOOK_EGRESS, kind WEIR_PROF_NEW or WEIR_PROF_EST.
struct IfaceProfile {
  std::string ifname;
  uint32_t ifindex = 0;
  std::array<std::array<weir_prof_val, WEIR_PROF__MAX>, 2> v{};
};
// The seed's `calico-node -bpf profiling e2e` table, one row per interface in the given order:
//   | IFACE | INGRESS NEW | # | INGRESS EST | # | EGRESS NEW | # | EGRESS EST | # |
// each pair the average time per run ("2492.344 ns") and the runs, "---" for both when none.
std::string format_profiling(const std::vector<IfaceProfile>& rows);
// JSON: [{"ifname","ifindex","ingress":{"new":{"runs","total_ns","avg_ns"},"est":{...}},"egress":...}]
nlohmann::json profiling_json(const std::vector<IfaceProfile>& rows);

// ------------------------------------------------------------------ routes / ifstate

struct RouteEntry {
  weir_route_key key{};
  weir_route_val val{};
};
// `weir bpf routes dump`, sorted by (address, prefix length):
//   10.65.0.2/32: local workload ifindex 5 mac 02:00:0a:41:00:02
//   10.65.0.0/16: in pool
//   10.66.0.0/24: remote, in pool next hop 192.168.0.2
// (flags 0 print "no flags"; ifindex, mac and next hop only when non-zero)
std::string format_routes_dump(std::vector<RouteEntry> routes);
// JSON: [{"cidr","flags":[...],"ifindex","next_hop","mac"}] (next_hop/mac null when zero)
nlohmann::json routes_json(std::vector<RouteEntry> routes);

// The neighbour entry weir's remote routes use for one next hop (routed mode: the kernel
// forwards to it; `weir bpf arp dump`).
struct ArpEntry {
  uint32_t next_hop = 0;             // network order
  std::vector<std::string> routes;   // "10.65.1.0/24": the remote routes via it, sorted
  bool present = false;              // the kernel has a neighbour entry for it
  std::string dev;                   // its interface ("" when absent)
  std::array<uint8_t, 6> src_mac{};  // that interface's MAC
  std::array<uint8_t, 6> dst_mac{};  // the neighbour's (zero while unresolved)
  bool resolved = false;
  std::string state;                 // "REACHABLE", "STALE", ...
};
// `weir bpf arp dump`, by next hop:
//   192.168.200.3 dev weirmau: src 02:..:01 dst 02:..:02 REACHABLE (next hop of 10.65.1.0/24)
//   192.168.200.4: no neighbour entry yet: the kernel resolves it on the first packet (next hop
//   of 10.65.2.0/24)   [one line]
std::string format_arp_dump(std::vector<ArpEntry> entries);
// JSON: [{"next_hop","dev","src_mac","dst_mac","state","routes":[...]}] (null when absent)
nlohmann::json arp_json(std::vector<ArpEntry> entries);

struct IfstateEntry {
  uint32_t ifindex = 0;
  weir_ifstate_val val{};
};
// `weir bpf ifstate dump`, sorted by ifindex (Calico's "ifindex : {...}" style):
//   5 : {name: weir1a2b3c, flags: workload,ready, ingress slot: 3, egress slot: none, host mac: 02:00:00:00:00:05}
std::string format_ifstate_dump(std::vector<IfstateEntry> entries);
// JSON: [{"ifindex","name","flags":[...],"ingress_slot","egress_slot","mac"}] (mac = host mac)
// (slots are null when WEIR_NO_POLICY_SLOT)
nlohmann::json ifstate_json(std::vector<IfstateEntry> entries);

// ------------------------------------------------------------------ ipsets

// The 64-bit id of an IP set key (stored big-endian in set_id).
uint64_t ipset_id(const weir_ipset_key& k);
// An exact member of weir_ipsetx1 in the trie key's form, so that both maps print alike: port
// and proto 0 (a /32 member) -> prefixlen 64 + 32, else (a named-port member) prefixlen 128.
weir_ipset_key ipset_key_of(const weir_ipset_exact_key& k);
// One member as text: a CIDR member (prefixlen 64 + n, port and proto 0) "192.168.58.5/32", a
// named-port member (prefixlen 128) "10.0.0.5:8080/TCP"; anything else is shown raw as
// "10.0.0.5 (prefixlen 77, port 0, proto 0)" so that a malformed entry stays visible.
std::string ipset_member(const weir_ipset_key& k);
// `weir bpf ipsets dump`: sets sorted by id, each "IP set 0x<16 hex digits>" followed by its
// members one per line, sorted by (address, prefix length, protocol, port):
//   IP set 0x303904ae5eae5418
//   192.168.58.5/32
// No entries -> "" (nothing printed).
std::string format_ipsets_dump(const std::vector<weir_ipset_key>& keys);
// JSON: [{"id":"0x303904ae5eae5418","members":["192.168.58.5/32","10.0.0.5:8080/TCP"]}]
nlohmann::json ipsets_json(const std::vector<weir_ipset_key>& keys);

// ------------------------------------------------------------------ version

struct VersionInfo {
  std::string weir;         // WEIR_VERSION
  uint32_t maps_layout = 0; // WEIR_MAPS_VERSION
  std::string libbpf;       // libbpf_version_string(), e.g. "v1.1"
  std::string kernel;       // uname -r
  std::string attach_mode;  // "tcx", "clsact" or "unknown (<why>)"
};
// `weir bpf version`:
//   weir version: 0.1.0
//   map layout version: 1
//   libbpf version: v1.1
//   kernel: 6.18.44
//   tc attach mode: tcx
std::string format_version(const VersionInfo& v);
// JSON: {"weir","maps_layout","libbpf","kernel","attach_mode"}
nlohmann::json version_json(const VersionInfo& v);

// ------------------------------------------------------------------ help

// `weir bpf help`: "Available Commands:" followed by one "  <name>  <description>" line per
// command, names padded to a common width, sorted by name (as cobra prints).
std::string format_help(const std::vector<std::pair<std::string, std::string>>& commands);

// ------------------------------------------------------------------ observe

// `weir observe`'s table (docs/observe.md), in the columns of `hubble observe -o table`. Fixed
// column widths rather than widths fitted to the rows, so that --follow can print each line as
// its flow comes; a longer cell pushes the rest of its line right.
//
// A flow's time in UTC as hubble's compact output writes it (Go's "Jan _2 15:04:05.000"):
// "Dec  5 14:07:07.123" (milliseconds truncated).
std::string format_flow_time(int64_t unix_ns);
// One side of a flow: the pod's "ns/name" when known, else its address, then ":port" unless the
// port is 0 (ICMP): "default/pod1:40000", "10.0.0.9:53", "10.65.0.2".
std::string format_flow_peer(const model::FlowPeer& p);
// The cells TIME, SOURCE, DESTINATION, TYPE, VERDICT, SUMMARY of one flow:
//   DESTINATION  the pod or address as format_flow_peer, or "svc ns/name:port" for a service's
//                frontend, then " -> <backend as format_flow_peer>" when NAT translated it
//   TYPE         the event and the protocol: "flow_start TCP", "drop UDP", "flow_end ICMP"
//   VERDICT      FORWARDED or DROPPED
//   SUMMARY      the JSON's "Summary" (model::to_json): TCP flags, the drop's reason and
//                policy, a flow end's counts
std::vector<std::string> flow_row(const model::Flow& f);
// The header line and one flow's line, each ending with '\n': the cells padded to 19, 26, 44,
// 16 and 9 columns, two spaces apart, SUMMARY last and unpadded (docs/observe.md, "Table"):
//   Dec  5 14:07:07.123  default/pod1:40000          svc default/web:80 -> default/pod2:8080  ...
std::string format_flow_header();
std::string format_flow_line(const model::Flow& f);

}  // namespace weir::cli
