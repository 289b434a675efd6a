// Flow events (weir/flow.h, docs/observe.md) from the real programs: a new flow sends one START
// with the backend service NAT chose, a drop one DROP with its reason, established packets none;
// the per-CPU rate limit and a full ring buffer are counted, not silent; with the configuration
// all zero nothing is sent. And the per-entry packet and byte counts the flow ends report: each
// packet counted once, on the side that sent it.
#include <cstring>
#include <vector>

#include "dataplane/flow_events.h"
#include "tc_fixture.h"

namespace weir::test {
namespace {

class FlowEventsTest : public TcTest {
 protected:
  void SetUp() override {
    TcTest::SetUp();
    if (HasFatalFailure()) return;
    (void)flow_events();  // what earlier tests of the shared object left in the ring
    base = flow_stats();
  }
  std::vector<weir_flow_event> events() { return flow_events(); }
  // client -> be1 directly (no NAT): the SYN, be1's SYN-ACK and the client's `third` packet,
  // each at the sender's from_wl and then at the receiver's to_wl (where the redirect delivers it).
  void client_be1_exchange(const Bytes& syn, const Bytes& synack, const Bytes& third) {
    run(Prog::FromWl, client_if, syn);
    run(Prog::ToWl, be1_if, syn);
    run(Prog::FromWl, be1_if, synack);
    run(Prog::ToWl, client_if, synack);
    run(Prog::FromWl, client_if, third);
    run(Prog::ToWl, be1_if, third);
  }
  weir_flow_stats stats() { return flow_stats(); }
  weir_flow_stats base{};
};

TEST_F(FlowEventsTest, ANewFlowThroughAServiceSendsOneStartWithTheBackendAndEstablishedPacketsNone) {
  enable_flow_events();
  const uint64_t t0 = mono_ns();
  const Bytes syn = build(client_tcp(41000, kVip, kVipTcpPort, kTcpSyn));
  ASSERT_EQ(run(Prog::FromWl, client_if, syn).retval, TC_ACT_REDIRECT);
  auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  const weir_flow_event& e = ev[0];
  EXPECT_EQ(e.type, WEIR_FLOW_EV_START);
  EXPECT_EQ(e.saddr, kClientIp);
  EXPECT_EQ(e.daddr, kVip) << "the destination as the client addressed it";
  EXPECT_EQ(ntohs(e.sport), 41000);
  EXPECT_EQ(ntohs(e.dport), kVipTcpPort);
  EXPECT_EQ(e.nat_addr, kBe1Ip);
  EXPECT_EQ(ntohs(e.nat_port), kBeTcpPort);
  EXPECT_EQ(e.proto, kTcp);
  EXPECT_EQ(e.ifindex, client_if);
  EXPECT_EQ(e.hook, WEIR_HOOK_INGRESS);
  EXPECT_EQ(e.reason, WEIR_CNT_REDIRECT_PLAIN);
  EXPECT_EQ(e.tcp_flags, kTcpSyn);
  EXPECT_EQ(e.len, syn.size());
  EXPECT_GE(e.ts_ns, t0);
  EXPECT_LE(e.ts_ns, mono_ns());
  EXPECT_EQ(e.rule_id, 0u);

  // The same flow's next packets: established, no event.
  run(Prog::FromWl, client_if, build(client_tcp(41000, kVip, kVipTcpPort, kTcpAck, 1001, 1)));
  run(Prog::FromWl, client_if, build(client_tcp(41000, kVip, kVipTcpPort, kTcpAck, 1001, 1)));
  EXPECT_TRUE(events().empty());
  EXPECT_EQ(stats().sent - base.sent, 1u);

  // A flow from outside the node to a pod: its start is sent by to_wl, hook egress.
  ASSERT_EQ(run(Prog::ToWl, be1_if, build(tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, 40000, kBe1Ip, 8080, kTcpSyn))).retval,
            TC_ACT_OK);
  ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, WEIR_FLOW_EV_START);
  EXPECT_EQ(ev[0].hook, WEIR_HOOK_EGRESS);
  EXPECT_EQ(ev[0].ifindex, be1_if);
  EXPECT_EQ(ev[0].saddr, kRemoteIp);
  EXPECT_EQ(ev[0].nat_addr, 0u);
}

TEST_F(FlowEventsTest, EveryDropSendsOneEventWithItsCounterReason) {
  enable_flow_events();
  auto malformed = client_tcp(41100, kRemoteIp, 80, kTcpSyn);
  malformed.ip.ihl = 3;
  run(Prog::FromWl, client_if, build(malformed));
  run(Prog::FromWl, client_if, build(client_tcp(41101, kVip, kVipTcpEmptyPort, kTcpSyn)));
  // A packet from the client with another pod's source address.
  run(Prog::FromWl, client_if, build(tcp_pkt(kClientMac, kClientHostMac, kBe2Ip, 41102, kRemoteIp, 80, kTcpSyn)));
  auto ev = events();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].type, WEIR_FLOW_EV_DROP);
  EXPECT_EQ(ev[0].reason, WEIR_CNT_DROP_MALFORMED);
  EXPECT_EQ(ev[1].type, WEIR_FLOW_EV_DROP);
  EXPECT_EQ(ev[1].reason, WEIR_CNT_DROP_NO_BACKEND);
  EXPECT_EQ(ntohs(ev[1].dport), kVipTcpEmptyPort);
  EXPECT_EQ(ev[2].reason, WEIR_CNT_DROP_UNKNOWN_SOURCE);
  EXPECT_EQ(ev[2].saddr, kBe2Ip);
  for (const auto& e : ev) EXPECT_EQ(e.ifindex, client_if);
  // Each matches the counter the packet was counted under.
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_UNKNOWN_SOURCE), 1u);
}

TEST_F(FlowEventsTest, NothingIsSentWhileTheConfigurationIsZero) {
  // The fixture's reset zeroes weir_flowcfg1: what a node without an agent asking for events has.
  run(Prog::FromWl, client_if, build(client_tcp(41200, kVip, kVipTcpPort, kTcpSyn)));
  run(Prog::FromWl, client_if, build(client_tcp(41201, kVip, kVipTcpEmptyPort, kTcpSyn)));
  EXPECT_TRUE(events().empty());
  const weir_flow_stats s = stats();
  EXPECT_EQ(s.sent, base.sent);
  EXPECT_EQ(s.rate_limited, base.rate_limited);
  EXPECT_EQ(s.lost, base.lost);
}

TEST_F(FlowEventsTest, OverTheRateEventsAreCountedNotSent) {
  // One event per hour and CPU, a burst of 3: a flood of 200 drops sends 3 (on the CPU the test
  // runs on), the other 197 are counted as rate-limited.
  const uint64_t hour = 3600ull * 1000000000ull;
  enable_flow_events(hour, 2 * hour);
  auto bad = client_tcp(41300, kRemoteIp, 80, kTcpSyn);
  bad.ip.ihl = 3;
  auto r = tc->run(Prog::FromWl, client_if, build(bad), 200);
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(events().size(), 3u);
  const weir_flow_stats s = stats();
  EXPECT_EQ(s.sent - base.sent, 3u);
  EXPECT_EQ(s.rate_limited - base.rate_limited, 197u);
  EXPECT_EQ(s.lost, base.lost);
}

TEST_F(FlowEventsTest, AFullRingBufferLosesEventsAndCountsThem) {
  // Nobody reads during the run: the 1 MiB ring takes ~16Ki 64-byte records; 20000 drops
  // overflow it. Every event is sent or counted lost.
  enable_flow_events();
  auto bad = client_tcp(41400, kRemoteIp, 80, kTcpSyn);
  bad.ip.ihl = 3;
  constexpr int kRuns = 20000;
  auto r = tc->run(Prog::FromWl, client_if, build(bad), kRuns);
  ASSERT_TRUE(r.ok()) << r.error().str();
  const weir_flow_stats s = stats();
  const uint64_t sent = s.sent - base.sent, lost = s.lost - base.lost;
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(sent + lost, uint64_t(kRuns));
  EXPECT_EQ(events().size(), sent) << "every event counted as sent is in the ring";
}

TEST_F(FlowEventsTest, EachPacketIsCountedOnceOnTheSideThatSentIt) {
  // client -> be1 directly (no NAT): the SYN at the client's from_wl, then at be1's to_wl (where
  // the redirect delivers it: not counted again), be1's answer at its from_wl, then a packet
  // from outside the node to be1 (counted at to_wl: no from_wl of this node saw it).
  const Bytes syn = build(client_tcp(41500, kBe1Ip, 8080, kTcpSyn));
  const Bytes synack = build(be1_tcp(8080, kClientIp, 41500, kTcpSyn | kTcpAck, 5000, 1001));
  const Bytes ack = build(client_tcp(41500, kBe1Ip, 8080, kTcpAck, 1001, 5001));
  client_be1_exchange(syn, synack, ack);
  auto v = ct(kClientIp, 41500, kBe1Ip, 8080, kTcp);
  ASSERT_TRUE(v.has_value());
  const bool client_is_a = ct_key(kClientIp, 41500, kBe1Ip, 8080, kTcp).second;
  const uint64_t client_pk = client_is_a ? v->packets_a : v->packets_b;
  const uint64_t client_by = client_is_a ? v->bytes_a : v->bytes_b;
  const uint64_t server_pk = client_is_a ? v->packets_b : v->packets_a;
  const uint64_t server_by = client_is_a ? v->bytes_b : v->bytes_a;
  EXPECT_EQ(client_pk, 2u);
  EXPECT_EQ(client_by, syn.size() + ack.size());
  EXPECT_EQ(server_pk, 1u);
  EXPECT_EQ(server_by, synack.size());

  const Bytes from_outside = build(tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, 40500, kBe1Ip, 8080, kTcpSyn));
  run(Prog::ToWl, be1_if, from_outside);
  run(Prog::ToWl, be1_if, build(tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, 40500, kBe1Ip, 8080, kTcpAck, 1001, 1)));
  auto o = ct(kRemoteIp, 40500, kBe1Ip, 8080, kTcp);
  ASSERT_TRUE(o.has_value());
  const bool remote_is_a = ct_key(kRemoteIp, 40500, kBe1Ip, 8080, kTcp).second;
  EXPECT_EQ(remote_is_a ? o->packets_a : o->packets_b, 2u);
  EXPECT_EQ(remote_is_a ? o->packets_b : o->packets_a, 0u);
}

TEST_F(FlowEventsTest, AServiceFlowsCountsSplitOverItsPairAndSumToWhatWasSent) {
  const Bytes syn = build(client_tcp(41600, kVip, kVipTcpPort, kTcpSyn));
  ASSERT_EQ(run(Prog::FromWl, client_if, syn).retval, TC_ACT_REDIRECT);
  // The backend answers from its own address to the client: the REV entry, reverse NAT.
  const Bytes synack = build(be1_tcp(kBeTcpPort, kClientIp, 41600, kTcpSyn | kTcpAck, 5000, 1001));
  run(Prog::FromWl, be1_if, synack);
  run(Prog::FromWl, client_if, build(client_tcp(41600, kVip, kVipTcpPort, kTcpAck, 1001, 5001)));
  auto fwd_key = ct_key(kClientIp, 41600, kVip, kVipTcpPort, kTcp).first;
  auto rev_key = ct_key(kClientIp, 41600, kBe1Ip, kBeTcpPort, kTcp).first;
  auto fwd = tc->ct_get(fwd_key), rev = tc->ct_get(rev_key);
  ASSERT_TRUE(fwd && rev);
  dataplane::CtRemoved removed{fwd_key, *fwd, *rev, false};
  const model::Flow f = dataplane::flow_end_of(removed, 0);
  EXPECT_EQ(f.packets_sent, 2u);
  EXPECT_EQ(f.packets_received, 1u);
  EXPECT_EQ(f.bytes_received, synack.size());
  EXPECT_EQ(f.source.ip, model::Ipv4::from_network_order(kClientIp));
  EXPECT_EQ(f.destination.ip, model::Ipv4::from_network_order(kVip));
  EXPECT_EQ(f.destination.port, kVipTcpPort);
  ASSERT_TRUE(f.translated.has_value());
  EXPECT_EQ(f.translated->ip, model::Ipv4::from_network_order(kBe1Ip));
  EXPECT_EQ(f.translated->port, kBeTcpPort);
  EXPECT_EQ(f.close_reason, "idle timeout");
}

// A new SYN on the 5-tuple of a flow that ended (here by a reset) replaces its entry: the old
// flow's end is sent with the entry as it was (each way's counts, the reset), then the new flow's
// start. The scanner never sees that entry: without this its end would go unreported.
TEST_F(FlowEventsTest, ANewSynOnAFinishedFlowSendsTheOldFlowsEndThenTheNewStart) {
  enable_flow_events();
  const Bytes syn = build(client_tcp(41700, kBe1Ip, 8080, kTcpSyn));
  const Bytes synack = build(be1_tcp(8080, kClientIp, 41700, kTcpSyn | kTcpAck, 5000, 1001));
  const Bytes rst = build(client_tcp(41700, kBe1Ip, 8080, kTcpRst | kTcpAck, 1001, 5001));
  client_be1_exchange(syn, synack, rst);
  ASSERT_EQ(events().size(), 1u) << "the first flow's start";
  ASSERT_TRUE(flow_ends.empty());

  const Bytes syn2 = build(client_tcp(41700, kBe1Ip, 8080, kTcpSyn, 77777));
  ASSERT_EQ(run(Prog::FromWl, client_if, syn2).retval, TC_ACT_REDIRECT);
  auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, WEIR_FLOW_EV_START) << "the new flow";
  ASSERT_EQ(flow_ends.size(), 1u);
  const dataplane::CtRemoved& r = flow_ends[0];
  const weir_ct_key want = ct_key(kClientIp, 41700, kBe1Ip, 8080, kTcp).first;
  EXPECT_EQ(std::memcmp(&r.key, &want, sizeof(want)), 0);
  EXPECT_FALSE(r.twin.has_value());
  const model::Flow f = dataplane::flow_end_of(r, 0);
  EXPECT_EQ(f.close_reason, "rst");
  EXPECT_EQ(f.source.ip, model::Ipv4::from_network_order(kClientIp));
  EXPECT_EQ(f.destination.port, 8080);
  EXPECT_EQ(f.packets_sent, 2u);
  EXPECT_EQ(f.bytes_sent, syn.size() + rst.size());
  EXPECT_EQ(f.packets_received, 1u);
  EXPECT_EQ(f.bytes_received, synack.size());
  EXPECT_EQ(stats().sent - base.sent, 3u);
  // The new flow's entry: only its SYN.
  auto v = ct(kClientIp, 41700, kBe1Ip, 8080, kTcp);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->packets_a + v->packets_b, 1u);
}

// Through a service: the end is the NAT pair's, sent from its FWD half with the REV half as twin
// (whichever half the new SYN hit), as the scanner reports it.
TEST_F(FlowEventsTest, AReplacedServiceFlowsEndCarriesItsPair) {
  enable_flow_events();
  const Bytes syn = build(client_tcp(41800, kVip, kVipTcpPort, kTcpSyn));
  ASSERT_EQ(run(Prog::FromWl, client_if, syn).retval, TC_ACT_REDIRECT);
  const Bytes synack = build(be1_tcp(kBeTcpPort, kClientIp, 41800, kTcpSyn | kTcpAck, 5000, 1001));
  run(Prog::FromWl, be1_if, synack);
  const Bytes rst = build(client_tcp(41800, kVip, kVipTcpPort, kTcpRst | kTcpAck, 1001, 5001));
  run(Prog::FromWl, client_if, rst);
  (void)events();
  ASSERT_EQ(run(Prog::FromWl, client_if, build(client_tcp(41800, kVip, kVipTcpPort, kTcpSyn, 4242))).retval,
            TC_ACT_REDIRECT);
  auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, WEIR_FLOW_EV_START);
  ASSERT_EQ(flow_ends.size(), 1u);
  const dataplane::CtRemoved& r = flow_ends[0];
  EXPECT_EQ(r.val.type, WEIR_CT_NAT_FWD);
  ASSERT_TRUE(r.twin.has_value());
  EXPECT_EQ(r.twin->type, WEIR_CT_NAT_REV);
  const model::Flow f = dataplane::flow_end_of(r, 0);
  EXPECT_EQ(f.destination.ip, model::Ipv4::from_network_order(kVip));
  ASSERT_TRUE(f.translated.has_value());
  EXPECT_EQ(f.translated->ip, model::Ipv4::from_network_order(kBe1Ip));
  EXPECT_EQ(f.close_reason, "rst");
  EXPECT_EQ(f.packets_sent, 2u);
  EXPECT_EQ(f.packets_received, 1u);
  EXPECT_EQ(f.bytes_received, synack.size());
}

}  // namespace
}  // namespace weir::test
