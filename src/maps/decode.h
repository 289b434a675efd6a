// Pure decoding helpers for weir map contents (no syscalls): conntrack state, protocol names,
// address formatting, counters table metadata. Shared by the CLI and the agent's logs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weir/conntrack.h"
#include "weir/counters.h"
#include "weir/ifstate.h"
#include "weir/routes.h"

namespace weir::maps {

// "TCP", "UDP", "ICMP", else the number in decimal ("47").
std::string proto_name(uint8_t proto);

// Dotted quad of a network-order IPv4 address as stored in maps ("10.96.0.10").
std::string format_ip(uint32_t addr_be);
// "10.96.0.10:53" from network-order address and port.
std::string format_ip_port(uint32_t addr_be, uint16_t port_be);
// Host-order value of a network-order port.
uint16_t port_host(uint16_t port_be);
// Parse "a.b.c.d" into network order; nullopt when malformed.
std::optional<uint32_t> parse_ip(std::string_view s);

// TCP connection state from the two legs of a conntrack entry: weir_ct_tcp_state() of
// bpf/include/weir/conntrack.h (the definition the datapath and the scanner use), named
// "SYN-SENT", "SYN-RECV", "ESTABLISHED", "FIN-WAIT", "CLOSED" or "RESET".
// Returns "" for non-TCP protocols (UDP/ICMP have no state in the dump).
std::string ct_state(uint8_t proto, const weir_ct_leg& a, const weir_ct_leg& b);
// The name of an enum weir_ct_tcp value ("?" when out of range).
std::string_view ct_tcp_state_name(uint32_t state);
// "NORMAL", "NAT_FWD", "NAT_REV", else "TYPE<n>".
std::string ct_type_name(uint8_t type);
// Leg flags as "SYN|ACK|APPROVED|WORKLOAD" ("" when none).
std::string ct_leg_flags(uint32_t flags);

// Conntrack statistics (weir_ct_stats1) of one index summed over CPUs, field by field.
weir_ct_stats sum_ct_stats(const std::vector<weir_ct_stats>& per_cpu);
// Entries the LRU evicted, estimated (the kernel does not report evictions) as
//   created - deleted by the datapath - deleted by the agent - entries present,
// with `created` and the datapath deletion from index WEIR_CT_STATS_DATAPATH and the agent's
// from WEIR_CT_STATS_AGENT. 0 when that is negative (reads racing the traffic of the moment,
// or entries older than the statistics map).
uint64_t ct_evictions_estimate(const weir_ct_stats& datapath, const weir_ct_stats& agent,
                               uint64_t entries);
// Occupancy in tenths of a percent, rounded down (so that "100.0%" means full): 4095 of 4096
// -> 999; 0 when max_entries is 0.
uint64_t ct_occupancy_permille(uint64_t entries, uint64_t max_entries);

// Route flags as words: "local workload", "host", "remote", "in pool", joined with ", ".
std::string route_flags(uint32_t flags);
// Interface flags: "workload", "host", "ready" joined with ", ".
std::string ifstate_flags(uint32_t flags);
// The NUL-terminated (or 16-byte) name of an ifstate entry.
std::string ifstate_name(const weir_ifstate_val& v);

// Metadata of one counter (one row of `weir bpf counters dump`).
struct CounterMeta {
  weir_counter id;
  std::string_view category;  // "Accepted", "Dropped", "Redirect", "Other", "Total"
  std::string_view type;      // e.g. "by another program", "NAT source collision resolution failed"
  std::string_view json_name; // stable snake_case key for --json, e.g. "accepted_by_policy"
  bool outcome;               // counted exactly once per packet (sum of outcomes == total)
};

// Metadata of counter `id`; nullopt for ids >= WEIR_CNT__MAX.
std::optional<CounterMeta> counter_meta(uint32_t id);
// Display order of the counters table (as the seed: Accepted, Dropped, Other, Redirect, Total,
// i.e. categories sorted as in Calico's output). Contains every id in [0, WEIR_CNT__MAX) once.
const std::vector<weir_counter>& counter_display_order();

// Name of a hook: "ingress", "egress", "xdp", else "hook<n>".
std::string hook_name(uint32_t hook);

}  // namespace weir::maps
