// Pure helpers of src/maps: conntrack state decoding, counters metadata, formatting, pin
// layout. No root needed.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "bpf/bpffs.h"
#include "maps/decode.h"
#include "maps/pin_layout.h"
#include "maps/weir_maps.h"

namespace weir::maps {
namespace {

weir_ct_leg leg(uint32_t flags) {
  weir_ct_leg l{};
  l.flags = flags;
  return l;
}

TEST(CtState, TcpStatesFromLegs) {
  const uint8_t tcp = WEIR_IPPROTO_TCP;
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_SYN), leg(0)), "SYN-SENT");
  EXPECT_EQ(ct_state(tcp, leg(0), leg(WEIR_CT_LEG_SYN)), "SYN-SENT");
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_SYN), leg(WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK)), "SYN-RECV");
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK), leg(WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK)),
            "ESTABLISHED");
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_ACK), leg(WEIR_CT_LEG_ACK)), "ESTABLISHED");
  // One SYN answered by a bare ACK: the scanner gives it the SYN-SENT timeout, and so says the CLI.
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK), leg(WEIR_CT_LEG_ACK)), "SYN-SENT");
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_SYN | WEIR_CT_LEG_FIN), leg(WEIR_CT_LEG_SYN)), "FIN-WAIT");
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_SYN), leg(WEIR_CT_LEG_SYN | WEIR_CT_LEG_FIN)), "FIN-WAIT");
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_FIN), leg(WEIR_CT_LEG_FIN)), "CLOSED");
  // RST wins over everything.
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_FIN), leg(WEIR_CT_LEG_FIN | WEIR_CT_LEG_RST)), "RESET");
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_RST), leg(0)), "RESET");
  // Approval/workload bits do not change the state.
  EXPECT_EQ(ct_state(tcp, leg(WEIR_CT_LEG_SYN | WEIR_CT_LEG_APPROVED), leg(WEIR_CT_LEG_WORKLOAD)), "SYN-SENT");
}

TEST(CtState, NoStateForUdpAndIcmp) {
  EXPECT_EQ(ct_state(WEIR_IPPROTO_UDP, leg(WEIR_CT_LEG_SYN), leg(WEIR_CT_LEG_SYN)), "");
  EXPECT_EQ(ct_state(WEIR_IPPROTO_ICMP, leg(WEIR_CT_LEG_RST), leg(0)), "");
}

TEST(CtDecode, TypeAndLegFlagNames) {
  EXPECT_EQ(ct_type_name(WEIR_CT_NORMAL), "NORMAL");
  EXPECT_EQ(ct_type_name(WEIR_CT_NAT_FWD), "NAT_FWD");
  EXPECT_EQ(ct_type_name(WEIR_CT_NAT_REV), "NAT_REV");
  EXPECT_EQ(ct_type_name(9), "TYPE9");
  EXPECT_EQ(ct_leg_flags(0), "");
  EXPECT_EQ(ct_leg_flags(WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK | WEIR_CT_LEG_APPROVED), "SYN|ACK|APPROVED");
  EXPECT_EQ(ct_leg_flags(WEIR_CT_LEG_WORKLOAD | 0x100), "WORKLOAD|0x100");
}

TEST(CtStatsDecode, SumOverCpusFieldByField) {
  weir_ct_stats a{}, b{};
  a.created = 5, a.create_failed = 1, a.deleted = 2, a.midflow_miss = 3, a.midflow_renat = 2,
  a.midflow_reset = 1;
  b.created = 7, b.deleted = 1, b.midflow_miss = 1, b.midflow_renat = 1;
  auto s = sum_ct_stats({a, b, weir_ct_stats{}});
  EXPECT_EQ(s.created, 12u);
  EXPECT_EQ(s.create_failed, 1u);
  EXPECT_EQ(s.deleted, 3u);
  EXPECT_EQ(s.midflow_miss, 4u);
  EXPECT_EQ(s.midflow_renat, 3u);
  EXPECT_EQ(s.midflow_reset, 1u);
  EXPECT_EQ(sum_ct_stats({}).created, 0u);
}

TEST(CtStatsDecode, EvictionsAndOccupancy) {
  weir_ct_stats dp{}, agent{};
  dp.created = 1000, dp.deleted = 10, agent.deleted = 300;
  EXPECT_EQ(ct_evictions_estimate(dp, agent, 600), 90u);
  EXPECT_EQ(ct_evictions_estimate(dp, agent, 690), 0u);
  EXPECT_EQ(ct_evictions_estimate(dp, agent, 5000), 0u) << "clamped, never wraps";
  EXPECT_EQ(ct_occupancy_permille(4095, 4096), 999u);
  EXPECT_EQ(ct_occupancy_permille(4096, 4096), 1000u);
  EXPECT_EQ(ct_occupancy_permille(1, 0), 0u);
  EXPECT_EQ(ct_occupancy_permille(524288, 524288), 1000u);
}

TEST(Decode, ProtoNames) {
  EXPECT_EQ(proto_name(6), "TCP");
  EXPECT_EQ(proto_name(17), "UDP");
  EXPECT_EQ(proto_name(1), "ICMP");
  EXPECT_EQ(proto_name(47), "47");
}

TEST(Decode, AddressesInNetworkOrder) {
  uint32_t a = htonl(0x0a60000a);  // 10.96.0.10
  EXPECT_EQ(format_ip(a), "10.96.0.10");
  EXPECT_EQ(format_ip_port(a, htons(53)), "10.96.0.10:53");
  EXPECT_EQ(port_host(htons(9153)), 9153);
  ASSERT_TRUE(parse_ip("192.168.129.66").has_value());
  EXPECT_EQ(*parse_ip("192.168.129.66"), htonl(0xc0a88142));
  EXPECT_FALSE(parse_ip("192.168.1").has_value());
  EXPECT_FALSE(parse_ip("").has_value());
  EXPECT_FALSE(parse_ip("300.1.1.1").has_value());
}

TEST(Decode, RouteAndIfFlags) {
  EXPECT_EQ(route_flags(WEIR_RT_F_LOCAL_WORKLOAD | WEIR_RT_F_IN_POOL), "local workload, in pool");
  EXPECT_EQ(route_flags(WEIR_RT_F_REMOTE), "remote");
  EXPECT_EQ(route_flags(0), "");
  EXPECT_EQ(ifstate_flags(WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY), "workload, ready");
  weir_ifstate_val v{};
  std::memcpy(v.name, "0123456789abcdef", 16);  // no NUL: all 16 bytes are the name
  EXPECT_EQ(ifstate_name(v), "0123456789abcdef");
  std::memcpy(v.name, "eth0\0garbage", 12);
  EXPECT_EQ(ifstate_name(v), "eth0");
}

TEST(Counters, EveryCounterHasMetadata) {
  std::set<std::string> json_names;
  std::set<std::pair<std::string, std::string>> texts;
  for (uint32_t id = 0; id < WEIR_CNT__MAX; id++) {
    auto m = counter_meta(id);
    ASSERT_TRUE(m.has_value()) << "counter " << id;
    EXPECT_EQ(static_cast<uint32_t>(m->id), id) << "kCounters row out of order at " << id;
    EXPECT_FALSE(m->category.empty()) << id;
    EXPECT_FALSE(m->type.empty()) << id;
    EXPECT_FALSE(m->json_name.empty()) << id;
    EXPECT_TRUE(json_names.insert(std::string(m->json_name)).second) << "duplicate json name " << m->json_name;
    EXPECT_TRUE(texts.insert({std::string(m->category), std::string(m->type)}).second)
        << "duplicate row " << m->category << "/" << m->type;
    bool outcome_range = id >= WEIR_CNT_OUTCOME_FIRST && id < WEIR_CNT_OUTCOME_END;
    EXPECT_EQ(m->outcome, outcome_range) << id;
  }
  EXPECT_FALSE(counter_meta(WEIR_CNT__MAX).has_value());
}

TEST(Counters, SeedTextsAreExact) {
  auto text = [](uint32_t id) {
    auto m = counter_meta(id);
    return std::string(m->category) + "/" + std::string(m->type);
  };
  EXPECT_EQ(text(WEIR_CNT_ACCEPT_BY_OTHER_PROG), "Accepted/by another program");
  EXPECT_EQ(text(WEIR_CNT_ACCEPT_BY_FAILSAFE), "Accepted/by failsafe");
  EXPECT_EQ(text(WEIR_CNT_ACCEPT_BY_POLICY), "Accepted/by policy");
  EXPECT_EQ(text(WEIR_CNT_DROP_NAT_COLLISION), "Dropped/NAT source collision resolution failed");
  EXPECT_EQ(text(WEIR_CNT_DROP_FRAG_ORDER), "Dropped/fragment out of order within host");
  EXPECT_EQ(text(WEIR_CNT_DROP_IP_OPTIONS), "Dropped/packets with unsupported IP options");
  EXPECT_EQ(text(WEIR_CNT_DROP_SHORT), "Dropped/too short packets");
  EXPECT_EQ(text(WEIR_CNT_OTHER_NAT_COLLISION), "Other/packets hitting NAT source collision");
  EXPECT_EQ(text(WEIR_CNT_REDIRECT_PLAIN), "Redirect/plain");
  EXPECT_EQ(text(WEIR_CNT_TOTAL), "Total/packets");
}

TEST(Counters, DisplayOrderIsAPermutationGroupedByCategory) {
  const auto& order = counter_display_order();
  ASSERT_EQ(order.size(), static_cast<size_t>(WEIR_CNT__MAX));
  std::set<uint32_t> seen(order.begin(), order.end());
  EXPECT_EQ(seen.size(), static_cast<size_t>(WEIR_CNT__MAX));
  // Categories appear as contiguous groups in the seed's order.
  std::vector<std::string> cats;
  for (auto id : order) {
    std::string c(counter_meta(id)->category);
    if (cats.empty() || cats.back() != c) cats.push_back(c);
  }
  EXPECT_EQ(cats, (std::vector<std::string>{"Accepted", "Dropped", "Other", "Redirect", "Total"}));
  EXPECT_EQ(order.front(), WEIR_CNT_ACCEPT_BY_OTHER_PROG);
  EXPECT_EQ(order.back(), WEIR_CNT_TOTAL);
}

TEST(Hooks, Names) {
  EXPECT_EQ(hook_name(WEIR_HOOK_INGRESS), "ingress");
  EXPECT_EQ(hook_name(WEIR_HOOK_EGRESS), "egress");
  EXPECT_EQ(hook_name(WEIR_HOOK_XDP), "xdp");
  EXPECT_EQ(hook_name(7), "hook7");
}

TEST(PinLayoutTest, Paths) {
  PinLayout l{"/sys/fs/bpf/weir-test/"};
  EXPECT_EQ(l.maps_dir(), "/sys/fs/bpf/weir-test/maps");
  EXPECT_EQ(l.map_path(WEIR_MAP_CT), "/sys/fs/bpf/weir-test/maps/weir_ct2");
  EXPECT_EQ(l.links_dir(), "/sys/fs/bpf/weir-test/links");
  EXPECT_EQ(l.link_path("eth0.100", bpf::TcDir::Ingress), "/sys/fs/bpf/weir-test/links/eth0_100_ingress");
  EXPECT_EQ(l.link_path("weir1a", bpf::TcDir::Egress), "/sys/fs/bpf/weir-test/links/weir1a_egress");
}

TEST(PinLayoutTest, SanitizePinName) {
  EXPECT_EQ(bpf::sanitize_pin_name("eth0"), "eth0");
  EXPECT_EQ(bpf::sanitize_pin_name("vlan.10"), "vlan_10");
  EXPECT_EQ(bpf::sanitize_pin_name("a/b"), "a_b");
  EXPECT_EQ(bpf::sanitize_pin_name(""), "_");
  EXPECT_EQ(bpf::sanitize_pin_name("weir-x_1"), "weir-x_1");
}

TEST(MapNames, AllMapsListedOnceAndShort) {
  const auto& names = all_map_names();
  EXPECT_EQ(names.size(), 25u);
  std::set<std::string> s(names.begin(), names.end());
  EXPECT_EQ(s.size(), names.size());
  for (const auto& n : names) {
    EXPECT_LE(n.size(), 15u) << n << " is longer than BPF_OBJ_NAME_LEN - 1";
    EXPECT_EQ(n.find('.'), std::string::npos) << n << ": bpffs names may not contain dots";
  }
}

}  // namespace
}  // namespace weir::maps
