// calc/calc.h routes and interfaces; calc/diff.h.
#include <gtest/gtest.h>

#include "calc/calc.h"
#include "calc/diff.h"
#include "model_testing.h"
#include "weir/common.h"  // WEIR_IPPROTO_*: the IP protocol numbers

namespace weir::calc {
namespace {

using model::Cidr;
using model::Ipv4;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
Cidr c32(const char* s) { return Cidr{ip(s), 32}; }

model::Snapshot fixtures() {
  auto r = weir::testing::load_testdata({"services.yaml", "endpointslices.yaml", "workloads.yaml"});
  EXPECT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  return r.ok() ? *r.snapshot : model::Snapshot{};
}

model::Snapshot snapshot(const std::string& yaml) {
  auto r = weir::testing::load_text("test.yaml", yaml);
  EXPECT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  return r.ok() ? *r.snapshot : model::Snapshot{};
}

TEST(CalcRoutes, LocalAndRemote) {
  auto routes = compute_routes(fixtures(), "node-a");
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].cidr, c32("10.65.0.2"));
  EXPECT_EQ(routes[0].flags, kRouteLocalWorkload);
  EXPECT_EQ(routes[0].interface, "weir0a1b2c3d4e");
  ASSERT_TRUE(routes[0].mac);
  EXPECT_EQ(routes[0].mac->str(), "02:00:0a:41:00:02");
  EXPECT_EQ(routes[0].workload, "default/api-0");

  EXPECT_EQ(routes[1].cidr, c32("10.65.0.5"));
  EXPECT_EQ(routes[1].flags, kRouteLocalWorkload);
  EXPECT_EQ(routes[1].interface, "weir5e6f7a8b9c");
  EXPECT_FALSE(routes[1].mac);

  EXPECT_EQ(routes[2].cidr, c32("10.65.1.2"));
  EXPECT_EQ(routes[2].flags, kRouteRemote);  // api-1 lives on node-b
  EXPECT_EQ(routes[2].interface, "");
  EXPECT_FALSE(routes[2].mac);
  EXPECT_EQ(routes[2].workload, "default/api-1");
  EXPECT_EQ(routes[2].cidr.str(), "10.65.1.2/32");
}

TEST(CalcRoutes, OtherNodeSeesTheOpposite) {
  auto routes = compute_routes(fixtures(), "node-b");
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].flags, kRouteRemote);
  EXPECT_EQ(routes[1].flags, kRouteRemote);
  EXPECT_EQ(routes[2].flags, kRouteLocalWorkload);
  EXPECT_EQ(routes[2].interface, "weir0a1b2c3d4e");
}

TEST(CalcRoutes, RemoteRoutesComeFromNodes) {
  auto snap = snapshot(R"(
apiVersion: weir.dev/v1
kind: Node
metadata: {name: node-a}
spec: {underlayAddress: 192.168.200.2, podCIDR: 10.65.0.0/26}
---
apiVersion: weir.dev/v1
kind: Node
metadata: {name: node-b}
spec: {underlayAddress: 192.168.200.3, podCIDR: 10.65.0.64/26}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: a1}
spec: {node: node-a, interface: weira1, ips: [10.65.0.2]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: b1}
spec: {node: node-b, interface: weirb1, ips: [10.65.0.66]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: c1}
spec: {node: node-c, interface: weirc1, ips: [10.65.0.130]}
)");
  auto routes = compute_routes(snap, "node-a");
  ASSERT_EQ(routes.size(), 4u);
  // This node's own pod: local, no next hop; its own pod CIDR gets no route.
  EXPECT_EQ(routes[0].cidr, c32("10.65.0.2"));
  EXPECT_EQ(routes[0].flags, kRouteLocalWorkload);
  EXPECT_FALSE(routes[0].next_hop);
  // node-b's pod CIDR, then its pod: both remote, via node-b's underlay address.
  EXPECT_EQ(routes[1].cidr.str(), "10.65.0.64/26");
  EXPECT_EQ(routes[1].flags, kRouteRemote);
  EXPECT_EQ(routes[1].node, "node-b");
  EXPECT_EQ(routes[1].workload, "");
  ASSERT_TRUE(routes[1].next_hop);
  EXPECT_EQ(routes[1].next_hop->str(), "192.168.200.3");
  EXPECT_EQ(routes[2].cidr, c32("10.65.0.66"));
  EXPECT_EQ(routes[2].flags, kRouteRemote);
  EXPECT_EQ(routes[2].workload, "default/b1");
  ASSERT_TRUE(routes[2].next_hop);
  EXPECT_EQ(routes[2].next_hop->str(), "192.168.200.3");
  // A pod on a node without a Node resource: remote, nowhere to send it.
  EXPECT_EQ(routes[3].cidr, c32("10.65.0.130"));
  EXPECT_EQ(routes[3].node, "node-c");
  EXPECT_FALSE(routes[3].next_hop);
  // From node-b: node-a's CIDR is the remote one.
  auto from_b = compute_routes(snap, "node-b");
  ASSERT_EQ(from_b.size(), 4u);
  EXPECT_EQ(from_b[0].cidr.str(), "10.65.0.0/26");
  ASSERT_TRUE(from_b[0].next_hop);
  EXPECT_EQ(from_b[0].next_hop->str(), "192.168.200.2");
  EXPECT_EQ(from_b[1].cidr, c32("10.65.0.2"));
  EXPECT_EQ(from_b[1].flags, kRouteRemote);
  EXPECT_EQ(from_b[2].cidr, c32("10.65.0.66"));
  EXPECT_EQ(from_b[2].flags, kRouteLocalWorkload);
}

TEST(CalcInterfaces, OnlyThisNode) {
  auto ifs = compute_interfaces(fixtures(), "node-a");
  ASSERT_EQ(ifs.size(), 2u);
  EXPECT_EQ(ifs[0].name, "weir0a1b2c3d4e");
  EXPECT_EQ(ifs[0].workload, "default/api-0");
  EXPECT_EQ(ifs[0].ips, std::vector<Ipv4>{ip("10.65.0.2")});
  ASSERT_TRUE(ifs[0].mac);
  EXPECT_EQ(ifs[1].name, "weir5e6f7a8b9c");
  EXPECT_EQ(ifs[1].workload, "kube-system/dns-0");
  EXPECT_TRUE(compute_interfaces(fixtures(), "node-z").empty());
}

TEST(CalcInterfaces, MultipleIpsSorted) {
  auto s = snapshot(R"(
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: multi}
spec: {node: n1, interface: eth-m, ips: ["10.65.0.9", "10.65.0.3/32"]}
)");
  auto ifs = compute_interfaces(s, "n1");
  ASSERT_EQ(ifs.size(), 1u);
  EXPECT_EQ(ifs[0].ips, (std::vector<Ipv4>{ip("10.65.0.3"), ip("10.65.0.9")}));
  auto routes = compute_routes(s, "n1");
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].cidr, c32("10.65.0.3"));
  EXPECT_EQ(routes[1].cidr, c32("10.65.0.9"));
  EXPECT_EQ(routes[0].interface, "eth-m");
  EXPECT_EQ(routes[1].interface, "eth-m");
}

TEST(CalcOutput, Lookups) {
  Output o = compute(fixtures(), "node-a");
  ASSERT_NE(o.find_route(c32("10.65.1.2")), nullptr);
  EXPECT_EQ(o.find_route(c32("10.65.1.2"))->workload, "default/api-1");
  EXPECT_EQ(o.find_route(Cidr{ip("10.65.1.2"), 24}), nullptr);
  ASSERT_NE(o.find_interface("weir5e6f7a8b9c"), nullptr);
  EXPECT_EQ(o.find_interface("nope"), nullptr);
}

// ---------------------------------------------------------------- diff

TEST(CalcDiff, IdenticalIsEmpty) {
  Output a = compute(fixtures(), "node-a");
  Diff d = diff(a, a);
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.summary(), "frontends +0 ~0 -0, routes +0 ~0 -0, interfaces +0 ~0 -0");
}

TEST(CalcDiff, FromNothingEverythingIsAdded) {
  Output a = compute(fixtures(), "node-a");
  Diff d = diff(Output{}, a);
  EXPECT_EQ(d.frontends.added, a.frontends);
  EXPECT_EQ(d.routes.added, a.routes);
  EXPECT_EQ(d.interfaces.added, a.interfaces);
  EXPECT_TRUE(d.frontends.updated.empty());
  EXPECT_TRUE(d.frontends.removed.empty());
  Diff back = diff(a, Output{});
  ASSERT_EQ(back.frontends.removed.size(), a.frontends.size());
  for (size_t i = 0; i < a.frontends.size(); ++i)
    EXPECT_EQ(back.frontends.removed[i], a.frontends[i].key);
  ASSERT_EQ(back.interfaces.removed.size(), 2u);
  EXPECT_EQ(back.interfaces.removed[0], "weir0a1b2c3d4e");
  EXPECT_EQ(back.routes.size(), 3u);
}

TEST(CalcDiff, AddUpdateRemove) {
  model::Snapshot before = fixtures();
  model::Snapshot after = before;
  // Update: a backend of api goes away (api-2's 10.65.1.2 becomes not ready).
  for (auto& es : after.endpoint_slices)
    if (es.meta.name == "api-2") es.endpoints[0].conditions.ready = false;
  // Remove: the dns service (and its slice); add: a service.
  std::erase_if(after.services, [](const auto& s) { return s.meta.name == "dns"; });
  std::erase_if(after.endpoint_slices, [](const auto& s) { return s.service_name == "dns"; });
  model::Service extra = after.services[0];
  extra.meta.name = "extra";
  extra.cluster_ip = ip("10.96.0.99");
  after.services.push_back(extra);
  // Routes/interfaces: dns-0 removed, api-1 moves to node-a with a new interface, api-0's MAC
  // changes.
  std::erase_if(after.workload_endpoints, [](const auto& w) { return w.meta.name == "dns-0"; });
  for (auto& w : after.workload_endpoints) {
    if (w.meta.name == "api-1") {
      w.node = "node-a";
      w.interface = "weirnew";
    }
    if (w.meta.name == "api-0") w.mac = model::Mac::parse("02:00:00:00:00:99");
  }

  Diff d = diff(compute(before, "node-a"), compute(after, "node-a"));
  // frontends
  ASSERT_EQ(d.frontends.removed.size(), 2u);
  EXPECT_EQ(d.frontends.removed[0], (FrontendKey{ip("10.96.0.10"), 53, WEIR_IPPROTO_TCP}));
  EXPECT_EQ(d.frontends.removed[1], (FrontendKey{ip("10.96.0.10"), 53, WEIR_IPPROTO_UDP}));
  ASSERT_EQ(d.frontends.updated.size(), 2u);  // api http and metrics lost a backend, gained local
  EXPECT_EQ(d.frontends.updated[0].key, (FrontendKey{ip("10.96.0.30"), 80, WEIR_IPPROTO_TCP}));
  EXPECT_EQ(d.frontends.updated[0].backends.size(), 1u);
  ASSERT_EQ(d.frontends.added.size(), 2u);
  EXPECT_EQ(d.frontends.added[0].key.vip, ip("10.96.0.99"));
  EXPECT_EQ(d.frontends.added[0].service, "default/extra:http");
  // routes: 10.65.0.2 updated (MAC), 10.65.0.5 removed, 10.65.1.2 updated (remote -> local)
  ASSERT_EQ(d.routes.removed.size(), 1u);
  EXPECT_EQ(d.routes.removed[0], c32("10.65.0.5"));
  ASSERT_EQ(d.routes.updated.size(), 2u);
  EXPECT_EQ(d.routes.updated[0].cidr, c32("10.65.0.2"));
  EXPECT_EQ(d.routes.updated[1].cidr, c32("10.65.1.2"));
  EXPECT_EQ(d.routes.updated[1].flags, kRouteLocalWorkload);
  EXPECT_TRUE(d.routes.added.empty());
  // interfaces: weir0a1b2c3d4e updated (MAC), weir5e6f7a8b9c removed, weirnew added
  ASSERT_EQ(d.interfaces.updated.size(), 1u);
  EXPECT_EQ(d.interfaces.updated[0].name, "weir0a1b2c3d4e");
  ASSERT_EQ(d.interfaces.removed.size(), 1u);
  EXPECT_EQ(d.interfaces.removed[0], "weir5e6f7a8b9c");
  ASSERT_EQ(d.interfaces.added.size(), 1u);
  EXPECT_EQ(d.interfaces.added[0].name, "weirnew");
  EXPECT_EQ(d.summary(), "frontends +2 ~2 -2, routes +0 ~2 -1, interfaces +1 ~1 -1");
}

TEST(CalcDiff, InterleavedKeys) {
  auto r = [](const char* a) { return Route{c32(a), kRouteRemote, "", std::nullopt, "x/y", "node-b", std::nullopt}; };
  std::vector<Route> before{r("10.0.0.1"), r("10.0.0.3"), r("10.0.0.5")};
  std::vector<Route> after{r("10.0.0.2"), r("10.0.0.3"), r("10.0.0.4"), r("10.0.0.6")};
  auto d = diff_routes(before, after);
  ASSERT_EQ(d.added.size(), 3u);
  EXPECT_EQ(d.added[0].cidr, c32("10.0.0.2"));
  EXPECT_EQ(d.added[1].cidr, c32("10.0.0.4"));
  EXPECT_EQ(d.added[2].cidr, c32("10.0.0.6"));
  EXPECT_EQ(d.removed, (std::vector<Cidr>{c32("10.0.0.1"), c32("10.0.0.5")}));
  EXPECT_TRUE(d.updated.empty());
}

}  // namespace
}  // namespace weir::calc
