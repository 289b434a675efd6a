// EndpointManager over in-memory maps and fake interfaces: ifstate, routes and the order of
// attach/detach, without root. Against real veths and TC hooks: tests/bpf/dataplane_test.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "dataplane/endpoint_manager.h"
#include "dataplane/policy_slots.h"
#include "dataplane_testing.h"
#include "maps/decode.h"

namespace weir::dataplane {
namespace {

using namespace test;

calc::Interface workload(const std::string& iface, const char* addr) {
  calc::Interface itf;
  itf.name = iface;
  itf.workload = "default/" + iface;
  itf.ips = {ip(addr)};
  return itf;
}

calc::Route local_route(const std::string& iface, const char* addr) {
  calc::Route r;
  r.cidr = model::Cidr{ip(addr), 32};
  r.flags = WEIR_RT_F_LOCAL_WORKLOAD;
  r.interface = iface;
  r.workload = "default/" + iface;
  return r;
}

weir_route_key route_key(const char* addr, uint32_t len = 32) {
  weir_route_key k{};
  k.prefixlen = len;
  k.addr = ip(addr).network_order();
  return k;
}

TEST(EndpointManagerFake, ANewWorkloadGetsIfstateThenPolicyThenProgramsThenRoutes) {
  maps::FakeTables m;
  FakeInterfaces ifs;
  ifs.add("weir1", 7);
  EndpointManager em(m.core(), ifs);
  ASSERT_TRUE(em.adopt().ok());
  int hook_calls = 0;
  auto hook = [&]() -> Status {
    hook_calls++;
    auto v = m.ifstate.peek(7);
    EXPECT_TRUE(v.has_value()) << "no ifstate entry when the policy hook runs";
    if (v) {
      EXPECT_EQ(v->flags & WEIR_IF_F_READY, 0u) << "READY before the programs are attached";
    }
    EXPECT_TRUE(ifs.calls.empty()) << "programs attached before the policy hook";
    EXPECT_EQ(em.ifindex_of("weir1"), 7);
    return set_policy_slot(m.ifstate, 7, calc::pol::Direction::Egress, 9);
  };
  ASSERT_TRUE(em.apply({workload("weir1", "10.65.0.2")}, {local_route("weir1", "10.65.0.2")}, hook).ok());
  EXPECT_EQ(hook_calls, 1);
  EXPECT_EQ(ifs.calls, (std::vector<std::string>{"attach weir1 7 ingress", "attach weir1 7 egress"}));
  auto v = m.ifstate.peek(7);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(maps::ifstate_name(*v), "weir1");
  EXPECT_EQ(v->flags, uint32_t(WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY));
  EXPECT_EQ(v->egress_slot, 9u) << "the slot the hook set was overwritten by the attach";
  EXPECT_EQ(v->ingress_slot, WEIR_NO_POLICY_SLOT);
  EXPECT_EQ(v->host_mac[5], 7);
  auto r = m.routes.peek(route_key("10.65.0.2"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ifindex, 7u);
  EXPECT_EQ(r->flags, uint32_t(WEIR_RT_F_LOCAL_WORKLOAD));
  EXPECT_EQ(em.managed(), 1u);
  EXPECT_FALSE(em.has_pending());

  // Nothing changed: nothing is written again.
  const size_t writes = m.ifstate.updates() + m.routes.updates();
  ASSERT_TRUE(em.apply({workload("weir1", "10.65.0.2")}, {local_route("weir1", "10.65.0.2")}).ok());
  EXPECT_EQ(m.ifstate.updates() + m.routes.updates(), writes);
  EXPECT_EQ(ifs.calls.size(), 2u);
}

TEST(EndpointManagerFake, ARemoteRouteCarriesItsNextHopAndChangesWithIt) {
  maps::FakeTables m;
  FakeInterfaces ifs;
  EndpointManager em(m.core(), ifs);
  calc::Route r;
  r.cidr = model::Cidr{ip("10.65.0.64"), 26};
  r.flags = calc::kRouteRemote;
  r.node = "node-b";
  r.next_hop = ip("192.168.200.3");
  ASSERT_TRUE(em.apply({}, {r}).ok());
  auto v = m.routes.peek(route_key("10.65.0.64", 26));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->flags, uint32_t(WEIR_RT_F_REMOTE));
  EXPECT_EQ(v->next_hop, ip("192.168.200.3").network_order());
  EXPECT_EQ(v->ifindex, 0u);
  r.next_hop = ip("192.168.200.4");  // the node moved
  ASSERT_TRUE(em.apply({}, {r}).ok());
  v = m.routes.peek(route_key("10.65.0.64", 26));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->next_hop, ip("192.168.200.4").network_order());
  ASSERT_TRUE(em.apply({}, {}).ok());
  EXPECT_FALSE(m.routes.contains(route_key("10.65.0.64", 26)));
}

TEST(EndpointManagerFake, AMissingInterfaceIsPendingAndGetsNoRoute) {
  maps::FakeTables m;
  FakeInterfaces ifs;
  EndpointManager em(m.core(), ifs);
  ASSERT_TRUE(em.apply({workload("weir2", "10.65.0.3")}, {local_route("weir2", "10.65.0.3")}).ok());
  EXPECT_TRUE(em.has_pending());
  EXPECT_EQ(m.ifstate.size(), 0u);
  EXPECT_EQ(m.routes.size(), 0u) << "a route to an interface that does not exist";
  ifs.add("weir2", 8);
  ASSERT_TRUE(em.apply({workload("weir2", "10.65.0.3")}, {local_route("weir2", "10.65.0.3")}).ok());
  EXPECT_FALSE(em.has_pending());
  EXPECT_TRUE(m.routes.contains(route_key("10.65.0.3")));
}

TEST(EndpointManagerFake, AWorkloadThatGoesIsDetachedAndItsStateRemoved) {
  maps::FakeTables m;
  FakeInterfaces ifs;
  ifs.add("weir1", 7);
  ifs.add("weir2", 8);
  EndpointManager em(m.core(), ifs);
  ASSERT_TRUE(em.apply({workload("weir1", "10.65.0.2"), workload("weir2", "10.65.0.3")},
                       {local_route("weir1", "10.65.0.2"), local_route("weir2", "10.65.0.3")})
                  .ok());
  ASSERT_TRUE(m.counters.update(weir_counters_key{8, WEIR_HOOK_INGRESS},
                                std::vector<weir_counters_val>(2)).ok());
  ifs.calls.clear();
  ASSERT_TRUE(em.apply({workload("weir1", "10.65.0.2")}, {local_route("weir1", "10.65.0.2")}).ok());
  EXPECT_EQ(ifs.calls, (std::vector<std::string>{"detach weir2 8 ingress", "detach weir2 8 egress"}));
  EXPECT_FALSE(m.ifstate.contains(8));
  EXPECT_FALSE(m.counters.contains(weir_counters_key{8, WEIR_HOOK_INGRESS}));
  EXPECT_FALSE(m.routes.contains(route_key("10.65.0.3")));
  EXPECT_TRUE(m.ifstate.contains(7));
  EXPECT_TRUE(m.routes.contains(route_key("10.65.0.2")));
}

TEST(EndpointManagerFake, AFailingPolicyHookHoldsNewInterfacesBack) {
  maps::FakeTables m;
  FakeInterfaces ifs;
  ifs.add("weir1", 7);
  EndpointManager em(m.core(), ifs);
  auto failing = [] { return Status(Error{EIO, "deny-all could not be loaded"}); };
  auto st = em.apply({workload("weir1", "10.65.0.2")}, {local_route("weir1", "10.65.0.2")}, failing);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(ifs.calls.empty()) << "attached without its policy";
  EXPECT_TRUE(em.has_pending());
  auto v = m.ifstate.peek(7);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->flags & WEIR_IF_F_READY, 0u);
  // Retried: attached now.
  ASSERT_TRUE(em.apply({workload("weir1", "10.65.0.2")}, {local_route("weir1", "10.65.0.2")}).ok());
  EXPECT_EQ(ifs.calls.size(), 2u);
  EXPECT_FALSE(em.has_pending());
}

TEST(EndpointManagerFake, AnAdoptedInterfaceKeepsItsPolicySlotsAndAnUnclaimedOneGoes) {
  maps::FakeTables m;
  auto entry = [](const char* name, uint32_t in, uint32_t out) {
    weir_ifstate_val v{};
    std::strncpy(v.name, name, sizeof(v.name) - 1);
    v.flags = WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY;
    v.ingress_slot = in;
    v.egress_slot = out;
    return v;
  };
  ASSERT_TRUE(m.ifstate.update(7, entry("weir1", 11, 12)).ok());
  ASSERT_TRUE(m.ifstate.update(9, entry("weirold", 13, 14)).ok());
  ASSERT_TRUE(m.routes.update(route_key("10.65.0.99"), weir_route_val{}).ok());
  FakeInterfaces ifs;
  ifs.add("weir1", 7);
  EndpointManager em(m.core(), ifs);
  ASSERT_TRUE(em.adopt().ok());
  ASSERT_TRUE(em.apply({workload("weir1", "10.65.0.2")}, {local_route("weir1", "10.65.0.2")}).ok());
  auto v = m.ifstate.peek(7);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->ingress_slot, 11u) << "a restart dropped the interface's policy";
  EXPECT_EQ(v->egress_slot, 12u);
  EXPECT_FALSE(m.ifstate.contains(9)) << "an adopted interface nobody claims was kept";
  EXPECT_FALSE(m.routes.contains(route_key("10.65.0.99"))) << "an adopted stale route was kept";
}

TEST(EndpointManagerFake, AFullRoutesMapIsReportedWithTheRoute) {
  maps::FakeTables m;
  m.routes.set_max_entries(1);
  FakeInterfaces ifs;
  ifs.add("weir1", 7);
  EndpointManager em(m.core(), ifs);
  auto itf = workload("weir1", "10.65.0.2");
  auto st = em.apply({itf}, {local_route("weir1", "10.65.0.2"), local_route("weir1", "10.65.0.3")});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().msg.find("10.65.0.3/32"), std::string::npos) << st.error().str();
  EXPECT_NE(st.error().msg.find(std::strerror(ENOSPC)), std::string::npos) << st.error().str();
  EXPECT_TRUE(m.routes.contains(route_key("10.65.0.2")));
}

}  // namespace
}  // namespace weir::dataplane
