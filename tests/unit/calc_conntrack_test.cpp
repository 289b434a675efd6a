// calc/conntrack.h: conntrack scanner decisions.
#include <gtest/gtest.h>

#include <cstring>

#include "calc/conntrack.h"

namespace weir::calc {
namespace {

using namespace std::chrono_literals;
using model::ConntrackTimeouts;
using model::Ipv4;

constexpr uint32_t SYN = WEIR_CT_LEG_SYN, FIN = WEIR_CT_LEG_FIN, RST = WEIR_CT_LEG_RST,
                   ACK = WEIR_CT_LEG_ACK;
constexpr uint8_t TCP = WEIR_IPPROTO_TCP, UDP = WEIR_IPPROTO_UDP, ICMP = WEIR_IPPROTO_ICMP;
constexpr uint8_t GRE = 47;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

uint64_t ns(std::chrono::nanoseconds d) { return static_cast<uint64_t>(d.count()); }

TEST(CtState, Tcp) {
  EXPECT_EQ(ct_state(TCP, SYN, 0), CtState::TcpSynSent);
  EXPECT_EQ(ct_state(TCP, 0, SYN | ACK), CtState::TcpSynSent);
  EXPECT_EQ(ct_state(TCP, SYN | ACK, 0), CtState::TcpSynSent);
  // SYN-ACK answered, the initiator's final ACK not seen yet: not established (a SYN flood
  // whose SYN-ACKs go unanswered expires with the SYN-SENT timeout, not in an hour).
  EXPECT_EQ(ct_state(TCP, SYN, SYN | ACK), CtState::TcpSynRecv);
  EXPECT_EQ(ct_state(TCP, SYN | ACK, SYN | ACK), CtState::TcpEstablished);
  // A SYN answered by an ACK without SYN (a challenge ACK) is no handshake.
  EXPECT_EQ(ct_state(TCP, SYN | ACK, ACK), CtState::TcpSynSent);
  EXPECT_EQ(ct_state(TCP, ACK, ACK), CtState::TcpEstablished);  // picked up mid-stream
  EXPECT_EQ(ct_state(TCP, ACK, 0), CtState::TcpSynSent);
  EXPECT_EQ(ct_state(TCP, 0, 0), CtState::TcpSynSent);
  EXPECT_EQ(ct_state(TCP, SYN | ACK | FIN, SYN | ACK), CtState::TcpFinWait);
  EXPECT_EQ(ct_state(TCP, SYN | ACK, SYN | ACK | FIN), CtState::TcpFinWait);
  EXPECT_EQ(ct_state(TCP, SYN | FIN, SYN | FIN), CtState::TcpClosed);
  EXPECT_EQ(ct_state(TCP, SYN | ACK | RST, SYN | ACK), CtState::TcpReset);
  EXPECT_EQ(ct_state(TCP, SYN | FIN, RST), CtState::TcpReset);  // RST beats FIN
  EXPECT_EQ(ct_state(TCP, SYN, RST), CtState::TcpReset);
}

TEST(CtState, OtherProtocolsIgnoreFlags) {
  EXPECT_EQ(ct_state(UDP, 0, 0), CtState::Udp);
  EXPECT_EQ(ct_state(UDP, RST, FIN), CtState::Udp);
  EXPECT_EQ(ct_state(ICMP, 0, 0), CtState::Icmp);
  EXPECT_EQ(ct_state(GRE, SYN, SYN), CtState::Other);
  EXPECT_EQ(to_string(CtState::TcpSynSent), "SYN-SENT");
  EXPECT_EQ(to_string(CtState::TcpEstablished), "ESTABLISHED");
}

struct Boundary {
  const char* name;
  uint8_t proto;
  uint32_t a, b;
  std::chrono::nanoseconds timeout;
};

// Every state at its boundary: kept at exactly the timeout, expired 1ns later; with defaults and
// with custom timeouts (so the right field is read, not a constant).
TEST(CtExpired, EachStateAtItsBoundary) {
  ConntrackTimeouts def;
  ConntrackTimeouts custom{1s, 2s, 3s, 4s, 5s, 6s, 7s};
  for (const ConntrackTimeouts& t : {def, custom}) {
    const Boundary cases[] = {
        {"syn-sent", TCP, SYN, 0, t.tcp_syn_sent},
        {"syn-sent (challenge ACK)", TCP, SYN | ACK, ACK, t.tcp_syn_sent},
        {"syn-recv", TCP, SYN, SYN | ACK, t.tcp_syn_sent},
        {"established", TCP, SYN | ACK, SYN | ACK, t.tcp_established},
        {"fin-wait", TCP, SYN | ACK | FIN, SYN | ACK, t.tcp_fin},
        {"closed", TCP, SYN | ACK | FIN, SYN | ACK | FIN, t.tcp_fin},
        {"reset", TCP, SYN | ACK, RST, t.tcp_reset},
        {"udp", UDP, 0, 0, t.udp},
        {"icmp", ICMP, 0, 0, t.icmp},
        {"other", GRE, 0, 0, t.other},
    };
    for (const auto& c : cases) {
      EXPECT_FALSE(ct_expired(c.proto, c.a, c.b, 0, t)) << c.name;
      EXPECT_FALSE(ct_expired(c.proto, c.a, c.b, ns(c.timeout) - 1, t)) << c.name;
      EXPECT_FALSE(ct_expired(c.proto, c.a, c.b, ns(c.timeout), t)) << c.name;
      EXPECT_TRUE(ct_expired(c.proto, c.a, c.b, ns(c.timeout) + 1, t)) << c.name;
    }
  }
  EXPECT_EQ(ct_timeout(CtState::TcpEstablished, def), 1h);
  EXPECT_EQ(ct_timeout(CtState::Other, def), 10min);
  EXPECT_EQ(ct_timeout(CtState::TcpReset, custom), 4s);
}

TEST(CtExpired, DefaultTimeoutsFromTheDesign) {
  ConntrackTimeouts t;
  // An established TCP flow idle 59 minutes stays; a SYN-SENT one idle 21s goes.
  EXPECT_FALSE(ct_expired(TCP, SYN | ACK, SYN | ACK, ns(59min), t));
  EXPECT_TRUE(ct_expired(TCP, SYN, 0, ns(21s), t));
  EXPECT_TRUE(ct_expired(UDP, 0, 0, ns(61s), t));
  EXPECT_FALSE(ct_expired(UDP, 0, 0, ns(59s), t));
}

TEST(CtAge, ClampsFutureLastSeen) {
  EXPECT_EQ(ct_age_ns(100, 40), 60u);
  EXPECT_EQ(ct_age_ns(100, 100), 0u);
  EXPECT_EQ(ct_age_ns(100, 150), 0u);
}

// ---------------------------------------------------------------- NAT flows

std::vector<Frontend> frontends() {
  Frontend fe;
  fe.key = FrontendKey{ip("10.96.0.30"), 80, TCP};
  fe.service = "default/api:http";
  fe.backends = {Backend{ip("10.65.0.2"), 8080}, Backend{ip("10.65.1.2"), 8080}};
  Frontend empty;
  empty.key = FrontendKey{ip("10.96.0.31"), 53, UDP};
  return {fe, empty};
}

// A NAT pair for client 10.65.0.9:40000 -> VIP 10.96.0.30:80 -> backend, as the TC program writes
// it.
std::pair<std::pair<weir_ct_key, weir_ct_val>, std::pair<weir_ct_key, weir_ct_val>> nat_pair(
    Ipv4 client, uint16_t cport, Ipv4 vip, uint16_t vport, Ipv4 backend, uint16_t bport) {
  bool client_first = false;
  weir_ct_val fwd{};
  fwd.type = WEIR_CT_NAT_FWD;
  weir_ct_key fk = ct_make_key(client, cport, vip, vport, TCP, &client_first);
  fwd.flags = client_first ? WEIR_CT_F_A_IS_CLIENT : 0;
  fwd.nat_addr = backend.network_order();
  fwd.nat_port = static_cast<uint16_t>((bport >> 8) | (bport << 8));
  weir_ct_val rev{};
  rev.type = WEIR_CT_NAT_REV;
  weir_ct_key rk = ct_make_key(client, cport, backend, bport, TCP, &client_first);
  rev.flags = client_first ? WEIR_CT_F_A_IS_CLIENT : 0;
  rev.nat_addr = vip.network_order();
  rev.nat_port = static_cast<uint16_t>((vport >> 8) | (vport << 8));
  return {{fk, fwd}, {rk, rev}};
}

TEST(CtMakeKey, NormalisesOnNetworkOrderValues) {
  bool first = false;
  weir_ct_key k1 = ct_make_key(ip("10.0.0.1"), 1000, ip("10.0.0.2"), 80, TCP, &first);
  weir_ct_key k2 = ct_make_key(ip("10.0.0.2"), 80, ip("10.0.0.1"), 1000, TCP);
  EXPECT_EQ(0, memcmp(&k1, &k2, sizeof(k1)));  // both directions map to the same key
  // Side A is the lower pair compared as raw network-order values, exactly as the BPF side does
  // (not in numeric address order).
  uint32_t n1 = ip("10.0.0.1").network_order(), n2 = ip("10.0.0.2").network_order();
  EXPECT_EQ(first, n1 < n2);
  EXPECT_EQ(k1.addr_a, std::min(n1, n2));
  EXPECT_EQ(k1.proto, TCP);
  EXPECT_EQ(k1.pad[0] | k1.pad[1] | k1.pad[2], 0);
  // Same address: ports decide, compared as raw network-order u16.
  weir_ct_key k3 = ct_make_key(ip("10.0.0.1"), 0x0102, ip("10.0.0.1"), 0x0201, UDP, &first);
  uint16_t p1 = 0x0201, p2 = 0x0102;  // network-order raw values of 0x0102 and 0x0201
  EXPECT_EQ(first, p1 <= p2);
  EXPECT_EQ(k3.port_a, std::min(p1, p2));
}

TEST(CtNatFlow, DecodesBothHalves) {
  for (auto client : {ip("10.65.0.9"), ip("10.200.0.1"), ip("1.1.1.1")}) {
    auto [fwd, rev] = nat_pair(client, 40000, ip("10.96.0.30"), 80, ip("10.65.1.2"), 8080);
    auto f = ct_nat_flow(fwd.first, fwd.second);
    auto r = ct_nat_flow(rev.first, rev.second);
    ASSERT_TRUE(f);
    ASSERT_TRUE(r);
    CtNatFlow want{FrontendKey{ip("10.96.0.30"), 80, TCP}, Backend{ip("10.65.1.2"), 8080}, client,
                   40000};
    EXPECT_EQ(*f, want) << client.str();
    EXPECT_EQ(*r, want) << client.str();
    // Partner keys point at each other.
    auto pf = ct_partner_key(fwd.first, fwd.second);
    auto pr = ct_partner_key(rev.first, rev.second);
    ASSERT_TRUE(pf && pr);
    EXPECT_EQ(0, memcmp(&*pf, &rev.first, sizeof(weir_ct_key)));
    EXPECT_EQ(0, memcmp(&*pr, &fwd.first, sizeof(weir_ct_key)));
  }
  weir_ct_val normal{};
  normal.type = WEIR_CT_NORMAL;
  EXPECT_FALSE(ct_nat_flow(weir_ct_key{}, normal));
  EXPECT_FALSE(ct_partner_key(weir_ct_key{}, normal));
}

TEST(CtBackendValid, OnlyCurrentBackendsOfThatFrontend) {
  BackendIndex idx(frontends());
  EXPECT_EQ(idx.size(), 2u);
  FrontendKey fe{ip("10.96.0.30"), 80, TCP};
  EXPECT_TRUE(idx.has_frontend(fe));
  EXPECT_TRUE(idx.has_frontend(FrontendKey{ip("10.96.0.31"), 53, UDP}));
  EXPECT_TRUE(
      ct_backend_valid(idx, CtNatFlow{fe, Backend{ip("10.65.0.2"), 8080}, ip("1.2.3.4"), 1}));
  // Same IP, other port; other IP; same backend under another protocol or VIP: all invalid.
  EXPECT_FALSE(
      ct_backend_valid(idx, CtNatFlow{fe, Backend{ip("10.65.0.2"), 8081}, ip("1.2.3.4"), 1}));
  EXPECT_FALSE(
      ct_backend_valid(idx, CtNatFlow{fe, Backend{ip("10.65.0.3"), 8080}, ip("1.2.3.4"), 1}));
  EXPECT_FALSE(ct_backend_valid(
      idx,
      CtNatFlow{FrontendKey{ip("10.96.0.30"), 80, UDP}, Backend{ip("10.65.0.2"), 8080}, {}, 1}));
  EXPECT_FALSE(ct_backend_valid(
      idx,
      CtNatFlow{FrontendKey{ip("10.96.0.99"), 80, TCP}, Backend{ip("10.65.0.2"), 8080}, {}, 1}));
}

TEST(CtBackendValid, IndexFollowsUpdates) {
  auto fes = frontends();
  BackendIndex idx(fes);
  FrontendKey fe{ip("10.96.0.30"), 80, TCP};
  Backend old_be{ip("10.65.0.2"), 8080}, new_be{ip("10.65.0.7"), 8080};
  ASSERT_TRUE(idx.contains(fe, old_be));
  // The frontend's backends replaced; another frontend added; the UDP one removed.
  Frontend changed = fes[0].key == fe ? fes[0] : fes[1];
  changed.backends = {new_be};
  Frontend added;
  added.key = FrontendKey{ip("10.96.0.40"), 443, TCP};
  added.backends = {Backend{ip("10.65.0.8"), 8443}, Backend{ip("10.65.0.9"), 8443}};
  EXPECT_TRUE(idx.loses_backends(changed));  // 10.65.0.2 and 10.65.1.2 go
  Frontend grown = fes[0].key == fe ? fes[0] : fes[1];
  grown.backends.push_back(new_be);
  EXPECT_FALSE(idx.loses_backends(grown));  // only an addition
  EXPECT_FALSE(idx.loses_backends(added));  // not in the index yet
  idx.update({changed, added}, {FrontendKey{ip("10.96.0.31"), 53, UDP}});
  EXPECT_FALSE(idx.contains(fe, old_be));
  EXPECT_TRUE(idx.contains(fe, new_be));
  EXPECT_TRUE(idx.contains(added.key, Backend{ip("10.65.0.9"), 8443}));
  EXPECT_FALSE(idx.has_frontend(FrontendKey{ip("10.96.0.31"), 53, UDP}));
  EXPECT_EQ(idx.size(), 3u);
}

TEST(CtDecide, StaleBackendExpiredKeep) {
  BackendIndex idx(frontends());
  ConntrackTimeouts t;
  const uint64_t now = ns(10h);
  auto [fwd, rev] = nat_pair(ip("10.65.0.9"), 40000, ip("10.96.0.30"), 80, ip("10.65.1.2"), 8080);
  fwd.second.a.flags = fwd.second.b.flags = SYN | ACK;
  EXPECT_EQ(ct_decide(fwd.first, fwd.second, now - ns(1s), now, t, &idx), CtVerdict::Keep);
  EXPECT_EQ(ct_decide(fwd.first, fwd.second, now - ns(1h) - 1, now, t, &idx), CtVerdict::Expired);
  EXPECT_EQ(ct_decide(fwd.first, fwd.second, now - ns(1h), now, t, &idx), CtVerdict::Keep);

  auto [sfwd, srev] = nat_pair(ip("10.65.0.9"), 40001, ip("10.96.0.30"), 80, ip("10.65.7.7"), 8080);
  EXPECT_EQ(ct_decide(sfwd.first, sfwd.second, now, now, t, &idx), CtVerdict::StaleBackend);
  EXPECT_EQ(ct_decide(srev.first, srev.second, now, now, t, &idx), CtVerdict::StaleBackend);
  EXPECT_EQ(ct_decide(sfwd.first, sfwd.second, now, now, t, nullptr), CtVerdict::Keep);

  // A plain flow is never a stale backend.
  weir_ct_key k = ct_make_key(ip("10.65.0.9"), 5, ip("10.65.0.2"), 6, UDP);
  weir_ct_val v{};
  v.type = WEIR_CT_NORMAL;
  EXPECT_EQ(ct_decide(k, v, now - ns(60s), now, t, &idx), CtVerdict::Keep);
  EXPECT_EQ(ct_decide(k, v, now - ns(60s) - 1, now, t, &idx), CtVerdict::Expired);
  EXPECT_EQ(to_string(CtVerdict::StaleBackend), "stale-backend");
}

}  // namespace
}  // namespace weir::calc
