// dataplane::NetlinkRouteTable against the kernel, in the tests' private network namespace
// (netns_env.cpp): weir's routes to other nodes' pod CIDRs are added, listed, re-pointed and
// removed over rtnetlink; a route weir did not make is never listed, replaced or removed.
#include "bpf/netlink.h"
#include "dataplane/kernel_routes.h"

#include <gtest/gtest.h>

#include "lab/process.h"
#include "netns_env.h"
#include "tc_harness.h"

namespace weir::test {
namespace {

using dataplane::KernelRoute;

model::Cidr cidr(const char* a, uint8_t len) { return model::Cidr{*model::Ipv4::parse(a), len}; }
model::Ipv4 ip(const char* a) { return *model::Ipv4::parse(a); }

std::string ip_route(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip", "route"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = lab::run_checked(argv);
  EXPECT_TRUE(r.ok()) << r.error().str();
  return r.ok() ? *r : "";
}

TEST(KernelRoutesNetlink, AddListRepointRemoveAndLeaveOthersAlone) {
  ASSERT_TRUE(topology().ready) << topology().error;
  // An underlay: a veth with 192.168.200.2/24, so that next hops in it resolve to a device.
  auto v = add_veth("weirkr0", "weirkr1");
  ASSERT_TRUE(v.ok()) << v.error().str();
  ASSERT_TRUE(lab::run_checked({"ip", "addr", "add", "192.168.200.2/24", "dev", "weirkr0"}).ok());
  ASSERT_TRUE(lab::run_checked({"ip", "link", "set", "weirkr0", "up"}).ok());
  ASSERT_TRUE(lab::run_checked({"ip", "link", "set", "weirkr1", "up"}).ok());
  // The operator's own route to a pod CIDR weir will be asked to route too.
  ip_route({"add", "10.65.2.0/24", "via", "192.168.200.9"});

  dataplane::NetlinkRouteTable t;
  const KernelRoute b{cidr("10.65.1.0", 24), ip("192.168.200.3")};
  ASSERT_TRUE(t.add(b).ok());
  auto l = t.list();
  ASSERT_TRUE(l.ok()) << l.error().str();
  EXPECT_EQ(*l, std::vector<KernelRoute>{b});
  EXPECT_NE(ip_route({"show", "proto", "77"}).find("10.65.1.0/24 via 192.168.200.3 dev weirkr0"),
            std::string::npos);
  // Re-pointed (the node moved), then a second one.
  ASSERT_TRUE(t.replace({b.dst, ip("192.168.200.4")}).ok());
  ASSERT_TRUE(t.add({cidr("10.65.3.7", 32), ip("192.168.200.5")}).ok());
  l = t.list();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<KernelRoute>{{b.dst, ip("192.168.200.4")},
                                          {cidr("10.65.3.7", 32), ip("192.168.200.5")}}));
  // The operator's route: not weir's to list, and never taken over.
  auto taken = t.add({cidr("10.65.2.0", 24), ip("192.168.200.3")});
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().err, EEXIST);
  EXPECT_NE(taken.error().msg.find("weir did not make"), std::string::npos) << taken.error().msg;
  EXPECT_NE(ip_route({"show", "10.65.2.0/24"}).find("via 192.168.200.9"), std::string::npos);
  // The sync removes weir's routes that are no longer wanted, and only those.
  ASSERT_TRUE(dataplane::sync_kernel_routes(t, {{b.dst, ip("192.168.200.4")}}).ok());
  l = t.list();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->size(), 1u);
  ASSERT_TRUE(dataplane::sync_kernel_routes(t, {}).ok());
  EXPECT_EQ(ip_route({"show", "proto", "77"}), "");
  EXPECT_NE(ip_route({"show", "10.65.2.0/24"}).find("via 192.168.200.9"), std::string::npos);
  ip_route({"del", "10.65.2.0/24"});

  // The neighbour entries `weir bpf arp dump` shows for the next hops.
  ASSERT_TRUE(lab::run_checked({"ip", "neigh", "replace", "192.168.200.3", "lladdr",
                                "02:00:00:00:00:03", "dev", "weirkr0", "nud", "permanent"})
                  .ok());
  auto neigh = bpf::list_neighbours_v4();
  ASSERT_TRUE(neigh.ok()) << neigh.error().str();
  auto link = bpf::link_by_name("weirkr0");
  ASSERT_TRUE(link.ok());
  bool found = false;
  for (const auto& n : *neigh) {
    if (n.addr != ip("192.168.200.3").network_order()) continue;
    found = true;
    EXPECT_EQ(n.ifindex, link->ifindex);
    EXPECT_TRUE(n.has_lladdr);
    EXPECT_EQ(bpf::format_mac(n.lladdr.data()), "02:00:00:00:00:03");
    EXPECT_EQ(bpf::neigh_state_name(n.state), "PERMANENT");
  }
  EXPECT_TRUE(found);
  ASSERT_TRUE(lab::run_checked({"ip", "link", "del", "weirkr0"}).ok());
}

}  // namespace
}  // namespace weir::test
