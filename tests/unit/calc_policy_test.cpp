// calc/policy.h: PolicyResolver, end to end: YAML -> snapshot -> resolver -> pol::evaluate()
// over the resolver's IP sets. A flow A -> B is allowed when A's egress policy (if A is a pod)
// and B's ingress policy (if B is a pod) both allow it.
#include "calc/policy.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "model_testing.h"

namespace weir::calc {
namespace {

using pol::Direction;
using weir::testing::load_text;

// Namespaces and pods of every case.
//   default (no labels)   web 10.0.0.1 {http: TCP 80, metrics: TCP 9090}, db 10.0.0.2 {pg: 5432},
//                         client 10.0.0.3
//   prod {env: prod}      web 10.0.1.1 {http: TCP 8080}, client 10.0.1.3
//   dev {env: dev}        client 10.0.2.3
const char* kWorld = R"(
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {env: dev}}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  node: n1
  interface: weir-web
  ips: [10.0.0.1]
  ports:
  - {name: http, port: 80}
  - {name: metrics, port: 9090}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: db, namespace: default, labels: {app: db}}
spec:
  node: n1
  interface: weir-db
  ips: [10.0.0.2]
  ports:
  - {name: pg, port: 5432}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {node: n1, interface: weir-client, ips: [10.0.0.3]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  node: n1
  interface: weir-pweb
  ips: [10.0.1.1]
  ports:
  - {name: http, port: 8080}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: client, namespace: prod, labels: {app: client}}
spec: {node: n1, interface: weir-pclient, ips: [10.0.1.3]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: client, namespace: dev, labels: {app: client}}
spec: {node: n1, interface: weir-dclient, ips: [10.0.2.3]}
)";

model::Snapshot snapshot(const std::string& policies, const std::string& world = kWorld) {
  auto r = load_text("all.yaml", world + "---\n" + policies);
  EXPECT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  return r.ok() ? *r.snapshot : model::Snapshot{};
}

std::optional<model::Ipv4> pod_ip(const model::Snapshot& s, const std::string& who) {
  for (const auto& w : s.workload_endpoints)
    if (w.key() == who) return w.ips.at(0);
  return std::nullopt;
}

// "default/web" (a pod) or "192.168.5.5" (outside).
model::Ipv4 addr_of(const model::Snapshot& s, const std::string& who) {
  if (auto ip = pod_ip(s, who)) return *ip;
  auto ip = model::Ipv4::parse(who);
  EXPECT_TRUE(ip) << "unknown endpoint " << who;
  return ip.value_or(model::Ipv4{});
}

struct Verdict {
  bool allowed = true;
  pol::Decision egress, ingress;
};

Verdict flow(const PolicyResolver& r, const model::Snapshot& s, const std::string& from,
             const std::string& to, pol::Packet p) {
  p.saddr = addr_of(s, from);
  p.daddr = addr_of(s, to);
  pol::IpSetTable sets = r.ipset_table();
  Verdict v;
  if (pod_ip(s, from)) {
    const pol::EndpointPolicy* ep = r.policy(from, Direction::Egress);
    EXPECT_NE(ep, nullptr) << from;
    if (ep) v.egress = pol::evaluate(*ep, p, sets);
  }
  if (pod_ip(s, to)) {
    const pol::EndpointPolicy* ip = r.policy(to, Direction::Ingress);
    EXPECT_NE(ip, nullptr) << to;
    if (ip) v.ingress = pol::evaluate(*ip, p, sets);
  }
  v.allowed = v.egress.allow && v.ingress.allow;
  return v;
}

pol::Packet tcp(uint16_t port) { return pol::Packet{6, {}, {}, 40000, port, 0, 0}; }
pol::Packet udp(uint16_t port) { return pol::Packet{17, {}, {}, 40000, port, 0, 0}; }
pol::Packet icmp(uint8_t type, uint8_t code) { return pol::Packet{1, {}, {}, 0, 0, type, code}; }

// ---------------------------------------------------------------- Kubernetes NetworkPolicy table

struct Flow {
  std::string from, to;
  pol::Packet packet;
  bool allowed;
};

struct NpCase {
  std::string name;
  std::string policies;
  std::vector<Flow> flows;
};

std::string np(const std::string& name, const std::string& ns, const std::string& spec) {
  return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec:\n" + spec + "\n---\n";
}

// Cases after https://kubernetes.io/docs/concepts/services-networking/network-policies/.
std::vector<NpCase> np_cases() {
  return {
      {"NoPolicyAllowsEverything", "",
       {{"default/client", "default/web", tcp(80), true},
        {"192.168.5.5", "default/db", udp(1), true},
        {"prod/web", "192.168.5.5", tcp(443), true}}},
      {"DefaultDenyIngress",
       np("default-deny-ingress", "default", "  podSelector: {}\n  policyTypes: [Ingress]"),
       {{"default/client", "default/web", tcp(80), false},
        {"prod/client", "default/web", tcp(80), false},
        {"192.168.5.5", "default/db", udp(53), false},
        {"default/web", "prod/web", tcp(8080), true},  // egress not isolated, prod not selected
        {"default/web", "192.168.5.5", tcp(443), true},
        {"prod/client", "prod/web", tcp(8080), true}}},
      {"DefaultDenyEgress",
       np("default-deny-egress", "default", "  podSelector: {}\n  policyTypes: [Egress]"),
       {{"default/client", "default/web", tcp(80), false},
        {"default/web", "192.168.5.5", tcp(443), false},
        {"prod/client", "default/web", tcp(80), true},  // ingress not isolated
        {"prod/client", "prod/web", tcp(8080), true}}},
      {"AllowAllIngressOverridesDefaultDeny",
       np("default-deny-ingress", "default", "  podSelector: {}\n  policyTypes: [Ingress]") +
           np("allow-all-ingress", "default",
              "  podSelector: {}\n  ingress:\n  - {}\n  policyTypes: [Ingress]"),
       {{"default/client", "default/web", tcp(80), true},
        {"192.168.5.5", "default/db", udp(53), true}}},
      {"AllowAllEgress",
       np("default-deny-egress", "default", "  podSelector: {}\n  policyTypes: [Egress]") +
           np("allow-all-egress", "default",
              "  podSelector: {}\n  egress:\n  - {}\n  policyTypes: [Egress]"),
       {{"default/client", "192.168.5.5", icmp(8, 0), true},
        {"default/client", "default/web", tcp(80), true}}},
      {"DefaultTypesIncludeIngress",  // no policyTypes: Ingress is implied, egress rules add Egress
       np("egress-rules", "default", "  podSelector: {matchLabels: {app: web}}\n  egress:\n  - {}"),
       {{"default/web", "192.168.5.5", tcp(443), true},
        {"default/client", "default/web", tcp(80), false},
        {"default/web", "default/db", tcp(5432), true}}},
      {"AllowFromNamespace",
       np("from-prod", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}})"),
       {{"prod/client", "default/web", tcp(80), true},
        {"prod/web", "default/web", udp(9), true},
        {"dev/client", "default/web", tcp(80), false},
        {"default/client", "default/web", tcp(80), false},
        {"192.168.5.5", "default/web", tcp(80), false},
        {"dev/client", "default/db", tcp(5432), true}}},  // db not selected
      {"PodAndNamespaceSelectorInOnePeer",
       np("and", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {app: client}})"),
       {{"prod/client", "default/web", tcp(80), true},
        {"prod/web", "default/web", tcp(80), false},
        {"default/client", "default/web", tcp(80), false},
        {"dev/client", "default/web", tcp(80), false}}},
      {"PodAndNamespaceSelectorAsTwoPeers",
       np("or", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
    - podSelector: {matchLabels: {app: client}})"),
       {{"prod/client", "default/web", tcp(80), true},
        {"prod/web", "default/web", tcp(80), true},
        {"default/client", "default/web", tcp(80), true},
        {"dev/client", "default/web", tcp(80), false},  // podSelector alone: own namespace
        {"default/db", "default/web", tcp(80), false}}},
      {"MatchExpressions",
       np("expr", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions:
        - {key: env, operator: In, values: [prod, dev]}
      podSelector:
        matchExpressions:
        - {key: app, operator: NotIn, values: [web]})"),
       {{"prod/client", "default/web", tcp(80), true},
        {"dev/client", "default/web", tcp(80), true},
        {"prod/web", "default/web", tcp(80), false},
        {"default/client", "default/web", tcp(80), false}}},
      {"IpBlockWithExcept",
       np("ipblock", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except: [172.17.1.0/24]
    ports:
    - {protocol: TCP, port: 80})"),
       {{"172.17.0.5", "default/web", tcp(80), true},
        {"172.17.2.200", "default/web", tcp(80), true},
        {"172.17.1.5", "default/web", tcp(80), false},
        {"172.17.0.5", "default/web", tcp(81), false},
        {"172.17.0.5", "default/web", udp(80), false},
        {"default/client", "default/web", tcp(80), false}}},
      {"NamedPortIngress",
       np("named-in", "default", R"(  podSelector: {}
  ingress:
  - ports:
    - port: http)"),
       {{"default/client", "default/web", tcp(80), true},  // web's http = 80
        {"default/client", "default/web", tcp(9090), false},
        {"default/client", "default/web", udp(80), false},
        {"default/client", "default/db", tcp(5432), false},  // db has no port "http"
        {"default/client", "default/db", tcp(80), false},
        {"prod/client", "prod/web", tcp(8080), true}}},  // prod not selected
      {"NamedPortEgress",
       np("named-out", "default", R"(  podSelector: {matchLabels: {app: client}}
  egress:
  - ports:
    - port: http)"),
       {{"default/client", "default/web", tcp(80), true},
        {"default/client", "default/web", tcp(9090), false},
        {"default/client", "prod/web", tcp(8080), true},  // prod/web's http = 8080
        {"default/client", "prod/web", tcp(80), false},
        {"default/client", "192.168.5.5", tcp(80), false},
        {"default/client", "default/db", tcp(5432), false},
        {"default/web", "default/db", tcp(5432), true}}},  // web not selected
      {"EndPort",
       np("endport", "default", R"(  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/16}
    ports:
    - {protocol: TCP, port: 32000, endPort: 32768})"),
       {{"default/client", "default/web", tcp(32000), true},
        {"default/client", "default/web", tcp(32500), true},
        {"default/client", "prod/web", tcp(32768), true},
        {"default/client", "default/web", tcp(31999), false},
        {"default/client", "default/web", tcp(32769), false},
        {"default/client", "default/web", udp(32000), false},
        {"default/client", "192.168.5.5", tcp(32000), false}}},
      {"PortsOfSeveralProtocols",
       np("dns", "default", R"(  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
    - {protocol: TCP, port: 853})"),
       {{"default/client", "192.168.5.5", udp(53), true},
        {"default/client", "192.168.5.5", tcp(53), true},
        {"default/client", "192.168.5.5", tcp(853), true},
        {"default/client", "192.168.5.5", udp(853), false},
        {"default/client", "192.168.5.5", icmp(8, 0), false}}},
      {"MultiplePoliciesAreAdditive",
       np("a", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
    ports:
    - {port: 80})") +
           np("b", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
    ports:
    - {port: 9090})"),
       {{"default/client", "default/web", tcp(80), true},
        {"default/client", "default/web", tcp(9090), false},
        {"prod/client", "default/web", tcp(9090), true},
        {"prod/client", "default/web", tcp(80), false}}},
      {"PodNotSelectedIsNotIsolated",
       np("db", "default", R"(  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}})"),
       {{"default/client", "default/web", tcp(80), true},
        {"default/client", "default/db", tcp(5432), false},
        {"default/web", "default/db", tcp(5432), true},
        {"default/db", "default/client", tcp(1), true}}},
      {"PolicyTypesEgressOnly",
       np("egress-only", "default", R"(  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: nobody}}
  egress:
  - to:
    - podSelector: {matchLabels: {app: db}}
    ports:
    - {port: 5432})"),
       {{"default/client", "default/db", tcp(5432), true},
        {"default/client", "default/web", tcp(80), false},
        {"default/web", "default/client", tcp(80), true}}},  // ingress rules ignored
      {"EgressWithoutRulesDeniesAll",
       np("no-egress", "default", R"(  podSelector: {matchLabels: {app: client}}
  policyTypes: [Ingress, Egress])"),
       {{"default/client", "default/web", tcp(80), false},
        {"default/web", "default/client", tcp(80), false},
        {"default/web", "default/db", tcp(5432), true}}},
      {"OnlyIpv6PeersMatchNothing",
       np("v6", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - ipBlock: {cidr: "fd00::/8"})"),
       {{"default/client", "default/web", tcp(80), false},
        {"192.168.5.5", "default/web", tcp(80), false}}},
      {"PolicyInOtherNamespaceDoesNotSelect",
       np("deny", "prod", "  podSelector: {}\n  policyTypes: [Ingress]"),
       {{"default/client", "default/web", tcp(80), true},
        {"default/client", "prod/web", tcp(8080), false}}},
  };
}

void PrintTo(const NpCase& c, std::ostream* os) { *os << c.name; }

class NetworkPolicyTable : public ::testing::TestWithParam<NpCase> {};

TEST_P(NetworkPolicyTable, Flows) {
  const NpCase& c = GetParam();
  model::Snapshot s = snapshot(c.policies);
  PolicyResolver r;
  r.update(s);
  for (const Flow& f : c.flows) {
    Verdict v = flow(r, s, f.from, f.to, f.packet);
    EXPECT_EQ(v.allowed, f.allowed)
        << f.from << " -> " << f.to << " proto " << int(f.packet.proto) << " port "
        << f.packet.dport << " (egress " << v.egress.allow << ", ingress " << v.ingress.allow
        << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Kubernetes, NetworkPolicyTable, ::testing::ValuesIn(np_cases()),
                         [](const ::testing::TestParamInfo<NpCase>& i) { return i.param.name; });

// ---------------------------------------------------------------- IR shape

TEST(PolicyResolver, KubernetesRuleShapeAndDescription) {
  model::Snapshot s = snapshot(np("allow-nginx-from-ubuntu", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
    ports:
    - {protocol: TCP, port: 80})"));
  PolicyResolver r;
  r.update(s);
  const pol::EndpointPolicy* ep = r.policy("default/web", Direction::Ingress);
  ASSERT_NE(ep, nullptr);
  ASSERT_EQ(ep->tiers.size(), 1u);
  EXPECT_EQ(ep->tiers[0].name, "kubernetes");
  EXPECT_EQ(ep->tiers[0].default_action, pol::Action::Deny);
  ASSERT_EQ(ep->tiers[0].policies.size(), 1u);
  EXPECT_EQ(ep->tiers[0].policies[0].name, "default/knp.default.allow-nginx-from-ubuntu");
  ASSERT_EQ(ep->tiers[0].policies[0].rules.size(), 1u);
  const pol::Rule& rule = ep->tiers[0].policies[0].rules[0];
  SetSpec spec{*model::parse_selector("app == 'client'"),
               *model::parse_selector("kubernetes.io/metadata.name == 'default'")};
  EXPECT_EQ(rule.action, pol::Action::Allow);
  EXPECT_EQ(rule.match.protocol, 6);
  EXPECT_EQ(rule.match.dst_ports, (std::vector<pol::PortRange>{{80, 80}}));
  EXPECT_EQ(rule.match.src_sets, std::vector<SetId>{spec.id()});
  EXPECT_EQ(rule.description,
            fmt::format("action:\"allow\" protocol:{{name:\"tcp\"}} dst_ports:{{first:80 last:80}} "
                        "src_ip_set_ids:\"{}\" original_src_selector:\"app == \\\"client\\\"\" "
                        "original_src_namespace_selector:\"kubernetes.io/metadata.name == "
                        "\\\"default\\\"\"",
                        model::format_set_id(spec.id())));
  EXPECT_NE(rule.id, 0u);
  EXPECT_EQ(r.set_description(spec.id()),
            "app == \"client\" [namespace: kubernetes.io/metadata.name == \"default\"]");
  EXPECT_EQ(r.label_index().members(spec.id()), std::vector<model::Ipv4>{addr_of(s, "default/client")});
  // Not selected: no tiers in either direction; egress of web not isolated.
  EXPECT_TRUE(r.policy("default/client", Direction::Ingress)->tiers.empty());
  EXPECT_TRUE(r.policy("default/web", Direction::Egress)->tiers.empty());
  EXPECT_EQ(r.policy("nope/x", Direction::Ingress), nullptr);
  EXPECT_EQ(r.endpoint_keys(), (std::vector<std::string>{"default/client", "default/db",
                                                         "default/web", "dev/client",
                                                         "prod/client", "prod/web"}));

  // Rule ids are stable across resolvers and depend on the content.
  PolicyResolver r2;
  r2.update(s);
  EXPECT_EQ(r2.policy("default/web", Direction::Ingress)->tiers[0].policies[0].rules[0].id,
            rule.id);
  PolicyResolver r3;
  std::string other = np("allow-nginx-from-ubuntu", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
    ports:
    - {protocol: TCP, port: 81})");
  r3.update(snapshot(other));
  EXPECT_NE(r3.policy("default/web", Direction::Ingress)->tiers[0].policies[0].rules[0].id,
            rule.id);
}

// A cluster: pods on other nodes are selected like local ones (Calico without identity headers):
// their addresses are IP set members, so a policy on one node decides on traffic from another
// node's pods by source IP. Only which endpoints get programs depends on the node (calc.h).
TEST(PolicyResolver, SelectorsSelectPodsOnEveryNode) {
  std::string world = std::string(kWorld) + R"(---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: client-b, namespace: default, labels: {app: client}}
spec: {node: n2, interface: weir-cb, ips: [10.0.3.3]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: other-c, namespace: default, labels: {app: other}}
spec: {node: n3, interface: weir-oc, ips: [10.0.4.3]}
)";
  model::Snapshot s = snapshot(np("from-clients", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}})"),
                               world);
  PolicyResolver r;
  r.update(s);
  SetSpec spec{*model::parse_selector("app == 'client'"),
               *model::parse_selector("kubernetes.io/metadata.name == 'default'")};
  EXPECT_EQ(r.label_index().members(spec.id()),
            (std::vector<model::Ipv4>{addr_of(s, "default/client"), addr_of(s, "default/client-b")}));
  // web on n1: the client on n1 and the one on n2 are let in, the pod on n3 is not.
  EXPECT_TRUE(flow(r, s, "default/client", "default/web", tcp(80)).allowed);
  EXPECT_TRUE(flow(r, s, "default/client-b", "default/web", tcp(80)).allowed);
  EXPECT_FALSE(flow(r, s, "default/other-c", "default/web", tcp(80)).allowed);
  // The remote pod changes its labels: it leaves the set.
  std::string relabelled = world;
  relabelled.replace(relabelled.find("name: client-b, namespace: default, labels: {app: client}"),
                     std::string("name: client-b, namespace: default, labels: {app: client}").size(),
                     "name: client-b, namespace: default, labels: {app: gone}");
  r.update(snapshot(np("from-clients", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}})"),
                    relabelled));
  EXPECT_EQ(r.label_index().members(spec.id()), std::vector<model::Ipv4>{addr_of(s, "default/client")});
}

TEST(PolicyResolver, PeersTimesProtocolsExpandIntoRules) {
  model::Snapshot s = snapshot(np("x", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
    - ipBlock: {cidr: 192.168.0.0/16, except: [192.168.5.0/24]}
    ports:
    - {protocol: TCP, port: 80}
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 443})"));
  PolicyResolver r;
  r.update(s);
  const auto& rules = r.policy("default/web", Direction::Ingress)->tiers.at(0).policies.at(0).rules;
  ASSERT_EQ(rules.size(), 4u);  // 2 peers x 2 protocols
  EXPECT_EQ(rules[0].match.protocol, 6);
  EXPECT_EQ(rules[0].match.dst_ports, (std::vector<pol::PortRange>{{80, 80}, {443, 443}}));
  EXPECT_EQ(rules[1].match.protocol, 17);
  EXPECT_EQ(rules[2].match.src_nets, (std::vector<model::Cidr>{{*model::Ipv4::parse("192.168.0.0"), 16}}));
  EXPECT_EQ(rules[2].match.src_not_nets,
            (std::vector<model::Cidr>{{*model::Ipv4::parse("192.168.5.0"), 24}}));
  std::set<uint64_t> ids;
  for (const auto& rule : rules) ids.insert(rule.id);
  EXPECT_EQ(ids.size(), rules.size());
}

TEST(PolicyResolver, NamedPortEgressSet) {
  model::Snapshot s = snapshot(np("named-out", "default", R"(  podSelector: {matchLabels: {app: client}}
  egress:
  - ports:
    - port: http)"));
  PolicyResolver r;
  r.update(s);
  SetId id = model::fnv1a64("named-port:http/TCP");
  const auto& rule =
      r.policy("default/client", Direction::Egress)->tiers.at(0).policies.at(0).rules.at(0);
  EXPECT_EQ(rule.match.dst_named_port_sets, std::vector<SetId>{id});
  EXPECT_EQ(r.set_description(id), "named port \"http\"/TCP");
  auto changes = r.take_ipset_changes();
  auto it = std::find_if(changes.begin(), changes.end(), [&](const IpSetDelta& d) { return d.id == id; });
  ASSERT_NE(it, changes.end());
  EXPECT_TRUE(it->created);
  EXPECT_EQ(it->add_ports, (std::vector<PortMember>{{addr_of(s, "default/web"), 6, 80},
                                                     {addr_of(s, "prod/web"), 6, 8080}}));
  EXPECT_TRUE(r.take_ipset_changes().empty());
}

// ---------------------------------------------------------------- tiers and GlobalNetworkPolicy

std::string gnp(const std::string& name, const std::string& spec) {
  return "apiVersion: weir.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: " + name +
         "}\nspec:\n" + spec + "\n---\n";
}
std::string tier(const std::string& name, const std::string& spec) {
  return "apiVersion: weir.dev/v1\nkind: Tier\nmetadata: {name: " + name + "}\nspec: " + spec +
         "\n---\n";
}

std::vector<std::string> tier_names(const pol::EndpointPolicy* ep) {
  std::vector<std::string> out;
  for (const auto& t : ep->tiers) out.push_back(t.name);
  return out;
}

TEST(PolicyResolverTiers, OrderWithinTier) {
  model::Snapshot s = snapshot(
      gnp("z-allow-first", "  order: 10\n  selector: app == 'web'\n  ingress:\n  - action: Allow\n"
                           "    source: {selector: app == 'db'}") +
      gnp("a-deny-clients", "  order: 20\n  selector: app == 'web'\n  ingress:\n  - action: Deny\n"
                            "    source: {selector: app == 'client'}\n  - action: Deny\n"
                            "    source: {selector: app == 'db'}") +
      gnp("allow-rest", "  selector: app == 'web'\n  ingress:\n  - action: Allow"));
  PolicyResolver r;
  r.update(s);
  const auto* ep = r.policy("default/web", Direction::Ingress);
  ASSERT_EQ(ep->tiers.size(), 1u);
  EXPECT_EQ(ep->tiers[0].name, "default");
  std::vector<std::string> names;
  for (const auto& p : ep->tiers[0].policies) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"z-allow-first", "a-deny-clients", "allow-rest"}));
  EXPECT_TRUE(flow(r, s, "default/db", "default/web", tcp(80)).allowed);  // order 10 first
  EXPECT_FALSE(flow(r, s, "default/client", "default/web", tcp(80)).allowed);
  EXPECT_FALSE(flow(r, s, "prod/client", "default/web", tcp(80)).allowed);
  EXPECT_TRUE(flow(r, s, "192.168.5.5", "default/web", tcp(80)).allowed);  // unordered last
  EXPECT_TRUE(r.policy("default/db", Direction::Ingress)->tiers.empty());
}

TEST(PolicyResolverTiers, TierOrderPassAndKubernetesLast) {
  std::string policies =
      tier("security", "{order: 100}") + tier("late", "{}") + tier("early", "{order: 1}") +
      gnp("sec", "  tier: security\n  selector: all()\n  ingress:\n"
                 "  - action: Pass\n    source: {selector: app == 'client'}\n"
                 "  - action: Allow\n    source: {nets: [192.168.0.0/16]}\n"
                 "  - action: Deny\n    source: {nets: [172.16.0.0/12]}") +
      gnp("late-pol", "  tier: late\n  selector: all()\n  ingress:\n  - action: Pass") +
      gnp("early-pol", "  tier: early\n  selector: app == 'db'\n  ingress:\n  - action: Pass") +
      gnp("dflt", "  selector: app == 'web'\n  ingress:\n  - action: Pass\n"
                  "    source: {namespaceSelector: env == 'prod'}") +
      np("deny-web", "default", "  podSelector: {matchLabels: {app: web}}\n  ingress:\n"
                                "  - from:\n    - podSelector: {matchLabels: {app: client}}");
  model::Snapshot s = snapshot(policies);
  PolicyResolver r;
  r.update(s);
  EXPECT_EQ(tier_names(r.policy("default/web", Direction::Ingress)),
            (std::vector<std::string>{"security", "default", "late", "kubernetes"}));
  EXPECT_EQ(tier_names(r.policy("default/db", Direction::Ingress)),
            (std::vector<std::string>{"early", "security", "late"}));
  // client: Pass in security, no rule in default matches -> default tier's default deny.
  EXPECT_FALSE(flow(r, s, "default/client", "default/web", tcp(80)).allowed);
  // prod/client: Pass (security), Pass (default, prod namespace), Pass (late), kubernetes:
  // podSelector only matches default's namespace -> deny.
  EXPECT_FALSE(flow(r, s, "prod/client", "default/web", tcp(80)).allowed);
  // Allowed by the security tier before the Kubernetes policy is consulted.
  EXPECT_TRUE(flow(r, s, "192.168.1.1", "default/web", tcp(80)).allowed);
  // No rule in security matches: the tier's default (deny) decides, with the rule id that names
  // that tier (the first).
  Verdict v = flow(r, s, "10.9.9.9", "default/web", tcp(80));
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.ingress.rule_id, pol::tier_default_rule_id(0));
  EXPECT_EQ(pol::tier_of_default_rule_id(v.ingress.rule_id), size_t{0});
  v = flow(r, s, "172.16.1.1", "default/web", tcp(80));
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.ingress.rule_id, 0u);
  // db: early Pass, security Pass for clients, late Pass -> every tier passed: allow.
  EXPECT_TRUE(flow(r, s, "dev/client", "default/db", tcp(5432)).allowed);
}

TEST(PolicyResolverTiers, TierDefaultActionPassAndLog) {
  std::string policies =
      tier("t1", "{order: 1, defaultAction: Pass}") +
      gnp("log-then", "  tier: t1\n  selector: app == 'web'\n  ingress:\n  - action: Log\n"
                      "  - action: Deny\n    protocol: UDP") +
      gnp("allow-80", "  selector: app == 'web'\n  ingress:\n  - action: Allow\n"
                      "    protocol: TCP\n    destination: {ports: [80]}");
  model::Snapshot s = snapshot(policies);
  PolicyResolver r;
  r.update(s);
  const auto* ep = r.policy("default/web", Direction::Ingress);
  ASSERT_EQ(ep->tiers.size(), 2u);
  EXPECT_EQ(ep->tiers[0].default_action, pol::Action::Pass);
  uint64_t log_id = ep->tiers[0].policies[0].rules[0].id;
  uint64_t allow_id = ep->tiers[1].policies[0].rules[0].id;
  Verdict v = flow(r, s, "default/client", "default/web", tcp(80));
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.ingress.logged, std::vector<uint64_t>{log_id});  // Log, then on
  EXPECT_EQ(v.ingress.rule_id, allow_id);
  v = flow(r, s, "default/client", "default/web", udp(80));
  EXPECT_FALSE(v.allowed);  // Deny in t1 after the Log
  v = flow(r, s, "default/client", "default/web", tcp(81));
  EXPECT_FALSE(v.allowed);  // t1 passes by default; default tier denies by default
  EXPECT_EQ(v.ingress.rule_id, pol::tier_default_rule_id(1));
  EXPECT_EQ(pol::tier_of_default_rule_id(allow_id), std::nullopt);
  EXPECT_EQ(v.ingress.logged, std::vector<uint64_t>{log_id});
}

TEST(PolicyResolverTiers, NegativeMatches) {
  std::string policies = gnp(
      "neg", R"(  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    source:
      notSelector: app == 'client'
      notNets: [10.0.2.0/24]
      nets: [10.0.0.0/8]
    destination:
      notPorts: [9090, "9100:9200"]
  - action: Allow
    notProtocol: TCP
    source: {selector: app == 'client', namespaceSelector: env == 'prod'})");
  model::Snapshot s = snapshot(policies);
  PolicyResolver r;
  r.update(s);
  EXPECT_TRUE(flow(r, s, "default/db", "default/web", tcp(80)).allowed);
  EXPECT_FALSE(flow(r, s, "default/client", "default/web", tcp(80)).allowed);  // notSelector
  EXPECT_FALSE(flow(r, s, "default/db", "default/web", tcp(9090)).allowed);    // notPorts
  EXPECT_FALSE(flow(r, s, "default/db", "default/web", tcp(9150)).allowed);
  EXPECT_TRUE(flow(r, s, "default/db", "default/web", tcp(9201)).allowed);
  EXPECT_FALSE(flow(r, s, "192.168.5.5", "default/web", tcp(80)).allowed);  // nets
  EXPECT_FALSE(flow(r, s, "10.0.2.9", "default/web", tcp(80)).allowed);     // notNets
  EXPECT_TRUE(flow(r, s, "10.0.3.9", "default/web", tcp(80)).allowed);
  EXPECT_TRUE(flow(r, s, "prod/client", "default/web", udp(53)).allowed);   // notProtocol + ns
  EXPECT_FALSE(flow(r, s, "dev/client", "default/web", udp(53)).allowed);
  EXPECT_FALSE(flow(r, s, "prod/web", "default/web", udp(53)).allowed);
  const auto& rule = r.policy("default/web", Direction::Ingress)->tiers[0].policies[0].rules[0];
  EXPECT_EQ(rule.match.src_not_sets,
            std::vector<SetId>{model::parse_selector("app == 'client'")->id()});
}

TEST(PolicyResolverTiers, IcmpTypeAndCode) {
  std::string policies = gnp("icmp", R"(  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: ICMP
    icmp: {type: 8, code: 0}
  - action: Allow
    protocol: ICMP
    icmp: {type: 13})");
  model::Snapshot s = snapshot(policies);
  PolicyResolver r;
  r.update(s);
  EXPECT_TRUE(flow(r, s, "default/client", "default/web", icmp(8, 0)).allowed);
  EXPECT_FALSE(flow(r, s, "default/client", "default/web", icmp(8, 1)).allowed);
  EXPECT_FALSE(flow(r, s, "default/client", "default/web", icmp(0, 0)).allowed);
  EXPECT_TRUE(flow(r, s, "default/client", "default/web", icmp(13, 7)).allowed);
  EXPECT_FALSE(flow(r, s, "default/client", "default/web", tcp(8)).allowed);
  const auto& rule = r.policy("default/web", Direction::Ingress)->tiers[0].policies[0].rules[0];
  EXPECT_EQ(rule.description,
            "action:\"allow\" protocol:{name:\"icmp\"} icmp_type:8 icmp_code:0");
}

TEST(PolicyResolverTiers, ApplicabilityTypesAndNamespaceSelector) {
  std::string policies =
      gnp("prod-only", "  namespaceSelector: env == 'prod'\n  types: [Egress]\n  egress:\n"
                       "  - action: Deny\n    destination: {nets: [192.168.0.0/16]}") +
      gnp("named", "  selector: app == 'client'\n  types: [Egress]\n  egress:\n"
                   "  - action: Allow\n    protocol: TCP\n    destination: {ports: [http]}");
  model::Snapshot s = snapshot(policies);
  PolicyResolver r;
  r.update(s);
  EXPECT_FALSE(flow(r, s, "prod/web", "192.168.1.1", tcp(80)).allowed);
  EXPECT_TRUE(flow(r, s, "default/web", "192.168.1.1", tcp(80)).allowed);
  EXPECT_TRUE(r.policy("prod/web", Direction::Ingress)->tiers.empty());
  EXPECT_TRUE(flow(r, s, "dev/client", "default/web", tcp(80)).allowed);  // named port
  EXPECT_FALSE(flow(r, s, "dev/client", "default/web", tcp(9090)).allowed);
  EXPECT_TRUE(flow(r, s, "dev/client", "prod/web", tcp(8080)).allowed);
  // prod/client has both ("named" sorts first: both unordered): the named port allows, the
  // rest of prod-only's deny still applies to other destinations.
  EXPECT_TRUE(flow(r, s, "prod/client", "prod/web", tcp(8080)).allowed);
  EXPECT_FALSE(flow(r, s, "prod/client", "192.168.1.1", tcp(80)).allowed);
}

// ---------------------------------------------------------------- incrementality

TEST(PolicyResolverIncremental, LabelChangeTouchesOnlyAffectedSets) {
  std::string policies =
      np("web", "default", "  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from:\n"
                           "    - podSelector: {matchLabels: {app: client}}") +
      np("db", "default", "  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from:\n"
                          "    - podSelector: {matchLabels: {app: web}}") +
      np("other", "default", "  podSelector: {matchLabels: {app: other}}\n  policyTypes: [Egress]");
  PolicyResolver r;
  r.update(snapshot(policies));
  EXPECT_EQ(r.changed_endpoints().size(), 6u);  // all new
  (void)r.take_ipset_changes();

  // No change: nothing reported.
  r.update(snapshot(policies));
  EXPECT_TRUE(r.changed_endpoints().empty());
  EXPECT_TRUE(r.take_ipset_changes().empty());

  // default/client: app=client -> app=other.
  std::string world = kWorld;
  world.replace(world.find("name: client, namespace: default, labels: {app: client}"),
                std::string("name: client, namespace: default, labels: {app: client}").size(),
                "name: client, namespace: default, labels: {app: other}");
  uint64_t evals = r.label_index().stats().selector_evaluations;
  r.update(snapshot(policies, world));
  uint64_t used = r.label_index().stats().selector_evaluations - evals;
  EXPECT_LE(used, r.label_index().set_count());  // one endpoint against each set, no more
  auto changes = r.take_ipset_changes();
  ASSERT_EQ(changes.size(), 1u);
  SetSpec clients{*model::parse_selector("app == 'client'"),
                  *model::parse_selector("kubernetes.io/metadata.name == 'default'")};
  EXPECT_EQ(changes[0].id, clients.id());
  EXPECT_EQ(changes[0].del_nets, (std::vector<model::Cidr>{{*model::Ipv4::parse("10.0.0.3"), 32}}));
  EXPECT_TRUE(changes[0].add_nets.empty());
  // Only the relabelled pod's own policy changed (it is now selected by "other"); web's rule
  // still names the same set.
  EXPECT_EQ(r.changed_endpoints(), std::vector<std::string>{"default/client"});
  EXPECT_EQ(tier_names(r.policy("default/client", Direction::Egress)),
            std::vector<std::string>{"kubernetes"});

  // Removing a policy: the endpoints it selected change, its set is deleted.
  std::string fewer = policies.substr(0, policies.find("apiVersion", 10));  // only "web"
  r.update(snapshot(fewer, world));
  EXPECT_EQ(r.changed_endpoints(), (std::vector<std::string>{"default/client", "default/db"}));
  changes = r.take_ipset_changes();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_TRUE(changes[0].deleted);
  EXPECT_EQ(changes[0].id,
            (SetSpec{*model::parse_selector("app == 'web'"),
                     *model::parse_selector("kubernetes.io/metadata.name == 'default'")}
                 .id()));

  // Removing an endpoint: listed, and its policy is gone.
  std::string smaller = world.substr(0, world.find("---\napiVersion: weir.dev/v1\nkind: WorkloadEndpoint\nmetadata: {name: client, namespace: dev"));
  r.update(snapshot(fewer, smaller));
  EXPECT_EQ(r.changed_endpoints(), std::vector<std::string>{"dev/client"});
  EXPECT_EQ(r.policy("dev/client", Direction::Ingress), nullptr);
}

TEST(PolicyResolverIncremental, PolicyEditRebuildsOnlyItsEndpoints) {
  auto policies = [](int port) {
    return np("web", "default", "  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - ports:\n"
                                "    - {port: " + std::to_string(port) + "}") +
           gnp("clients", "  selector: app == 'client'\n  ingress:\n  - action: Deny\n"
                          "    protocol: TCP\n    destination: {ports: [" + std::to_string(port) +
                              "]}");
  };
  PolicyResolver r;
  r.update(snapshot(policies(80)));
  model::Snapshot s = snapshot(policies(81));
  r.update(s);
  EXPECT_EQ(r.changed_endpoints(), (std::vector<std::string>{"default/client", "default/web",
                                                             "dev/client", "prod/client"}));
  EXPECT_TRUE(flow(r, s, "default/db", "default/web", tcp(81)).allowed);
  EXPECT_FALSE(flow(r, s, "default/db", "default/web", tcp(80)).allowed);
  EXPECT_FALSE(flow(r, s, "default/db", "prod/client", tcp(81)).allowed);
  // A selector edit rebuilds the endpoints selected before and after.
  std::string moved = policies(81);
  moved.replace(moved.find("app: web"), 8, "app: db");
  r.update(snapshot(moved));
  EXPECT_EQ(r.changed_endpoints(), (std::vector<std::string>{"default/db", "default/web"}));
}

TEST(PolicyResolverIncremental, CopiesAreIndependent) {
  std::string policies = np("named-out", "default", R"(  podSelector: {matchLabels: {app: client}}
  egress:
  - ports:
    - port: http)");
  PolicyResolver a;
  a.update(snapshot(policies));
  PolicyResolver b = a;
  b.update(snapshot(""));
  EXPECT_EQ(tier_names(a.policy("default/client", Direction::Egress)),
            std::vector<std::string>{"kubernetes"});
  EXPECT_TRUE(b.policy("default/client", Direction::Egress)->tiers.empty());
  EXPECT_EQ(a.take_ipset_changes().size(), 1u);  // the named-port set, created
  EXPECT_EQ(b.take_ipset_changes().size(), 0u);  // created and gone before being reported
  EXPECT_EQ(a.ipset_table().ports().size(), 1u);
  EXPECT_TRUE(b.ipset_table().ports().empty());
}

TEST(PolicyResolverIncremental, NamespaceLabelChange) {
  std::string policies = np("from-prod", "default", R"(  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}})") +
                         gnp("prod-egress", "  namespaceSelector: env == 'prod'\n  types: [Egress]");
  PolicyResolver r;
  r.update(snapshot(policies));
  (void)r.take_ipset_changes();
  std::string world = kWorld;
  world.replace(world.find("{name: dev, labels: {env: dev}}"),
                std::string("{name: dev, labels: {env: dev}}").size(),
                "{name: dev, labels: {env: prod}}");
  model::Snapshot s = snapshot(policies, world);
  r.update(s);
  // dev's pod joins the namespace set; dev/client now gets the GNP's egress tier.
  auto changes = r.take_ipset_changes();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].add_nets, (std::vector<model::Cidr>{{*model::Ipv4::parse("10.0.2.3"), 32}}));
  EXPECT_EQ(r.changed_endpoints(), std::vector<std::string>{"dev/client"});
  Verdict v = flow(r, s, "dev/client", "default/web", tcp(80));
  EXPECT_TRUE(v.ingress.allow);   // web now admits the "prod" namespace dev
  EXPECT_FALSE(v.egress.allow);   // dev/client's egress: prod-egress has no rule -> deny
}

TEST(PolicyResolverIncremental, NamedPortMembersFollowPods) {
  std::string policies = np("named-out", "default", R"(  podSelector: {matchLabels: {app: client}}
  egress:
  - ports:
    - port: http)");
  PolicyResolver r;
  r.update(snapshot(policies));
  (void)r.take_ipset_changes();
  std::string world = kWorld;
  world.replace(world.find("{name: http, port: 8080}"), std::string("{name: http, port: 8080}").size(),
                "{name: http, port: 8081}");
  model::Snapshot s = snapshot(policies, world);
  r.update(s);
  auto changes = r.take_ipset_changes();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].id, model::fnv1a64("named-port:http/TCP"));
  EXPECT_EQ(changes[0].add_ports, (std::vector<PortMember>{{*model::Ipv4::parse("10.0.1.1"), 6, 8081}}));
  EXPECT_EQ(changes[0].del_ports, (std::vector<PortMember>{{*model::Ipv4::parse("10.0.1.1"), 6, 8080}}));
  EXPECT_TRUE(r.changed_endpoints().empty());  // rules unchanged, only set members
  EXPECT_TRUE(flow(r, s, "default/client", "prod/web", tcp(8081)).allowed);
  EXPECT_FALSE(flow(r, s, "default/client", "prod/web", tcp(8080)).allowed);
}

// 2,000 pods in 20 namespaces, 100 NetworkPolicies each with its own peer selector: one label
// change re-evaluates one endpoint against the sets (no more), reports only the sets the pod
// entered or left, and rebuilds only the relabelled pod's policy.
TEST(PolicyResolverIncremental, ScaleOneLabelChange) {
  model::Snapshot s;
  for (int i = 0; i < 2000; ++i) {
    model::WorkloadEndpoint w;
    w.meta.name = fmt::format("pod-{}", i);
    w.meta.ns = fmt::format("ns-{}", i % 20);
    w.meta.labels = {{"app", fmt::format("app-{}", i % 100)}, {"role", i % 2 ? "a" : "b"}};
    w.node = "n1";
    w.interface = fmt::format("weir{}", i);
    w.ips = {model::Ipv4{0x0a000000u + static_cast<uint32_t>(i)}};
    s.workload_endpoints.push_back(std::move(w));
  }
  for (int p = 0; p < 100; ++p) {
    model::NetworkPolicy np;
    np.meta.name = fmt::format("np-{}", p);
    np.meta.ns = fmt::format("ns-{}", p % 20);
    np.pod_selector.match_labels = {{"app", fmt::format("app-{}", p)}};
    np.types.ingress = true;
    model::NetworkPolicyRule rule;
    model::NetworkPolicyPeer peer;
    peer.pod_selector = model::LabelSelector{{{"app", fmt::format("app-{}", (p + 1) % 100)}}, {}};
    peer.namespace_selector = model::LabelSelector{};
    rule.peers.push_back(peer);
    np.ingress.push_back(rule);
    s.network_policies.push_back(std::move(np));
  }
  PolicyResolver r;
  r.update(s);
  EXPECT_EQ(r.label_index().set_count(), 100u);
  (void)r.take_ipset_changes();

  // pod-7 (app-7, selected by np-7 through ns-7) becomes app-8.
  s.workload_endpoints[7].meta.labels["app"] = "app-8";
  uint64_t evals = r.label_index().stats().selector_evaluations;
  r.update(s);
  EXPECT_EQ(r.label_index().stats().selector_evaluations - evals, 100u);
  auto changes = r.take_ipset_changes();
  ASSERT_EQ(changes.size(), 2u);  // left app-7's set, joined app-8's
  EXPECT_EQ(changes[0].add_nets.size() + changes[0].del_nets.size(), 1u);
  EXPECT_EQ(changes[1].add_nets.size() + changes[1].del_nets.size(), 1u);
  EXPECT_EQ(r.changed_endpoints(), std::vector<std::string>{"ns-7/pod-7"});
  EXPECT_TRUE(r.policy("ns-7/pod-7", Direction::Ingress)->tiers.empty());  // np-8 is in ns-8
}

}  // namespace
}  // namespace weir::calc
