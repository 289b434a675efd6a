#include "maps/decode.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>

#include <fmt/format.h>

namespace weir::maps {

std::string proto_name(uint8_t proto) {
  switch (proto) {
    case WEIR_IPPROTO_TCP: return "TCP";
    case WEIR_IPPROTO_UDP: return "UDP";
    case WEIR_IPPROTO_ICMP: return "ICMP";
    default: return std::to_string(proto);
  }
}

std::string format_ip(uint32_t addr_be) {
  const auto* b = reinterpret_cast<const uint8_t*>(&addr_be);
  return fmt::format("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
}

uint16_t port_host(uint16_t port_be) { return ntohs(port_be); }

std::string format_ip_port(uint32_t addr_be, uint16_t port_be) {
  return fmt::format("{}:{}", format_ip(addr_be), port_host(port_be));
}

std::optional<uint32_t> parse_ip(std::string_view s) {
  std::string str(s);
  struct in_addr a {};
  if (str.empty() || inet_pton(AF_INET, str.c_str(), &a) != 1) return std::nullopt;
  return a.s_addr;
}

std::string_view ct_tcp_state_name(uint32_t state) {
  switch (state) {
    case WEIR_CT_TCP_SYN_SENT: return "SYN-SENT";
    case WEIR_CT_TCP_SYN_RECV: return "SYN-RECV";
    case WEIR_CT_TCP_ESTABLISHED: return "ESTABLISHED";
    case WEIR_CT_TCP_FIN_WAIT: return "FIN-WAIT";
    case WEIR_CT_TCP_CLOSED: return "CLOSED";
    case WEIR_CT_TCP_RESET: return "RESET";
    default: return "?";
  }
}

std::string ct_state(uint8_t proto, const weir_ct_leg& a, const weir_ct_leg& b) {
  if (proto != WEIR_IPPROTO_TCP) return "";
  return std::string(ct_tcp_state_name(weir_ct_tcp_state(a.flags, b.flags)));
}

weir_ct_stats sum_ct_stats(const std::vector<weir_ct_stats>& per_cpu) {
  weir_ct_stats acc{};
  for (const auto& v : per_cpu) {
    acc.created += v.created;
    acc.create_failed += v.create_failed;
    acc.deleted += v.deleted;
    acc.midflow_miss += v.midflow_miss;
    acc.midflow_renat += v.midflow_renat;
    acc.midflow_reset += v.midflow_reset;
  }
  return acc;
}

uint64_t ct_evictions_estimate(const weir_ct_stats& datapath, const weir_ct_stats& agent,
                               uint64_t entries) {
  const uint64_t gone = datapath.deleted + agent.deleted + entries;
  return datapath.created > gone ? datapath.created - gone : 0;
}

uint64_t ct_occupancy_permille(uint64_t entries, uint64_t max_entries) {
  return max_entries == 0 ? 0 : entries * 1000 / max_entries;
}

std::string ct_type_name(uint8_t type) {
  switch (type) {
    case WEIR_CT_NORMAL: return "NORMAL";
    case WEIR_CT_NAT_FWD: return "NAT_FWD";
    case WEIR_CT_NAT_REV: return "NAT_REV";
    default: return fmt::format("TYPE{}", type);
  }
}

namespace {
template <size_t N>
std::string join_flags(uint32_t flags, const std::array<std::pair<uint32_t, const char*>, N>& names,
                       const char* sep) {
  std::string out;
  for (const auto& [bit, name] : names) {
    if ((flags & bit) == 0) continue;
    if (!out.empty()) out += sep;
    out += name;
    flags &= ~bit;
  }
  if (flags != 0) {
    if (!out.empty()) out += sep;
    out += fmt::format("{:#x}", flags);
  }
  return out;
}
}  // namespace

std::string ct_leg_flags(uint32_t flags) {
  static const std::array<std::pair<uint32_t, const char*>, 6> names = {{
      {WEIR_CT_LEG_SYN, "SYN"},
      {WEIR_CT_LEG_FIN, "FIN"},
      {WEIR_CT_LEG_RST, "RST"},
      {WEIR_CT_LEG_ACK, "ACK"},
      {WEIR_CT_LEG_APPROVED, "APPROVED"},
      {WEIR_CT_LEG_WORKLOAD, "WORKLOAD"},
  }};
  return join_flags(flags, names, "|");
}

std::string route_flags(uint32_t flags) {
  static const std::array<std::pair<uint32_t, const char*>, 4> names = {{
      {WEIR_RT_F_LOCAL_WORKLOAD, "local workload"},
      {WEIR_RT_F_HOST, "host"},
      {WEIR_RT_F_REMOTE, "remote"},
      {WEIR_RT_F_IN_POOL, "in pool"},
  }};
  return join_flags(flags, names, ", ");
}

std::string ifstate_flags(uint32_t flags) {
  static const std::array<std::pair<uint32_t, const char*>, 3> names = {{
      {WEIR_IF_F_WORKLOAD, "workload"},
      {WEIR_IF_F_HOST, "host"},
      {WEIR_IF_F_READY, "ready"},
  }};
  return join_flags(flags, names, ", ");
}

std::string ifstate_name(const weir_ifstate_val& v) {
  return std::string(v.name, strnlen(v.name, sizeof(v.name)));
}

namespace {
// Indexed by enum weir_counter. Text of the Calico rows exactly as in the seed's table.
const CounterMeta kCounters[] = {
    {WEIR_CNT_ACCEPT_BY_OTHER_PROG, "Accepted", "by another program", "accepted_by_other_program", true},
    {WEIR_CNT_ACCEPT_BY_FAILSAFE, "Accepted", "by failsafe", "accepted_by_failsafe", true},
    {WEIR_CNT_ACCEPT_BY_POLICY, "Accepted", "by policy", "accepted_by_policy", true},
    {WEIR_CNT_ACCEPT_NEW_FLOW, "Accepted", "new flow, no policy", "accepted_new_flow_no_policy", true},
    {WEIR_CNT_ACCEPT_ESTABLISHED, "Accepted", "established flow", "accepted_established", true},
    {WEIR_CNT_ACCEPT_NON_IPV4, "Accepted", "non-IPv4 (passed)", "accepted_non_ipv4", true},
    {WEIR_CNT_DROP_NAT_COLLISION, "Dropped", "NAT source collision resolution failed", "dropped_nat_collision", true},
    {WEIR_CNT_DROP_QOS, "Dropped", "QoS control limit", "dropped_qos", true},
    {WEIR_CNT_DROP_BY_POLICY, "Dropped", "by policy", "dropped_by_policy", true},
    {WEIR_CNT_DROP_DECAP, "Dropped", "failed decapsulation", "dropped_decap", true},
    {WEIR_CNT_DROP_ENCAP, "Dropped", "failed encapsulation", "dropped_encap", true},
    {WEIR_CNT_DROP_CT_CREATE, "Dropped", "failed to create conntrack", "dropped_ct_create", true},
    {WEIR_CNT_DROP_FRAG_INCOMPLETE, "Dropped", "fragment of yet incomplete packet", "dropped_frag_incomplete", true},
    {WEIR_CNT_DROP_FRAG_ORDER, "Dropped", "fragment out of order within host", "dropped_frag_order", true},
    {WEIR_CNT_DROP_FRAG_UNSUPPORTED, "Dropped", "fragments not supported", "dropped_frag_unsupported", true},
    {WEIR_CNT_DROP_BAD_CSUM, "Dropped", "incorrect checksum", "dropped_bad_csum", true},
    {WEIR_CNT_DROP_MALFORMED, "Dropped", "malformed IP packets", "dropped_malformed", true},
    {WEIR_CNT_DROP_BLACKHOLE, "Dropped", "packets hitting blackhole route", "dropped_blackhole", true},
    {WEIR_CNT_DROP_UNKNOWN_ROUTE, "Dropped", "packets with unknown route", "dropped_unknown_route", true},
    {WEIR_CNT_DROP_UNKNOWN_SOURCE, "Dropped", "packets with unknown source", "dropped_unknown_source", true},
    {WEIR_CNT_DROP_IP_OPTIONS, "Dropped", "packets with unsupported IP options", "dropped_ip_options", true},
    {WEIR_CNT_DROP_SHORT, "Dropped", "too short packets", "dropped_short", true},
    {WEIR_CNT_DROP_NO_BACKEND, "Dropped", "service without backends", "dropped_no_backend", true},
    {WEIR_CNT_DROP_TAIL_CALL, "Dropped", "missed tail call", "dropped_tail_call", true},
    {WEIR_CNT_DROP_REWRITE, "Dropped", "packet rewrite failed", "dropped_rewrite", true},
    {WEIR_CNT_DROP_ICMP_NO_FLOW, "Dropped", "ICMP errors about no tracked flow", "dropped_icmp_no_flow", true},
    {WEIR_CNT_DROP_VLAN, "Dropped", "VLAN-tagged frames", "dropped_vlan", true},
    {WEIR_CNT_REDIRECT_NEIGH, "Redirect", "neigh", "redirect_neigh", true},
    {WEIR_CNT_REDIRECT_PEER, "Redirect", "peer", "redirect_peer", true},
    {WEIR_CNT_REDIRECT_PLAIN, "Redirect", "plain", "redirect_plain", true},
    {WEIR_CNT_ACCEPT_UNDERLAY, "Accepted", "underlay, not VXLAN (passed)", "accepted_underlay", true},
    {WEIR_CNT_OTHER_NAT_COLLISION, "Other", "packets hitting NAT source collision", "other_nat_collision", false},
    {WEIR_CNT_OTHER_ICMP_ERR_NAT, "Other", "ICMP errors reverse-NATed", "other_icmp_errors_reverse_nat", false},
    {WEIR_CNT_TOTAL, "Total", "packets", "total", false},
};
static_assert(sizeof(kCounters) / sizeof(kCounters[0]) == WEIR_CNT__MAX,
              "every enum weir_counter needs a row in kCounters (src/maps/decode.cpp)");
}  // namespace

std::optional<CounterMeta> counter_meta(uint32_t id) {
  if (id >= WEIR_CNT__MAX) return std::nullopt;
  return kCounters[id];
}

const std::vector<weir_counter>& counter_display_order() {
  // The seed's table puts Other before Redirect: categories in alphabetical order, Total last.
  static const std::vector<weir_counter> order = [] {
    std::vector<weir_counter> o;
    for (const char* cat : {"Accepted", "Dropped", "Other", "Redirect", "Total"})
      for (const auto& m : kCounters)
        if (m.category == cat) o.push_back(m.id);
    return o;
  }();
  return order;
}

std::string hook_name(uint32_t hook) {
  switch (hook) {
    case WEIR_HOOK_INGRESS: return "ingress";
    case WEIR_HOOK_EGRESS: return "egress";
    case WEIR_HOOK_XDP: return "xdp";
    default: return fmt::format("hook{}", hook);
  }
}

}  // namespace weir::maps
