// Forwarding decisions: plain redirect (with MAC rewrite) for the first packet of a flow to a
// local workload, the host stack until the destination approved the flow, peer redirect once
// both sides did, learning a workload's MACs at to_wl when the route did not know them.
#include "tc_fixture.h"

namespace weir::test {
namespace {

class ForwardTest : public TcTest {};

TEST_F(ForwardTest, PodToPodGoesPlainThenHostStackThenPeer) {
  const uint16_t cport = 49000;
  // First SYN: plain redirect out of backend 1's host veth, MACs rewritten for it.
  auto syn = client_tcp(cport, kBe1Ip, kBeTcpPort, kTcpSyn, 10);
  auto r1 = from_wl(client_if, syn);
  EXPECT_EQ(r1.retval, TC_ACT_REDIRECT);
  auto want = syn;
  want.eth.dst = kBe1Mac;
  want.eth.src = kBe1HostMac;
  EXPECT_FRAME(r1.out, build(want));
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_REDIRECT_PLAIN);
  auto e = ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->type, WEIR_CT_NORMAL);
  const auto& dst = leg_of(*e, kBe1Ip, kBeTcpPort, kClientIp, cport);
  EXPECT_EQ(dst.flags, uint32_t(WEIR_CT_LEG_WORKLOAD));
  EXPECT_EQ(dst.ifindex, be1_if);

  // A retransmitted SYN before backend 1's to_wl ran: established, but not approved by the
  // destination yet, so the host stack forwards it (MACs untouched).
  auto r2 = from_wl(client_if, syn);
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  EXPECT_FRAME(r2.out, build(syn));
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_ESTABLISHED), 1u);

  // Backend 1's to_wl approves.
  EXPECT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_OK);
  auto e2 = ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(e2.has_value());
  EXPECT_EQ(leg_of(*e2, kBe1Ip, kBeTcpPort, kClientIp, cport).flags,
            uint32_t(WEIR_CT_LEG_WORKLOAD | WEIR_CT_LEG_APPROVED));

  // Both approved: replies and further packets go peer to peer.
  auto synack = be1_tcp(kBeTcpPort, kClientIp, cport, kTcpSyn | kTcpAck, 1, 11);
  auto r3 = from_wl(be1_if, synack);
  EXPECT_EQ(r3.retval, TC_ACT_REDIRECT);
  auto want3 = synack;
  want3.eth.dst = kClientMac;
  want3.eth.src = kClientHostMac;
  EXPECT_FRAME(r3.out, build(want3));
  EXPECT_EQ(only_outcome(be1_if, kIngress).first, WEIR_CNT_REDIRECT_PEER);
  auto ack = client_tcp(cport, kBe1Ip, kBeTcpPort, kTcpAck, 11, 2);
  auto r4 = from_wl(client_if, ack);
  EXPECT_EQ(r4.retval, TC_ACT_REDIRECT);
  auto want4 = ack;
  want4.eth.dst = kBe1Mac;
  want4.eth.src = kBe1HostMac;
  EXPECT_FRAME(r4.out, build(want4));
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_PEER), 1u);
}

TEST_F(ForwardTest, RouteWithoutMacUsesTheHostStackAndToWlLearnsTheWorkload) {
  weir_route_val rt{};
  rt.flags = WEIR_RT_F_LOCAL_WORKLOAD;
  rt.ifindex = be2_if;  // MAC still all zero: not known yet
  ASSERT_TRUE(tc->put_route(kBe2Ip, 32, rt).ok());
  const uint16_t cport = 49001;
  auto q = client_udp(cport, kBe2Ip, 7000);
  auto r1 = from_wl(client_if, q);
  EXPECT_EQ(r1.retval, TC_ACT_OK);
  EXPECT_FRAME(r1.out, build(q));
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_ACCEPT_NEW_FLOW);
  auto e = ct(kClientIp, cport, kBe2Ip, 7000, kUdp);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(leg_of(*e, kBe2Ip, 7000, kClientIp, cport).flags, 0u);

  // The host stack delivers it to backend 2's veth egress with its own MACs.
  auto delivered = q;
  delivered.eth.dst = kBe2Mac;
  delivered.eth.src = kBe2HostMac;
  delivered.ip.ttl = 63;
  EXPECT_EQ(to_wl(be2_if, delivered).retval, TC_ACT_OK);
  e = ct(kClientIp, cport, kBe2Ip, 7000, kUdp);
  ASSERT_TRUE(e.has_value());
  const auto& learned = leg_of(*e, kBe2Ip, 7000, kClientIp, cport);
  EXPECT_EQ(learned.flags, uint32_t(WEIR_CT_LEG_WORKLOAD | WEIR_CT_LEG_APPROVED));
  EXPECT_EQ(learned.ifindex, be2_if);
  EXPECT_EQ(Mac(std::to_array(learned.wl_mac)), kBe2Mac);
  EXPECT_EQ(Mac(std::to_array(learned.host_mac)), kBe2HostMac);

  // From now on the client's datagrams go peer to peer.
  auto r2 = from_wl(client_if, q);
  EXPECT_EQ(r2.retval, TC_ACT_REDIRECT);
  auto want = q;
  want.eth.dst = kBe2Mac;
  want.eth.src = kBe2HostMac;
  EXPECT_FRAME(r2.out, build(want));
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_PEER), 1u);
}

TEST_F(ForwardTest, LocalRouteWithoutIfstateUsesTheHostStack) {
  const uint32_t orphan = ip4("10.65.1.99");
  weir_route_val rt{};
  rt.flags = WEIR_RT_F_LOCAL_WORKLOAD;
  rt.ifindex = 4242;  // no ifstate entry
  rt.mac[0] = 0x02;
  rt.mac[5] = 0x99;
  ASSERT_TRUE(tc->put_route(orphan, 32, rt).ok());
  auto q = client_udp(49002, orphan, 7000);
  auto r = from_wl(client_if, q);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FRAME(r.out, build(q));
  auto e = ct(kClientIp, 49002, orphan, 7000, kUdp);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(leg_of(*e, orphan, 7000, kClientIp, 49002).flags, 0u);
}

TEST_F(ForwardTest, RemoteRoutesUseTheHostStack) {
  weir_route_val rt{};
  rt.flags = WEIR_RT_F_REMOTE | WEIR_RT_F_IN_POOL;
  rt.next_hop = ip4("172.16.0.2");
  ASSERT_TRUE(tc->put_route(ip4("10.65.8.0"), 24, rt).ok());
  auto syn = client_tcp(49003, ip4("10.65.8.8"), 80, kTcpSyn);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FRAME(r.out, build(syn));
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_ACCEPT_NEW_FLOW);
}

TEST_F(ForwardTest, ToWlNeverRedirects) {
  // Established, approved pod-to-pod flow; a packet of it seen at to_wl just passes.
  auto syn = client_tcp(49004, kBe1Ip, kBeTcpPort, kTcpSyn, 10);
  auto r1 = from_wl(client_if, syn);
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  ASSERT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_OK);
  auto r2 = run(Prog::ToWl, be1_if, r1.out);
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  EXPECT_EQ(cnt(be1_if, kEgress, WEIR_CNT_ACCEPT_ESTABLISHED), 2u);
}

}  // namespace
}  // namespace weir::test
