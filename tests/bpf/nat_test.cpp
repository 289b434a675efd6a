// Service NAT vectors: DNAT of new TCP and UDP flows (checksums verified independently and
// frames compared byte for byte), backend choice by flow hash, reverse NAT of replies, established
// NAT flows, IP options, UDP without checksum, reuse of a finished NATed 5-tuple, and NAT
// source collisions.
#include <set>

#include "tc_fixture.h"

namespace weir::test {
namespace {

constexpr uint32_t kWl = WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;

class NatTest : public TcTest {
 protected:
  // What from_wl must emit for a client packet to the VIP DNATed to (baddr, bport) and
  // redirected to backend 1's veth: same packet, new destination, MACs for backend 1.
  static PacketSpec dnat_to_be1(PacketSpec s, uint16_t bport) {
    s.ip.daddr = kBe1Ip;
    if (auto* t = std::get_if<TcpSpec>(&s.l4)) t->dport = bport;
    if (auto* u = std::get_if<UdpSpec>(&s.l4)) u->dport = bport;
    s.eth.dst = kBe1Mac;
    s.eth.src = kBe1HostMac;
    return s;
  }
  weir_ct_val fwd(uint16_t cport, uint16_t vport, uint8_t proto) {
    auto e = ct(kClientIp, cport, kVip, vport, proto);
    EXPECT_TRUE(e.has_value()) << "no NAT_FWD entry";
    return e.value_or(weir_ct_val{});
  }
  weir_ct_val rev(uint16_t cport, uint32_t baddr, uint16_t bport, uint8_t proto) {
    auto e = ct(kClientIp, cport, baddr, bport, proto);
    EXPECT_TRUE(e.has_value()) << "no NAT_REV entry";
    return e.value_or(weir_ct_val{});
  }
};

TEST_F(NatTest, NewTcpFlowIsDnatedAndRedirectedToTheLocalBackend) {
  auto syn = client_tcp(43000, kVip, kVipTcpPort, kTcpSyn, 123456);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(dnat_to_be1(syn, kBeTcpPort)));
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_REDIRECT_PLAIN), uint64_t(1)));

  auto f = fwd(43000, kVipTcpPort, kTcp);
  EXPECT_EQ(f.type, WEIR_CT_NAT_FWD);
  EXPECT_EQ(f.nat_addr, kBe1Ip);
  EXPECT_EQ(f.nat_port, htons(kBeTcpPort));
  auto v = rev(43000, kBe1Ip, kBeTcpPort, kTcp);
  EXPECT_EQ(v.type, WEIR_CT_NAT_REV);
  EXPECT_EQ(v.nat_addr, kVip);
  EXPECT_EQ(v.nat_port, htons(kVipTcpPort));
  EXPECT_EQ(tc->ct_all().size(), 2u);
  for (const auto* e : {&f, &v}) {
    uint32_t other = e == &f ? kVip : kBe1Ip;
    uint16_t oport = e == &f ? kVipTcpPort : kBeTcpPort;
    EXPECT_EQ(bool(e->flags & WEIR_CT_F_A_IS_CLIENT), ct_key(kClientIp, 43000, other, oport, kTcp).second);
    const auto& cl = leg_of(*e, kClientIp, 43000, other, oport);
    EXPECT_EQ(cl.flags, kWl | WEIR_CT_LEG_SYN);
    EXPECT_EQ(cl.ifindex, client_if);
    const auto& be = leg_of(*e, other, oport, kClientIp, 43000);
    EXPECT_EQ(be.flags, uint32_t(WEIR_CT_LEG_WORKLOAD)) << "backend leg: workload, not approved yet";
    EXPECT_EQ(be.ifindex, be1_if);
    EXPECT_EQ(Mac(std::to_array(be.wl_mac)), kBe1Mac);
    EXPECT_EQ(Mac(std::to_array(be.host_mac)), kBe1HostMac);
  }
}

TEST_F(NatTest, FullTcpConversationThroughTheVip) {
  const uint16_t cport = 43001;
  // 1. SYN client -> VIP: DNAT, plain redirect to backend 1's veth.
  auto syn = client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 100);
  auto r1 = from_wl(client_if, syn);
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  // 2. Its to_wl program sees the DNATed SYN and approves the flow for the backend.
  auto r2 = run(Prog::ToWl, be1_if, r1.out);
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  EXPECT_FRAME(r2.out, r1.out);
  EXPECT_EQ(only_outcome(be1_if, kEgress).first, WEIR_CNT_ACCEPT_ESTABLISHED);
  for (const auto& e : {fwd(cport, kVipTcpPort, kTcp), rev(cport, kBe1Ip, kBeTcpPort, kTcp)}) {
    EXPECT_EQ(e.a.flags & e.b.flags & WEIR_CT_LEG_APPROVED, uint32_t(WEIR_CT_LEG_APPROVED))
        << "approval mirrored into both halves";
  }
  // 3. SYN-ACK backend -> client: reverse NAT (source becomes the VIP), peer redirect into
  //    the client with the client's MACs.
  auto synack = be1_tcp(kBeTcpPort, kClientIp, cport, kTcpSyn | kTcpAck, 7000, 101);
  auto r3 = from_wl(be1_if, synack);
  EXPECT_EQ(r3.retval, TC_ACT_REDIRECT);
  auto want3 = synack;
  want3.ip.saddr = kVip;
  tcp_of(want3).sport = kVipTcpPort;
  want3.eth.dst = kClientMac;
  want3.eth.src = kClientHostMac;
  EXPECT_FRAME(r3.out, build(want3));
  EXPECT_CSUMS(r3.out);
  EXPECT_EQ(only_outcome(be1_if, kIngress), std::make_pair(int(WEIR_CNT_REDIRECT_PEER), uint64_t(1)));
  auto f = fwd(cport, kVipTcpPort, kTcp);
  EXPECT_EQ(leg_of(f, kVip, kVipTcpPort, kClientIp, cport).flags,
            kWl | WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK) << "backend's SYN/ACK mirrored into NAT_FWD";
  // 4. ACK client -> VIP: established, DNAT, peer redirect into the backend.
  auto ack = client_tcp(cport, kVip, kVipTcpPort, kTcpAck, 101, 7001);
  ack.payload = Bytes{'G', 'E', 'T', ' ', '/', '\r', '\n'};
  backdate(kClientIp, cport, kVip, kVipTcpPort, kTcp);
  auto r4 = from_wl(client_if, ack);
  EXPECT_EQ(r4.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r4.out, build(dnat_to_be1(ack, kBeTcpPort)));
  EXPECT_CSUMS(r4.out);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_PEER), 1u);
  expect_current(fwd(cport, kVipTcpPort, kTcp).last_seen_ns, "NAT_FWD last_seen_ns");
  auto rv = rev(cport, kBe1Ip, kBeTcpPort, kTcp);
  EXPECT_EQ(leg_of(rv, kClientIp, cport, kBe1Ip, kBeTcpPort).flags, kWl | WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK)
      << "client's first ACK mirrored into NAT_REV";
  EXPECT_EQ(tc->ct_all().size(), 2u);
}

TEST_F(NatTest, EstablishedNatPacketOnlyTouchesTheEntryItHits) {
  const uint16_t cport = 43002;
  auto r1 = from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 1));
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  ASSERT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_OK);
  ASSERT_EQ(from_wl(be1_if, be1_tcp(kBeTcpPort, kClientIp, cport, kTcpSyn | kTcpAck, 1, 2)).retval, TC_ACT_REDIRECT);
  ASSERT_EQ(from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpAck, 2, 2)).retval, TC_ACT_REDIRECT);
  // Now every leg bit is set: a data packet changes last_seen of NAT_FWD only.
  backdate(kClientIp, cport, kVip, kVipTcpPort, kTcp);
  auto f0 = fwd(cport, kVipTcpPort, kTcp);
  auto v0 = rev(cport, kBe1Ip, kBeTcpPort, kTcp);
  auto data = client_tcp(cport, kVip, kVipTcpPort, kTcpAck | kTcpPsh, 2, 2);
  data.payload = Bytes(200, 'd');
  auto r = from_wl(client_if, data);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(dnat_to_be1(data, kBeTcpPort)));
  auto f1 = fwd(cport, kVipTcpPort, kTcp);
  auto v1 = rev(cport, kBe1Ip, kBeTcpPort, kTcp);
  expect_current(f1.last_seen_ns, "NAT_FWD last_seen_ns");
  EXPECT_EQ(f1.created_ns, kBackdated);
  EXPECT_EQ(0, std::memcmp(&f1.a, &f0.a, sizeof(f0.a)));
  EXPECT_EQ(0, std::memcmp(&f1.b, &f0.b, sizeof(f0.b)));
  EXPECT_EQ(0, std::memcmp(&v1, &v0, sizeof(v0))) << "the other half is not written on the fast path";
}

TEST_F(NatTest, NewUdpFlowIsDnatedAndTheReplyReverseNated) {
  auto q = client_udp(44000, kVip, kVipUdpPort);
  auto r = from_wl(client_if, q);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(dnat_to_be1(q, kBeUdpPort)));
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(fwd(44000, kVipUdpPort, kUdp).type, WEIR_CT_NAT_FWD);
  EXPECT_EQ(rev(44000, kBe1Ip, kBeUdpPort, kUdp).type, WEIR_CT_NAT_REV);
  ASSERT_EQ(run(Prog::ToWl, be1_if, r.out).retval, TC_ACT_OK);
  auto reply = udp_pkt(kBe1Mac, kBe1HostMac, kBe1Ip, kBeUdpPort, kClientIp, 44000, Bytes{'a', 'n', 's'});
  auto rr = from_wl(be1_if, reply);
  EXPECT_EQ(rr.retval, TC_ACT_REDIRECT);
  auto want = reply;
  want.ip.saddr = kVip;
  udp_of(want).sport = kVipUdpPort;
  want.eth.dst = kClientMac;
  want.eth.src = kClientHostMac;
  EXPECT_FRAME(rr.out, build(want));
  EXPECT_CSUMS(rr.out);
  EXPECT_EQ(cnt(be1_if, kIngress, WEIR_CNT_REDIRECT_PEER), 1u);
}

TEST_F(NatTest, UdpWithoutChecksumKeepsZero) {
  auto q = client_udp(44001, kVip, kVipUdpPort);
  udp_of(q).no_checksum = true;
  auto r = from_wl(client_if, q);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(dnat_to_be1(q, kBeUdpPort)));  // expected also has checksum 0
  ASSERT_GE(r.out.size(), 14u + 20 + 8);
  EXPECT_EQ(r.out[14 + 20 + 6], 0);
  EXPECT_EQ(r.out[14 + 20 + 7], 0);
  EXPECT_CSUMS(r.out);
}

TEST_F(NatTest, IpOptionsDoNotBreakNat) {
  auto syn = client_tcp(43003, kVip, kVipTcpPort, kTcpSyn, 77);
  syn.ip.options = Bytes{0x01, 0x01, 0x01, 0x00};  // NOP NOP NOP EOL
  tcp_of(syn).options = Bytes{0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02};  // MSS, SACK-permitted
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(dnat_to_be1(syn, kBeTcpPort)));
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(fwd(43003, kVipTcpPort, kTcp).nat_addr, kBe1Ip);
}

TEST_F(NatTest, BackendsAreSpreadOverFlowsByTheFlowHash) {
  add_service(kVip, kVipTcpPort, kTcp, kSvcTcp, {{kBe1Ip, kBeTcpPort}, {kBe2Ip, kBeTcpPort}});
  std::set<uint32_t> chosen;
  int to_be1 = 0, to_be2 = 0;
  for (uint16_t i = 0; i < 64; i++) {
    auto syn = client_tcp(uint16_t(45000 + i), kVip, kVipTcpPort, kTcpSyn, 1);
    auto r = from_wl(client_if, syn);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
    EXPECT_CSUMS(r.out);
    auto f = fwd(uint16_t(45000 + i), kVipTcpPort, kTcp);
    chosen.insert(f.nat_addr);
    // The packet went where the entry says, with that backend's MACs.
    auto want = syn;
    want.ip.daddr = f.nat_addr;
    tcp_of(want).dport = kBeTcpPort;
    want.eth.dst = f.nat_addr == kBe1Ip ? kBe1Mac : kBe2Mac;
    want.eth.src = f.nat_addr == kBe1Ip ? kBe1HostMac : kBe2HostMac;
    EXPECT_FRAME(r.out, build(want));
    (f.nat_addr == kBe1Ip ? to_be1 : to_be2)++;
  }
  EXPECT_EQ(chosen, (std::set<uint32_t>{kBe1Ip, kBe2Ip}));
  EXPECT_EQ(to_be1 + to_be2, 64);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_PLAIN), 64u);
  EXPECT_EQ(tc->ct_all().size(), 128u);
}

TEST_F(NatTest, BackendOnAnotherNodeGoesUpTheHostStack) {
  const uint32_t remote_be = ip4("10.65.7.7");  // no route entry: not local
  add_service(kVip, kVipTcpPort, kTcp, kSvcTcp, {{remote_be, 9090}});
  auto syn = client_tcp(43004, kVip, kVipTcpPort, kTcpSyn, 1);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  auto want = syn;
  want.ip.daddr = remote_be;
  tcp_of(want).dport = 9090;
  EXPECT_FRAME(r.out, build(want));  // MACs untouched: the host routes it
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_ACCEPT_NEW_FLOW);
  // The reply comes back through the host stack to the client's veth egress: to_wl reverse
  // NATs it.
  auto reply = tcp_pkt(kClientHostMac, kClientMac, remote_be, 9090, kClientIp, 43004, kTcpSyn | kTcpAck, 50, 2);
  auto rr = to_wl(client_if, reply);
  EXPECT_EQ(rr.retval, TC_ACT_OK);
  auto want_reply = reply;
  want_reply.ip.saddr = kVip;
  tcp_of(want_reply).sport = kVipTcpPort;
  EXPECT_FRAME(rr.out, build(want_reply));
  EXPECT_CSUMS(rr.out);
  EXPECT_EQ(only_outcome(client_if, kEgress).first, WEIR_CNT_ACCEPT_ESTABLISHED);
}

TEST_F(NatTest, FinishedNatFlowReusedByANewSynPicksAgain) {
  const uint16_t cport = 43005;
  auto r1 = from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 1));
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  // Reset by the backend.
  auto rst = be1_tcp(kBeTcpPort, kClientIp, cport, kTcpRst | kTcpAck, 0, 2);
  auto rr = from_wl(be1_if, rst);
  EXPECT_EQ(rr.retval, TC_ACT_OK) << "backend leg not approved yet: host stack";
  backdate(kClientIp, cport, kVip, kVipTcpPort, kTcp);
  auto f0 = fwd(cport, kVipTcpPort, kTcp);
  EXPECT_TRUE(leg_of(f0, kVip, kVipTcpPort, kClientIp, cport).flags & WEIR_CT_LEG_RST) << "RST mirrored";
  // Move the service to backend 2 and reuse the 5-tuple.
  add_service(kVip, kVipTcpPort, kTcp, kSvcTcp, {{kBe2Ip, kBeTcpPort}});
  auto syn2 = client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 99);
  auto r2 = from_wl(client_if, syn2);
  EXPECT_EQ(r2.retval, TC_ACT_REDIRECT);
  auto want = syn2;
  want.ip.daddr = kBe2Ip;
  tcp_of(want).dport = kBeTcpPort;
  want.eth.dst = kBe2Mac;
  want.eth.src = kBe2HostMac;
  EXPECT_FRAME(r2.out, build(want));
  auto f1 = fwd(cport, kVipTcpPort, kTcp);
  EXPECT_EQ(f1.nat_addr, kBe2Ip);
  expect_current(f1.created_ns, "created_ns of the new NAT_FWD");
  EXPECT_FALSE(ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp).has_value()) << "old NAT_REV removed";
  EXPECT_TRUE(ct(kClientIp, cport, kBe2Ip, kBeTcpPort, kTcp).has_value());
  EXPECT_EQ(tc->ct_all().size(), 2u);
}

TEST_F(NatTest, CollisionWithALiveFlowIsDropped) {
  const uint16_t cport = 43006;
  // The client talks to backend 1 directly from port cport ...
  ASSERT_EQ(from_wl(client_if, client_tcp(cport, kBe1Ip, kBeTcpPort, kTcpSyn, 1)).retval, TC_ACT_REDIRECT);
  // ... and then to the VIP from the same port: the reverse key (client, backend) is taken.
  auto syn = client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 1);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_FRAME(r.out, build(syn));
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_NAT_COLLISION), 1u);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_OTHER_NAT_COLLISION), 1u);
  EXPECT_FALSE(ct(kClientIp, cport, kVip, kVipTcpPort, kTcp).has_value());
  auto direct = ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(direct.has_value());
  EXPECT_EQ(direct->type, WEIR_CT_NORMAL) << "the live flow is left alone";
}

TEST_F(NatTest, CollisionWithAFinishedFlowIsResolved) {
  const uint16_t cport = 43007;
  ASSERT_EQ(from_wl(client_if, client_tcp(cport, kBe1Ip, kBeTcpPort, kTcpSyn, 1)).retval, TC_ACT_REDIRECT);
  ASSERT_EQ(from_wl(client_if, client_tcp(cport, kBe1Ip, kBeTcpPort, kTcpRst, 2)).retval, TC_ACT_OK);
  auto syn = client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 1);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(dnat_to_be1(syn, kBeTcpPort)));
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_OTHER_NAT_COLLISION), 1u);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_NAT_COLLISION), 0u);
  EXPECT_EQ(rev(cport, kBe1Ip, kBeTcpPort, kTcp).type, WEIR_CT_NAT_REV);
}

TEST_F(NatTest, NatRevHitFromTheClientDirectlyIsPlainEstablished) {
  const uint16_t cport = 43008;
  auto r1 = from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 1));
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  // A packet client -> backend (as DNATed) seen again by from_wl: no NAT applies.
  auto direct = client_tcp(cport, kBe1Ip, kBeTcpPort, kTcpAck, 2, 0);
  auto r = from_wl(client_if, direct);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FRAME(r.out, build(direct));
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_ESTABLISHED), 1u);
}

}  // namespace
}  // namespace weir::test
