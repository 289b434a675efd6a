// dataplane::sync_tunnel (tunnel_sync.h) over a fake kernel: the tunnel maps and weir_from_ul on the underlay
// interface follow the plan; adoption, moves, VXLAN switched off, and failures retried.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "dataplane/tunnel_sync.h"
#include "tunnel_testing.h"

namespace weir::dataplane {
namespace {

using test::FakeTunnel;

model::Ipv4 ip(const char* s) { return *model::Ipv4::parse(s); }

calc::TunnelPlan plan_on(const char* underlay) {
  calc::TunnelPlan p;
  p.enabled = true;
  p.vni = 4096;
  p.port = 4789;
  p.underlay_mtu = 1500;
  p.underlay = ip(underlay);
  p.vteps = {ip("192.168.200.3")};
  return p;
}

TEST(SyncTunnel, EnabledWritesTheMapsThenAttachesToTheInterfaceOfTheUnderlayAddress) {
  FakeTunnel k;
  k.addresses[ip("192.168.200.2")] = {5, "eth0"};
  TunnelState st;
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_EQ(k.written, plan_on("192.168.200.2"));
  EXPECT_EQ(k.written_ifindex, 5);
  EXPECT_EQ(k.attached, (std::set<std::string>{"eth0"}));
  EXPECT_EQ(k.log, (std::vector<std::string>{"find", "write", "attach eth0"}));
  EXPECT_TRUE(st.ok);
  // Unchanged: nothing is touched.
  k.log.clear();
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_TRUE(k.log.empty());
  // A peer more: the maps are rewritten, the program stays.
  auto more = plan_on("192.168.200.2");
  more.vteps.push_back(ip("192.168.200.4"));
  ASSERT_TRUE(sync_tunnel(k, more, st).ok());
  EXPECT_EQ(k.log, (std::vector<std::string>{"write"}));
  EXPECT_EQ(k.written, more);
}

TEST(SyncTunnel, TheAddressMovingToAnotherInterfaceMovesTheProgram) {
  FakeTunnel k;
  k.addresses[ip("192.168.200.2")] = {5, "eth0"};
  TunnelState st;
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  k.addresses[ip("192.168.200.2")] = {9, "eth1"};
  k.log.clear();
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_EQ(k.log, (std::vector<std::string>{"write", "attach eth1", "detach eth0"}));
  EXPECT_EQ(k.attached, (std::set<std::string>{"eth1"}));
  EXPECT_EQ(k.written_ifindex, 9);
}

TEST(SyncTunnel, AnotherBuildOfTheProgramIsAttachedAgainInPlace) {
  FakeTunnel k;
  k.addresses[ip("192.168.200.2")] = {5, "eth0"};
  TunnelState st;
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  k.log.clear();
  st.reattach = true;  // the agent switched builds (bpfLogLevel)
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_EQ(k.log, (std::vector<std::string>{"write", "attach eth0"})) << "replaced in place, never detached";
  EXPECT_FALSE(st.reattach);
  k.log.clear();
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_TRUE(k.log.empty());
  // A failed attach keeps asking.
  st.reattach = true;
  k.fail_attach = true;
  EXPECT_FALSE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_TRUE(st.reattach);
  k.fail_attach = false;
  k.log.clear();
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_EQ(k.log, (std::vector<std::string>{"write", "attach eth0"}));
}

TEST(SyncTunnel, OffWritesOffThenDetachesAlsoWhatAPreviousAgentLeft) {
  FakeTunnel k;
  k.attached = {"eth0"};  // a previous agent's
  k.found = UnderlayIf{5, "eth0"};
  TunnelState st;
  ASSERT_TRUE(sync_tunnel(k, calc::TunnelPlan{}, st).ok());
  EXPECT_EQ(k.log, (std::vector<std::string>{"find", "write", "detach eth0"}));
  EXPECT_FALSE(k.written.enabled);
  EXPECT_EQ(k.written_ifindex, 0);
  EXPECT_TRUE(k.attached.empty());
  EXPECT_FALSE(st.attached);
}

TEST(SyncTunnel, ARestartedAgentPutsItsOwnProgramInPlaceOfThePreviousOnes) {
  FakeTunnel k;
  k.addresses[ip("192.168.200.2")] = {5, "eth0"};
  k.attached = {"eth0"};  // a previous agent's (an older build after an upgrade)
  k.found = UnderlayIf{5, "eth0"};
  TunnelState st;
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_EQ(k.log, (std::vector<std::string>{"find", "write", "attach eth0"})) << "replaced in place, never detached";
  EXPECT_FALSE(st.reattach);
  k.log.clear();
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_TRUE(k.log.empty());
}

TEST(SyncTunnel, FailuresAreReportedAndRetried) {
  FakeTunnel k;
  TunnelState st;
  // The underlay address is on no interface of this namespace.
  auto r = sync_tunnel(k, plan_on("192.168.200.2"), st);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().str().find("192.168.200.2"), std::string::npos) << r.error().str();
  EXPECT_FALSE(st.ok);
  k.addresses[ip("192.168.200.2")] = {5, "eth0"};
  k.fail_attach = true;
  r = sync_tunnel(k, plan_on("192.168.200.2"), st);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().str().find("attaching weir_from_ul to eth0"), std::string::npos) << r.error().str();
  EXPECT_FALSE(st.ok);
  k.fail_attach = false;
  ASSERT_TRUE(sync_tunnel(k, plan_on("192.168.200.2"), st).ok());
  EXPECT_EQ(k.attached, (std::set<std::string>{"eth0"}));
  EXPECT_TRUE(st.ok);
}

}  // namespace
}  // namespace weir::dataplane
