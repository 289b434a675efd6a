// model: the Node kind (parse.h, resources.h), its cross-resource rules, and DataplaneConfig's
// encapsulation fields with pod_mtu().
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "model/parse.h"
#include "model/resources.h"
#include "model_testing.h"

namespace weir::model {
namespace {

using weir::testing::dump;
using weir::testing::HasError;
using weir::testing::load_text;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
Cidr cidr(const char* a, uint8_t len) { return Cidr{ip(a), len}; }

// A Node document (flow style, one line of spec).
std::string node_doc(const std::string& name, const std::string& underlay,
                     const std::string& pod_cidr) {
  return fmt::format(R"(---
apiVersion: weir.dev/v1
kind: Node
metadata: {{name: {}}}
spec: {{underlayAddress: {}, podCIDR: {}}}
)",
                     name, underlay, pod_cidr);
}

// A DataplaneConfig document with `spec` as its spec's (block style) body.
std::string config_doc(const std::string& spec) {
  return "apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\nspec:\n" +
         spec;
}

// ---------------------------------------------------------------- Node: parsing

TEST(ParseNode, EveryField) {
  auto r = load_text("nodes.yaml", R"(apiVersion: weir.dev/v1
kind: Node
metadata:
  name: node-a.example
  labels: {zone: a, role: worker}
  uid: ignored
spec:
  underlayAddress: 192.168.200.2
  podCIDR: 10.244.0.64/26
status: {ignored: true}
)");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << dump(r.warnings);
  ASSERT_EQ(r.snapshot->nodes.size(), 1u);
  const Node& n = r.snapshot->nodes[0];
  EXPECT_EQ(n.meta.name, "node-a.example");
  EXPECT_EQ(n.meta.ns, "");  // cluster-scoped
  EXPECT_EQ(n.meta.labels, (std::map<std::string, std::string>{{"zone", "a"}, {"role", "worker"}}));
  EXPECT_EQ(n.underlay_address, ip("192.168.200.2"));
  EXPECT_EQ(n.pod_cidr, cidr("10.244.0.64", 26));
  EXPECT_EQ(n.source.file, "nodes.yaml");
  EXPECT_EQ(n.source.document, 1);
  EXPECT_EQ(n.source.item, -1);
  EXPECT_EQ(n.source.line, 1);
  // Nothing else is produced from a Node.
  EXPECT_TRUE(r.snapshot->workload_endpoints.empty());
  EXPECT_FALSE(r.snapshot->config);
}

TEST(ParseNode, PrefixLengthBoundsAndListItems) {
  auto r = load_text("list.yaml", R"(
apiVersion: v1
kind: List
items:
- apiVersion: weir.dev/v1
  kind: Node
  metadata: {name: wide}
  spec: {underlayAddress: 192.168.200.2, podCIDR: 11.0.0.0/8}
- apiVersion: weir.dev/v1
  kind: Node
  metadata: {name: narrow}
  spec: {underlayAddress: 192.168.200.3, podCIDR: 10.244.1.4/30}
)");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.snapshot->nodes.size(), 2u);
  EXPECT_EQ(r.snapshot->nodes[0].pod_cidr, cidr("11.0.0.0", 8));
  EXPECT_EQ(r.snapshot->nodes[1].pod_cidr, cidr("10.244.1.4", 30));
  EXPECT_EQ(r.snapshot->nodes[1].source.item, 1);
}

TEST(ParseNode, InvalidFields) {
  auto r = load_text("n.yaml", node_doc("no-underlay", "null", "10.244.1.0/24") +
                                   node_doc("bad-underlay", "192.168.200.300", "10.244.2.0/24") +
                                   node_doc("v6-underlay", "\"fd00::2\"", "10.244.3.0/24") +
                                   node_doc("lo-underlay", "127.0.0.2", "10.244.4.0/24") +
                                   node_doc("no-cidr", "192.168.200.5", "null") +
                                   node_doc("host-bits", "192.168.200.6", "10.244.0.65/26") +
                                   node_doc("too-wide", "192.168.200.7", "10.0.0.0/7") +
                                   node_doc("too-narrow", "192.168.200.8", "10.244.0.8/31") +
                                   node_doc("no-prefix", "192.168.200.9", "10.244.9.0") +
                                   node_doc("v6-cidr", "192.168.200.10", "\"fd00:10::/64\"") +
                                   node_doc("lo-cidr", "192.168.200.11", "127.0.1.0/24") +
                                   node_doc("number-cidr", "192.168.200.12", "10") + R"(---
apiVersion: weir.dev/v1
kind: Node
metadata: {name: no-spec}
---
apiVersion: weir.dev/v1
kind: Node
metadata: {name: BadName}
spec: {underlayAddress: 192.168.200.14, podCIDR: 10.244.14.0/24}
---
apiVersion: v1
kind: Node
metadata: {name: k8s-node}
spec: {podCIDR: 10.244.15.0/24}
)");
  ASSERT_FALSE(r.ok());
  const auto& e = r.errors;
  const std::string f = "n.yaml";
  EXPECT_TRUE(HasError(e, f, "Node no-underlay", "spec.underlayAddress", "is required"));
  EXPECT_TRUE(HasError(e, f, "Node bad-underlay", "spec.underlayAddress",
                       "\"192.168.200.300\" is not an IPv4 address"));
  EXPECT_TRUE(HasError(e, f, "Node v6-underlay", "spec.underlayAddress",
                       "\"fd00::2\" is not an IPv4 address"));
  EXPECT_TRUE(HasError(e, f, "Node lo-underlay", "spec.underlayAddress",
                       "127.0.0.2 is a loopback address (127.0.0.0/8): the underlay address "
                       "must be a unicast address the other nodes can reach"));
  EXPECT_TRUE(HasError(e, f, "Node no-cidr", "spec.podCIDR", "is required"));
  EXPECT_TRUE(HasError(e, f, "Node host-bits", "spec.podCIDR",
                       "\"10.244.0.65/26\" has host bits set: the CIDR is 10.244.0.64/26"));
  EXPECT_TRUE(HasError(e, f, "Node too-wide", "spec.podCIDR",
                       "\"10.0.0.0/7\": the prefix length 7 is out of range 8..30"));
  EXPECT_TRUE(HasError(e, f, "Node too-narrow", "spec.podCIDR",
                       "\"10.244.0.8/31\": the prefix length 31 is out of range 8..30"));
  EXPECT_TRUE(HasError(e, f, "Node no-prefix", "spec.podCIDR",
                       "\"10.244.9.0\" is not a CIDR (expected a.b.c.d/n)"));
  EXPECT_TRUE(HasError(e, f, "Node v6-cidr", "spec.podCIDR",
                       "\"fd00:10::/64\" is an IPv6 CIDR: only IPv4 is supported"));
  EXPECT_TRUE(
      HasError(e, f, "Node lo-cidr", "spec.podCIDR", "\"127.0.1.0/24\" overlaps 127.0.0.0/8"));
  EXPECT_TRUE(HasError(e, f, "Node number-cidr", "spec.podCIDR", "10 is an integer, not a string"));
  EXPECT_TRUE(HasError(e, f, "Node no-spec", "spec", "is required"));
  EXPECT_TRUE(
      HasError(e, f, "Node (document 14)", "metadata.name", "\"BadName\" is not a valid name"));
  EXPECT_TRUE(HasError(e, f, "Node (document 15)", "apiVersion",
                       "apiVersion \"v1\" does not match kind Node (expected weir.dev/v1)"));
  EXPECT_EQ(e.size(), 15u) << dump(e);
  // The rejected resources are not kept.
  EXPECT_FALSE(r.snapshot);
}

TEST(ParseNode, ErrorFormatNamesFileResourceFieldAndLine) {
  auto r = load_text("nodes.yaml", R"(apiVersion: weir.dev/v1
kind: Node
metadata:
  name: node-a
spec:
  underlayAddress: 192.168.200.2
  podCIDR: 10.244.0.65/26
)");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].str(),
            "nodes.yaml: Node node-a: spec.podCIDR: \"10.244.0.65/26\" has host bits set: the "
            "CIDR is 10.244.0.64/26 (line 7)");
}

TEST(ParseNode, UnknownSpecFieldWarns) {
  auto r = load_text("n.yaml", R"(
apiVersion: weir.dev/v1
kind: Node
metadata: {name: node-a}
spec:
  underlayAddress: 192.168.200.2
  podCIDR: 10.244.0.0/24
  podCidrs: [10.244.1.0/24]
)");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.warnings.size(), 1u) << dump(r.warnings);
  EXPECT_TRUE(
      HasError(r.warnings, "n.yaml", "Node node-a", "spec.podCidrs", "unknown field ignored"));
  EXPECT_EQ(r.warnings[0].line, 8);
  EXPECT_EQ(r.snapshot->warnings.size(), 1u);
  ASSERT_EQ(r.snapshot->nodes.size(), 1u);
  EXPECT_EQ(r.snapshot->nodes[0].pod_cidr, cidr("10.244.0.0", 24));
}

TEST(ParseNode, MisspelledRequiredFieldIsAnErrorAndAWarning) {
  auto r = load_text("n.yaml", R"(
apiVersion: weir.dev/v1
kind: Node
metadata: {name: node-a}
spec: {underlayAddress: 192.168.200.2, podCidr: 10.244.0.0/24}
)");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_TRUE(HasError(r.errors, "n.yaml", "Node node-a", "spec.podCIDR", "is required"));
  EXPECT_TRUE(
      HasError(r.warnings, "n.yaml", "Node node-a", "spec.podCidr", "unknown field ignored"));
}

// ---------------------------------------------------------------- Node: cross-resource rules

TEST(ValidateNodes, ValidClusterHasNoErrorOrWarning) {
  auto r = load_text("n.yaml", node_doc("node-a", "192.168.200.2", "10.244.0.0/24") +
                                   node_doc("node-b", "192.168.200.3", "10.244.1.0/24") +
                                   node_doc("node-c", "10.244.2.1", "10.244.3.0/24") + R"(---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: api-0}
spec: {node: node-b, interface: weir0, ips: ["10.244.1.2", "10.244.1.255/32"]}
)");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << dump(r.warnings);
  EXPECT_EQ(r.snapshot->nodes.size(), 3u);
}

TEST(ValidateNodes, DuplicateNameAcrossFilesIsReportedOnce) {
  // The same Node twice: one duplicate-name error, not also a shared underlay address and an
  // overlapping pod CIDR.
  std::string a = node_doc("node-a", "192.168.200.2", "10.244.0.0/24");
  auto r = build_snapshot({{"a.yaml", a}, {"b.yaml", a}});
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].str(),
            "b.yaml: Node node-a: metadata.name: duplicate Node node-a: also defined in a.yaml "
            "(document 1) (line 2)");
  // A Node may share its name with a resource of another kind.
  auto ok = load_text("n.yaml", a + R"(---
apiVersion: weir.dev/v1
kind: Tier
metadata: {name: node-a}
)");
  EXPECT_TRUE(ok.ok()) << dump(ok.errors);
}

TEST(ValidateNodes, DuplicateUnderlayAddress) {
  auto r = load_text("n.yaml", node_doc("node-a", "192.168.200.2", "10.244.0.0/24") +
                                   node_doc("node-b", "192.168.200.3", "10.244.1.0/24") +
                                   node_doc("node-c", "192.168.200.2", "10.244.2.0/24"));
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].str(),
            "n.yaml: Node node-c: spec.underlayAddress: 192.168.200.2 is already the underlay "
            "address of Node node-a (n.yaml (document 1)) (line 12)");
}

TEST(ValidateNodes, OverlappingPodCidrsNameBothNodes) {
  auto r =
      load_text("n.yaml", node_doc("inner", "192.168.200.2", "10.244.0.64/26") +  // in "outer"
                              node_doc("outer", "192.168.200.3", "10.244.0.0/24") +
                              node_doc("innermost", "192.168.200.4", "10.244.0.64/28") +  // in both
                              node_doc("same-1", "192.168.200.5", "10.250.0.0/24") +
                              node_doc("same-2", "192.168.200.6", "10.250.0.0/24") +
                              node_doc("adjacent", "192.168.200.7", "10.244.1.0/24"));
  ASSERT_FALSE(r.ok());
  const auto& e = r.errors;
  // On the narrower CIDR, naming the nearest wider one; equal CIDRs on the later node.
  EXPECT_TRUE(HasError(e, "n.yaml", "Node inner", "spec.podCIDR",
                       "10.244.0.64/26 overlaps 10.244.0.0/24, the pod CIDR of Node outer "
                       "(n.yaml (document 2))"));
  EXPECT_TRUE(HasError(e, "n.yaml", "Node innermost", "spec.podCIDR",
                       "10.244.0.64/28 overlaps 10.244.0.64/26, the pod CIDR of Node inner "
                       "(n.yaml (document 1))"));
  EXPECT_TRUE(HasError(e, "n.yaml", "Node same-2", "spec.podCIDR",
                       "10.250.0.0/24 overlaps 10.250.0.0/24, the pod CIDR of Node same-1 "
                       "(n.yaml (document 4))"));
  EXPECT_EQ(e.size(), 3u) << dump(e);  // nothing on outer, same-1 or adjacent
}

TEST(ValidateNodes, PodCidrOverlappingTheServiceRange) {
  // The default service range, 10.96.0.0/12 (10.96.0.0 - 10.111.255.255).
  auto r = load_text("n.yaml", node_doc("in-range", "192.168.200.2", "10.100.0.0/24") +
                                   node_doc("around-range", "192.168.200.3", "10.0.0.0/8") +
                                   node_doc("next-to-range", "192.168.200.4", "10.112.0.0/24"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "n.yaml", "Node in-range", "spec.podCIDR",
                       "10.100.0.0/24 overlaps the service CIDR 10.96.0.0/12 (DataplaneConfig "
                       "spec.serviceClusterIPRanges)"));
  EXPECT_TRUE(HasError(r.errors, "n.yaml", "Node around-range", "spec.podCIDR",
                       "10.0.0.0/8 overlaps the service CIDR 10.96.0.0/12"));
  // around-range also holds in-range's and next-to-range's pod CIDRs.
  EXPECT_TRUE(HasError(r.errors, "n.yaml", "Node in-range", "spec.podCIDR",
                       "10.100.0.0/24 overlaps 10.0.0.0/8, the pod CIDR of Node around-range"));
  EXPECT_TRUE(HasError(r.errors, "n.yaml", "Node next-to-range", "spec.podCIDR",
                       "10.112.0.0/24 overlaps 10.0.0.0/8, the pod CIDR of Node around-range"));
  EXPECT_EQ(r.errors.size(), 4u) << dump(r.errors);

  // With the DataplaneConfig's ranges instead of the default.
  auto c = load_text("n.yaml", config_doc("  serviceClusterIPRanges: [172.20.0.0/16, "
                                          "10.0.0.0/16]\n") +
                                   node_doc("old-default", "192.168.200.2", "10.96.0.0/24") +
                                   node_doc("second-range", "192.168.200.3", "10.0.128.0/24"));
  ASSERT_FALSE(c.ok());
  ASSERT_EQ(c.errors.size(), 1u) << dump(c.errors);
  EXPECT_TRUE(HasError(c.errors, "n.yaml", "Node second-range", "spec.podCIDR",
                       "10.0.128.0/24 overlaps the service CIDR 10.0.0.0/16"));
}

TEST(ValidateNodes, UnderlayAddressInsideAPodCidr) {
  auto r = load_text("n.yaml", node_doc("node-a", "10.244.0.1", "10.244.0.0/24") +
                                   node_doc("node-b", "10.244.0.130", "10.244.1.0/24") +
                                   node_doc("node-c", "10.244.2.0", "10.244.3.0/24") +
                                   node_doc("node-d", "10.244.3.255", "10.244.4.0/24"));
  ASSERT_FALSE(r.ok());
  const auto& e = r.errors;
  EXPECT_TRUE(HasError(e, "n.yaml", "Node node-a", "spec.underlayAddress",
                       "10.244.0.1 lies in the node's own pod CIDR 10.244.0.0/24"));
  EXPECT_TRUE(HasError(e, "n.yaml", "Node node-b", "spec.underlayAddress",
                       "10.244.0.130 lies in 10.244.0.0/24, the pod CIDR of Node node-a (n.yaml "
                       "(document 1))"));
  // The broadcast address of a later node's CIDR counts too.
  EXPECT_TRUE(HasError(e, "n.yaml", "Node node-d", "spec.underlayAddress",
                       "10.244.3.255 lies in 10.244.3.0/24, the pod CIDR of Node node-c"));
  EXPECT_EQ(e.size(), 3u) << dump(e);  // node-c's 10.244.2.0 is in no pod CIDR
}

TEST(ValidateNodes, WorkloadOutsideItsNodesPodCidrIsAWarning) {
  auto r = load_text("c.yaml", node_doc("node-a", "192.168.200.2", "10.244.0.64/26") + R"(---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: api-0, namespace: shop}
spec: {node: node-a, interface: weir0, ips: ["10.244.0.70", "10.244.0.128", "10.244.0.63/32"]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: api-1}
spec: {node: node-z, interface: weir1, ips: ["10.99.0.1"]}
)");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  const auto& w = r.warnings;
  EXPECT_TRUE(HasError(w, "c.yaml", "WorkloadEndpoint shop/api-0", "spec.ips[1]",
                       "10.244.0.128 is outside 10.244.0.64/26, the pod CIDR of its node (Node "
                       "node-a (c.yaml (document 1)))"));
  EXPECT_TRUE(HasError(w, "c.yaml", "WorkloadEndpoint shop/api-0", "spec.ips[2]",
                       "10.244.0.63 is outside 10.244.0.64/26"));
  // No warning for spec.ips[0], nor for a workload whose node has no Node resource.
  EXPECT_EQ(w.size(), 2u) << dump(w);
  EXPECT_EQ(w[0].line, 7);  // the WorkloadEndpoint's first line
  EXPECT_EQ(r.snapshot->warnings.size(), 2u);
}

TEST(ValidateNodes, ThreeArgumentOverloadLeavesTheSnapshotAlone) {
  Snapshot s;
  s.nodes.push_back(
      Node{{"node-a", "", {}}, {"x.yaml", 1, -1, 1}, ip("192.168.200.2"), cidr("10.244.0.0", 24)});
  s.nodes.push_back(
      Node{{"node-b", "", {}}, {"x.yaml", 2, -1, 6}, ip("192.168.200.2"), cidr("10.244.1.0", 24)});
  WorkloadEndpoint wep;
  wep.meta = {"w", "default", {}};
  wep.source = {"w.yaml", 1, -1, 1};
  wep.node = "node-b";
  wep.interface = "weir0";
  wep.ips = {ip("10.244.0.9")};
  s.workload_endpoints.push_back(wep);

  ValidationErrors errors;
  std::vector<Warning> warnings;
  validate_snapshot(static_cast<const Snapshot&>(s), errors, warnings);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_TRUE(HasError(errors, "x.yaml", "Node node-b", "spec.underlayAddress",
                       "192.168.200.2 is already the underlay address of Node node-a"));
  EXPECT_EQ(errors[0].line, 6);
  ASSERT_EQ(warnings.size(), 1u) << dump(warnings);
  EXPECT_TRUE(HasError(warnings, "w.yaml", "WorkloadEndpoint default/w", "spec.ips[0]",
                       "10.244.0.9 is outside 10.244.1.0/24"));
  EXPECT_TRUE(s.warnings.empty());

  // The two-argument form appends the warnings to the snapshot's.
  ValidationErrors errors2;
  validate_snapshot(s, errors2);
  EXPECT_EQ(errors2.size(), 1u);
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_EQ(s.warnings[0].field, "spec.ips[0]");
}

// ---------------------------------------------------------------- DataplaneConfig encapsulation

TEST(DataplaneConfigEncapsulation, Defaults) {
  for (const DataplaneConfig& c : {Snapshot{}.effective_config(), DataplaneConfig{}}) {
    EXPECT_FALSE(c.vxlan_enabled);
    EXPECT_EQ(c.vxlan_vni, 4096u);
    EXPECT_EQ(c.vxlan_port, 4789);
    EXPECT_EQ(c.underlay_mtu, 1500u);
    EXPECT_EQ(pod_mtu(c), 1500u);
  }
  auto r = load_text("c.yaml", config_doc("  logLevel: info\n"));
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  const DataplaneConfig& c = *r.snapshot->config;
  EXPECT_FALSE(c.vxlan_enabled);
  EXPECT_EQ(c.vxlan_vni, 4096u);
  EXPECT_EQ(c.vxlan_port, 4789);
  EXPECT_EQ(c.underlay_mtu, 1500u);
}

TEST(DataplaneConfigEncapsulation, Values) {
  auto r = load_text("c.yaml", config_doc(R"(  vxlanEnabled: true
  vxlanVNI: 16777215
  vxlanPort: 8472
  ipipEnabled: false
  underlayMTU: 9000
)"));
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << dump(r.warnings);  // every field is known
  const DataplaneConfig& c = *r.snapshot->config;
  EXPECT_TRUE(c.vxlan_enabled);
  EXPECT_EQ(c.vxlan_vni, 16777215u);
  EXPECT_EQ(c.vxlan_port, 8472);
  EXPECT_EQ(c.underlay_mtu, 9000u);
  EXPECT_EQ(pod_mtu(c), 8950u);

  auto low = load_text("c.yaml", config_doc(R"(  vxlanEnabled: false
  vxlanVNI: 1
  vxlanPort: 1
  underlayMTU: 576
)"));
  ASSERT_TRUE(low.ok()) << dump(low.errors);
  EXPECT_FALSE(low.snapshot->config->vxlan_enabled);
  EXPECT_EQ(low.snapshot->config->vxlan_vni, 1u);
  EXPECT_EQ(low.snapshot->config->vxlan_port, 1);
  EXPECT_EQ(low.snapshot->config->underlay_mtu, 576u);

  auto high = load_text("c.yaml", config_doc("  vxlanPort: 65535\n  underlayMTU: 65535\n"));
  ASSERT_TRUE(high.ok()) << dump(high.errors);
  EXPECT_EQ(high.snapshot->config->vxlan_port, 65535);
  EXPECT_EQ(high.snapshot->config->underlay_mtu, 65535u);
}

TEST(DataplaneConfigEncapsulation, OutOfRangeAndWrongType) {
  struct Case {
    const char* spec;
    const char* field;
    const char* message;
  };
  const Case cases[] = {
      {"vxlanVNI: 0", "spec.vxlanVNI", "0 is out of range 1..16777215"},
      {"vxlanVNI: 16777216", "spec.vxlanVNI", "16777216 is out of range 1..16777215"},
      {"vxlanVNI: \"4096\"", "spec.vxlanVNI", "\"4096\" is a string, not an integer"},
      {"vxlanPort: 0", "spec.vxlanPort", "0 is out of range 1..65535"},
      {"vxlanPort: 65536", "spec.vxlanPort", "65536 is out of range 1..65535"},
      {"vxlanPort: vxlan", "spec.vxlanPort", "\"vxlan\" is not an integer"},
      {"underlayMTU: 575", "spec.underlayMTU", "575 is out of range 576..65535"},
      {"underlayMTU: 65536", "spec.underlayMTU", "65536 is out of range 576..65535"},
      {"underlayMTU: 1500.0", "spec.underlayMTU", "\"1500.0\" is not an integer"},
      {"vxlanEnabled: yes", "spec.vxlanEnabled", "\"yes\" is not a boolean (true or false)"},
      {"vxlanEnabled: \"true\"", "spec.vxlanEnabled", "\"true\" is a string, not a boolean"},
      {"ipipEnabled: 1", "spec.ipipEnabled", "\"1\" is not a boolean (true or false)"},
  };
  for (const Case& k : cases) {
    auto r = load_text("c.yaml", config_doc(fmt::format("  {}\n", k.spec)));
    ASSERT_FALSE(r.ok()) << k.spec;
    ASSERT_EQ(r.errors.size(), 1u) << k.spec << "\n" << dump(r.errors);
    EXPECT_TRUE(HasError(r.errors, "c.yaml", "DataplaneConfig default", k.field, k.message))
        << k.spec;
    EXPECT_EQ(r.errors[0].line, 5) << k.spec;
  }
}

TEST(DataplaneConfigEncapsulation, IpipEnabledIsRefused) {
  auto r = load_text("cfg.yaml", config_doc("  vxlanEnabled: false\n  ipipEnabled: true\n"));
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].str(),
            "cfg.yaml: DataplaneConfig default: spec.ipipEnabled: IPIP is not supported: set "
            "vxlanEnabled: true for VXLAN, or leave both off for routed mode (line 6)");
  // Also when VXLAN is on: the two do not combine.
  auto both = load_text("cfg.yaml", config_doc("  vxlanEnabled: true\n  ipipEnabled: true\n"));
  EXPECT_TRUE(HasError(both.errors, "cfg.yaml", "DataplaneConfig default", "spec.ipipEnabled",
                       "IPIP is not supported"));
}

TEST(DataplaneConfigBpfLog, LevelInAnyCase) {
  for (auto [text, want] : {std::pair{"Off", BpfLogLevel::Off}, {"info", BpfLogLevel::Info}, {"DEBUG", BpfLogLevel::Debug},
                            {"Debug", BpfLogLevel::Debug}}) {
    auto r = load_text("c.yaml", config_doc(fmt::format("  bpfLogLevel: {}\n", text)));
    ASSERT_TRUE(r.ok()) << text << "\n" << dump(r.errors);
    EXPECT_EQ(r.snapshot->effective_config().bpf_log_level, want) << text;
  }
  EXPECT_EQ(Snapshot{}.effective_config().bpf_log_level, BpfLogLevel::Off);
  auto bad = load_text("c.yaml", config_doc("  bpfLogLevel: verbose\n"));
  ASSERT_EQ(bad.errors.size(), 1u) << dump(bad.errors);
  EXPECT_TRUE(HasError(bad.errors, "c.yaml", "DataplaneConfig default", "spec.bpfLogLevel",
                       "invalid BPF log level \"verbose\": must be Off, Info or Debug"));
  EXPECT_EQ(to_string(BpfLogLevel::Info), "Info");
}

TEST(DataplaneConfigBpfLog, FiltersByInterfaceNameOrAll) {
  auto r = load_text("c.yaml", config_doc("  bpfLogLevel: Debug\n"
                                          "  bpfLogFilters:\n"
                                          "    all: \"tcp port 80\"\n"
                                          "    weir1a2b3c4d5e6: \"host 10.65.0.2 and udp\"\n"));
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  const std::map<std::string, std::string> want{{"all", "tcp port 80"}, {"weir1a2b3c4d5e6", "host 10.65.0.2 and udp"}};
  EXPECT_EQ(r.snapshot->effective_config().bpf_log_filters, want);
  EXPECT_TRUE(Snapshot{}.effective_config().bpf_log_filters.empty());
}

TEST(DataplaneConfigBpfLog, BadFiltersAreRefusedNamingTheKey) {
  struct Case {
    std::string yaml, field, message;
  };
  const std::string long_expr(kMaxBpfLogFilterLength + 1, 'x');
  for (const Case& c : std::vector<Case>{
           {"  bpfLogFilters: \"tcp port 80\"\n", "spec.bpfLogFilters", "must be a mapping"},
           {"  bpfLogFilters: {weir0123456789ab: icmp}\n", "spec.bpfLogFilters[\"weir0123456789ab\"]",
            "is not an interface name (1 to 15 characters"},
           {"  bpfLogFilters: {\"a/b\": icmp}\n", "spec.bpfLogFilters[\"a/b\"]", "is not an interface name"},
           {"  bpfLogFilters: {all: \"  \"}\n", "spec.bpfLogFilters[\"all\"]", "is empty: give a pcap expression"},
           {"  bpfLogFilters: {all: 80}\n", "spec.bpfLogFilters[\"all\"]", "not a string"},
           {"  bpfLogFilters: {all: [icmp]}\n", "spec.bpfLogFilters[\"all\"]", "must be a string"},
           {"  bpfLogFilters: {all: \"" + long_expr + "\"}\n", "spec.bpfLogFilters[\"all\"]",
            "is 1025 characters long, more than 1024"},
       }) {
    auto r = load_text("c.yaml", config_doc(c.yaml));
    ASSERT_EQ(r.errors.size(), 1u) << c.yaml << dump(r.errors);
    EXPECT_TRUE(HasError(r.errors, "c.yaml", "DataplaneConfig default", c.field, c.message)) << c.yaml << dump(r.errors);
  }
}

TEST(DataplaneConfigBpfProfiling, EnabledOrDisabledInAnyCase) {
  EXPECT_FALSE(Snapshot{}.effective_config().bpf_profiling);
  for (auto [text, want] : {std::pair{"Enabled", true}, {"enabled", true}, {"DISABLED", false}, {"Disabled", false}}) {
    auto r = load_text("c.yaml", config_doc(fmt::format("  bpfProfiling: {}\n", text)));
    ASSERT_TRUE(r.ok()) << text << "\n" << dump(r.errors);
    EXPECT_EQ(r.snapshot->effective_config().bpf_profiling, want) << text;
  }
  for (const char* bad : {"on", "true", "\"\""}) {
    auto r = load_text("c.yaml", config_doc(fmt::format("  bpfProfiling: {}\n", bad)));
    ASSERT_EQ(r.errors.size(), 1u) << bad << dump(r.errors);
    EXPECT_TRUE(HasError(r.errors, "c.yaml", "DataplaneConfig default", "spec.bpfProfiling", "")) << bad << dump(r.errors);
  }
  auto r = load_text("c.yaml", config_doc("  bpfProfiling: sometimes\n"));
  EXPECT_TRUE(HasError(r.errors, "c.yaml", "DataplaneConfig default", "spec.bpfProfiling",
                       "invalid value \"sometimes\": must be Enabled or Disabled"))
      << dump(r.errors);
}

TEST(DataplaneConfigEncapsulation, PodMtu) {
  DataplaneConfig c;
  EXPECT_EQ(pod_mtu(c), 1500u);  // routed: the underlay's MTU
  c.vxlan_enabled = true;
  EXPECT_EQ(pod_mtu(c), 1450u);  // VXLAN: 20 + 8 + 8 + 14 bytes less
  c.underlay_mtu = 576;
  EXPECT_EQ(pod_mtu(c), 526u);
  c.underlay_mtu = 65535;
  EXPECT_EQ(pod_mtu(c), 65485u);
  c.vxlan_enabled = false;
  c.underlay_mtu = 9000;
  EXPECT_EQ(pod_mtu(c), 9000u);
  EXPECT_EQ(kVxlanOverhead, 50u);
}

}  // namespace
}  // namespace weir::model
