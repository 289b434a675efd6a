// calc/calc.h: services + endpoint slices -> NAT frontends and backends.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "calc/calc.h"
#include "model_testing.h"

namespace weir::calc {
namespace {

using model::Ipv4;
using weir::testing::HasError;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
FrontendKey fk(const char* vip, uint16_t port, uint8_t proto) { return {ip(vip), port, proto}; }
Backend be(const char* a, uint16_t port) { return {ip(a), port}; }

model::Snapshot snapshot(const std::string& yaml) {
  auto r = weir::testing::load_text("test.yaml", yaml);
  EXPECT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  return r.ok() ? *r.snapshot : model::Snapshot{};
}

model::Snapshot fixtures() {
  auto r = weir::testing::load_testdata({"services.yaml", "endpointslices.yaml", "workloads.yaml"});
  EXPECT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  return r.ok() ? *r.snapshot : model::Snapshot{};
}

TEST(CalcNat, FixturesOnNodeA) {
  model::Snapshot s = fixtures();
  std::vector<model::Warning> warnings;
  auto fes = compute_frontends(s, "node-a", &warnings);
  EXPECT_TRUE(warnings.empty()) << weir::testing::dump(warnings);
  ASSERT_EQ(fes.size(), 4u);  // dns TCP+UDP, api http+metrics; headless db has none

  // UDP and TCP on the same port are two frontends; TCP (6) sorts before UDP (17).
  EXPECT_EQ(fes[0].key, fk("10.96.0.10", 53, WEIR_IPPROTO_TCP));
  EXPECT_EQ(fes[0].service, "kube-system/dns:dns-tcp");
  EXPECT_EQ(fes[1].key, fk("10.96.0.10", 53, WEIR_IPPROTO_UDP));
  EXPECT_EQ(fes[1].service, "kube-system/dns:dns");
  EXPECT_EQ(fes[1].backends, (std::vector<Backend>{be("10.65.0.5", 53), be("10.65.1.5", 53)}));
  EXPECT_EQ(fes[1].local, 1u);  // 10.65.0.5 is dns-0 on node-a
  EXPECT_EQ(fes[1].affinity_timeout_s, 0u);

  // Named targetPort "http" resolved through the slice port named like the service port;
  // two slices merged; not-ready and terminating endpoints excluded; duplicates removed.
  EXPECT_EQ(fes[2].key, fk("10.96.0.30", 80, WEIR_IPPROTO_TCP));
  EXPECT_EQ(fes[2].service, "default/api:http");
  EXPECT_EQ(fes[2].backends, (std::vector<Backend>{be("10.65.0.2", 8080), be("10.65.1.2", 8080)}));
  EXPECT_EQ(fes[2].local, 1u);
  EXPECT_EQ(fes[2].affinity_timeout_s, 600u);

  EXPECT_EQ(fes[3].key, fk("10.96.0.30", 9090, WEIR_IPPROTO_TCP));
  EXPECT_EQ(fes[3].service, "default/api:metrics");
  EXPECT_EQ(fes[3].backends, (std::vector<Backend>{be("10.65.0.2", 9100), be("10.65.1.2", 9100)}));
}

TEST(CalcNat, LocalCountDependsOnNode) {
  model::Snapshot s = fixtures();
  auto a = compute_frontends(s, "node-b");
  EXPECT_EQ(a[2].local, 1u);  // api-1 (10.65.1.2) is on node-b
  EXPECT_EQ(a[1].local, 0u);  // no dns workload endpoint on node-b
  auto none = compute_frontends(s, "node-z");
  for (const auto& fe : none) EXPECT_EQ(fe.local, 0u) << fe.key.str();
}

TEST(CalcNat, NumericTargetPortFallbackWhenSliceHasNoMatchingPort) {
  auto s = snapshot(R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.1
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.2"]}]
ports: [{name: other, port: 9999}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-2, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.3"]}]
)");
  auto fes = compute_frontends(s, "n");
  ASSERT_EQ(fes.size(), 1u);
  EXPECT_EQ(fes[0].backends, (std::vector<Backend>{be("10.65.0.2", 8080), be("10.65.0.3", 8080)}));
}

TEST(CalcNat, SlicePortWinsOverNumericTargetPort) {
  auto s = snapshot(R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.1
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.2"]}]
ports: [{name: "", port: 8081, protocol: TCP}]
)");
  auto fes = compute_frontends(s, "n");
  ASSERT_EQ(fes.size(), 1u);
  EXPECT_EQ(fes[0].service, "default/web");  // unnamed port: kube-proxy's "ns/name"
  EXPECT_EQ(fes[0].backends, (std::vector<Backend>{be("10.65.0.2", 8081)}));
}

TEST(CalcNat, NamedTargetPortWithoutSlicePortGivesNoBackendsAndWarns) {
  auto s = snapshot(R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.1
  ports: [{name: http, port: 80, targetPort: web}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.2"]}]
ports:
- {name: http, port: 8080, protocol: UDP}   # same name, other protocol: not a match
- {name: web, port: 8081, protocol: TCP}    # the targetPort's name is not what is matched
)");
  std::vector<model::Warning> warnings;
  auto fes = compute_frontends(s, "n", &warnings);
  ASSERT_EQ(fes.size(), 1u);
  EXPECT_TRUE(fes[0].backends.empty());
  EXPECT_TRUE(HasError(warnings, "test.yaml", "Service default/web", "spec.ports[0].targetPort",
                       "named targetPort \"web\" is not resolved"));
  EXPECT_TRUE(HasError(warnings, "test.yaml", "Service default/web", "spec.ports[0].targetPort",
                       "EndpointSlice default/web-1"));
}

TEST(CalcNat, SlicesWithDifferentPortsDuringRollout) {
  auto s = snapshot(R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.1
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-old, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.2"]}, {addresses: ["10.65.0.3"], conditions: {ready: false}}]
ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-new, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.4"]}]
ports: [{name: http, port: 9090}]
)");
  auto fes = compute_frontends(s, "n");
  ASSERT_EQ(fes.size(), 1u);
  EXPECT_EQ(fes[0].backends, (std::vector<Backend>{be("10.65.0.2", 8080), be("10.65.0.4", 9090)}));
}

TEST(CalcNat, ZeroBackendsKeptHeadlessAndExternalNameSkipped) {
  auto s = snapshot(R"(
apiVersion: v1
kind: Service
metadata: {name: empty}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: headless-1, labels: {kubernetes.io/service-name: headless}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.2"]}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: example.com}
---
apiVersion: v1
kind: Service
metadata: {name: sctp}
spec: {clusterIP: 10.96.0.2, ports: [{name: s, port: 80, protocol: SCTP}, {name: t, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: empty-1, labels: {kubernetes.io/service-name: empty}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.9"], conditions: {ready: false}}]
)");
  auto fes = compute_frontends(s, "n");
  ASSERT_EQ(fes.size(), 2u);
  EXPECT_EQ(fes[0].key, fk("10.96.0.1", 80, WEIR_IPPROTO_TCP));
  EXPECT_TRUE(fes[0].backends.empty());
  EXPECT_EQ(fes[0].local, 0u);
  EXPECT_EQ(fes[1].key, fk("10.96.0.2", 80, WEIR_IPPROTO_TCP));  // the SCTP port is skipped
  EXPECT_EQ(fes[1].service, "default/sctp:t");
}

TEST(CalcNat, SlicesOnlyMatchTheirNamespace) {
  auto s = snapshot(R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: b}
spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: b, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.2"]}]
)");
  auto fes = compute_frontends(s, "n");
  ASSERT_EQ(fes.size(), 2u);
  EXPECT_TRUE(fes[0].backends.empty());
  EXPECT_EQ(fes[1].backends, (std::vector<Backend>{be("10.65.0.2", 80)}));
}

TEST(CalcNat, OutputIndependentOfInputOrder) {
  model::Snapshot s = fixtures();
  Output ref = compute(s, "node-a");
  std::mt19937 rng(12345);
  for (int i = 0; i < 20; ++i) {
    model::Snapshot t = s;
    std::shuffle(t.services.begin(), t.services.end(), rng);
    std::shuffle(t.endpoint_slices.begin(), t.endpoint_slices.end(), rng);
    std::shuffle(t.workload_endpoints.begin(), t.workload_endpoints.end(), rng);
    for (auto& es : t.endpoint_slices) std::shuffle(es.endpoints.begin(), es.endpoints.end(), rng);
    Output o = compute(t, "node-a");
    EXPECT_EQ(o.frontends, ref.frontends);
    EXPECT_EQ(o.routes, ref.routes);
    EXPECT_EQ(o.interfaces, ref.interfaces);
  }
}

TEST(CalcNat, FindFrontend) {
  Output o = compute(fixtures(), "node-a");
  const Frontend* f = o.find_frontend(fk("10.96.0.30", 9090, WEIR_IPPROTO_TCP));
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->service, "default/api:metrics");
  EXPECT_EQ(o.find_frontend(fk("10.96.0.30", 9090, WEIR_IPPROTO_UDP)), nullptr);
  EXPECT_EQ(fk("10.96.0.10", 53, WEIR_IPPROTO_UDP).str(), "10.96.0.10:53/UDP");
  EXPECT_EQ(be("10.65.0.2", 8080).str(), "10.65.0.2:8080");
}

}  // namespace
}  // namespace weir::calc
