// The agent's sync state machine (agent/sync_loop.h) over a directory datastore and the real
// managers on fake maps and fake interfaces: no root. Full vs incremental path, retry after a
// failed write, a rejected load keeping the last good state, adoption after a restart.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <vector>
#include <string>

#include "agent/sync_loop.h"
#include "dataplane_testing.h"
#include "tunnel_testing.h"
#include "datastore/datastore.h"
#include "datastore_testing.h"

namespace weir::agent {
namespace {

using dataplane::test::FakeInterfaces;
using dataplane::test::FakeLoader;
using dataplane::test::FakeRouteTable;
using dataplane::test::ip;
using dataplane::test::kEstablished;
using dataplane::test::kSec;
using dataplane::test::nat_content;
using dataplane::test::nat_pair;
using Path = SyncLoop::Path;

constexpr uint64_t kNow = 100000 * kSec;

const char* kWorkloads = R"(apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: web-0, namespace: default, labels: {app: web}}
spec: {node: n1, interface: weir1, ips: [10.65.0.2]}
)";

// Service web (10.96.0.10:80 -> 8080) with the given backends, and service db (10.96.0.11:5432).
std::string services(const std::string& web_backends) {
  return R"(apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [)" + web_backends + R"(]
ports: [{name: http, protocol: TCP, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: 10.96.0.11
  ports: [{name: pg, protocol: TCP, port: 5432, targetPort: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: default, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
endpoints: [{addresses: [10.65.1.7], conditions: {ready: true}}]
ports: [{name: pg, protocol: TCP, port: 5432}]
)";
}

std::string backend(const char* addr) {
  return std::string("{addresses: [") + addr + "], conditions: {ready: true}}";
}

const calc::FrontendKey kWeb{*model::Ipv4::parse("10.96.0.10"), 80, 6};

// One agent's managers and sync loop over maps that outlive it (a restart builds a new one).
struct Agent {
  Agent(maps::FakeTables& m, FakeInterfaces& ifs, const std::string& state_dir)
      : endpoints(m.core(), ifs),
        services(m.core(), std::chrono::nanoseconds(0)),
        scanner(m.core()),
        policies(
            m.policy(), polprog::PolicyMapFds{}, state_dir,
            [&m](uint32_t i, calc::pol::Direction d, uint32_t s) { return dataplane::set_policy_slot(m.ifstate, i, d, s); },
            [&m](uint32_t i, calc::pol::Direction d) { return dataplane::get_policy_slot(m.ifstate, i, d); },
            &loader),
        loop("n1", Dataplane{endpoints, services, policies, scanner, m.ct, [] { return kNow; },
                             &routes, &tunnel, [this](const model::DataplaneConfig& c) -> Result<bool> {
                               return programs ? programs(c) : Result<bool>(false);
                             }}) {}
  // Dataplane::programs, when a test sets it.
  std::function<Result<bool>(const model::DataplaneConfig&)> programs;
  FakeLoader loader;
  FakeRouteTable routes;
  dataplane::test::FakeTunnel tunnel;
  dataplane::EndpointManager endpoints;
  dataplane::ServiceSyncer services;
  dataplane::ConntrackScanner scanner;
  dataplane::PolicyManager policies;
  SyncLoop loop;
};

class SyncLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ifs.add("weir1", 7);
    dir.write("workloads.yaml", kWorkloads);
    dir.write("services.yaml", services(backend("10.65.0.2") + ", " + backend("10.65.1.9")));
    auto opened = datastore::open_datastore("dir:" + dir.path().string());
    ASSERT_TRUE(opened.ok()) << opened.error().str();
    ds = std::move(*opened);
    agent = std::make_unique<Agent>(m, ifs, (dir.path() / "state").string());
    ASSERT_TRUE(agent->loop.adopt().ok());
  }
  SyncLoop& loop() { return agent->loop; }

  // What a fresh agent writes for the datastore's current content with one full sync.
  std::map<calc::FrontendKey, std::vector<calc::Backend>> fresh_full_sync() {
    maps::FakeTables fm;
    FakeInterfaces fi;
    fi.add("weir1", 7);
    auto fds = datastore::open_datastore("dir:" + dir.path().string());
    EXPECT_TRUE(fds.ok());
    Agent fresh(fm, fi, (dir.path() / "state2").string());
    fresh.loop.sync(**fds);
    EXPECT_EQ(fresh.loop.last_path(), Path::Full);
    return nat_content(fm);
  }

  testing::TempDir dir;
  maps::FakeTables m;
  FakeInterfaces ifs;
  std::unique_ptr<datastore::Datastore> ds;
  std::unique_ptr<Agent> agent;
};

// Routed mode: the kernel routes follow the Node resources; vxlanEnabled takes them away (the
// programs encapsulate instead: see VxlanPlanFollowsTheConfigAndTheNodes).
TEST_F(SyncLoopTest, KernelRoutesToOtherNodesFollowTheNodes) {
  loop().sync(*ds);
  EXPECT_TRUE(agent->routes.routes.empty());  // no Node resources: nothing to route by
  dir.write("nodes.yaml", R"(apiVersion: weir.dev/v1
kind: Node
metadata: {name: n1}
spec: {underlayAddress: 192.168.200.2, podCIDR: 10.65.0.0/24}
---
apiVersion: weir.dev/v1
kind: Node
metadata: {name: n2}
spec: {underlayAddress: 192.168.200.3, podCIDR: 10.65.1.0/24}
)");
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Full);
  auto n2_cidr = model::Cidr{ip("10.65.1.0"), 24};
  EXPECT_EQ(agent->routes.routes, (std::map<model::Cidr, model::Ipv4>{{n2_cidr, ip("192.168.200.3")}}));
  // A failed route write is retried by the next sync.
  agent->routes.fail.insert(n2_cidr);
  dir.write("nodes.yaml", R"(apiVersion: weir.dev/v1
kind: Node
metadata: {name: n2}
spec: {underlayAddress: 192.168.200.4, podCIDR: 10.65.1.0/24}
)");
  loop().sync(*ds);
  EXPECT_TRUE(loop().has_pending());
  agent->routes.fail.clear();
  loop().sync(*ds);
  EXPECT_EQ(agent->routes.routes[n2_cidr], ip("192.168.200.4"));
  EXPECT_FALSE(loop().has_pending());
  dir.write("config.yaml", "apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\n"
                           "spec: {vxlanEnabled: true}\n");
  loop().sync(*ds);
  EXPECT_TRUE(agent->routes.routes.empty());
}

// VXLAN: the tunnel plan (this node's underlay address, the peers) reaches the tunnel maps and
// weir_from_ul sits on the underlay interface; without this node's Node resource, VXLAN stays
// off (and the error is logged); vxlanEnabled: false takes it all away.
TEST_F(SyncLoopTest, VxlanPlanFollowsTheConfigAndTheNodes) {
  agent->tunnel.addresses[ip("192.168.200.2")] = {3, "eth0"};
  loop().sync(*ds);
  EXPECT_FALSE(agent->tunnel.written.enabled);
  EXPECT_TRUE(agent->tunnel.attached.empty());
  dir.write("config.yaml", "apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\n"
                           "spec: {vxlanEnabled: true, vxlanVNI: 77}\n");
  dir.write("nodes.yaml", R"(apiVersion: weir.dev/v1
kind: Node
metadata: {name: n2}
spec: {underlayAddress: 192.168.200.3, podCIDR: 10.65.1.0/24}
)");
  loop().sync(*ds);
  EXPECT_FALSE(agent->tunnel.written.enabled) << "no Node for n1: its underlay address is unknown";
  dir.write("nodes.yaml", R"(apiVersion: weir.dev/v1
kind: Node
metadata: {name: n1}
spec: {underlayAddress: 192.168.200.2, podCIDR: 10.65.0.0/24}
---
apiVersion: weir.dev/v1
kind: Node
metadata: {name: n2}
spec: {underlayAddress: 192.168.200.3, podCIDR: 10.65.1.0/24}
)");
  loop().sync(*ds);
  EXPECT_TRUE(agent->tunnel.written.enabled);
  EXPECT_EQ(agent->tunnel.written.vni, 77u);
  EXPECT_EQ(agent->tunnel.written.underlay, ip("192.168.200.2"));
  EXPECT_EQ(agent->tunnel.written.vteps, std::vector<model::Ipv4>{ip("192.168.200.3")});
  EXPECT_EQ(agent->tunnel.written_ifindex, 3);
  EXPECT_EQ(agent->tunnel.attached, std::set<std::string>{"eth0"});
  EXPECT_TRUE(agent->routes.routes.empty()) << "no kernel routes with VXLAN";
  EXPECT_FALSE(loop().has_pending());
  dir.write("config.yaml", "apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\n"
                           "spec: {vxlanEnabled: false}\n");
  loop().sync(*ds);
  EXPECT_FALSE(agent->tunnel.written.enabled);
  EXPECT_TRUE(agent->tunnel.attached.empty());
  EXPECT_EQ(agent->routes.routes.size(), 1u) << "routed again";
}

// bpfLogLevel: the sync asks for the build of the programs; when it changed, every interface
// and the underlay get them attached again in that sync, though nothing else changed; when it
// could not be loaded, nothing is attached again and the rest of the sync goes on.
TEST_F(SyncLoopTest, ABpfLogLevelChangeAttachesTheOtherBuildEverywhere) {
  std::vector<model::BpfLogLevel> asked;
  model::BpfLogLevel in_place = model::BpfLogLevel::Off;
  bool fail = false;
  agent->programs = [&](const model::DataplaneConfig& c) -> Result<bool> {
    asked.push_back(c.bpf_log_level);
    if (fail) return Error{ENOMEM, "loading the log build"};
    const bool log = c.bpf_log_level != model::BpfLogLevel::Off;
    const bool changed = log != (in_place != model::BpfLogLevel::Off);
    in_place = c.bpf_log_level;
    return changed;
  };
  agent->tunnel.addresses[ip("192.168.200.2")] = {3, "eth0"};
  const std::string nodes = R"(apiVersion: weir.dev/v1
kind: Node
metadata: {name: n1}
spec: {underlayAddress: 192.168.200.2, podCIDR: 10.65.0.0/24}
)";
  dir.write("nodes.yaml", nodes);
  auto config = [&](const char* level) {
    dir.write("config.yaml", std::string("apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\n"
                                         "spec: {vxlanEnabled: true, bpfLogLevel: ") + level + "}\n");
  };
  config("Off");
  loop().sync(*ds);
  ASSERT_EQ(asked, std::vector<model::BpfLogLevel>{model::BpfLogLevel::Off});
  const std::vector<std::string> attach_weir1 = {"attach weir1 7 ingress", "attach weir1 7 egress"};
  EXPECT_EQ(ifs.calls, attach_weir1);
  EXPECT_EQ(agent->tunnel.attached, std::set<std::string>{"eth0"});
  auto underlay_attaches = [&] { return std::count(agent->tunnel.log.begin(), agent->tunnel.log.end(), "attach eth0"); };
  EXPECT_EQ(underlay_attaches(), 1);

  ifs.calls.clear();
  config("Debug");
  loop().sync(*ds);
  EXPECT_EQ(asked.back(), model::BpfLogLevel::Debug);
  EXPECT_EQ(ifs.calls, attach_weir1) << "attached again, in place: no detach";
  EXPECT_EQ(underlay_attaches(), 2);
  EXPECT_TRUE(m.ifstate.contains(7));

  // Info: the same build, only its settings: nothing attached again.
  ifs.calls.clear();
  config("Info");
  loop().sync(*ds);
  EXPECT_EQ(asked.back(), model::BpfLogLevel::Info);
  EXPECT_TRUE(ifs.calls.empty());
  EXPECT_EQ(underlay_attaches(), 2);

  // Off, but the build cannot be loaded: what is attached stays; the rest still syncs.
  fail = true;
  config("Off");
  dir.write("services.yaml", services(backend("10.65.0.2")));
  loop().sync(*ds);
  EXPECT_TRUE(ifs.calls.empty());
  EXPECT_EQ(underlay_attaches(), 2);
  EXPECT_EQ(nat_content(m)[kWeb].size(), 1u) << "the service change was applied";
  EXPECT_TRUE(loop().has_pending()) << "retried";
  fail = false;
  loop().sync(*ds);  // nothing changed in the datastore: the retry is a full sync
  EXPECT_EQ(asked.back(), model::BpfLogLevel::Off);
  EXPECT_EQ(ifs.calls, attach_weir1);
  EXPECT_EQ(underlay_attaches(), 3);
}

// A configuration Dataplane::programs refuses as input (Error without errno: a pcap filter that
// does not compile) is not retried: it is asked again only once the configuration changes, and
// the rest of every sync goes on.
TEST_F(SyncLoopTest, ARefusedBpfLogConfigurationIsNotRetriedUntilItChanges) {
  std::vector<std::map<std::string, std::string>> asked;
  agent->programs = [&](const model::DataplaneConfig& c) -> Result<bool> {
    asked.push_back(c.bpf_log_filters);
    for (const auto& [iface, expr] : c.bpf_log_filters)
      if (expr == "tcp prot 80") return make_error("bpfLogFilters[{}]: pcap filter \"{}\": syntax error", iface, expr);
    return false;
  };
  auto config = [&](const char* filter) {
    dir.write("config.yaml", fmt::format("apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {{name: default}}\n"
                                         "spec: {{bpfLogLevel: Debug, bpfLogFilters: {{all: \"{}\"}}}}\n",
                                         filter));
  };
  config("tcp prot 80");
  loop().sync(*ds);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_FALSE(loop().has_pending()) << "a refused configuration is not retried";
  dir.write("services.yaml", services(backend("10.65.0.2")));
  loop().sync(*ds);
  EXPECT_EQ(asked.size(), 1u) << "the same configuration is not asked again";
  EXPECT_EQ(nat_content(m)[kWeb].size(), 1u) << "the rest of the sync went on";
  config("tcp port 80");
  loop().sync(*ds);
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked.back().at("all"), "tcp port 80");
  config("tcp prot 80");
  loop().sync(*ds);
  EXPECT_EQ(asked.size(), 3u) << "refused again after a good one: asked, since it changed";
}

TEST_F(SyncLoopTest, FirstSyncIsFullAndProgramsEverything) {
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Full);
  ASSERT_TRUE(loop().last_good().has_value());
  EXPECT_EQ(loop().last_good()->frontends.size(), 2u);
  auto nat = nat_content(m);
  ASSERT_EQ(nat.size(), 2u);
  EXPECT_EQ(nat[kWeb].size(), 2u);
  EXPECT_TRUE(m.ifstate.contains(7));
  EXPECT_EQ(ifs.calls.size(), 2u);
  EXPECT_FALSE(loop().has_pending());
}

TEST_F(SyncLoopTest, AServiceOnlyChangeIsIncrementalAndEqualsAFullSync) {
  loop().sync(*ds);
  // A flow to the backend about to go, and one to the backend that stays.
  auto gone = nat_pair("10.65.0.2", 40000, "10.96.0.10", 80, "10.65.1.9", 8080, 6, kNow, kEstablished);
  auto kept = nat_pair("10.65.0.2", 40001, "10.96.0.10", 80, "10.65.0.2", 8080, 6, kNow, kEstablished);
  dataplane::test::insert(m, gone);
  dataplane::test::insert(m, kept);
  const size_t ifstate_writes = m.ifstate.updates();

  dir.write("services.yaml", services(backend("10.65.0.2") + ", " + backend("10.65.2.3")));
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Incremental);
  EXPECT_EQ(m.ifstate.updates(), ifstate_writes) << "the incremental path touched endpoints";
  EXPECT_EQ(nat_content(m), fresh_full_sync());
  EXPECT_FALSE(m.ct.contains(gone.fwd_key)) << "a flow to a removed backend outlived the sync";
  EXPECT_TRUE(m.ct.contains(kept.fwd_key));

  // A second change on top of the first: still equal to a full sync of the same input.
  dir.write("services.yaml", services(backend("10.65.2.3")));
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Incremental);
  EXPECT_EQ(nat_content(m), fresh_full_sync());
  // The last good state follows the incremental changes: a full sync finds nothing to do.
  dir.write("workloads.yaml", std::string(kWorkloads) + "# touched\n");
  const size_t nat_writes = m.nat_fe.updates() + m.nat_be.updates();
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Unchanged);
  EXPECT_EQ(m.nat_fe.updates() + m.nat_be.updates(), nat_writes);
}

TEST_F(SyncLoopTest, AFailedServiceWriteIsRetriedByAFullSync) {
  loop().sync(*ds);
  m.nat_be.fail_updates(ENOMEM);
  dir.write("services.yaml", services(backend("10.65.3.3")));
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Incremental);
  EXPECT_TRUE(loop().has_pending()) << "a failed write is not retried";
  const std::vector<calc::Backend> wanted{{*model::Ipv4::parse("10.65.3.3"), 8080}};
  EXPECT_NE(nat_content(m)[kWeb], wanted) << "the write that failed is in the maps";

  // Nothing changed in the datastore: the retry is a full sync that writes what is missing.
  m.nat_be.fail_updates(0);
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Full);
  EXPECT_FALSE(loop().has_pending());
  EXPECT_EQ(nat_content(m)[kWeb], wanted);
  EXPECT_EQ(nat_content(m), fresh_full_sync());
}

TEST_F(SyncLoopTest, ARejectedLoadKeepsTheLastGoodState) {
  loop().sync(*ds);
  const auto good = loop().last_good();
  const auto nat = nat_content(m);
  const size_t writes = m.nat_fe.updates() + m.nat_be.updates() + m.ifstate.updates();

  dir.write("services.yaml", services(backend("10.65.0.2")) + "---\nkind: Service\nnonsense: [\n");
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Rejected);
  ASSERT_TRUE(loop().last_good().has_value()) << "the last good state was dropped";
  EXPECT_EQ(loop().last_good()->frontends, good->frontends);
  EXPECT_EQ(nat_content(m), nat);
  EXPECT_EQ(m.nat_fe.updates() + m.nat_be.updates() + m.ifstate.updates(), writes);
  // The scanner still judges flows by the last good backends.
  auto stale = nat_pair("10.65.0.2", 40002, "10.96.0.10", 80, "10.65.9.9", 8080, 6, kNow, kEstablished);
  dataplane::test::insert(m, stale);
  loop().scan();
  EXPECT_FALSE(m.ct.contains(stale.fwd_key)) << "the scan forgot the services during bad input";

  // Valid again: applied on top of the kept state.
  dir.write("services.yaml", services(backend("10.65.0.2")));
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Full);
  EXPECT_EQ(nat_content(m), fresh_full_sync());
}

TEST_F(SyncLoopTest, ARestartAdoptsAndRewritesNoService) {
  loop().sync(*ds);
  const auto nat = nat_content(m);
  agent.reset();  // the agent exits; the maps stay
  const size_t writes = m.nat_fe.updates() + m.nat_be.updates() + m.routes.updates();
  auto ds2 = datastore::open_datastore("dir:" + dir.path().string());
  ASSERT_TRUE(ds2.ok());
  Agent second(m, ifs, (dir.path() / "state").string());
  ASSERT_TRUE(second.loop.adopt().ok());
  second.loop.sync(**ds2);
  EXPECT_EQ(second.loop.last_path(), Path::Full);
  EXPECT_EQ(m.nat_fe.updates() + m.nat_be.updates() + m.routes.updates(), writes)
      << "unchanged services or routes rewritten after a restart";
  EXPECT_EQ(nat_content(m), nat);
  EXPECT_EQ(second.endpoints.managed(), 1u) << "the adopted interface was not taken over";
}

TEST_F(SyncLoopTest, APendingInterfaceForcesTheFullPath) {
  ifs.links.clear();  // weir1 does not exist yet
  loop().sync(*ds);
  EXPECT_TRUE(loop().has_pending());
  dir.write("services.yaml", services(backend("10.65.0.2")));
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Full) << "a service-only change skipped a pending interface";
  EXPECT_TRUE(loop().has_pending());
  EXPECT_FALSE(m.ifstate.contains(7));
  // The interface appears; nothing changed in the datastore: the retry is a full sync.
  ifs.add("weir1", 7);
  loop().sync(*ds);
  EXPECT_EQ(loop().last_path(), Path::Full);
  EXPECT_FALSE(loop().has_pending());
  EXPECT_TRUE(m.ifstate.contains(7));
  EXPECT_EQ(nat_content(m), fresh_full_sync());
}

}  // namespace
}  // namespace weir::agent
