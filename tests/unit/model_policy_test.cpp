// model: parsing and validation of Namespace, NetworkPolicy, Tier, GlobalNetworkPolicy.
#include <gtest/gtest.h>

#include "model/parse.h"
#include "model_testing.h"

namespace weir::model {
namespace {

using weir::testing::HasError;
using weir::testing::load_text;

Cidr cidr(const char* a, uint8_t len) { return Cidr{*Ipv4::parse(a), len}; }

// ---------------------------------------------------------------- good input

TEST(ParsePolicy, Namespace) {
  auto r = load_text("ns.yaml", R"(
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
  labels: {team: a, env: prod}
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  ASSERT_EQ(r.snapshot->namespaces.size(), 1u);
  const Namespace& n = r.snapshot->namespaces[0];
  EXPECT_EQ(n.meta.name, "team-a");
  EXPECT_EQ(n.meta.ns, "");
  EXPECT_EQ(n.meta.labels.at("team"), "a");
}

TEST(ParsePolicy, NetworkPolicyFull) {
  auto r = load_text("np.yaml", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector:
    matchLabels: {role: db}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except: [172.17.1.0/24]
    - namespaceSelector:
        matchLabels: {project: myproject}
    - podSelector:
        matchLabels: {role: frontend}
    - namespaceSelector: {matchLabels: {team: x}}
      podSelector:
        matchExpressions:
        - {key: tier, operator: In, values: [web, api]}
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/24}
    ports:
    - protocol: TCP
      port: 32000
      endPort: 32768
    - port: http
    - protocol: UDP
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  const NetworkPolicy& np = r.snapshot->network_policies.at(0);
  EXPECT_EQ(np.key(), "default/test-network-policy");
  EXPECT_EQ(np.pod_selector.match_labels.at("role"), "db");
  EXPECT_TRUE(np.types.ingress);
  EXPECT_TRUE(np.types.egress);
  ASSERT_EQ(np.ingress.size(), 1u);
  const auto& peers = np.ingress[0].peers;
  ASSERT_EQ(peers.size(), 4u);
  ASSERT_TRUE(peers[0].ip_block);
  EXPECT_EQ(peers[0].ip_block->cidr, cidr("172.17.0.0", 16));
  EXPECT_EQ(peers[0].ip_block->except, std::vector<Cidr>{cidr("172.17.1.0", 24)});
  EXPECT_TRUE(peers[1].namespace_selector && !peers[1].pod_selector);
  EXPECT_TRUE(peers[2].pod_selector && !peers[2].namespace_selector);
  EXPECT_TRUE(peers[3].pod_selector && peers[3].namespace_selector);
  EXPECT_EQ(peers[3].pod_selector->match_expressions.at(0).op, "In");
  EXPECT_EQ(peers[3].pod_selector->match_expressions.at(0).values,
            (std::vector<std::string>{"web", "api"}));
  ASSERT_EQ(np.ingress[0].ports.size(), 1u);
  EXPECT_EQ(np.ingress[0].ports[0].port, 6379);
  const auto& eports = np.egress.at(0).ports;
  ASSERT_EQ(eports.size(), 3u);
  EXPECT_EQ(eports[0].port, 32000);
  EXPECT_EQ(eports[0].end_port, 32768);
  EXPECT_EQ(eports[1].name, "http");
  EXPECT_EQ(eports[1].protocol, Protocol::TCP);  // default
  EXPECT_EQ(eports[2].protocol, Protocol::UDP);
  EXPECT_FALSE(eports[2].port);
}

TEST(ParsePolicy, NetworkPolicyTypeDefaults) {
  auto r = load_text("np.yaml", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress-only}
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: with-egress}
spec:
  podSelector: {}
  egress:
  - {}
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  const auto& nps = r.snapshot->network_policies;
  EXPECT_TRUE(nps[0].types.ingress);
  EXPECT_FALSE(nps[0].types.egress);
  EXPECT_TRUE(nps[0].pod_selector.empty());
  EXPECT_TRUE(nps[1].types.ingress);
  EXPECT_TRUE(nps[1].types.egress);
  ASSERT_EQ(nps[1].egress.size(), 1u);
  EXPECT_TRUE(nps[1].egress[0].peers.empty());
  EXPECT_TRUE(nps[1].egress[0].ports.empty());
}

TEST(ParsePolicy, TierAndGlobalNetworkPolicy) {
  auto r = load_text("gnp.yaml", R"(
apiVersion: weir.dev/v1
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
---
apiVersion: weir.dev/v1
kind: Tier
metadata: {name: late}
---
apiVersion: weir.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: security.allow-dns}
spec:
  tier: security
  order: 10.5
  selector: "app == 'web'"
  namespaceSelector: "team == 'a'"
  ingress:
  - action: Allow
    protocol: TCP
    source:
      nets: [10.0.0.0/8, 192.168.1.7]
      notNets: [10.1.0.0/16]
      selector: "role == 'client'"
      notSelector: "quarantine == 'yes'"
      namespaceSelector: all()
      ports: [1024:65535]
    destination:
      ports: [80, "8000:8080", http]
      notPorts: [8081]
  - action: Log
  - action: Allow
    protocol: ICMP
    icmp: {type: 8, code: 0}
  - action: Deny
    protocol: 47
    notProtocol: UDP
  egress:
  - action: Pass
---
apiVersion: weir.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: plain}
spec:
  ingress:
  - action: Deny
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  const Snapshot& s = *r.snapshot;
  ASSERT_EQ(s.tiers.size(), 2u);
  EXPECT_EQ(s.tiers[0].order, 100.0);
  EXPECT_EQ(s.tiers[0].default_action, PolicyAction::Pass);
  EXPECT_FALSE(s.tiers[1].order);
  EXPECT_EQ(s.tiers[1].default_action, PolicyAction::Deny);
  ASSERT_EQ(s.global_network_policies.size(), 2u);
  const GlobalNetworkPolicy& g = s.global_network_policies[0];
  EXPECT_EQ(g.tier, "security");
  EXPECT_EQ(g.order, 10.5);
  EXPECT_EQ(g.selector, "app == 'web'");
  EXPECT_EQ(g.namespace_selector, "team == 'a'");
  EXPECT_TRUE(g.types.ingress);
  EXPECT_TRUE(g.types.egress);  // egress rules present
  ASSERT_EQ(g.ingress.size(), 4u);
  const GnpRule& r0 = g.ingress[0];
  EXPECT_EQ(r0.action, PolicyAction::Allow);
  EXPECT_EQ(r0.protocol, 6);
  EXPECT_EQ(r0.source.nets, (std::vector<Cidr>{cidr("10.0.0.0", 8), cidr("192.168.1.7", 32)}));
  EXPECT_EQ(r0.source.not_nets, std::vector<Cidr>{cidr("10.1.0.0", 16)});
  EXPECT_EQ(r0.source.selector, "role == 'client'");
  EXPECT_EQ(r0.source.not_selector, "quarantine == 'yes'");
  EXPECT_EQ(r0.source.namespace_selector, "all()");
  EXPECT_EQ(r0.source.ports, (std::vector<PortSpec>{{1024, 65535, ""}}));
  EXPECT_EQ(r0.destination.ports,
            (std::vector<PortSpec>{{80, 80, ""}, {8000, 8080, ""}, {0, 0, "http"}}));
  EXPECT_EQ(r0.destination.not_ports, (std::vector<PortSpec>{{8081, 8081, ""}}));
  EXPECT_EQ(g.ingress[1].action, PolicyAction::Log);
  EXPECT_EQ(g.ingress[2].icmp_type, 8);
  EXPECT_EQ(g.ingress[2].icmp_code, 0);
  EXPECT_EQ(g.ingress[3].protocol, 47);
  EXPECT_EQ(g.ingress[3].not_protocol, 17);
  const GlobalNetworkPolicy& p = s.global_network_policies[1];
  EXPECT_EQ(p.tier, "default");
  EXPECT_FALSE(p.order);
  EXPECT_EQ(p.selector, "");
  EXPECT_TRUE(p.types.ingress);
  EXPECT_FALSE(p.types.egress);
}

TEST(ParsePolicy, CidrHostBitsAreCleared) {
  auto r = load_text("np.yaml", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
  podSelector: {}
  ingress:
  - from:
    - ipBlock: {cidr: 10.1.2.3/16}
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.snapshot->network_policies[0].ingress[0].peers[0].ip_block->cidr,
            cidr("10.1.0.0", 16));
}

TEST(ParsePolicy, Ipv6IpBlockWarnsAndMatchesNothing) {
  auto r = load_text("np.yaml", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
  podSelector: {}
  ingress:
  - from:
    - ipBlock: {cidr: "fd00::/8"}
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_TRUE(r.snapshot->network_policies[0].ingress[0].peers[0].ipv6_only);
  EXPECT_TRUE(HasError(r.warnings, "np.yaml", "NetworkPolicy default/p",
                       "spec.ingress[0].from[0].ipBlock.cidr", "matches no IPv4 traffic"));
}

// ---------------------------------------------------------------- bad input

const char* kGnpHeader = R"(
apiVersion: weir.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: deny-x}
spec:
)";

ValidationErrors gnp_errors(const std::string& spec) {
  auto r = load_text("policy.yaml", std::string(kGnpHeader) + spec);
  EXPECT_FALSE(r.ok());
  return r.errors;
}

TEST(ParsePolicyErrors, SelectorDoesNotParseNamesColumn) {
  auto errs = gnp_errors("  selector: \"app == web\"\n");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x", "spec.selector",
                       "selector \"app == web\" does not parse: column 8: expected a quoted "
                       "string"));
  errs = gnp_errors(R"(  ingress:
  - action: Allow
    source: {notSelector: "(a == 'b'"}
)");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].source.notSelector", "column 10"));
}

TEST(ParsePolicyErrors, UnknownAndMissingAction) {
  auto errs = gnp_errors(R"(  ingress:
  - action: Accept
  - protocol: TCP
)");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x", "spec.ingress[0].action",
                       "unknown action \"Accept\" (want Allow, Deny, Pass or Log)"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x", "spec.ingress[1].action",
                       "is required"));
}

TEST(ParsePolicyErrors, PortRangeWrongWayRound) {
  auto errs = gnp_errors(R"(  ingress:
  - action: Deny
    protocol: TCP
    source:
      ports: [80, "2000:1000"]
)");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].source.ports[1]",
                       "port range \"2000:1000\" is the wrong way round"));
  // The whole message, as the operator sees it.
  bool found = false;
  for (const auto& e : errs)
    found = found || e.str().starts_with(
                         "policy.yaml: GlobalNetworkPolicy deny-x: spec.ingress[0].source.ports[1]: "
                         "port range \"2000:1000\" is the wrong way round (line");
  EXPECT_TRUE(found) << weir::testing::dump(errs);
}

TEST(ParsePolicyErrors, BadPorts) {
  auto errs = gnp_errors(R"(  ingress:
  - action: Deny
    protocol: TCP
    source: {ports: [http]}
    destination: {ports: ["1:70000", "-x-"], notPorts: [http]}
)");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].source.ports[0]", "only supported in destination.ports"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].destination.ports[0]", "is not a port range"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].destination.ports[1]", "neither a port"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].destination.notPorts[0]",
                       "only supported in destination.ports"));
}

TEST(ParsePolicyErrors, CidrThatIsNotOne) {
  auto errs = gnp_errors(R"(  egress:
  - action: Allow
    destination: {nets: [10.0.0.0/33, 10.0.0/8], notNets: [banana]}
)");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.egress[0].destination.nets[0]", "\"10.0.0.0/33\" is not a CIDR"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.egress[0].destination.nets[1]", "\"10.0.0/8\" is not a CIDR"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.egress[0].destination.notNets[0]", "\"banana\" is not a CIDR"));

  auto r = load_text("np.yaml", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0, except: [10.0.0.0/8]}
    - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16, 10.0.0.0/8]}
)");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "np.yaml", "NetworkPolicy shop/p",
                       "spec.ingress[0].from[0].ipBlock.cidr", "\"10.0.0.0\" is not a CIDR"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", "NetworkPolicy shop/p",
                       "spec.ingress[0].from[1].ipBlock.except[0]",
                       "is not strictly inside cidr 10.0.0.0/8"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", "NetworkPolicy shop/p",
                       "spec.ingress[0].from[1].ipBlock.except[1]",
                       "is not strictly inside cidr 10.0.0.0/8"));
}

TEST(ParsePolicyErrors, UnknownTier) {
  auto r = load_text("policy.yaml", std::string(kGnpHeader) + "  tier: security\n");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "policy.yaml", "GlobalNetworkPolicy deny-x", "spec.tier",
                       "tier \"security\" does not exist"));
  // "default" needs no Tier resource.
  auto ok = load_text("policy.yaml", std::string(kGnpHeader) + "  tier: default\n");
  EXPECT_TRUE(ok.ok()) << weir::testing::dump(ok.errors);
}

TEST(ParsePolicyErrors, ReservedTierAndBadTierFields) {
  auto r = load_text("t.yaml", R"(
apiVersion: weir.dev/v1
kind: Tier
metadata: {name: kubernetes}
---
apiVersion: weir.dev/v1
kind: Tier
metadata: {name: t2}
spec: {order: soon, defaultAction: Allow}
)");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "Tier kubernetes", "metadata.name", "reserved"));
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "Tier t2", "spec.order", "\"soon\" is not a number"));
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "Tier t2", "spec.defaultAction",
                       "must be Deny or Pass"));
}

TEST(ParsePolicyErrors, DuplicateNames) {
  std::string np = R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: a}
spec: {podSelector: {}}
)";
  std::string tier = R"(
apiVersion: weir.dev/v1
kind: Tier
metadata: {name: t}
)";
  std::string ns = R"(
apiVersion: v1
kind: Namespace
metadata: {name: a}
)";
  auto r = model::build_snapshot({{"a.yaml", np + "---" + tier + "---" + ns},
                                  {"b.yaml", np + "---" + tier + "---" + ns + "---" +
                                                 std::string(kGnpHeader) + "  selector: all()\n" +
                                                 "---" + kGnpHeader + "  selector: all()\n"}});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "b.yaml", "NetworkPolicy a/p", "metadata.name",
                       "duplicate NetworkPolicy a/p: also defined in a.yaml (document 1)"));
  EXPECT_TRUE(HasError(r.errors, "b.yaml", "Tier t", "metadata.name",
                       "duplicate Tier t: also defined in a.yaml (document 2)"));
  EXPECT_TRUE(HasError(r.errors, "b.yaml", "Namespace a", "metadata.name", "duplicate"));
  EXPECT_TRUE(HasError(r.errors, "b.yaml", "GlobalNetworkPolicy deny-x", "metadata.name",
                       "also defined in b.yaml (document 4)"));
  // A NetworkPolicy of the same name in another namespace is fine.
  std::string np_b = np;
  np_b.replace(np_b.find("namespace: a"), 12, "namespace: b");
  auto ok = model::build_snapshot({{"a.yaml", np}, {"c.yaml", np_b}});
  EXPECT_TRUE(ok.ok()) << weir::testing::dump(ok.errors);
}

TEST(ParsePolicyErrors, IcmpCodeWithoutType) {
  auto errs = gnp_errors(R"(  ingress:
  - action: Allow
    protocol: ICMP
    icmp: {code: 3}
  - action: Allow
    protocol: TCP
    icmp: {type: 255}
)");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].icmp.code", "icmp.code needs icmp.type"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[1].icmp.type", "255 is out of range 0..254"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x", "spec.ingress[1].icmp",
                       "icmp needs protocol ICMP"));
}

TEST(ParsePolicyErrors, PortsWithoutTcpOrUdp) {
  auto errs = gnp_errors(R"(  ingress:
  - action: Allow
    destination: {ports: [80]}
  - action: Allow
    protocol: ICMP
    source: {ports: [80]}
  - action: Allow
    protocol: UDP
    destination: {notPorts: [53]}
  - action: Allow
    protocol: 300
  - action: Allow
    protocol: GRE
)");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].destination.ports",
                       "ports need protocol TCP, UDP or SCTP"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[1].source.ports", "ports need protocol TCP, UDP or SCTP"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x", "spec.ingress[3].protocol",
                       "300 is out of range 1..255"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x", "spec.ingress[4].protocol",
                       "unknown protocol \"GRE\""));
  for (const auto& e : errs) EXPECT_NE(e.field, "spec.ingress[2].destination.notPorts");
}

TEST(ParsePolicyErrors, EndPort) {
  auto r = load_text("np.yaml", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
  podSelector: {}
  egress:
  - ports:
    - {port: http, endPort: 90}
    - {endPort: 90}
    - {port: 100, endPort: 90}
    - {port: 100, endPort: 100}
    - {port: 0}
    - {port: "a_b"}
    - {protocol: ICMP}
)");
  ASSERT_FALSE(r.ok());
  const std::string res = "NetworkPolicy default/p";
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.egress[0].ports[0].endPort",
                       "endPort needs a numeric port, not the named port \"http\""));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.egress[0].ports[1].endPort",
                       "endPort needs a numeric port"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.egress[0].ports[2].endPort",
                       "endPort 90 is less than port 100"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.egress[0].ports[4].port",
                       "0 is out of range 1..65535"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.egress[0].ports[5].port",
                       "neither a port number nor a valid port name"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.egress[0].ports[6].protocol",
                       "must be TCP, UDP or SCTP"));
  for (const auto& e : r.errors) EXPECT_NE(e.field, "spec.egress[0].ports[3].endPort");
}

TEST(ParsePolicyErrors, LabelSelectors) {
  auto r = load_text("np.yaml", R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
  podSelector:
    matchLabels: {"-bad": x}
    matchExpressions:
    - {key: env, operator: Equals, values: [a]}
    - {key: env, operator: In}
    - {key: env, operator: Exists, values: [a]}
  ingress:
  - from:
    - {}
    - ipBlock: {cidr: 10.0.0.0/8}
      podSelector: {}
    - namespaceSelector: {matchLabels: {team: "a b"}}
  policyTypes: [Ingress, Sideways]
)");
  ASSERT_FALSE(r.ok());
  const std::string res = "NetworkPolicy default/p";
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.podSelector.matchLabels[\"-bad\"]",
                       "invalid label key \"-bad\""));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.podSelector.matchExpressions[0].operator",
                       "unknown operator \"Equals\""));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.podSelector.matchExpressions[1].values",
                       "operator In needs at least one value"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.podSelector.matchExpressions[2].values",
                       "operator Exists takes no values"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.ingress[0].from[0]",
                       "must set podSelector, namespaceSelector or ipBlock"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.ingress[0].from[1]",
                       "ipBlock may not be combined"));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res,
                       "spec.ingress[0].from[2].namespaceSelector.matchLabels[\"team\"]",
                       "invalid label value \"a b\""));
  EXPECT_TRUE(HasError(r.errors, "np.yaml", res, "spec.policyTypes[1]",
                       "unknown policy type \"Sideways\""));
}

TEST(ParsePolicyErrors, UnsupportedCalicoFields) {
  auto errs = gnp_errors(R"(  doNotTrack: true
  ingress:
  - action: Allow
    notICMP: {type: 8}
    source: {serviceAccounts: {names: [x]}, notPorts: [80]}
)");
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x", "spec.doNotTrack",
                       "not supported"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].notICMP", "not supported"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].source.serviceAccounts", "not supported"));
  EXPECT_TRUE(HasError(errs, "policy.yaml", "GlobalNetworkPolicy deny-x",
                       "spec.ingress[0].source.notPorts", "not supported"));
}

TEST(ParsePolicyErrors, NamespaceName) {
  auto r = load_text("ns.yaml", R"(
apiVersion: v1
kind: Namespace
metadata: {name: a.b}
)");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "ns.yaml", "Namespace a.b", "metadata.name",
                       "not a valid namespace name"));
}

}  // namespace
}  // namespace weir::model
