// VXLAN between nodes (bpf/lib/tunnel.h, docs/packet-path.md section 12): weir_from_wl hands what
// it would give the host stack for a pod on another node to weir_vxlan_encap (a tail call through
// weir_tun_jump1), which encapsulates it and redirects it to the underlay; weir_from_ul, on the
// underlay's tc ingress, decapsulates VXLAN for this node's pods from known nodes and passes
// everything else. Vectors through BPF_PROG_TEST_RUN (frames, verdicts, counters by reason), the
// configuration written through the agent's API (TcPrograms::set_tunnel / set_vteps), and one
// pass over real veths with the programs attached (VxlanWire: the redirects as the kernel
// carries them out, which BPF_PROG_TEST_RUN does not do).
//
// The test node is node A (kNodeA on the underlay veth "weirul0"); node B (kNodeB) runs the pods
// of 10.66.2.0/24; kNodeC is a host on the underlay that is not a node.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>

#include "bpf/attach.h"
#include "bpf/bpffs.h"
#include "dataplane/tunnel.h"
#include "polprog/compiler.h"
#include "shell.h"
#include "tc_fixture.h"
#include "util/fd.h"
#include "weir/maps.h"
#include "weir/tunnel.h"

namespace weir::test {
namespace {

inline const uint32_t kNodeA = ip4("192.168.200.2");  // this node's underlay address
inline const uint32_t kNodeB = ip4("192.168.200.3");  // another node
inline const uint32_t kNodeC = ip4("192.168.200.9");  // on the underlay, not a node
inline const Mac kNodeAMac{0x52, 0x54, 0x00, 0xc8, 0x00, 0x02};
inline const Mac kNodeBMac{0x52, 0x54, 0x00, 0xc8, 0x00, 0x03};
inline const uint32_t kRemoteNet = ip4("10.66.2.0");  // node B's pods (/24)
inline const uint32_t kRemotePod = ip4("10.66.2.7");
inline const uint32_t kRemoteBe = ip4("10.66.2.9");  // a service backend on node B
inline const Mac kRemotePodMac{0x02, 0x00, 0x00, 0x66, 0x02, 0x07};
inline const Mac kRemoteGwMac{0xee, 0xee, 0x00, 0x66, 0x02, 0x07};
constexpr uint32_t kVni = 4096;  // the defaults of DataplaneConfig
constexpr uint16_t kPort = 4789;
constexpr uint32_t kVni2 = 0xabcdef;  // a VNI using all 24 bits, with...
constexpr uint16_t kPort2 = 8472;     // ...a non-default port (Linux's historical one)
constexpr uint16_t kVipRemotePort = 82;
constexpr uint32_t kSvcRemote = 11;
constexpr size_t kOverhead = WEIR_VXLAN_OVERHEAD;

uint16_t rd16(const Bytes& b, size_t off) { return uint16_t(b[off] << 8 | b[off + 1]); }
uint32_t rd32(const Bytes& b, size_t off) {
  return uint32_t(rd16(b, off)) << 16 | rd16(b, off + 2);
}
// The IPv4 address at `off` of a frame, dotted.
std::string ip_at(const Bytes& b, size_t off) {
  uint32_t a = 0;
  std::memcpy(&a, &b[off], sizeof(a));
  return ip4_str(a);
}

Bytes vxlan_hdr(uint32_t vni, uint8_t flags = WEIR_VXLAN_F_VNI) {
  return {flags, 0, 0, 0, uint8_t(vni >> 16), uint8_t(vni >> 8), uint8_t(vni), 0};
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The frame weir_vxlan_encap makes of `inner` (as from_wl left it), built independently: the
// Ethernet header kept (the kernel's neighbour output rewrites it), outer IPv4 (DF, TTL 64, DSCP
// of the inner packet), UDP without checksum, VXLAN with the I flag. The source port comes from
// the flow hash: the caller takes it from the output.
Bytes encapsulated(const Bytes& inner, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                   uint32_t vni) {
  PacketSpec s;
  std::copy(inner.begin(), inner.begin() + 6, s.eth.dst.begin());
  std::copy(inner.begin() + 6, inner.begin() + 12, s.eth.src.begin());
  s.ip.saddr = src;
  s.ip.daddr = dst;
  s.ip.df = true;
  s.ip.ttl = 64;
  s.ip.tos = uint8_t(inner[15] & 0xfc);
  UdpSpec u;
  u.sport = sport;
  u.dport = dport;
  u.no_checksum = true;
  s.l4 = u;
  s.payload = cat(vxlan_hdr(vni), inner);
  return build(s);
}

// VXLAN as another node sends it to this one: `inner` after the headers.
PacketSpec vxlan_pkt(const Bytes& inner, uint32_t src = kNodeB, uint32_t dst = kNodeA,
                     uint16_t dport = kPort, uint32_t vni = kVni) {
  PacketSpec s;
  s.eth.src = kNodeBMac;
  s.eth.dst = kNodeAMac;
  s.ip.saddr = src;
  s.ip.daddr = dst;
  s.ip.df = true;
  s.ip.id = 0x4242;
  UdpSpec u;
  u.sport = 51234;
  u.dport = dport;
  u.no_checksum = true;
  s.l4 = u;
  s.payload = cat(vxlan_hdr(vni), inner);
  return s;
}

// A datagram from the pod of node B to the client pod of this node, as node B puts it in VXLAN.
PacketSpec remote_to_client() {
  return udp_pkt(kRemotePodMac, kRemoteGwMac, kRemotePod, 5353, kClientIp, 40001);
}

// The underlay veth of the test namespace (node A's interface): created once per process.
uint32_t underlay_if() {
  static const uint32_t ifindex = [] {
    auto r = add_veth("weirul0", "weirul1");
    return r.ok() ? r->first : 0u;
  }();
  return ifindex;
}

class VxlanTest : public TcTest {
 protected:
  void SetUp() override {
    TcTest::SetUp();
    if (HasFatalFailure()) return;
    ul_if = underlay_if();
    ASSERT_GT(ul_if, 0u) << "creating the underlay veth weirul0";
    weir_route_val rt{};
    rt.flags = WEIR_RT_F_REMOTE | WEIR_RT_F_IN_POOL;
    rt.next_hop = kNodeB;
    ASSERT_TRUE(tc->put_route(kRemoteNet, 24, rt).ok());
    auto st = tc->programs().set_vteps({model::Ipv4::from_network_order(kNodeB)});
    ASSERT_TRUE(st.ok()) << st.error().str();
  }

  // VXLAN on, as the agent writes it (dataplane::set_tunnel), for node `addr`.
  void enable(uint32_t vni = kVni, uint16_t port = kPort, uint32_t addr = kNodeA) {
    dataplane::TunnelConfig c;
    c.vxlan_enabled = true;
    c.vni = vni;
    c.port = port;
    c.underlay_ifindex = ul_if;
    c.underlay_addr = model::Ipv4::from_network_order(addr);
    auto st = tc->programs().set_tunnel(c);
    ASSERT_TRUE(st.ok()) << st.error().str();
  }

  TestRun from_ul(const Bytes& frame) { return run(Prog::FromUl, ul_if, frame); }

  // Checks every field of an encapsulated frame one by one (what each assertion names), then the
  // whole frame against the independently built one. Returns the UDP source port.
  static uint16_t expect_vxlan(const Bytes& out, const Bytes& inner, uint32_t vni, uint16_t port,
                               uint32_t src = kNodeA, uint32_t dst = kNodeB) {
    EXPECT_EQ(out.size(), inner.size() + kOverhead);
    if (out.size() != inner.size() + kOverhead) return 0;
    EXPECT_EQ(Bytes(out.begin(), out.begin() + 12), Bytes(inner.begin(), inner.begin() + 12))
        << "outer Ethernet addresses: the original ones (the neighbour output writes them)";
    EXPECT_EQ(rd16(out, 12), kEthIPv4);
    const size_t ip = 14, udp = 34, vx = 42;
    EXPECT_EQ(out[ip], 0x45) << "version 4, IHL 5";
    EXPECT_EQ(out[ip + 1], inner[15] & 0xfc) << "DSCP copied, ECN not-ECT";
    EXPECT_EQ(rd16(out, ip + 2), inner.size() + 36) << "outer total length";
    EXPECT_EQ(rd16(out, ip + 6), 0x4000) << "DF, no fragment";
    EXPECT_EQ(out[ip + 8], 64) << "TTL";
    EXPECT_EQ(out[ip + 9], 17) << "UDP";
    EXPECT_EQ(ip_at(out, ip + 12), ip4_str(src));
    EXPECT_EQ(ip_at(out, ip + 16), ip4_str(dst));
    EXPECT_EQ(verify::check_ip_header(out, ip, "outer"), "");
    const uint16_t sport = rd16(out, udp);
    EXPECT_GE(sport, WEIR_VXLAN_SPORT_MIN);
    EXPECT_LE(sport, WEIR_VXLAN_SPORT_MAX);
    EXPECT_EQ(rd16(out, udp + 2), port) << "UDP destination port";
    EXPECT_EQ(rd16(out, udp + 4), inner.size() + 16) << "UDP length";
    EXPECT_EQ(rd16(out, udp + 6), 0) << "UDP checksum: none";
    EXPECT_EQ(out[vx], 0x08) << "VXLAN flags: I";
    EXPECT_EQ(rd32(out, vx + 4), vni << 8) << "VNI";
    EXPECT_EQ(Bytes(out.begin() + kOverhead, out.end()), inner) << "the inner frame, unchanged";
    EXPECT_FRAME(out, encapsulated(inner, src, dst, sport, port, vni));
    return sport;
  }

  uint32_t ul_if = 0;
};

// ------------------------------------------------------------------ encapsulation

TEST_F(VxlanTest, TcpSynToARemotePodLeavesEncapsulated) {
  enable();
  auto syn = client_tcp(40000, kRemotePod, 80, kTcpSyn, 7);
  syn.ip.tos = 0x2a;  // DSCP 10 + ECT(0): DSCP goes out, ECN does not
  const Bytes in = build(syn);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  expect_vxlan(r.out, in, kVni, kPort);
  EXPECT_EQ(only_outcome(client_if, kIngress),
            std::make_pair(int(WEIR_CNT_REDIRECT_NEIGH), uint64_t(1)));
  auto e = ct(kClientIp, 40000, kRemotePod, 80, kTcp);
  ASSERT_TRUE(e.has_value()) << "the flow is tracked on the sender's node as before";
  EXPECT_EQ(leg_of(*e, kRemotePod, 80, kClientIp, 40000).flags, 0u)
      << "the remote pod is no workload here";
}

TEST_F(VxlanTest, UdpWithAConfiguredVniAndPort) {
  enable(kVni2, kPort2);
  const auto q = client_udp(40002, kRemotePod, 53);
  auto r = from_wl(client_if, q);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  expect_vxlan(r.out, build(q), kVni2, kPort2);
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_REDIRECT_NEIGH);
}

TEST_F(VxlanTest, EstablishedPacketsFollowWithTheSameSourcePort) {
  enable();
  auto r1 = from_wl(client_if, client_tcp(40004, kRemotePod, 80, kTcpSyn, 7));
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  // The client's next segment hits conntrack (established path of from_wl).
  const auto ack = client_tcp(40004, kRemotePod, 80, kTcpAck, 8, 1001);
  auto r2 = from_wl(client_if, ack);
  EXPECT_EQ(r2.retval, TC_ACT_REDIRECT);
  const uint16_t sport = expect_vxlan(r2.out, build(ack), kVni, kPort);
  EXPECT_EQ(sport, rd16(r1.out, 34)) << "one flow, one UDP source port (flow hash)";
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_NEIGH), 2u);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_TOTAL), 2u);
}

TEST_F(VxlanTest, ClusterIpWithARemoteBackendIsDnatedThenEncapsulated) {
  enable();
  add_service(kVip, kVipRemotePort, kTcp, kSvcRemote, {{kRemoteBe, kBeTcpPort}});
  const auto syn = client_tcp(40006, kVip, kVipRemotePort, kTcpSyn, 7);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  auto dnated = syn;
  dnated.ip.daddr = kRemoteBe;
  tcp_of(dnated).dport = kBeTcpPort;
  expect_vxlan(r.out, build(dnated), kVni, kPort);
  const Bytes inner(r.out.begin() + kOverhead, r.out.end());
  EXPECT_CSUMS(inner) << "inner IP and TCP checksums after DNAT";
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_REDIRECT_NEIGH);
  EXPECT_TRUE(ct(kClientIp, 40006, kVip, kVipRemotePort, kTcp).has_value()) << "NAT_FWD";
  EXPECT_TRUE(ct(kClientIp, 40006, kRemoteBe, kBeTcpPort, kTcp).has_value()) << "NAT_REV";
}

TEST_F(VxlanTest, LaterFragmentsFollowTheirFirstIntoTheTunnel) {
  // Through a ClusterIP whose backend is on node B: the later fragment is DNATed like its first
  // and, like it, goes into the tunnel (it is the destination after DNAT that is remote).
  enable();
  add_service(kVip, kVipRemotePort, kUdp, kSvcRemote, {{kRemoteBe, kBeUdpPort}});
  auto first = client_udp(40008, kVip, kVipRemotePort);
  first.ip.id = 77;
  first.ip.mf = true;
  first.payload.assign(32, 0x5a);
  auto r1 = from_wl(client_if, first);
  EXPECT_EQ(r1.retval, TC_ACT_REDIRECT);
  auto first_nat = first;
  first_nat.ip.daddr = kRemoteBe;
  udp_of(first_nat).dport = kBeUdpPort;
  udp_of(first_nat).check = rd16(r1.out, kOverhead + 14 + 20 + 6);  // of the whole datagram
  expect_vxlan(r1.out, build(first_nat), kVni, kPort);
  PacketSpec later;
  later.eth = first.eth;
  later.ip = first.ip;
  later.ip.proto = kUdp;
  later.ip.mf = false;
  later.ip.frag_offset = (8 + 32) / 8;
  later.payload.assign(16, 0xa5);
  auto r2 = from_wl(client_if, later);
  EXPECT_EQ(r2.retval, TC_ACT_REDIRECT);
  auto later_nat = later;
  later_nat.ip.daddr = kRemoteBe;
  expect_vxlan(r2.out, build(later_nat), kVni, kPort);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_NEIGH), 2u);
}

TEST_F(VxlanTest, AfterAnEgressPolicyAllowTheOutcomeStaysByPolicy) {
  enable();
  namespace pol = calc::pol;
  pol::Rule allow;
  allow.id = 0x77;
  allow.action = pol::Action::Allow;
  pol::EndpointPolicy ep;
  ep.direction = pol::Direction::Egress;
  ep.tiers = {pol::Tier{"default", {pol::Policy{"default/allow-all", {allow}}}, pol::Action::Deny}};
  polprog::CompileOptions opts;
  opts.slot_of_chunk = [](size_t) -> uint32_t { return WEIR_JUMP_FIRST_POLICY_SLOT + 1; };
  auto compiled = polprog::compile(ep, opts);
  ASSERT_TRUE(compiled.ok()) << compiled.error().str();
  ASSERT_EQ(compiled->chunks.size(), 1u);
  polprog::PolicyMapFds fds = tc->policy_map_fds();
  auto loaded = polprog::load(*compiled, fds, "weir_t_vxpol");
  ASSERT_TRUE(loaded.ok()) << loaded.error().str();
  const uint32_t slot = WEIR_JUMP_FIRST_POLICY_SLOT;
  const int pfd = loaded->chunks[0].get();
  ASSERT_EQ(bpf_map_update_elem(tc->map_fd(WEIR_MAP_JUMP), &slot, &pfd, BPF_ANY), 0)
      << strerror(errno);
  weir_ifstate_val v{};
  ASSERT_EQ(bpf_map_lookup_elem(tc->map_fd(WEIR_MAP_IFSTATE), &client_if, &v), 0);
  v.egress_slot = slot;
  ASSERT_TRUE(tc->put_ifstate(client_if, v).ok());

  const auto q = client_udp(40010, kRemotePod, 53);
  auto r = from_wl(client_if, q);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  expect_vxlan(r.out, build(q), kVni, kPort);
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_ACCEPT_BY_POLICY)
      << "a packet a policy allowed counts as such, whatever its forwarding (docs/packet-path.md)";
}

TEST_F(VxlanTest, DisabledLeavesThePacketToTheHostStack) {
  // Tunnel map all zero (a fresh load): routed mode, as before VXLAN existed.
  const auto syn = client_tcp(40012, kRemotePod, 80, kTcpSyn);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FRAME(r.out, build(syn));
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_ACCEPT_NEW_FLOW);
  // Written off explicitly by the agent's API: the same.
  dataplane::TunnelConfig off;
  off.underlay_ifindex = ul_if;
  ASSERT_TRUE(tc->programs().set_tunnel(off).ok());
  auto r2 = from_wl(client_if, client_udp(40013, kRemotePod, 53));
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_NEW_FLOW), 2u);
}

TEST_F(VxlanTest, OnlyRemoteRoutesWithANextHopGoIntoTheTunnel) {
  enable();
  // A remote pod whose node has no Node resource (no next hop): the host stack, as before.
  weir_route_val nohop{};
  nohop.flags = WEIR_RT_F_REMOTE | WEIR_RT_F_IN_POOL;
  ASSERT_TRUE(tc->put_route(ip4("10.66.3.0"), 24, nohop).ok());
  auto r1 = from_wl(client_if, client_udp(40014, ip4("10.66.3.3"), 53));
  EXPECT_EQ(r1.retval, TC_ACT_OK);
  // Outside the pods' routes (the internet) and local pods: not tunnelled either.
  auto r2 = from_wl(client_if, client_udp(40015, kRemoteIp, 53));
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_NEW_FLOW), 2u);
  auto r3 = from_wl(client_if, client_udp(40016, kBe1Ip, 53));
  EXPECT_EQ(r3.retval, TC_ACT_REDIRECT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_PLAIN), 1u);
  // ARP from the pod: passed as always.
  PacketSpec arp;
  arp.eth.src = kClientMac;
  arp.eth.dst = kClientHostMac;
  arp.eth.type = kEthArp;
  arp.raw_l3 = Bytes(28, 0);
  EXPECT_EQ(from_wl(client_if, arp).retval, TC_ACT_OK);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_NON_IPV4), 1u);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_NEIGH), 0u);
}

TEST_F(VxlanTest, AFailedTailCallDropsRatherThanSendUnencapsulated) {
  enable();
  auto t = maps::TunnelMaps::from_fds(tc->map_fds());
  ASSERT_TRUE(t.ok()) << t.error().str();
  ASSERT_TRUE(t->tun_jump.remove(WEIR_TUN_JUMP_VXLAN_ENCAP).value());
  auto r = from_wl(client_if, client_udp(40018, kRemotePod, 53));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress),
            std::make_pair(int(WEIR_CNT_DROP_TAIL_CALL), uint64_t(1)));
}

// A UDP datagram of `ip_len` bytes of IP (header included) from the client, DF as given.
PacketSpec client_udp_of(uint16_t sport, uint32_t daddr, uint16_t dport, size_t ip_len, bool df) {
  auto q = client_udp(sport, daddr, dport);
  q.payload.assign(ip_len - 28, 0x33);
  q.ip.df = df;
  return q;
}

TEST_F(VxlanTest, TooBigForTheUnderlayIsAnsweredFragmentationNeeded) {
  enable();
  // The underlay veth's MTU is 1500: 1450 bytes of IP plus the 50 of the headers fit...
  const auto fits = client_udp_of(40020, kRemotePod, 53, 1450, true);
  auto r1 = from_wl(client_if, fits);
  EXPECT_EQ(r1.retval, TC_ACT_REDIRECT);
  expect_vxlan(r1.out, build(fits), kVni, kPort);
  // ...1451 do not: dropped, and the pod is told the MTU that fits (path MTU discovery).
  const auto big = client_udp_of(40022, kRemotePod, 53, 1451, true);
  const Bytes in = build(big);
  auto r2 = from_wl(client_if, big);
  EXPECT_EQ(r2.retval, TC_ACT_REDIRECT) << "the answer goes back out of the client's veth";
  PacketSpec want;
  want.eth.dst = kClientMac;
  want.eth.src = kClientHostMac;
  want.ip.tos = 0xc0;
  want.ip.ttl = 64;
  want.ip.saddr = kRemotePod;
  want.ip.daddr = kClientIp;
  IcmpSpec ic;
  ic.type = 3;
  ic.code = 4;
  ic.rest = 1500 - kOverhead;  // next-hop MTU in the low 16 bits
  want.l4 = ic;
  want.payload.assign(in.begin() + 14, in.begin() + 14 + 28);  // IP header + 8 bytes
  EXPECT_FRAME(r2.out, build(want));
  EXPECT_CSUMS(r2.out);
  EXPECT_EQ(r2.mark, 0u) << "no answer mark: to_wl handles it as an ICMP error about the flow";
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_ENCAP), 1u);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_NEIGH), 1u);
  // On its way to the pod, to_wl finds the flow and lets it through.
  auto r3 = run(Prog::ToWl, client_if, r2.out);
  EXPECT_EQ(r3.retval, TC_ACT_OK);
  EXPECT_FRAME(r3.out, r2.out);
  EXPECT_EQ(only_outcome(client_if, kEgress).first, WEIR_CNT_ACCEPT_ESTABLISHED);
}

TEST_F(VxlanTest, TooBigWithoutDfIsDroppedWithoutAnswer) {
  enable();
  auto r = from_wl(client_if, client_udp_of(40024, kRemotePod, 53, 1451, false));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress),
            std::make_pair(int(WEIR_CNT_DROP_ENCAP), uint64_t(1)));
}

// Flow events of the tunnel's programs: a packet weir_vxlan_encap drops sends its DROP (after
// the START from_wl sent for its new flow), with the pod's addresses; what is encapsulated or
// decapsulated and delivered sends nothing more. (weir_from_ul's drops: the test above.)
TEST_F(VxlanTest, AnEncapsulationDropSendsItsFlowEventAndADeliveryNone) {
  enable();
  (void)flow_events();
  enable_flow_events();
  auto r = from_wl(client_if, client_udp_of(40032, kRemotePod, 53, 1451, false));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  auto ev = flow_events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, WEIR_FLOW_EV_START) << "from_wl: the flow's conntrack entry, before the tail call";
  const weir_flow_event& d = ev[1];
  EXPECT_EQ(d.type, WEIR_FLOW_EV_DROP);
  EXPECT_EQ(d.reason, WEIR_CNT_DROP_ENCAP);
  EXPECT_EQ(d.flags, 0u);
  EXPECT_EQ(d.hook, WEIR_HOOK_INGRESS);
  EXPECT_EQ(d.ifindex, client_if);
  EXPECT_EQ(d.saddr, kClientIp);
  EXPECT_EQ(d.daddr, kRemotePod);
  EXPECT_EQ(ntohs(d.sport), 40032);
  EXPECT_EQ(ntohs(d.dport), 53);
  EXPECT_EQ(d.proto, kUdp);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_ENCAP), 1u);

  // Encapsulated (a new flow: its start only), and VXLAN delivered to a pod: nothing more.
  r = from_wl(client_if, client_udp_of(40034, kRemotePod, 53, 100, true));
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  ev = flow_events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, WEIR_FLOW_EV_START);
  EXPECT_EQ(from_ul(build(vxlan_pkt(build(remote_to_client())))).retval, TC_ACT_REDIRECT);
  EXPECT_TRUE(flow_events().empty());
}

TEST_F(VxlanTest, TooBigThroughAServiceIsAnsweredAboutTheVip) {
  enable();
  add_service(kVip, kVipRemotePort, kUdp, kSvcRemote, {{kRemoteBe, kBeUdpPort}});
  const auto big = client_udp_of(40026, kVip, kVipRemotePort, 1480, true);
  auto r = from_wl(client_if, big);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_ENCAP), 1u);
  // to_wl reverse-NATs the answer (section 8): from the VIP, quoting client -> VIP:port.
  auto r2 = run(Prog::ToWl, client_if, r.out);
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  ASSERT_GE(r2.out.size(), 14u + 20 + 8 + 28);
  EXPECT_EQ(ip_at(r2.out, 14 + 12), ip4_str(kVip));
  EXPECT_EQ(r2.out[34], 3);
  EXPECT_EQ(r2.out[35], 4);
  EXPECT_EQ(rd16(r2.out, 34 + 6), 1500 - kOverhead);
  EXPECT_EQ(ip_at(r2.out, 42 + 16), ip4_str(kVip)) << "quoted destination";
  EXPECT_EQ(rd16(r2.out, 42 + 20 + 2), kVipRemotePort) << "quoted destination port";
  EXPECT_CSUMS(r2.out);
  EXPECT_EQ(cnt(client_if, kEgress, WEIR_CNT_OTHER_ICMP_ERR_NAT), 1u);
}

// ------------------------------------------------------------------ decapsulation

TEST_F(VxlanTest, VxlanFromANodeIsDeliveredToThePod) {
  enable();
  const auto inner = remote_to_client();
  auto r = from_ul(build(vxlan_pkt(build(inner))));
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  auto want = inner;
  want.eth.dst = kClientMac;
  want.eth.src = kClientHostMac;
  EXPECT_FRAME(r.out, build(want));
  EXPECT_EQ(only_outcome(ul_if, kIngress),
            std::make_pair(int(WEIR_CNT_REDIRECT_PLAIN), uint64_t(1)));
  // At the pod's veth egress (where the redirect takes it), to_wl tracks it as any new flow.
  auto r2 = run(Prog::ToWl, client_if, r.out);
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  EXPECT_EQ(only_outcome(client_if, kEgress).first, WEIR_CNT_ACCEPT_NEW_FLOW);
  EXPECT_TRUE(ct(kRemotePod, 5353, kClientIp, 40001, kUdp).has_value());
}

TEST_F(VxlanTest, WhatOneNodeEncapsulatesTheOtherDecapsulates) {
  enable(kVni2, kPort2, kNodeA);
  const auto syn = client_tcp(40030, kRemotePod, 80, kTcpSyn, 9);
  auto r = from_wl(client_if, syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  // The same object plays node B now: kRemotePod is its pod behind be2's veth, node A its peer.
  enable(kVni2, kPort2, kNodeB);
  ASSERT_TRUE(tc->programs().set_vteps({model::Ipv4::from_network_order(kNodeA)}).ok());
  weir_route_val rt{};
  rt.flags = WEIR_RT_F_LOCAL_WORKLOAD | WEIR_RT_F_IN_POOL;
  rt.ifindex = be2_if;
  std::copy(kBe2Mac.begin(), kBe2Mac.end(), rt.mac);
  ASSERT_TRUE(tc->put_route(kRemotePod, 32, rt).ok());
  auto d = from_ul(r.out);
  EXPECT_EQ(d.retval, TC_ACT_REDIRECT);
  auto want = syn;
  want.eth.dst = kBe2Mac;
  want.eth.src = kBe2HostMac;
  EXPECT_FRAME(d.out, build(want));
  EXPECT_CSUMS(d.out);
  EXPECT_EQ(only_outcome(ul_if, kIngress).first, WEIR_CNT_REDIRECT_PLAIN);
}

// A VXLAN datagram from node B to the client: `inner` changes the inner packet, `outer` the
// outer one (its payload is the VXLAN header and the inner frame); `cut` > 0 truncates the frame.
struct Bad {
  std::string what;
  std::function<void(PacketSpec&)> outer = [](PacketSpec&) {};
  std::function<void(PacketSpec&)> inner = [](PacketSpec&) {};
  size_t cut = 0;
  int outcome = WEIR_CNT_DROP_DECAP;
};
using Spec = PacketSpec;

TEST_F(VxlanTest, MalformedOrForeignVxlanIsDroppedByReason) {
  enable(kVni2, kPort2);
  const auto none = [](Spec&) {};
  const std::vector<Bad> cases = {
      {"truncated after the UDP header (lengths honest)", [](Spec& o) { o.payload.clear(); }},
      {"frame cut short of the lengths it claims", none, none, 14 + 20 + 8 + 8 + 14 + 10},
      {"UDP length shorter than UDP + VXLAN + Ethernet + IPv4",
       [](Spec& o) { udp_of(o).len = 8 + 8 + 14 + 19; }},
      {"UDP length longer than the IP payload",
       [](Spec& o) { udp_of(o).len = uint16_t(8 + o.payload.size() + 1); }},
      {"wrong VNI", [](Spec& o) { o.payload[6] ^= 1; }},
      {"unknown source VTEP", [](Spec& o) { o.ip.saddr = kNodeC; }},
      {"I flag missing", [](Spec& o) { o.payload[0] = 0; }},
      {"inner destination not a pod of this node", none,
       [](Spec& i) { i.ip.daddr = ip4("10.65.0.99"); }},
      {"inner destination a pod of another node", none, [](Spec& i) { i.ip.daddr = kRemotePod; }},
      {"inner frame not IPv4", none, [](Spec& i) { i.eth.type = kEthArp; }},
      {"inner IPv4 version 6", none, [](Spec& i) { i.ip.version = 6; }},
      {"inner IPv4 IHL 4", none, [](Spec& i) { i.ip.ihl = 4; }},
      {"inner IPv4 length beyond the datagram", none,
       [](Spec& i) { i.ip.tot_len = 20 + 8 + 10 + 1; }},
      {"outer IP options",
       [](Spec& o) {
         o.ip.options = {1, 1, 1, 1};
       }},
      {"outer first fragment",
       [](Spec& o) {
         o.ip.df = false;
         o.ip.mf = true;
       }},
      {"outer IP header checksum wrong", [](Spec& o) { o.ip.check = 0x1234; }, none, 0,
       WEIR_CNT_DROP_BAD_CSUM},
  };
  (void)flow_events();
  enable_flow_events();
  for (const auto& c : cases) {
    auto inner = remote_to_client();
    c.inner(inner);
    PacketSpec outer = vxlan_pkt(build(inner), kNodeB, kNodeA, kPort2, kVni2);
    c.outer(outer);
    Bytes frame = build(outer);
    if (c.cut) frame = truncated(frame, c.cut);
    auto before = tc->counters(ul_if, kIngress);
    auto r = from_ul(frame);
    EXPECT_EQ(r.retval, TC_ACT_SHOT) << c.what;
    auto after = tc->counters(ul_if, kIngress);
    for (int i = WEIR_CNT_OUTCOME_FIRST; i < WEIR_CNT_OUTCOME_END; i++)
      EXPECT_EQ(after.c[i], before.c[i] + (i == c.outcome ? 1 : 0)) << c.what << ": counter " << i;
    // One flow event, the drop's: its counter, the outer headers as they arrived.
    auto ev = flow_events();
    ASSERT_EQ(ev.size(), 1u) << c.what;
    EXPECT_EQ(ev[0].type, WEIR_FLOW_EV_DROP) << c.what;
    EXPECT_EQ(ev[0].reason, c.outcome) << c.what;
    EXPECT_EQ(ev[0].flags, WEIR_FLOW_F_UNDERLAY) << c.what;
    EXPECT_EQ(ev[0].hook, WEIR_HOOK_INGRESS) << c.what;
    EXPECT_EQ(ev[0].ifindex, ul_if) << c.what;
    EXPECT_EQ(ev[0].saddr, outer.ip.saddr) << c.what;
    EXPECT_EQ(ev[0].daddr, kNodeA) << c.what;
    EXPECT_EQ(ev[0].proto, kUdp) << c.what;
    const bool ports = outer.ip.options.empty();  // read only from a header without options
    EXPECT_EQ(ntohs(ev[0].sport), ports ? 51234 : 0) << c.what;
    EXPECT_EQ(ntohs(ev[0].dport), ports ? kPort2 : 0) << c.what;
    EXPECT_EQ(ev[0].len, frame.size()) << c.what;
  }
  EXPECT_EQ(cnt(ul_if, kIngress, WEIR_CNT_TOTAL), cases.size());
}

// ------------------------------------------------------------------ the doctor's probe

// The inner frame of a `weir doctor` VXLAN probe (weir/tunnel.h), built from the header's layout.
Bytes probe_frame(uint64_t kind, uint32_t nonce, uint64_t magic = WEIR_VXLAN_PROBE_MAGIC) {
  Bytes b(12, 0);  // no Ethernet addresses
  b.push_back(WEIR_VXLAN_PROBE_ETHERTYPE >> 8);
  b.push_back(WEIR_VXLAN_PROBE_ETHERTYPE & 0xff);
  weir_vxlan_probe p{};
  p.magic_kind = magic | kind << 56;
  p.nonce = nonce;
  const auto* raw = reinterpret_cast<const uint8_t*>(&p);
  b.insert(b.end(), raw, raw + sizeof(p));
  return b;
}

TEST_F(VxlanTest, ADoctorsProbeFromANodeIsAnsweredBackOutOfTheUnderlay) {
  enable(kVni2, kPort2);
  const Bytes frame = build(vxlan_pkt(probe_frame(WEIR_VXLAN_PROBE_REQUEST, 0xdecafbad), kNodeB, kNodeA, kPort2, kVni2));
  auto r = from_ul(frame);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  ASSERT_EQ(r.out.size(), frame.size());
  const Bytes& o = r.out;
  EXPECT_EQ(Bytes(o.begin(), o.begin() + 6), Bytes(kNodeBMac.begin(), kNodeBMac.end())) << "back to the sender's MAC";
  EXPECT_EQ(Bytes(o.begin() + 6, o.begin() + 12), Bytes(kNodeAMac.begin(), kNodeAMac.end()));
  EXPECT_EQ(ip_at(o, 14 + 12), ip4_str(kNodeA));
  EXPECT_EQ(ip_at(o, 14 + 16), ip4_str(kNodeB));
  EXPECT_EQ(verify::check_ip_header(o, 14, "outer"), "") << "the swap keeps the IP checksum right";
  EXPECT_EQ(rd16(o, 34), kPort2) << "from the VXLAN port";
  EXPECT_EQ(rd16(o, 36), 51234) << "to the prober's port";
  EXPECT_EQ(rd16(o, 40), 0) << "UDP checksum: none";
  const Bytes want = probe_frame(WEIR_VXLAN_PROBE_REPLY, 0xdecafbad);
  EXPECT_EQ(Bytes(o.begin() + kOverhead, o.end()), want) << "the probe, now a reply with the same nonce";
  EXPECT_EQ(Bytes(o.begin() + 42, o.begin() + 50), Bytes(frame.begin() + 42, frame.begin() + 50)) << "VXLAN header kept";
  EXPECT_EQ(only_outcome(ul_if, kIngress), std::make_pair(int(WEIR_CNT_REDIRECT_PLAIN), uint64_t(1)));

  // The reply on the prober's side: UDP to its own port, not VXLAN: the host stack's (its socket's).
  PacketSpec back = vxlan_pkt(want, kNodeB, kNodeA, 51234, kVni2);
  udp_of(back).sport = kPort2;
  EXPECT_EQ(from_ul(build(back)).retval, TC_ACT_OK);
}

TEST_F(VxlanTest, OnlyARequestFromANodeOfTheClusterIsAnswered) {
  enable(kVni2, kPort2);
  struct Case {
    std::string what;
    PacketSpec pkt;
  };
  auto unknown = vxlan_pkt(probe_frame(WEIR_VXLAN_PROBE_REQUEST, 1), kNodeC, kNodeA, kPort2, kVni2);
  auto reply = vxlan_pkt(probe_frame(WEIR_VXLAN_PROBE_REPLY, 2), kNodeB, kNodeA, kPort2, kVni2);
  auto magic = vxlan_pkt(probe_frame(WEIR_VXLAN_PROBE_REQUEST, 3, WEIR_VXLAN_PROBE_MAGIC ^ 1), kNodeB, kNodeA, kPort2, kVni2);
  auto vni = vxlan_pkt(probe_frame(WEIR_VXLAN_PROBE_REQUEST, 4), kNodeB, kNodeA, kPort2, kVni);
  for (const Case& c : std::vector<Case>{{"from an address that is not a node", unknown},
                                         {"a reply (nobody sends those to the VXLAN port)", reply},
                                         {"not weir's magic", magic},
                                         {"another VNI", vni}}) {
    EXPECT_EQ(from_ul(build(c.pkt)).retval, TC_ACT_SHOT) << c.what;
  }
  EXPECT_EQ(cnt(ul_if, kIngress, WEIR_CNT_DROP_DECAP), 4u);
}

TEST_F(VxlanTest, MergedDatagramsAreNotTakenApartAsOne) {
  // UDP GRO forwarding on the underlay would hand over several VXLAN datagrams as one GSO skb:
  // one set of headers cannot go, so it is dropped (DROP_DECAP) rather than delivered wrong.
  enable();
  const Bytes frame = build(vxlan_pkt(build(remote_to_client())));
  __sk_buff ctx{};
  ctx.ifindex = ul_if;
  ctx.gso_segs = 2;
  ctx.gso_size = 100;
  Bytes out(frame.size() + 64);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = uint32_t(frame.size());
  opts.data_out = out.data();
  opts.data_size_out = uint32_t(out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  opts.repeat = 1;
  ASSERT_EQ(bpf_prog_test_run_opts(tc->prog_fd(Prog::FromUl), &opts), 0) << strerror(errno);
  EXPECT_EQ(int(opts.retval), TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(ul_if, kIngress).first, WEIR_CNT_DROP_DECAP);
}

TEST_F(VxlanTest, EverythingElseOnTheUnderlayPassesUntouched) {
  enable(kVni2, kPort2);
  PacketSpec arp;
  arp.eth.src = kNodeBMac;
  arp.eth.dst = kNodeAMac;
  arp.eth.type = kEthArp;
  arp.raw_l3 = Bytes(28, 0x11);
  auto ssh = tcp_pkt(kNodeBMac, kNodeAMac, kNodeB, 50022, kNodeA, 22, kTcpSyn);
  auto etcd = tcp_pkt(kNodeBMac, kNodeAMac, kNodeB, 50023, kNodeA, 2379, kTcpAck);
  const Bytes inner = build(remote_to_client());
  // VXLAN to the wrong port (4789 when 8472 is configured): not ours. The kernel's UDP stack
  // answers it (port unreachable), as for any datagram to a closed port.
  auto wrong_port = vxlan_pkt(inner, kNodeB, kNodeA, kPort, kVni2);
  // VXLAN to another host's address (promiscuous capture, a bridge): not ours either.
  auto other_dst = vxlan_pkt(inner, kNodeB, kNodeC, kPort2, kVni2);
  // A later fragment carries no UDP header: whose it is cannot be told, the kernel reassembles.
  PacketSpec later;
  later.eth.src = kNodeBMac;
  later.eth.dst = kNodeAMac;
  later.ip.saddr = kNodeB;
  later.ip.daddr = kNodeA;
  later.ip.proto = kUdp;
  later.ip.frag_offset = 185;
  later.payload.assign(40, 0x77);
  // 802.1Q-tagged: another network on the same wire.
  auto tagged = ssh;
  tagged.eth.type = 0x8100;
  tagged.raw_l3 = cat(Bytes{0x00, 0x64, 0x08, 0x00}, build_ip(ssh));
  struct Case {
    std::string what;
    Bytes frame;
    int outcome;
  };
  const std::vector<Case> cases = {
      {"ARP", build(arp), WEIR_CNT_ACCEPT_NON_IPV4},
      {"SSH to the node", build(ssh), WEIR_CNT_ACCEPT_UNDERLAY},
      {"etcd to the node", build(etcd), WEIR_CNT_ACCEPT_UNDERLAY},
      {"VXLAN to another port", build(wrong_port), WEIR_CNT_ACCEPT_UNDERLAY},
      {"VXLAN to another address", build(other_dst), WEIR_CNT_ACCEPT_UNDERLAY},
      {"later fragment", build(later), WEIR_CNT_ACCEPT_UNDERLAY},
      {"VLAN-tagged", build(tagged), WEIR_CNT_ACCEPT_UNDERLAY},
  };
  for (const auto& c : cases) {
    auto before = tc->counters(ul_if, kIngress);
    auto r = from_ul(c.frame);
    EXPECT_EQ(r.retval, TC_ACT_OK) << c.what;
    EXPECT_FRAME(r.out, c.frame) << c.what;
    auto after = tc->counters(ul_if, kIngress);
    for (int i = WEIR_CNT_OUTCOME_FIRST; i < WEIR_CNT_OUTCOME_END; i++)
      EXPECT_EQ(after.c[i], before.c[i] + (i == c.outcome ? 1 : 0)) << c.what << ": counter " << i;
  }
}

TEST_F(VxlanTest, WithVxlanOffNothingIsDecapsulated) {
  // Peers known, tunnel off: a valid VXLAN datagram goes to the kernel's UDP stack.
  const Bytes frame = build(vxlan_pkt(build(remote_to_client())));
  auto r = from_ul(frame);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FRAME(r.out, frame);
  EXPECT_EQ(only_outcome(ul_if, kIngress).first, WEIR_CNT_ACCEPT_UNDERLAY);
}

// ------------------------------------------------------------------ the agent's API on the maps

TEST_F(VxlanTest, SetTunnelAndSetVtepsWriteWhatTheProgramsRead) {
  enable(kVni2, kPort2);
  auto t = maps::TunnelMaps::from_fds(tc->map_fds());
  ASSERT_TRUE(t.ok()) << t.error().str();
  auto v = t->tunnel.lookup(0);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->flags, uint32_t(WEIR_TUNNEL_F_VXLAN));
  EXPECT_EQ((*v)->vni, kVni2);
  EXPECT_EQ((*v)->port, htons(kPort2));
  EXPECT_EQ((*v)->mtu, 1500u);
  EXPECT_EQ((*v)->underlay_ifindex, ul_if);
  EXPECT_EQ((*v)->underlay_addr, kNodeA);
  // The peer set is replaced: B leaves, C joins. B's VXLAN is then refused, C's accepted.
  ASSERT_TRUE(tc->programs().set_vteps({model::Ipv4::from_network_order(kNodeC)}).ok());
  auto all = t->vteps.dump();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->front(), std::make_pair(kNodeC, uint32_t(WEIR_VTEP_F_NODE)));
  const Bytes inner = build(remote_to_client());
  EXPECT_EQ(from_ul(build(vxlan_pkt(inner, kNodeB, kNodeA, kPort2, kVni2))).retval, TC_ACT_SHOT);
  EXPECT_EQ(from_ul(build(vxlan_pkt(inner, kNodeC, kNodeA, kPort2, kVni2))).retval,
            TC_ACT_REDIRECT);
  EXPECT_EQ(cnt(ul_if, kIngress, WEIR_CNT_DROP_DECAP), 1u);
  EXPECT_EQ(cnt(ul_if, kIngress, WEIR_CNT_REDIRECT_PLAIN), 1u);
}

// ------------------------------------------------------------------ on the wire

// An AF_PACKET socket on one interface: sends frames, receives the first incoming frame a
// predicate accepts.
class RawSocket {
 public:
  explicit RawSocket(uint32_t ifindex) : ifindex_(ifindex) {
    fd_ = Fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    sockaddr_ll a{};
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(ETH_P_ALL);
    a.sll_ifindex = int(ifindex);
    if (fd_.valid() && ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      fd_ = Fd();
  }
  bool valid() const { return fd_.valid(); }
  bool send(const Bytes& frame) {
    sockaddr_ll a{};
    a.sll_family = AF_PACKET;
    a.sll_ifindex = int(ifindex_);
    a.sll_halen = 6;
    std::copy(frame.begin(), frame.begin() + 6, a.sll_addr);
    return ::sendto(fd_.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&a),
                    sizeof(a)) == ssize_t(frame.size());
  }
  std::optional<Bytes> receive(const std::function<bool(const Bytes&)>& want,
                               int timeout_ms = 2000) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      Bytes b(65536);
      sockaddr_ll from{};
      socklen_t len = sizeof(from);
      ssize_t n =
          ::recvfrom(fd_.get(), b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
      b.resize(size_t(n));
      if (want(b)) return b;
    }
    return std::nullopt;
  }

 private:
  uint32_t ifindex_;
  Fd fd_;
};

std::string mac_str(const Mac& m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return buf;
}

// The programs attached to real veths of the test namespace: a pod veth pair (host side
// weirvp0 with from_wl / to_wl, the pod's side weirvp1, where frames are sent and captured as
// the pod would) and an underlay pair (node A's weirvu0 with from_ul and address kNodeA/24,
// node B's end weirvu1 with a permanent neighbour entry for kNodeB). What BPF_PROG_TEST_RUN
// cannot show: where the redirects go, and that the kernel's neighbour output completes the
// outer Ethernet header.
class VxlanWire : public VxlanTest {
 protected:
  const Mac kVp0Mac{0x02, 0x77, 0x00, 0x00, 0x00, 0x10};
  const Mac kVp1Mac{0x02, 0x77, 0x00, 0x00, 0x00, 0x11};
  const Mac kVu0Mac{0x02, 0x77, 0x00, 0x00, 0x00, 0x20};
  const Mac kVu1Mac{0x02, 0x77, 0x00, 0x00, 0x00, 0x21};
  const uint32_t kPodIp = ip4("10.65.0.50");

  void SetUp() override {
    VxlanTest::SetUp();
    if (HasFatalFailure()) return;
    auto vp = add_veth("weirvp0", "weirvp1");
    ASSERT_TRUE(vp.ok()) << vp.error().str();
    auto vu = add_veth("weirvu0", "weirvu1");
    ASSERT_TRUE(vu.ok()) << vu.error().str();
    vp0 = vp->first, vp1 = vp->second, vu0 = vu->first, vu1 = vu->second;
    std::string out;
    const std::pair<const char*, const Mac*> links[] = {
        {"weirvp0", &kVp0Mac}, {"weirvp1", &kVp1Mac}, {"weirvu0", &kVu0Mac}, {"weirvu1", &kVu1Mac}};
    for (const auto& [name, mac] : links) {
      // No IPv6: its router solicitations and reports would be the only other traffic here.
      sh(std::string("echo 1 > /proc/sys/net/ipv6/conf/") + name + "/disable_ipv6");
      ASSERT_EQ(
          sh(std::string("ip link set dev ") + name + " address " + mac_str(*mac) + " up", &out), 0)
          << out;
    }
    ASSERT_EQ(sh("ip addr add 192.168.200.2/24 dev weirvu0", &out), 0) << out;
    ASSERT_EQ(sh("ip neigh replace 192.168.200.3 lladdr " + mac_str(kVu1Mac) +
                     " dev weirvu0 nud permanent",
                 &out),
              0)
        << out;

    // The pod behind weirvp0, and the tunnel over weirvu0.
    weir_ifstate_val ifs{};
    std::snprintf(ifs.name, sizeof(ifs.name), "weirvp0");
    ifs.flags = WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY;
    ifs.ingress_slot = WEIR_NO_POLICY_SLOT;
    ifs.egress_slot = WEIR_NO_POLICY_SLOT;
    std::copy(kVp0Mac.begin(), kVp0Mac.end(), ifs.host_mac);
    ASSERT_TRUE(tc->put_ifstate(vp0, ifs).ok());
    weir_route_val rt{};
    rt.flags = WEIR_RT_F_LOCAL_WORKLOAD | WEIR_RT_F_IN_POOL;
    rt.ifindex = vp0;
    std::copy(kVp1Mac.begin(), kVp1Mac.end(), rt.mac);
    ASSERT_TRUE(tc->put_route(kPodIp, 32, rt).ok());
    ul_if = vu0;
    enable();

    auto mode = bpf::probe_tc_mode();
    ASSERT_TRUE(mode.ok()) << mode.error().str();
    ASSERT_TRUE(bpf::mkdirs(tc->layout().links_dir()).ok());
    auto at = [&](uint32_t ifindex, const std::string& name, bpf::TcDir dir, int fd) {
      auto a = bpf::TcAttachment::attach(int(ifindex), name, dir, fd, *mode,
                                         tc->layout().link_path(name, dir));
      ASSERT_TRUE(a.ok()) << a.error().str();
      attached.push_back(std::move(*a));
    };
    at(vp0, "weirvp0", bpf::TcDir::Ingress, tc->prog_fd(Prog::FromWl));
    at(vp0, "weirvp0", bpf::TcDir::Egress, tc->prog_fd(Prog::ToWl));
    at(vu0, "weirvu0", bpf::TcDir::Ingress, tc->prog_fd(Prog::FromUl));
  }

  void TearDown() override {
    attached.clear();  // detached before the interfaces go
    sh("ip link del weirvp0");
    sh("ip link del weirvu0");
    VxlanTest::TearDown();
  }

  uint32_t vp0 = 0, vp1 = 0, vu0 = 0, vu1 = 0;
  std::vector<bpf::TcAttachment> attached;
};

TEST_F(VxlanWire, APodsPacketLeavesTheUnderlayEncapsulatedAndTheAnswerReachesThePod) {
  RawSocket pod(vp1), wire(vu1);
  ASSERT_TRUE(pod.valid() && wire.valid()) << "AF_PACKET: " << strerror(errno);

  // Pod -> remote pod: out of weirvu0 in VXLAN, the outer Ethernet header written by the kernel
  // for the next hop (node B's neighbour entry).
  const auto q = udp_pkt(kVp1Mac, kVp0Mac, kPodIp, 41000, kRemotePod, 5353);
  const Bytes in = build(q);
  ASSERT_TRUE(pod.send(in));
  auto got = wire.receive(
      [](const Bytes& b) { return b.size() > 42 && rd16(b, 12) == kEthIPv4 && b[23] == 17; });
  ASSERT_TRUE(got.has_value()) << "nothing encapsulated arrived on the underlay";
  Mac dst{}, src{};
  std::copy(got->begin(), got->begin() + 6, dst.begin());
  std::copy(got->begin() + 6, got->begin() + 12, src.begin());
  EXPECT_EQ(dst, kVu1Mac) << "outer destination: node B's MAC, from the neighbour table";
  EXPECT_EQ(src, kVu0Mac) << "outer source: the underlay interface's MAC";
  Bytes expect_in = *got;  // the outer Ethernet addresses are the kernel's: compare the rest
  std::copy(in.begin(), in.begin() + 12, expect_in.begin());
  expect_vxlan(expect_in, in, kVni, kPort);
  EXPECT_EQ(cnt(vp0, kIngress, WEIR_CNT_REDIRECT_NEIGH), 1u);

  // Node B's answer arrives on weirvu0: decapsulated, through weirvp0's egress (to_wl) to the pod.
  const auto answer = udp_pkt(kRemotePodMac, kRemoteGwMac, kRemotePod, 5353, kPodIp, 41000);
  auto outer = vxlan_pkt(build(answer));
  outer.eth.dst = kVu0Mac;
  outer.eth.src = kVu1Mac;
  ASSERT_TRUE(wire.send(build(outer)));
  auto back = pod.receive(
      [](const Bytes& b) { return b.size() > 34 && rd16(b, 12) == kEthIPv4 && b[23] == 17; });
  ASSERT_TRUE(back.has_value()) << "the decapsulated answer did not reach the pod";
  auto want = answer;
  want.eth.dst = kVp1Mac;
  want.eth.src = kVp0Mac;
  EXPECT_FRAME(*back, build(want));
  EXPECT_EQ(cnt(vu0, kIngress, WEIR_CNT_REDIRECT_PLAIN), 1u);
  EXPECT_EQ(cnt(vp0, kEgress, WEIR_CNT_ACCEPT_ESTABLISHED), 1u)
      << "to_wl saw the answer of the pod's flow";
}

}  // namespace
}  // namespace weir::test
