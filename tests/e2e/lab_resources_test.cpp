// The YAML the lab writes is what the agent's parser accepts, field for field. (No root needed:
// this part of the e2e suite checks the contract between src/lab and src/model.)
#include <gtest/gtest.h>

#include "lab/resources.h"
#include "model/parse.h"

namespace weir::e2e {
namespace {

std::string errors_of(const model::SnapshotResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.str() + "\n";
  return s;
}

TEST(LabResources, ParsedByTheModelAsWritten) {
  lab::ServiceDef svc;
  svc.name = "web";
  svc.cluster_ip = "10.96.0.10";
  svc.ports = {{"http", "TCP", 80, 8080}, {"dns", "UDP", 53, 5353}};
  std::vector<lab::BackendDef> backends = {{"10.65.0.3", true, "weir-abc123-node", "pod2"},
                                           {"10.65.0.4", false, "weir-abc123-node", "pod3"}};
  auto r = model::build_snapshot({
      {"svc-web.yaml", lab::service_with_slice_yaml(svc, backends)},
      {"wep-pod2.yaml", lab::workload_endpoint_yaml("pod2", "weir-abc123-node", "weirabc123p2",
                                                    "10.65.0.3", "02:77:AB:C1:23:02")},
      {"dataplaneconfig.yaml", lab::dataplane_config_yaml(std::chrono::milliseconds(200),
                                                          std::chrono::milliseconds(1000), "")},
  });
  ASSERT_TRUE(r.ok()) << errors_of(r);
  const auto& snap = *r.snapshot;
  EXPECT_TRUE(snap.warnings.empty());

  ASSERT_EQ(snap.services.size(), 1u);
  const auto& s = snap.services[0];
  EXPECT_EQ(s.key(), "default/web");
  ASSERT_TRUE(s.cluster_ip);
  EXPECT_EQ(s.cluster_ip->str(), "10.96.0.10");
  ASSERT_EQ(s.ports.size(), 2u);
  EXPECT_EQ(s.ports[0].name, "http");
  EXPECT_EQ(s.ports[0].protocol, model::Protocol::TCP);
  EXPECT_EQ(s.ports[0].port, 80);
  EXPECT_EQ(s.ports[0].target_port.number, 8080);
  EXPECT_EQ(s.ports[1].protocol, model::Protocol::UDP);
  EXPECT_EQ(s.ports[1].target_port.number, 5353);

  ASSERT_EQ(snap.endpoint_slices.size(), 1u);
  const auto& es = snap.endpoint_slices[0];
  EXPECT_EQ(es.service_name, "web");
  ASSERT_EQ(es.endpoints.size(), 2u);
  EXPECT_EQ(es.endpoints[0].addresses.at(0).str(), "10.65.0.3");
  EXPECT_TRUE(es.endpoints[0].conditions.usable());
  EXPECT_FALSE(es.endpoints[1].conditions.usable());
  EXPECT_EQ(es.endpoints[0].node_name, "weir-abc123-node");
  ASSERT_EQ(es.ports.size(), 2u);
  EXPECT_EQ(es.ports[0].name, "http");
  EXPECT_EQ(es.ports[0].port, 8080);

  ASSERT_EQ(snap.workload_endpoints.size(), 1u);
  const auto& w = snap.workload_endpoints[0];
  EXPECT_EQ(w.key(), "default/pod2");
  EXPECT_EQ(w.node, "weir-abc123-node");
  EXPECT_EQ(w.interface, "weirabc123p2");
  ASSERT_EQ(w.ips.size(), 1u);
  EXPECT_EQ(w.ips[0].str(), "10.65.0.3");
  ASSERT_TRUE(w.mac);
  EXPECT_EQ(w.mac->str(), "02:77:ab:c1:23:02");
  EXPECT_EQ(w.meta.labels.at("app"), "pod2");

  ASSERT_TRUE(snap.config);
  EXPECT_EQ(snap.config->min_sync_period, std::chrono::milliseconds(200));
  EXPECT_EQ(snap.config->conntrack_scan_period, std::chrono::seconds(1));
}

TEST(LabResources, ServiceWithoutBackendsIsValid) {
  lab::ServiceDef svc;
  svc.name = "empty";
  svc.cluster_ip = "10.96.0.11";
  svc.ports = {{"http", "TCP", 80, 8080}};
  auto r = model::build_snapshot({{"svc.yaml", lab::service_with_slice_yaml(svc, {})}});
  ASSERT_TRUE(r.ok()) << errors_of(r);
  ASSERT_EQ(r.snapshot->endpoint_slices.size(), 1u);
  EXPECT_TRUE(r.snapshot->endpoint_slices[0].endpoints.empty());
}

}  // namespace
}  // namespace weir::e2e
