// calc/calc.h: services + endpoint slices -> NAT frontends and backends.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>

#include "calc/calc.h"
#include "calc/diff.h"
#include "model_testing.h"
#include "weir/common.h"  // WEIR_IPPROTO_*: the IP protocol numbers

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


// ---------------------------------------------------------------- incremental

// A random service world: `n` services in two namespaces (some headless, some with two ports,
// some with a named targetPort), 0-3 slices each with random endpoints, some slices of
// services that do not exist (validation would reject that; calc must still cope).
struct World {
  std::mt19937 rng;
  std::vector<model::Service> services;
  std::vector<model::EndpointSlice> slices;

  explicit World(uint32_t seed) : rng(seed) {}
  uint32_t pick(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng); }

  model::Service service(int i) {
    model::Service s;
    s.meta.ns = i % 2 ? "ns-a" : "ns-b";
    s.meta.name = "svc-" + std::to_string(i);
    s.source.file = "f" + std::to_string(i % 5) + ".yaml";
    if (pick(10) == 0) {
      s.headless = true;
    } else {
      s.cluster_ip = Ipv4{0x0a600000u + uint32_t(i) * 4 + pick(3)};
    }
    model::ServicePort p;
    p.name = "http";
    p.port = 80;
    p.target_port.number = uint16_t(8080 + pick(2));
    if (pick(4) == 0) p.target_port = model::TargetPort{0, "web"};
    s.ports.push_back(p);
    if (pick(3) == 0) {
      model::ServicePort q;
      q.name = "dns";
      q.protocol = model::Protocol::UDP;
      q.port = 53;
      q.target_port.number = 5353;
      s.ports.push_back(q);
    }
    if (pick(5) == 0) {
      s.session_affinity = model::SessionAffinity::ClientIP;
      s.affinity_timeout_s = 600;
    }
    return s;
  }

  model::EndpointSlice slice(const std::string& ns, const std::string& svc, int j) {
    model::EndpointSlice es;
    es.meta.ns = ns;
    es.meta.name = svc + "-" + std::to_string(j) + "-" + std::to_string(pick(1000));
    es.service_name = svc;
    es.source.file = "e" + std::to_string(j % 3) + ".yaml";
    uint32_t n = pick(5);
    for (uint32_t k = 0; k < n; k++) {
      model::Endpoint ep;
      ep.addresses.push_back(Ipv4{0x0a410000u + pick(40)});
      if (pick(6) == 0) ep.conditions.ready = false;
      if (pick(8) == 0) ep.conditions.terminating = true;
      es.endpoints.push_back(ep);
    }
    if (pick(2)) es.ports.push_back(model::EndpointPort{"web", model::Protocol::TCP, uint16_t(9000 + pick(2))});
    if (pick(2)) es.ports.push_back(model::EndpointPort{"dns", model::Protocol::UDP, 5300});
    return es;
  }

  model::Snapshot snapshot() const {
    model::Snapshot s;
    s.services = services;
    s.endpoint_slices = slices;
    model::WorkloadEndpoint w;
    w.meta.ns = "ns-a";
    w.meta.name = "local";
    w.node = "node-a";
    w.interface = "weirl";
    for (uint32_t a = 0; a < 40; a += 3) w.ips.push_back(Ipv4{0x0a410000u + a});
    s.workload_endpoints.push_back(w);
    return s;
  }
};

std::string key_of(const std::string& ns, const std::string& name) { return ns + "/" + name; }

TEST(CalcNatIncremental, MatchesTheFullComputeOverRandomChanges) {
  uint32_t seed = std::random_device{}();
  if (const char* s = std::getenv("WEIR_CALC_SEED")) seed = uint32_t(std::strtoul(s, nullptr, 10));
  SCOPED_TRACE("seed " + std::to_string(seed) + " (WEIR_CALC_SEED replays it)");
  World w(seed);
  const int n = 60;
  for (int i = 0; i < n; i++) w.services.push_back(w.service(i));
  for (int i = 0; i < n; i++)
    for (uint32_t j = 0, k = w.pick(4); j < k; j++)
      w.slices.push_back(w.slice(w.services[size_t(i)].meta.ns, w.services[size_t(i)].meta.name, int(j)));

  model::Snapshot snap = w.snapshot();
  std::vector<Frontend> fes = compute_frontends(snap, "node-a");
  const std::set<Ipv4> local = local_workload_ips(snap, "node-a");
  int next = n, nonempty = 0;
  for (int round = 0; round < 300; round++) {
    std::vector<Frontend> before = fes;
    std::vector<std::string> changed;
    for (uint32_t c = 0, k = 1 + w.pick(4); c < k; c++) {
      switch (w.pick(6)) {
        case 0: {  // a new service, maybe with a slice
          w.services.push_back(w.service(next++));
          const auto& s = w.services.back();
          if (w.pick(2)) w.slices.push_back(w.slice(s.meta.ns, s.meta.name, 0));
          changed.push_back(key_of(s.meta.ns, s.meta.name));
          break;
        }
        case 1: {  // a service removed (its slices stay: they give nothing)
          if (w.services.empty()) break;
          size_t i = w.pick(uint32_t(w.services.size()));
          changed.push_back(key_of(w.services[i].meta.ns, w.services[i].meta.name));
          w.services.erase(w.services.begin() + long(i));
          break;
        }
        case 2: {  // a service's spec replaced (same name)
          if (w.services.empty()) break;
          size_t i = w.pick(uint32_t(w.services.size()));
          auto s = w.service(next++);
          s.meta = w.services[i].meta;
          w.services[i] = s;
          changed.push_back(key_of(s.meta.ns, s.meta.name));
          break;
        }
        case 3: {  // a slice replaced
          if (w.slices.empty()) break;
          size_t i = w.pick(uint32_t(w.slices.size()));
          auto es = w.slice(w.slices[i].meta.ns, w.slices[i].service_name, int(w.pick(3)));
          w.slices[i] = es;
          changed.push_back(key_of(es.meta.ns, es.service_name));
          break;
        }
        case 4: {  // a slice removed
          if (w.slices.empty()) break;
          size_t i = w.pick(uint32_t(w.slices.size()));
          changed.push_back(key_of(w.slices[i].meta.ns, w.slices[i].service_name));
          w.slices.erase(w.slices.begin() + long(i));
          break;
        }
        default: {  // a slice added to an existing service
          if (w.services.empty()) break;
          const auto& s = w.services[w.pick(uint32_t(w.services.size()))];
          w.slices.push_back(w.slice(s.meta.ns, s.meta.name, int(w.pick(3))));
          changed.push_back(key_of(s.meta.ns, s.meta.name));
          break;
        }
      }
    }
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    snap = w.snapshot();
    std::vector<model::Warning> wi, wf;
    auto d = update_service_frontends(fes, snap, changed, local, &wi);
    auto full = compute_frontends(snap, "node-a", &wf);
    ASSERT_EQ(fes, full) << "round " << round;
    // The diff is the full outputs' diff, and it only names changed services' frontends.
    auto fd = diff_frontends(before, full);
    EXPECT_EQ(d.added, fd.added) << "round " << round;
    EXPECT_EQ(d.updated, fd.updated) << "round " << round;
    EXPECT_EQ(d.removed, fd.removed) << "round " << round;
    // Warnings: those of the changed services (a subset of the full compute's).
    for (const auto& x : wi)
      EXPECT_TRUE(std::any_of(wf.begin(), wf.end(), [&](const model::Warning& y) { return x.str() == y.str(); }))
          << x.str();
    nonempty += !d.empty();
  }
  EXPECT_GT(nonempty, 100);  // the changes did change frontends, mostly
}

TEST(CalcNatIncremental, UnchangedServicesAreNotRecomputedAndNoChangeIsEmpty) {
  model::Snapshot s = fixtures();
  auto fes = compute_frontends(s, "node-a");
  auto copy = fes;
  auto local = local_workload_ips(s, "node-a");
  auto d = update_service_frontends(fes, s, {"default/api", "kube-system/dns"}, local);
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(fes, copy);
  // Removing the api service: its two frontends go, dns stays.
  s.services.erase(std::remove_if(s.services.begin(), s.services.end(),
                                  [](const model::Service& x) { return x.meta.name == "api"; }),
                   s.services.end());
  d = update_service_frontends(fes, s, {"default/api"}, local);
  EXPECT_EQ(d.removed, (std::vector<FrontendKey>{fk("10.96.0.30", 80, WEIR_IPPROTO_TCP),
                                                 fk("10.96.0.30", 9090, WEIR_IPPROTO_TCP)}));
  EXPECT_TRUE(d.added.empty() && d.updated.empty());
  EXPECT_EQ(fes, compute_frontends(s, "node-a"));
}

}  // namespace
}  // namespace weir::calc
