// Counters: per (ifindex, hook), Total equals the sum of the outcomes (also checked after every
// test by the fixture), each packet lands in the right outcome, hooks and interfaces are
// separate, and the extra facts do not count as outcomes.
#include <set>

#include "tc_fixture.h"

namespace weir::test {
namespace {

class CountersTest : public TcTest {};

TEST_F(CountersTest, EveryPacketCountsOnceInTotalAndOnceInItsOutcome) {
  PacketSpec arp;
  arp.eth.src = kClientMac;
  arp.eth.dst = kClientHostMac;
  arp.eth.type = kEthArp;
  arp.raw_l3 = Bytes(28, 0);
  auto malformed = client_tcp(50000, kRemoteIp, 80, kTcpSyn);
  malformed.ip.ihl = 3;
  auto shortudp = client_udp(50001, kRemoteIp, 53);
  shortudp.payload.clear();
  shortudp.ip.tot_len = 24;

  struct Case {
    PacketSpec pkt;
    int outcome;
  };
  std::vector<Case> cases = {
      {arp, WEIR_CNT_ACCEPT_NON_IPV4},
      {malformed, WEIR_CNT_DROP_MALFORMED},
      {client_tcp(50002, kRemoteIp, 80, kTcpSyn), WEIR_CNT_ACCEPT_NEW_FLOW},
      {client_tcp(50002, kRemoteIp, 80, kTcpAck), WEIR_CNT_ACCEPT_ESTABLISHED},
      {client_tcp(50003, kVip, kVipTcpPort, kTcpSyn), WEIR_CNT_REDIRECT_PLAIN},
      {client_tcp(50004, kVip, kVipTcpEmptyPort, kTcpSyn), WEIR_CNT_DROP_NO_BACKEND},
      {client_udp(50005, kVip, kVipUdpEmptyPort), WEIR_CNT_DROP_NO_BACKEND},
  };
  for (const auto& c : cases) {
    auto before = tc->counters(client_if, kIngress);
    from_wl(client_if, c.pkt);
    auto after = tc->counters(client_if, kIngress);
    EXPECT_EQ(after.c[WEIR_CNT_TOTAL], before.c[WEIR_CNT_TOTAL] + 1);
    for (int i = WEIR_CNT_OUTCOME_FIRST; i < WEIR_CNT_OUTCOME_END; i++)
      EXPECT_EQ(after.c[i], before.c[i] + (i == c.outcome ? 1 : 0)) << "counter " << i << " for case " << c.outcome;
  }
  // Truncated frame (rewritten IP length) on the egress hook of another interface.
  run(Prog::ToWl, be1_if, truncated(build(shortudp), 14 + 24));
  EXPECT_EQ(only_outcome(be1_if, kEgress), std::make_pair(int(WEIR_CNT_DROP_SHORT), uint64_t(1)));
  EXPECT_EQ(cnt(be1_if, kIngress, WEIR_CNT_TOTAL), 0u) << "hooks are counted apart";
  EXPECT_EQ(cnt(client_if, kEgress, WEIR_CNT_TOTAL), 0u) << "interfaces are counted apart";
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_TOTAL), cases.size());
}

TEST_F(CountersTest, CountersAreKeyedByIfindexAndHook) {
  from_wl(client_if, client_udp(50010, kRemoteIp, 53));
  to_wl(client_if, udp_pkt(kClientHostMac, kClientMac, kRemoteIp, 53, kClientIp, 50010));
  auto keys = tc->counter_keys();
  ASSERT_EQ(keys.size(), 2u);
  std::set<std::pair<uint32_t, uint32_t>> seen;
  for (const auto& k : keys) seen.insert({k.ifindex, k.hook});
  EXPECT_EQ(seen, (std::set<std::pair<uint32_t, uint32_t>>{{client_if, kIngress}, {client_if, kEgress}}));
}

TEST_F(CountersTest, ExtraFactsAreNotOutcomes) {
  // A NAT source collision: counted as DROP_NAT_COLLISION (outcome) + OTHER_NAT_COLLISION.
  ASSERT_EQ(from_wl(client_if, client_tcp(50020, kBe1Ip, kBeTcpPort, kTcpSyn)).retval, TC_ACT_REDIRECT);
  from_wl(client_if, client_tcp(50020, kVip, kVipTcpPort, kTcpSyn));
  auto c = tc->counters(client_if, kIngress);
  uint64_t outcomes = 0;
  for (int i = WEIR_CNT_OUTCOME_FIRST; i < WEIR_CNT_OUTCOME_END; i++) outcomes += c.c[i];
  EXPECT_EQ(c.c[WEIR_CNT_TOTAL], 2u);
  EXPECT_EQ(outcomes, 2u);
  EXPECT_EQ(c.c[WEIR_CNT_OTHER_NAT_COLLISION], 1u);
}

}  // namespace
}  // namespace weir::test
