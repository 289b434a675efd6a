// calc::tunnel_plan: what VXLAN needs on this node, from the DataplaneConfig and the Nodes.
#include <gtest/gtest.h>

#include "calc/tunnel.h"

namespace weir::calc {
namespace {

model::Ipv4 ip(const char* s) { return *model::Ipv4::parse(s); }

model::Node node(const char* name, const char* underlay, const char* cidr_addr, uint8_t len) {
  model::Node n;
  n.meta.name = name;
  n.underlay_address = ip(underlay);
  n.pod_cidr = model::Cidr{ip(cidr_addr), len};
  return n;
}

const std::vector<model::Node> kNodes = {node("c", "192.168.200.4", "10.65.0.128", 26),
                                         node("a", "192.168.200.2", "10.65.0.0", 26),
                                         node("b", "192.168.200.3", "10.65.0.64", 26)};

TEST(CalcTunnel, DisabledIsOffWhateverTheNodesSay) {
  model::DataplaneConfig c;
  auto p = tunnel_plan(c, kNodes, "a");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->enabled);
  EXPECT_EQ(*p, TunnelPlan{});
  EXPECT_EQ(p->str(), "VXLAN off");
  // Off even for a node without a Node resource: routed mode does not need one to run.
  EXPECT_TRUE(tunnel_plan(c, {}, "nobody").ok());
}

TEST(CalcTunnel, EnabledTakesTheConfigAndThisNodesAddressAndTheOthersAsPeers) {
  model::DataplaneConfig c;
  c.vxlan_enabled = true;
  c.vxlan_vni = 77;
  c.vxlan_port = 8472;
  c.underlay_mtu = 9000;
  auto p = tunnel_plan(c, kNodes, "b");
  ASSERT_TRUE(p.ok()) << p.error().str();
  EXPECT_TRUE(p->enabled);
  EXPECT_EQ(p->vni, 77u);
  EXPECT_EQ(p->port, 8472);
  EXPECT_EQ(p->underlay_mtu, 9000u);
  EXPECT_EQ(p->underlay, ip("192.168.200.3"));
  EXPECT_EQ(p->vteps, (std::vector<model::Ipv4>{ip("192.168.200.2"), ip("192.168.200.4")}));
  EXPECT_EQ(p->str(), "VXLAN VNI 77 port 8472 underlay 192.168.200.3 mtu 9000, 2 peers");
  // A peer's change changes the plan (the agent rewrites the VTEP set).
  auto moved = kNodes;
  moved[0].underlay_address = ip("192.168.200.9");
  EXPECT_NE(*tunnel_plan(c, moved, "b"), *p);
}

TEST(CalcTunnel, EnabledWithoutThisNodesNodeResourceNamesIt) {
  model::DataplaneConfig c;
  c.vxlan_enabled = true;
  auto p = tunnel_plan(c, kNodes, "d");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().str().find("this node (d) has no Node resource"), std::string::npos)
      << p.error().str();
  // A single-node cluster has no peers, and that is fine.
  auto alone = tunnel_plan(c, {node("d", "192.168.200.9", "10.65.1.0", 26)}, "d");
  ASSERT_TRUE(alone.ok());
  EXPECT_TRUE(alone->vteps.empty());
  EXPECT_EQ(alone->str(), "VXLAN VNI 4096 port 4789 underlay 192.168.200.9 mtu 1500, 0 peers");
}

}  // namespace
}  // namespace weir::calc
