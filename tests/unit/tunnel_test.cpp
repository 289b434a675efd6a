// The agent's API for VXLAN (dataplane/tunnel.h) over fake maps: the configuration's encoding
// and checks, and the replacement of the peer set (the new peers before the stale ones go).
// The programs reading what it writes: tests/bpf/vxlan_test.cpp.
#include "dataplane/tunnel.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "maps/fake_table.h"

namespace weir::dataplane {
namespace {

model::Ipv4 ip(const char* s) { return *model::Ipv4::parse(s); }

TunnelConfig on() {
  TunnelConfig c;
  c.vxlan_enabled = true;
  c.vni = 0x123456;
  c.port = 8472;
  c.underlay_mtu = 9000;
  c.underlay_ifindex = 3;
  c.underlay_addr = ip("192.168.200.2");
  return c;
}

TEST(Tunnel, ConfigComesFromThePlanAndTheUnderlayInterface) {
  calc::TunnelPlan plan;
  plan.enabled = true;
  plan.vni = 77;
  plan.port = 8472;
  plan.underlay_mtu = 1450;
  plan.underlay = ip("10.0.0.1");
  const TunnelConfig c = tunnel_config(plan, 9);
  EXPECT_TRUE(c.vxlan_enabled);
  EXPECT_EQ(c.vni, 77u);
  EXPECT_EQ(c.port, 8472);
  EXPECT_EQ(c.underlay_mtu, 1450u);
  EXPECT_EQ(c.underlay_ifindex, 9u);
  EXPECT_EQ(c.underlay_addr, ip("10.0.0.1"));
}

TEST(Tunnel, ValueIsInTheByteOrderThePacketsUse) {
  auto v = tunnel_value(on());
  ASSERT_TRUE(v.ok()) << v.error().str();
  EXPECT_EQ(v->flags, uint32_t(WEIR_TUNNEL_F_VXLAN));
  EXPECT_EQ(v->vni, 0x123456u);
  EXPECT_EQ(v->port, htons(8472));
  EXPECT_EQ(v->mtu, 9000u);
  EXPECT_EQ(v->underlay_ifindex, 3u);
  EXPECT_EQ(v->underlay_addr, inet_addr("192.168.200.2"));
}

TEST(Tunnel, OffIsAllZeroWhateverTheRest) {
  TunnelConfig c = on();
  c.vxlan_enabled = false;
  c.vni = 0;  // would be refused when on
  auto v = tunnel_value(c);
  ASSERT_TRUE(v.ok()) << v.error().str();
  const weir_tunnel_val zero{};
  EXPECT_EQ(std::memcmp(&*v, &zero, sizeof(zero)), 0);
}

TEST(Tunnel, IncompleteConfigurationIsRefusedWithTheFieldNamed) {
  struct Case {
    void (*change)(TunnelConfig&);
    const char* says;
  };
  const Case cases[] = {
      {[](TunnelConfig& c) { c.vni = 0; }, "VNI 0 is not in 1..16777215"},
      {[](TunnelConfig& c) { c.vni = 1u << 24; }, "VNI 16777216 is not in 1..16777215"},
      {[](TunnelConfig& c) { c.port = 0; }, "UDP port 0"},
      {[](TunnelConfig& c) { c.underlay_mtu = 575; }, "underlay MTU 575 is not in 576..65535"},
      {[](TunnelConfig& c) { c.underlay_ifindex = 0; }, "no underlay interface"},
      {[](TunnelConfig& c) { c.underlay_addr = model::Ipv4{}; }, "no underlay address"},
  };
  for (const auto& k : cases) {
    TunnelConfig c = on();
    k.change(c);
    maps::FakeTable<__u32, weir_tunnel_val> t("weir_tunnel1", 1);
    auto st = set_tunnel(t, c);
    ASSERT_FALSE(st.ok()) << k.says;
    EXPECT_EQ(st.error().err, EINVAL);
    EXPECT_NE(st.error().msg.find(k.says), std::string::npos) << st.error().msg;
    EXPECT_EQ(t.updates(), 0u) << "nothing written: " << k.says;
  }
}

TEST(Tunnel, SetTunnelWritesEntryZeroAndReportsTheMap) {
  maps::FakeTable<__u32, weir_tunnel_val> t("weir_tunnel1", 1);
  ASSERT_TRUE(set_tunnel(t, on()).ok());
  auto v = t.lookup(0);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->vni, 0x123456u);
  t.fail_updates(EPERM);
  auto st = set_tunnel(t, on());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err, EPERM);
  EXPECT_NE(st.error().msg.find("writing the tunnel configuration (VXLAN on) into weir_tunnel1"),
            std::string::npos)
      << st.error().msg;
}

std::vector<uint32_t> keys(const maps::FakeTable<__u32, __u32>& t) {
  std::vector<uint32_t> out;
  auto all = t.dump();
  for (const auto& [k, v] : *all) {
    EXPECT_EQ(v, uint32_t(WEIR_VTEP_F_NODE));
    out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint32_t> be(std::initializer_list<const char*> addrs) {
  std::vector<uint32_t> out;
  for (const char* a : addrs) out.push_back(ip(a).network_order());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Tunnel, SetVtepsReplacesThePeerSetTouchingOnlyWhatChanged) {
  maps::FakeTable<__u32, __u32> t("weir_vteps1", 16);
  ASSERT_TRUE(set_vteps(t, {ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.3")}).ok());
  EXPECT_EQ(keys(t), be({"10.0.0.2", "10.0.0.3"}));
  EXPECT_EQ(t.updates(), 2u);
  // .3 stays (not rewritten), .2 goes, .4 comes.
  ASSERT_TRUE(set_vteps(t, {ip("10.0.0.3"), ip("10.0.0.4")}).ok());
  EXPECT_EQ(keys(t), be({"10.0.0.3", "10.0.0.4"}));
  EXPECT_EQ(t.updates(), 3u);
  EXPECT_EQ(t.deletes(), 1u);
  // A peer written with other flags (by hand, an older weir) is rewritten.
  ASSERT_TRUE(t.update(ip("10.0.0.3").network_order(), 7).ok());
  ASSERT_TRUE(set_vteps(t, {ip("10.0.0.3"), ip("10.0.0.4")}).ok());
  EXPECT_EQ(keys(t), be({"10.0.0.3", "10.0.0.4"}));
  ASSERT_TRUE(set_vteps(t, {}).ok());
  EXPECT_TRUE(keys(t).empty());
}

TEST(Tunnel, SetVtepsAddsBeforeItRemoves) {
  // Full with the old set: adding the new peer fails before any old one is removed, so the
  // nodes that were accepted still are (a removal first would have made room and hidden it).
  maps::FakeTable<__u32, __u32> t("weir_vteps1", 2);
  ASSERT_TRUE(set_vteps(t, {ip("10.0.0.2"), ip("10.0.0.3")}).ok());
  auto st = set_vteps(t, {ip("10.0.0.3"), ip("10.0.0.9")});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err, E2BIG);
  EXPECT_NE(st.error().msg.find("adding VXLAN peer 10.0.0.9: weir_vteps1 holds at most 2 nodes"),
            std::string::npos)
      << st.error().msg;
  EXPECT_EQ(keys(t), be({"10.0.0.2", "10.0.0.3"}));
  EXPECT_EQ(t.deletes(), 0u);
}

TEST(Tunnel, SetVtepsRefusesANodeWithoutAddress) {
  maps::FakeTable<__u32, __u32> t("weir_vteps1", 16);
  auto st = set_vteps(t, {ip("10.0.0.2"), model::Ipv4{}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err, EINVAL);
  EXPECT_EQ(t.updates(), 0u);
}

}  // namespace
}  // namespace weir::dataplane
