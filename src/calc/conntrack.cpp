#include "calc/conntrack.h"

#include <algorithm>
#include <bit>

namespace weir::calc {

namespace {

uint16_t to_host16(uint16_t v) {
  if constexpr (std::endian::native == std::endian::little) return __builtin_bswap16(v);
  return v;
}
uint16_t to_net16(uint16_t v) { return to_host16(v); }


// ct_state() maps weir_ct_tcp_state() onto CtState by position.
constexpr bool same_order(CtState s, weir_ct_tcp t) {
  return static_cast<int>(s) - static_cast<int>(CtState::TcpSynSent) == static_cast<int>(t);
}
static_assert(same_order(CtState::TcpSynSent, WEIR_CT_TCP_SYN_SENT));
static_assert(same_order(CtState::TcpSynRecv, WEIR_CT_TCP_SYN_RECV));
static_assert(same_order(CtState::TcpEstablished, WEIR_CT_TCP_ESTABLISHED));
static_assert(same_order(CtState::TcpFinWait, WEIR_CT_TCP_FIN_WAIT));
static_assert(same_order(CtState::TcpClosed, WEIR_CT_TCP_CLOSED));
static_assert(same_order(CtState::TcpReset, WEIR_CT_TCP_RESET));
static_assert(WEIR_CT_TCP__MAX == 6, "a new TCP state needs a CtState");

}  // namespace

std::string_view to_string(CtState s) {
  switch (s) {
    case CtState::TcpSynSent:
      return "SYN-SENT";
    case CtState::TcpSynRecv:
      return "SYN-RECV";
    case CtState::TcpEstablished:
      return "ESTABLISHED";
    case CtState::TcpFinWait:
      return "FIN-WAIT";
    case CtState::TcpClosed:
      return "CLOSED";
    case CtState::TcpReset:
      return "RESET";
    case CtState::Udp:
      return "UDP";
    case CtState::Icmp:
      return "ICMP";
    case CtState::Other:
      return "OTHER";
  }
  return "?";
}

CtState ct_state(uint8_t proto, uint32_t leg_a_flags, uint32_t leg_b_flags) {
  const uint32_t a = leg_a_flags;
  const uint32_t b = leg_b_flags;
  switch (proto) {
    case WEIR_IPPROTO_TCP:
      // Same order as enum weir_ct_tcp (static_asserts above).
      return static_cast<CtState>(static_cast<int>(CtState::TcpSynSent) +
                                  static_cast<int>(weir_ct_tcp_state(a, b)));
    case WEIR_IPPROTO_UDP:
      return CtState::Udp;
    case WEIR_IPPROTO_ICMP:
      return CtState::Icmp;
    default:
      return CtState::Other;
  }
}

std::chrono::nanoseconds ct_timeout(CtState s, const model::ConntrackTimeouts& t) {
  switch (s) {
    case CtState::TcpSynSent:
    case CtState::TcpSynRecv:
      return t.tcp_syn_sent;
    case CtState::TcpEstablished:
      return t.tcp_established;
    case CtState::TcpFinWait:
    case CtState::TcpClosed:
      return t.tcp_fin;
    case CtState::TcpReset:
      return t.tcp_reset;
    case CtState::Udp:
      return t.udp;
    case CtState::Icmp:
      return t.icmp;
    case CtState::Other:
      return t.other;
  }
  return t.other;
}

uint64_t ct_age_ns(uint64_t now_ns, uint64_t last_seen_ns) {
  return now_ns > last_seen_ns ? now_ns - last_seen_ns : 0;
}

bool ct_expired(uint8_t proto, uint32_t leg_a_flags, uint32_t leg_b_flags, uint64_t age_ns,
                const model::ConntrackTimeouts& t) {
  auto timeout = ct_timeout(ct_state(proto, leg_a_flags, leg_b_flags), t).count();
  if (timeout < 0) timeout = 0;
  return age_ns > static_cast<uint64_t>(timeout);
}

BackendIndex::BackendIndex(const std::vector<Frontend>& frontends) {
  backends_.reserve(frontends.size());
  for (const auto& fe : frontends) set(fe);
}

void BackendIndex::set(const Frontend& fe) {
  auto& v = backends_[pack(fe.key)];
  pairs_ -= v.size();
  v.clear();
  for (const auto& be : fe.backends) v.push_back(pack(be));
  std::sort(v.begin(), v.end());
  pairs_ += v.size();
}

void BackendIndex::update(const std::vector<Frontend>& added_or_updated,
                          const std::vector<FrontendKey>& removed) {
  for (const auto& k : removed) {
    auto it = backends_.find(pack(k));
    if (it == backends_.end()) continue;
    pairs_ -= it->second.size();
    backends_.erase(it);
  }
  for (const auto& fe : added_or_updated) set(fe);
}

bool BackendIndex::loses_backends(const Frontend& fe) const {
  auto it = backends_.find(pack(fe.key));
  if (it == backends_.end()) return false;
  std::vector<uint64_t> now;
  for (const auto& be : fe.backends) now.push_back(pack(be));
  std::sort(now.begin(), now.end());
  return !std::includes(now.begin(), now.end(), it->second.begin(), it->second.end());
}

bool BackendIndex::has_frontend(const FrontendKey& fe) const {
  return backends_.contains(pack(fe));
}

bool BackendIndex::contains(const FrontendKey& fe, const Backend& be) const {
  auto it = backends_.find(pack(fe));
  return it != backends_.end() && std::binary_search(it->second.begin(), it->second.end(), pack(be));
}

std::optional<CtNatFlow> ct_nat_flow(const weir_ct_key& key, const weir_ct_val& val) {
  if (val.type != WEIR_CT_NAT_FWD && val.type != WEIR_CT_NAT_REV) return std::nullopt;
  bool a_is_client = (val.flags & WEIR_CT_F_A_IS_CLIENT) != 0;
  Ipv4 a = Ipv4::from_network_order(key.addr_a), b = Ipv4::from_network_order(key.addr_b);
  uint16_t pa = to_host16(key.port_a), pb = to_host16(key.port_b);
  CtNatFlow f;
  f.client = a_is_client ? a : b;
  f.client_port = a_is_client ? pa : pb;
  Ipv4 peer = a_is_client ? b : a;
  uint16_t peer_port = a_is_client ? pb : pa;
  Ipv4 nat = Ipv4::from_network_order(val.nat_addr);
  uint16_t nat_port = to_host16(val.nat_port);
  if (val.type == WEIR_CT_NAT_FWD) {
    f.frontend = FrontendKey{peer, peer_port, key.proto};
    f.backend = Backend{nat, nat_port};
  } else {
    f.frontend = FrontendKey{nat, nat_port, key.proto};
    f.backend = Backend{peer, peer_port};
  }
  return f;
}

bool ct_backend_valid(const BackendIndex& index, const CtNatFlow& flow) {
  return index.contains(flow.frontend, flow.backend);
}

weir_ct_key ct_make_key(Ipv4 a, uint16_t a_port, Ipv4 b, uint16_t b_port, uint8_t proto,
                        bool* a_is_first) {
  uint32_t an = a.network_order(), bn = b.network_order();
  uint16_t apn = to_net16(a_port), bpn = to_net16(b_port);
  bool first = an < bn || (an == bn && apn <= bpn);
  weir_ct_key k{};
  k.proto = proto;
  if (first) {
    k.addr_a = an, k.port_a = apn, k.addr_b = bn, k.port_b = bpn;
  } else {
    k.addr_a = bn, k.port_a = bpn, k.addr_b = an, k.port_b = apn;
  }
  if (a_is_first) *a_is_first = first;
  return k;
}

std::optional<weir_ct_key> ct_partner_key(const weir_ct_key& key, const weir_ct_val& val) {
  auto f = ct_nat_flow(key, val);
  if (!f) return std::nullopt;
  if (val.type == WEIR_CT_NAT_FWD)
    return ct_make_key(f->client, f->client_port, f->backend.ip, f->backend.port, key.proto);
  return ct_make_key(f->client, f->client_port, f->frontend.vip, f->frontend.port, key.proto);
}

std::string_view to_string(CtVerdict v) {
  switch (v) {
    case CtVerdict::Keep:
      return "keep";
    case CtVerdict::Expired:
      return "expired";
    case CtVerdict::StaleBackend:
      return "stale-backend";
  }
  return "?";
}

CtVerdict ct_decide(const weir_ct_key& key, const weir_ct_val& val, uint64_t last_seen_ns,
                    uint64_t now_ns, const model::ConntrackTimeouts& timeouts,
                    const BackendIndex* backends) {
  if (backends) {
    if (auto f = ct_nat_flow(key, val); f && !ct_backend_valid(*backends, *f))
      return CtVerdict::StaleBackend;
  }
  if (ct_expired(key.proto, val.a.flags, val.b.flags, ct_age_ns(now_ns, last_seen_ns), timeouts))
    return CtVerdict::Expired;
  return CtVerdict::Keep;
}

}  // namespace weir::calc
