// Conntrack vectors: every TCP leg transition, UDP, ICMP echo, state created by to_wl, packets
// that must not create state, and the reuse of a finished 5-tuple.
#include "calc/conntrack.h"
#include "maps/decode.h"
#include "tc_fixture.h"
#include "weir/conntrack.h"

namespace weir::test {
namespace {

constexpr uint16_t kCport = 41000;
constexpr uint16_t kRport = 443;

class ConntrackTest : public TcTest {
 protected:
  // Remote -> client, as the host stack hands it to the client's veth egress.
  static PacketSpec remote_tcp(uint8_t flags, uint32_t seq = 9000, uint32_t ack = 0) {
    return tcp_pkt(kClientHostMac, kClientMac, kRemoteIp, kRport, kClientIp, kCport, flags, seq, ack);
  }
  weir_ct_val entry() {
    auto e = ct(kClientIp, kCport, kRemoteIp, kRport, kTcp);
    EXPECT_TRUE(e.has_value()) << "no conntrack entry for the flow";
    return e.value_or(weir_ct_val{});
  }
  uint32_t client_flags() {
    auto e = entry();
    return leg_of(e, kClientIp, kCport, kRemoteIp, kRport).flags;
  }
  uint32_t remote_flags() {
    auto e = entry();
    return leg_of(e, kRemoteIp, kRport, kClientIp, kCport).flags;
  }
  // Runs a packet and expects it to pass unchanged with the given verdict.
  void pass(Prog p, const PacketSpec& s, int outcome_counter, uint64_t expected_count) {
    auto r = run(p, client_if, build(s));
    EXPECT_EQ(r.retval, TC_ACT_OK);
    EXPECT_FRAME(r.out, build(s));
    EXPECT_EQ(cnt(client_if, p == Prog::FromWl ? kIngress : kEgress, outcome_counter), expected_count);
  }
};

constexpr uint32_t kWl = WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;

// The state of an entry by the shared definition, checked to be what the scanner and the CLI
// read from the same entry.
weir_ct_tcp tcp_state(const weir_ct_val& e) {
  weir_ct_tcp s = weir_ct_tcp_state(e.a.flags, e.b.flags);
  EXPECT_EQ(maps::ct_state(kTcp, e.a, e.b), maps::ct_tcp_state_name(s));
  EXPECT_EQ(calc::to_string(calc::ct_state(kTcp, e.a.flags, e.b.flags)), maps::ct_tcp_state_name(s));
  return s;
}

TEST_F(ConntrackTest, TcpHandshakeDataAndCloseWalkEveryLegTransition) {
  // SYN: a NORMAL entry, SYN-SENT (SYN on the client's leg only).
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn), WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  auto e = entry();
  EXPECT_EQ(e.type, WEIR_CT_NORMAL);
  EXPECT_EQ(e.created_ns, e.last_seen_ns);
  expect_current(e.created_ns, "created_ns");
  EXPECT_EQ(bool(e.flags & WEIR_CT_F_A_IS_CLIENT), ct_key(kClientIp, kCport, kRemoteIp, kRport, kTcp).second);
  const auto& cl = leg_of(e, kClientIp, kCport, kRemoteIp, kRport);
  EXPECT_EQ(cl.flags, kWl | WEIR_CT_LEG_SYN);
  EXPECT_EQ(cl.ifindex, client_if);
  EXPECT_EQ(Mac(std::to_array(cl.wl_mac)), kClientMac);
  EXPECT_EQ(Mac(std::to_array(cl.host_mac)), kClientHostMac);
  const auto& rl = leg_of(e, kRemoteIp, kRport, kClientIp, kCport);
  EXPECT_EQ(rl.flags, 0u) << "remote side: no route, not a workload";
  EXPECT_EQ(rl.ifindex, 0u);

  // SYN-ACK arrives from the host stack at the client's veth egress.
  backdate(kClientIp, kCport, kRemoteIp, kRport, kTcp);
  pass(Prog::ToWl, remote_tcp(kTcpSyn | kTcpAck, 9000, 1001), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(remote_flags(), uint32_t(WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK));
  EXPECT_EQ(client_flags(), kWl | WEIR_CT_LEG_SYN);
  auto after_synack = entry();
  expect_current(after_synack.last_seen_ns, "last_seen_ns");
  EXPECT_EQ(after_synack.created_ns, kBackdated) << "created_ns is written once";

  // ACK: established (SYN and ACK on both legs).
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpAck, 1001, 9001), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(client_flags(), kWl | WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK);

  // Data both ways changes nothing but last_seen.
  auto data = client_tcp(kCport, kRemoteIp, kRport, kTcpAck | kTcpPsh, 1001, 9001);
  data.payload = Bytes(100, 'x');
  backdate(kClientIp, kCport, kRemoteIp, kRport, kTcp);
  auto before = entry();
  pass(Prog::FromWl, data, WEIR_CNT_ACCEPT_ESTABLISHED, 2);
  auto after = entry();
  expect_current(after.last_seen_ns, "last_seen_ns");
  EXPECT_EQ(after.a.flags, before.a.flags);
  EXPECT_EQ(after.b.flags, before.b.flags);

  // FIN from the client: one side closing.
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpFin | kTcpAck, 1101, 9001), WEIR_CNT_ACCEPT_ESTABLISHED, 3);
  EXPECT_EQ(client_flags(), kWl | WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK | WEIR_CT_LEG_FIN);
  EXPECT_EQ(remote_flags() & WEIR_CT_LEG_FIN, 0u);

  // FIN from the remote: both FINs, the flow is closed.
  pass(Prog::ToWl, remote_tcp(kTcpFin | kTcpAck, 9001, 1102), WEIR_CNT_ACCEPT_ESTABLISHED, 2);
  EXPECT_EQ(remote_flags(), uint32_t(WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK | WEIR_CT_LEG_FIN));
  backdate(kClientIp, kCport, kRemoteIp, kRport, kTcp);

  // A new SYN on the closed 5-tuple starts a new flow: the entry is recreated.
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn, 70000), WEIR_CNT_ACCEPT_NEW_FLOW, 2);
  auto fresh = entry();
  expect_current(fresh.created_ns, "created_ns of the new flow");
  EXPECT_EQ(client_flags(), kWl | WEIR_CT_LEG_SYN);
  EXPECT_EQ(remote_flags(), 0u);
  EXPECT_EQ(tc->ct_all().size(), 1u);
}

TEST_F(ConntrackTest, SharedTcpStateAtEveryStepOfAHandshakeAndClose) {
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn), WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_SYN_SENT);
  pass(Prog::ToWl, remote_tcp(kTcpSyn | kTcpAck, 9000, 1001), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_SYN_RECV);
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpAck, 1001, 9001), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_ESTABLISHED);
  pass(Prog::ToWl, remote_tcp(kTcpAck | kTcpPsh, 9001, 1001), WEIR_CNT_ACCEPT_ESTABLISHED, 2);
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_ESTABLISHED);
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpFin | kTcpAck, 1001, 9001), WEIR_CNT_ACCEPT_ESTABLISHED, 2);
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_FIN_WAIT);
  // Not over yet: a SYN on the 5-tuple does not start a new flow (the entry stays).
  backdate(kClientIp, kCport, kRemoteIp, kRport, kTcp);
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn, 5000), WEIR_CNT_ACCEPT_ESTABLISHED, 3);
  EXPECT_EQ(entry().created_ns, kBackdated);
  pass(Prog::ToWl, remote_tcp(kTcpFin | kTcpAck, 9001, 1002), WEIR_CNT_ACCEPT_ESTABLISHED, 3);
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_CLOSED);
  // Over (weir_ct_is_dead): the next SYN starts a new flow.
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn, 70000), WEIR_CNT_ACCEPT_NEW_FLOW, 2);
  EXPECT_NE(entry().created_ns, kBackdated);
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_SYN_SENT);
  // Reset by the remote: RESET, over.
  pass(Prog::ToWl, remote_tcp(kTcpRst | kTcpAck, 0, 70001), WEIR_CNT_ACCEPT_ESTABLISHED, 4);
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_RESET);
  backdate(kClientIp, kCport, kRemoteIp, kRport, kTcp);
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn, 80000), WEIR_CNT_ACCEPT_NEW_FLOW, 3);
  EXPECT_NE(entry().created_ns, kBackdated);
}

TEST_F(ConntrackTest, SynAnsweredByABareAckIsNoHandshake) {
  // A challenge ACK (the remote still holds an older connection on this 5-tuple): legs
  // {SYN(|ACK), ACK}. SYN-SENT for the datapath, the scanner (20 s) and the CLI alike.
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn), WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  pass(Prog::ToWl, remote_tcp(kTcpAck, 9000, 5), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(remote_flags(), uint32_t(WEIR_CT_LEG_ACK));
  EXPECT_EQ(tcp_state(entry()), WEIR_CT_TCP_SYN_SENT);
  EXPECT_EQ(calc::ct_timeout(calc::ct_state(kTcp, entry().a.flags, entry().b.flags), model::ConntrackTimeouts{}),
            std::chrono::seconds(20));
}

TEST_F(ConntrackTest, BothEntriesOfANatFlowGiveTheSameSharedState) {
  const uint16_t cport = 43005;
  auto both = [&](weir_ct_tcp want, const char* step) {
    auto f = ct(kClientIp, cport, kVip, kVipTcpPort, kTcp);
    auto r = ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
    ASSERT_TRUE(f.has_value() && r.has_value()) << step;
    EXPECT_EQ(tcp_state(*f), want) << step << " (NAT_FWD)";
    EXPECT_EQ(tcp_state(*r), want) << step << " (NAT_REV)";
  };
  auto r1 = from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 100));
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  ASSERT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_OK);
  both(WEIR_CT_TCP_SYN_SENT, "SYN");
  ASSERT_EQ(from_wl(be1_if, be1_tcp(kBeTcpPort, kClientIp, cport, kTcpSyn | kTcpAck, 7000, 101)).retval,
            TC_ACT_REDIRECT);
  both(WEIR_CT_TCP_SYN_RECV, "SYN-ACK");
  ASSERT_EQ(from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpAck, 101, 7001)).retval,
            TC_ACT_REDIRECT);
  both(WEIR_CT_TCP_ESTABLISHED, "ACK");
  ASSERT_EQ(from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpFin | kTcpAck, 101, 7001)).retval,
            TC_ACT_REDIRECT);
  both(WEIR_CT_TCP_FIN_WAIT, "FIN from the client");
  ASSERT_EQ(from_wl(be1_if, be1_tcp(kBeTcpPort, kClientIp, cport, kTcpFin | kTcpAck, 7001, 102)).retval,
            TC_ACT_REDIRECT);
  both(WEIR_CT_TCP_CLOSED, "FIN from the backend");
}

TEST_F(ConntrackTest, RstMarksTheFlowResetAndASynRecreatesIt) {
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn), WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  pass(Prog::ToWl, remote_tcp(kTcpRst | kTcpAck, 0, 1001), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(remote_flags(), uint32_t(WEIR_CT_LEG_RST | WEIR_CT_LEG_ACK));
  backdate(kClientIp, kCport, kRemoteIp, kRport, kTcp);
  // A new SYN (without ACK) starts over; any other packet does not.
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpAck, 1001), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(entry().created_ns, kBackdated);
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn), WEIR_CNT_ACCEPT_NEW_FLOW, 2);
  expect_current(entry().created_ns, "created_ns of the new flow");
  EXPECT_EQ(remote_flags(), 0u);
}

TEST_F(ConntrackTest, RstFromTheClientIsRecorded) {
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn), WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpRst), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(client_flags(), kWl | WEIR_CT_LEG_SYN | WEIR_CT_LEG_RST);
}

TEST_F(ConntrackTest, MidStreamTcpWithoutEntryCreatesNoState) {
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpAck, 5, 6), WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn | kTcpAck, 5, 6), WEIR_CNT_ACCEPT_NEW_FLOW, 2);
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpRst, 5), WEIR_CNT_ACCEPT_NEW_FLOW, 3);
  EXPECT_TRUE(tc->ct_all().empty());
}

TEST_F(ConntrackTest, ToWlCreatesAnEntryWithTheReceivingWorkloadApproved) {
  pass(Prog::ToWl, remote_tcp(kTcpSyn), WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  auto e = entry();
  EXPECT_EQ(e.type, WEIR_CT_NORMAL);
  // The remote side sent the first packet: it is the client of this flow.
  EXPECT_EQ(bool(e.flags & WEIR_CT_F_A_IS_CLIENT), ct_key(kRemoteIp, kRport, kClientIp, kCport, kTcp).second);
  const auto& wl = leg_of(e, kClientIp, kCport, kRemoteIp, kRport);
  EXPECT_EQ(wl.flags, kWl);
  EXPECT_EQ(wl.ifindex, client_if);
  EXPECT_EQ(Mac(std::to_array(wl.wl_mac)), kClientMac);
  EXPECT_EQ(Mac(std::to_array(wl.host_mac)), kClientHostMac);
  EXPECT_EQ(remote_flags(), uint32_t(WEIR_CT_LEG_SYN));
  // The workload's answer is established.
  pass(Prog::FromWl, client_tcp(kCport, kRemoteIp, kRport, kTcpSyn | kTcpAck, 1, 9001), WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(client_flags(), kWl | WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK);
}

TEST_F(ConntrackTest, ToWlCreatesNoStateForRst) {
  pass(Prog::ToWl, remote_tcp(kTcpRst | kTcpAck), WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  EXPECT_TRUE(tc->ct_all().empty());
}

TEST_F(ConntrackTest, UdpFlowAndItsReply) {
  auto q = client_udp(42000, kRemoteIp, 53);
  pass(Prog::FromWl, q, WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  auto e = ct(kClientIp, 42000, kRemoteIp, 53, kUdp);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->type, WEIR_CT_NORMAL);
  EXPECT_EQ(leg_of(*e, kClientIp, 42000, kRemoteIp, 53).flags, kWl);
  auto reply = udp_pkt(kClientHostMac, kClientMac, kRemoteIp, 53, kClientIp, 42000);
  backdate(kClientIp, 42000, kRemoteIp, 53, kUdp);
  pass(Prog::ToWl, reply, WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  auto e2 = ct(kClientIp, 42000, kRemoteIp, 53, kUdp);
  ASSERT_TRUE(e2.has_value());
  expect_current(e2->last_seen_ns, "last_seen_ns");
  EXPECT_EQ(e2->created_ns, kBackdated);
  pass(Prog::FromWl, q, WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  EXPECT_EQ(tc->ct_all().size(), 1u);
}

TEST_F(ConntrackTest, IcmpEchoIsTrackedByIdentifier) {
  auto req = icmp_pkt(kClientMac, kClientHostMac, kClientIp, kRemoteIp, IcmpSpec::echo(8, 0x1234, 1));
  pass(Prog::FromWl, req, WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  auto e = ct(kClientIp, 0x1234, kRemoteIp, 0x1234, kIcmp);
  ASSERT_TRUE(e.has_value()) << "echo not keyed by (addr, id) on both sides";
  EXPECT_EQ(e->type, WEIR_CT_NORMAL);
  EXPECT_TRUE(e->flags & WEIR_CT_F_ICMP_ECHO);
  auto rep = icmp_pkt(kClientHostMac, kClientMac, kRemoteIp, kClientIp, IcmpSpec::echo(0, 0x1234, 1));
  pass(Prog::ToWl, rep, WEIR_CNT_ACCEPT_ESTABLISHED, 1);
  // Another identifier is another flow.
  auto req2 = icmp_pkt(kClientMac, kClientHostMac, kClientIp, kRemoteIp, IcmpSpec::echo(8, 0x1235, 1));
  pass(Prog::FromWl, req2, WEIR_CNT_ACCEPT_NEW_FLOW, 2);
  EXPECT_EQ(tc->ct_all().size(), 2u);
}

TEST_F(ConntrackTest, IcmpToAVipIsNotNatedButTracked) {
  auto req = icmp_pkt(kClientMac, kClientHostMac, kClientIp, kVip, IcmpSpec::echo(8, 7, 1));
  pass(Prog::FromWl, req, WEIR_CNT_ACCEPT_NEW_FLOW, 1);
  auto e = ct(kClientIp, 7, kVip, 7, kIcmp);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->type, WEIR_CT_NORMAL);
}

}  // namespace
}  // namespace weir::test
