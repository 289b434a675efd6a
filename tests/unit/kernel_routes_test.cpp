// dataplane/kernel_routes.h without root: which kernel routes calc's remote routes call for, and
// the sync over a fake table (the netlink table itself: tests/bpf/kernel_routes_test.cpp).
#include "dataplane/kernel_routes.h"

#include <gtest/gtest.h>

#include "dataplane_testing.h"

namespace weir::dataplane {
namespace {

using namespace test;

model::Cidr cidr(const std::string& s) {
  size_t slash = s.find('/');
  return model::Cidr{ip(s.substr(0, slash).c_str()), uint8_t(std::stoi(s.substr(slash + 1)))};
}

calc::Route remote(const char* c, const char* via) {
  calc::Route r;
  r.cidr = cidr(c);
  r.flags = calc::kRouteRemote;
  if (via) r.next_hop = ip(via);
  return r;
}

TEST(KernelRoutes, WantedAreRemoteCidrsAndTheSlash32sTheyDoNotCover) {
  calc::Route local;
  local.cidr = cidr("10.65.0.2/32");
  local.flags = calc::kRouteLocalWorkload;
  auto want = wanted_kernel_routes({
      local, remote("10.65.0.64/26", "192.168.200.3"),
      remote("10.65.0.66/32", "192.168.200.3"),  // inside node-b's CIDR: covered
      remote("10.65.0.70/32", "192.168.200.4"),  // inside it, but on another node: its own route
      remote("10.65.9.9/32", "192.168.200.3"),   // outside every CIDR
      remote("10.65.0.130/32", nullptr),         // its node has no Node resource
  });
  ASSERT_EQ(want.size(), 3u);
  EXPECT_EQ(want[0].str(), "10.65.0.64/26 via 192.168.200.3");
  EXPECT_EQ(want[1].str(), "10.65.0.70/32 via 192.168.200.4");
  EXPECT_EQ(want[2].str(), "10.65.9.9/32 via 192.168.200.3");
}

TEST(KernelRoutes, SyncAddsRepointsRemovesAndLeavesOthersAlone) {
  FakeRouteTable t;
  t.routes[cidr("10.65.0.64/26")] = ip("192.168.200.9");   // node-b moved
  t.routes[cidr("10.65.0.192/26")] = ip("192.168.200.5");  // a node that is gone
  t.foreign.insert(cidr("10.65.1.0/26"));                  // the operator's route
  std::vector<KernelRoute> want = {{cidr("10.65.0.64/26"), ip("192.168.200.3")},
                                   {cidr("10.65.0.128/26"), ip("192.168.200.4")},
                                   {cidr("10.65.1.0/26"), ip("192.168.200.6")}};
  auto st = sync_kernel_routes(t, want);
  ASSERT_FALSE(st.ok());  // the destination the operator routes is not taken over
  EXPECT_NE(st.error().msg.find("1 kernel route failures"), std::string::npos) << st.error().msg;
  EXPECT_NE(st.error().msg.find("10.65.1.0/26 via 192.168.200.6"), std::string::npos)
      << st.error().msg;
  EXPECT_EQ(t.routes,
            (std::map<model::Cidr, model::Ipv4>{{cidr("10.65.0.64/26"), ip("192.168.200.3")},
                                                {cidr("10.65.0.128/26"), ip("192.168.200.4")}}));
  // In step: nothing written again.
  want.pop_back();
  int writes = t.writes;
  ASSERT_TRUE(sync_kernel_routes(t, want).ok());
  EXPECT_EQ(t.writes, writes);
  // A failing route does not stop the others.
  t.fail.insert(cidr("10.65.0.64/26"));
  auto partial = sync_kernel_routes(t, {{cidr("10.65.0.128/26"), ip("192.168.200.7")}});
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(t.routes[cidr("10.65.0.128/26")], ip("192.168.200.7"));
  EXPECT_TRUE(t.routes.contains(cidr("10.65.0.64/26")));  // its removal failed
}

}  // namespace
}  // namespace weir::dataplane
