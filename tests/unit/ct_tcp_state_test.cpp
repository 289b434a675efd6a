// One TCP conntrack state: weir_ct_tcp_state() of bpf/include/weir/conntrack.h is what the
// datapath (weir_ct_is_dead), the scanner (calc::ct_state, its timeout) and the CLI
// (maps::ct_state, the state column of `conntrack dump`) all use. Every combination of leg
// flags gives the same state everywhere.
#include <gtest/gtest.h>

#include <string>

#include "calc/conntrack.h"
#include "maps/decode.h"
#include "weir/conntrack.h"

namespace weir {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kAllLegBits = WEIR_CT_LEG_SYN | WEIR_CT_LEG_FIN | WEIR_CT_LEG_RST |
                                 WEIR_CT_LEG_ACK | WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;

weir_ct_leg leg(uint32_t flags) {
  weir_ct_leg l{};
  l.flags = flags;
  return l;
}

// The timeout field the scanner must use for a state of the shared definition.
std::chrono::nanoseconds expected_timeout(weir_ct_tcp s, const model::ConntrackTimeouts& t) {
  switch (s) {
    case WEIR_CT_TCP_SYN_SENT:
    case WEIR_CT_TCP_SYN_RECV: return t.tcp_syn_sent;
    case WEIR_CT_TCP_ESTABLISHED: return t.tcp_established;
    case WEIR_CT_TCP_FIN_WAIT:
    case WEIR_CT_TCP_CLOSED: return t.tcp_fin;
    case WEIR_CT_TCP_RESET: return t.tcp_reset;
    default: return -1ns;
  }
}

TEST(CtTcpState, ScannerAndCliAgreeOnEveryLegCombination) {
  const model::ConntrackTimeouts t{1s, 2s, 3s, 4s, 5s, 6s, 7s};  // all different
  size_t combos = 0;
  for (uint32_t a = 0; a <= kAllLegBits; a++) {
    if (a & ~kAllLegBits) continue;
    for (uint32_t b = 0; b <= kAllLegBits; b++) {
      if (b & ~kAllLegBits) continue;
      combos++;
      const weir_ct_tcp shared = weir_ct_tcp_state(a, b);
      ASSERT_LT(uint32_t(shared), uint32_t(WEIR_CT_TCP__MAX));
      const calc::CtState scanner = calc::ct_state(WEIR_IPPROTO_TCP, a, b);
      const std::string cli = maps::ct_state(WEIR_IPPROTO_TCP, leg(a), leg(b));
      SCOPED_TRACE(testing::Message() << "legs a=" << maps::ct_leg_flags(a)
                                      << " b=" << maps::ct_leg_flags(b));
      EXPECT_EQ(cli, maps::ct_tcp_state_name(shared));
      EXPECT_EQ(std::string(calc::to_string(scanner)), cli);
      EXPECT_EQ(calc::ct_timeout(scanner, t), expected_timeout(shared, t));
      // The legs are symmetric: which side is A does not matter.
      EXPECT_EQ(weir_ct_tcp_state(b, a), shared);
      // weir_ct_is_dead (the datapath) is true exactly for RESET and CLOSED.
      EXPECT_EQ(bool(weir_ct_tcp_is_over(shared)),
                scanner == calc::CtState::TcpReset || scanner == calc::CtState::TcpClosed);
    }
  }
  EXPECT_EQ(combos, 64u * 64u);
}

TEST(CtTcpState, TheLegsTheIssueNamed) {
  // {SYN|ACK, ACK}: SYN-SENT for the scanner (20 s) and the CLI alike.
  const uint32_t a = WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK, b = WEIR_CT_LEG_ACK;
  EXPECT_EQ(weir_ct_tcp_state(a, b), WEIR_CT_TCP_SYN_SENT);
  EXPECT_EQ(calc::ct_state(WEIR_IPPROTO_TCP, a, b), calc::CtState::TcpSynSent);
  EXPECT_EQ(maps::ct_state(WEIR_IPPROTO_TCP, leg(a), leg(b)), "SYN-SENT");
  EXPECT_EQ(calc::ct_timeout(calc::ct_state(WEIR_IPPROTO_TCP, a, b), model::ConntrackTimeouts{}),
            20s);
}

}  // namespace
}  // namespace weir
