// model/parse.h: parsing and validation of every kind, good and bad input.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "model/duration.h"
#include "model/parse.h"
#include "model_testing.h"

namespace weir::model {
namespace {

using namespace std::chrono_literals;
using weir::testing::HasError;
using weir::testing::load_testdata;
using weir::testing::load_text;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

// ---------------------------------------------------------------- good input

TEST(ParseService, MultiDocumentFile) {
  auto r = load_testdata({"services.yaml"});
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  const Snapshot& s = *r.snapshot;
  ASSERT_EQ(s.services.size(), 3u);

  const Service& dns = s.services[0];
  EXPECT_EQ(dns.key(), "kube-system/dns");
  EXPECT_EQ(dns.cluster_ip, ip("10.96.0.10"));
  ASSERT_EQ(dns.ports.size(), 2u);
  EXPECT_EQ(dns.ports[0].name, "dns");
  EXPECT_EQ(dns.ports[0].protocol, Protocol::UDP);
  EXPECT_EQ(dns.ports[0].port, 53);
  EXPECT_EQ(dns.ports[0].target_port.number, 53);
  EXPECT_EQ(dns.ports[1].protocol, Protocol::TCP);
  EXPECT_EQ(dns.source.file, "services.yaml");
  EXPECT_EQ(dns.source.document, 1);

  const Service& api = s.services[1];
  EXPECT_EQ(api.meta.ns, "default");  // namespace defaults to "default"
  EXPECT_EQ(api.type, ServiceType::ClusterIP);
  EXPECT_EQ(api.session_affinity, SessionAffinity::ClientIP);
  EXPECT_EQ(api.affinity_timeout_s, 600u);
  EXPECT_EQ(api.ports[0].protocol, Protocol::TCP);  // protocol defaults to TCP
  EXPECT_TRUE(api.ports[0].target_port.is_named());
  EXPECT_EQ(api.ports[0].target_port.name, "http");
  EXPECT_EQ(api.ports[1].target_port.number, 9100);
  EXPECT_EQ(api.source.document, 2);

  const Service& db = s.services[2];
  EXPECT_TRUE(db.headless);
  EXPECT_FALSE(db.cluster_ip);
  EXPECT_EQ(db.ports[0].target_port.number, 5432);  // targetPort defaults to port
  EXPECT_EQ(db.ports[0].name, "");                  // single port: name optional
  EXPECT_TRUE(s.warnings.empty()) << weir::testing::dump(s.warnings);
  EXPECT_EQ(s.files, std::vector<std::string>{"services.yaml"});
}

TEST(ParseService, ClientIPAffinityDefaultTimeout) {
  auto r = load_text("s.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  clusterIP: 10.96.0.1
  sessionAffinity: ClientIP
  ports: [{port: 80}]
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.snapshot->services[0].affinity_timeout_s, 10800u);
}

TEST(ParseList, KubectlOutputWithStatusAndManagedFields) {
  auto r = load_testdata({"kubectl_list.yaml"});
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  const Snapshot& s = *r.snapshot;
  ASSERT_EQ(s.services.size(), 1u);
  ASSERT_EQ(s.endpoint_slices.size(), 1u);
  const Service& web = s.services[0];
  EXPECT_EQ(web.key(), "default/web");
  EXPECT_EQ(web.cluster_ip, ip("10.96.0.20"));
  EXPECT_EQ(web.source.item, 0);
  EXPECT_EQ(web.meta.labels.at("app"), "web");
  const EndpointSlice& es = s.endpoint_slices[0];
  EXPECT_EQ(es.key(), "default/web-x7k2p");
  EXPECT_EQ(es.service_name, "web");
  EXPECT_EQ(es.source.item, 1);
  ASSERT_EQ(es.endpoints.size(), 2u);
  EXPECT_EQ(es.endpoints[0].addresses, std::vector<Ipv4>{ip("10.65.0.2")});
  EXPECT_EQ(es.endpoints[0].node_name, "node-a");
  EXPECT_EQ(es.endpoints[0].conditions.ready, true);
  EXPECT_EQ(es.endpoints[0].conditions.terminating, false);
  ASSERT_TRUE(es.endpoints[0].target_ref);
  EXPECT_EQ(es.endpoints[0].target_ref->name, "web-5d4f8b7c9-abcde");
  ASSERT_EQ(es.ports.size(), 1u);
  EXPECT_EQ(es.ports[0].name, "http");
  EXPECT_EQ(es.ports[0].port, 8080);
}

TEST(ParseEndpointSlice, ConditionsDefaults) {
  auto r = load_testdata({"services.yaml", "endpointslices.yaml"});
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  const auto& slices = r.snapshot->endpoint_slices;
  ASSERT_EQ(slices.size(), 3u);
  const Endpoint& no_conditions = slices[0].endpoints[1];
  EXPECT_FALSE(no_conditions.conditions.ready.has_value());
  EXPECT_TRUE(no_conditions.conditions.usable());  // ready absent = true
  EXPECT_TRUE(slices[1].endpoints[0].conditions.usable());
  EXPECT_FALSE(slices[1].endpoints[1].conditions.usable());  // ready: false
  EXPECT_FALSE(slices[1].endpoints[2].conditions.usable());  // terminating
  EndpointConditions only_terminating;
  only_terminating.terminating = true;
  EXPECT_FALSE(only_terminating.usable());
}

TEST(ParseEndpointSlice, IPv6AndFqdnSlicesIgnoredWithWarning) {
  auto r = load_text("es.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v6
  labels: {kubernetes.io/service-name: web}
addressType: IPv6
endpoints:
- addresses: ["fd00::1"]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-fqdn
  labels: {kubernetes.io/service-name: web}
addressType: FQDN
endpoints:
- addresses: ["example.com"]
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_TRUE(r.snapshot->endpoint_slices.empty());
  EXPECT_TRUE(HasError(r.warnings, "es.yaml", "EndpointSlice default/web-v6", "addressType",
                       "IPv6 slices are ignored"));
  EXPECT_TRUE(HasError(r.warnings, "es.yaml", "EndpointSlice default/web-fqdn", "addressType",
                       "FQDN slices are ignored"));
  EXPECT_EQ(r.snapshot->warnings.size(), 2u);
}

TEST(ParseWorkloadEndpoint, Fields) {
  auto r = load_testdata({"workloads.yaml"});
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  const auto& w = r.snapshot->workload_endpoints;
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].key(), "default/api-0");
  EXPECT_EQ(w[0].node, "node-a");
  EXPECT_EQ(w[0].interface, "weir0a1b2c3d4e");
  EXPECT_EQ(w[0].ips, std::vector<Ipv4>{ip("10.65.0.2")});  // "/32" accepted
  ASSERT_TRUE(w[0].mac);
  EXPECT_EQ(w[0].mac->str(), "02:00:0a:41:00:02");
  EXPECT_EQ(w[0].meta.labels.at("app"), "api");
  ASSERT_EQ(w[0].ports.size(), 1u);
  EXPECT_EQ(w[0].ports[0].name, "http");
  EXPECT_EQ(w[0].ports[0].protocol, Protocol::TCP);
  EXPECT_EQ(w[0].ports[0].port, 8080);
  EXPECT_EQ(w[1].key(), "kube-system/dns-0");
  EXPECT_FALSE(w[1].mac);
}

TEST(ParseDataplaneConfig, ValuesAndDefaults) {
  auto r = load_testdata({"dataplane_config.yaml"});
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  ASSERT_TRUE(r.snapshot->config);
  const DataplaneConfig& c = *r.snapshot->config;
  EXPECT_EQ(c.meta.name, "default");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.min_sync_period, 500ms);
  EXPECT_EQ(c.conntrack_scan_period, 90s);
  EXPECT_EQ(c.conntrack_timeouts.tcp_established, 2h);
  EXPECT_EQ(c.conntrack_timeouts.udp, 30s);
  EXPECT_EQ(c.conntrack_timeouts.tcp_syn_sent, 20s);  // defaults for the rest
  EXPECT_EQ(c.conntrack_timeouts.tcp_fin, 30s);
  EXPECT_EQ(c.conntrack_timeouts.tcp_reset, 40s);
  EXPECT_EQ(c.conntrack_timeouts.icmp, 5s);
  EXPECT_EQ(c.conntrack_timeouts.other, 10min);
  EXPECT_EQ(c.map_sizes.conntrack, 1048576u);
  EXPECT_EQ(c.map_sizes.routes, 4096u);
  EXPECT_EQ(c.map_sizes.nat_frontend, 65536u);
  EXPECT_EQ(c.map_sizes.nat_backend, 262144u);
  EXPECT_EQ(c.map_sizes.ifstate, 1024u);
  EXPECT_EQ(c.map_sizes.counters, 20480u);
  EXPECT_EQ(c.map_sizes.ipsets, 200000u);
  EXPECT_EQ(c.map_sizes.rule_counters, 65536u);
}

TEST(ParseDataplaneConfig, EffectiveConfigDefaultsWhenAbsent) {
  Snapshot s;
  DataplaneConfig c = s.effective_config();
  EXPECT_FALSE(c.log_level);
  EXPECT_EQ(c.min_sync_period, 1s);
  EXPECT_EQ(c.conntrack_scan_period, 10s);
  EXPECT_EQ(c.conntrack_warn_threshold_percent, 90u);
  EXPECT_EQ(c.conntrack_timeouts, ConntrackTimeouts{});
  EXPECT_EQ(c.map_sizes, MapSizes{});
}

TEST(ParseDataplaneConfig, UnknownSpecFieldWarns) {
  auto r = load_text("c.yaml", R"(
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata: {name: default}
spec:
  conntrackTimeouts: {tcpEstablised: 1h}
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_TRUE(HasError(r.warnings, "c.yaml", "DataplaneConfig default",
                       "spec.conntrackTimeouts.tcpEstablised", "unknown field"));
}

TEST(Parse, JsonFile) {
  auto r = load_text("svc.json", R"({
  "apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "web", "namespace": "prod", "uid": "x"},
  "spec": {"clusterIP": "10.96.0.7", "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
  "status": {"loadBalancer": {}}
})");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  ASSERT_EQ(r.snapshot->services.size(), 1u);
  EXPECT_EQ(r.snapshot->services[0].key(), "prod/web");
  EXPECT_EQ(r.snapshot->services[0].ports[0].target_port.number, 8080);
}

TEST(Parse, EmptyDocumentsAndCommentsAreSkipped) {
  auto r = load_text("empty.yaml", "# nothing here\n---\n---\n# still nothing\n");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_TRUE(r.snapshot->services.empty());
  auto r2 = load_text("zero.yaml", "");
  EXPECT_TRUE(r2.ok());
}

TEST(ParseService, OtherTypesUseOnlyClusterIP) {
  auto r = load_text("np.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  clusterIP: 10.96.0.9
  ports: [{port: 80, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: example.com
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.snapshot->services[0].type, ServiceType::NodePort);
  EXPECT_EQ(r.snapshot->services[0].cluster_ip, ip("10.96.0.9"));
  EXPECT_TRUE(HasError(r.warnings, "np.yaml", "Service default/np", "spec.type",
                       "only the ClusterIP part"));
  EXPECT_EQ(r.snapshot->services[1].type, ServiceType::ExternalName);
  EXPECT_FALSE(r.snapshot->services[1].cluster_ip);
}

TEST(ParseService, ClusterIPsAndIPv6Warnings) {
  auto r = load_text("ds.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: dual}
spec:
  clusterIPs: ["10.96.0.50", "fd00:10:96::50"]
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: v6only}
spec:
  clusterIP: "fd00:10:96::51"
  ports: [{port: 80}]
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.snapshot->services[0].cluster_ip, ip("10.96.0.50"));
  EXPECT_TRUE(HasError(r.warnings, "ds.yaml", "Service default/dual", "spec.clusterIPs[1]",
                       "IPv6 address \"fd00:10:96::50\" ignored"));
  EXPECT_FALSE(r.snapshot->services[1].cluster_ip);
  EXPECT_TRUE(
      HasError(r.warnings, "ds.yaml", "Service default/v6only", "spec.clusterIP", "IPv6 address"));
}

TEST(ParseService, SctpParsedWithWarning) {
  auto r = load_text("sctp.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  clusterIP: 10.96.0.1
  ports: [{port: 3868, protocol: SCTP}]
)");
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.snapshot->services[0].ports[0].protocol, Protocol::SCTP);
  EXPECT_TRUE(HasError(r.warnings, "sctp.yaml", "Service default/s", "spec.ports[0].protocol",
                       "SCTP is parsed but not load-balanced"));
}

// ---------------------------------------------------------------- bad input

TEST(ParseErrors, PortOutOfRangeMessageFormat) {
  auto r = load_text("services.yaml", R"(apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: 10.96.0.1
  ports:
  - {name: a, port: 80}
  - {name: b, port: 70000}
)");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.errors[0].str(),
            "services.yaml: Service default/web: spec.ports[1].port: 70000 is out of range "
            "1..65535 (line 9)");
  EXPECT_EQ(weir::model::to_error(r.errors).msg, r.errors[0].str());
}

TEST(ParseErrors, YamlSyntaxErrorHasLineAndColumn) {
  auto r =
      load_text("broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x\nspec: {}\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "broken.yaml");
  EXPECT_NE(r.errors[0].message.find("YAML syntax error"), std::string::npos);
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_GT(r.errors[0].column, 0);
  EXPECT_NE(r.errors[0].str().find("(line "), std::string::npos);
  EXPECT_NE(r.errors[0].str().find(", column "), std::string::npos);
}

TEST(ParseErrors, UnknownKindAndApiVersionMismatch) {
  auto r = load_text("k.yaml", R"(
apiVersion: v1
kind: Pod
metadata: {name: p}
---
apiVersion: v1
kind: EndpointSlice
metadata: {name: e}
---
apiVersion: weir.dev/v2
kind: WorkloadEndpoint
metadata: {name: w}
---
kind: Service
metadata: {name: noapi}
)");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "k.yaml", "document 1", "kind", "unknown kind \"Pod\""));
  EXPECT_TRUE(HasError(r.errors, "k.yaml", "EndpointSlice (document 2)", "apiVersion",
                       "expected discovery.k8s.io/v1"));
  EXPECT_TRUE(HasError(r.errors, "k.yaml", "WorkloadEndpoint (document 3)", "apiVersion",
                       "expected weir.dev/v1"));
  EXPECT_TRUE(HasError(r.errors, "k.yaml", "document 4", "apiVersion", "is required"));
}

TEST(ParseErrors, DocumentNotAMapping) {
  auto r = load_text("s.yaml", "- a\n- b\n");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "s.yaml", "document 1", "", "must be a mapping"));
}

TEST(ParseErrors, ListItemsNamedByIndex) {
  auto r = load_text("l.yaml", R"(
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: ok}
  spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
- apiVersion: v1
  kind: Service
  metadata: {namespace: x}
  spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
- apiVersion: v1
  kind: Secret
  metadata: {name: s}
)");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "l.yaml", "Service (document 1 items[1])", "metadata.name",
                       "is required"));
  EXPECT_TRUE(HasError(r.errors, "l.yaml", "document 1 items[2]", "kind", "unknown kind"));
}

TEST(ParseErrors, ServiceFields) {
  auto r = load_text("svc.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: noip}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: badip}
spec:
  clusterIP: 10.96.0.300
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: proto}
spec:
  clusterIP: 10.96.0.3
  ports: [{port: 80, protocol: tcp}]
---
apiVersion: v1
kind: Service
metadata: {name: unnamed}
spec:
  clusterIP: 10.96.0.4
  ports: [{port: 80}, {port: 81}]
---
apiVersion: v1
kind: Service
metadata: {name: dupnames}
spec:
  clusterIP: 10.96.0.5
  ports: [{name: http, port: 80}, {name: http, port: 81}]
---
apiVersion: v1
kind: Service
metadata: {name: noport}
spec:
  clusterIP: 10.96.0.6
  ports: [{name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: noports}
spec:
  clusterIP: 10.96.0.7
---
apiVersion: v1
kind: Service
metadata: {name: badtype}
spec:
  type: Magic
  clusterIP: 10.96.0.8
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: notint}
spec:
  clusterIP: 10.96.0.9
  ports: [{port: eighty}]
---
apiVersion: v1
kind: Service
metadata: {name: zero}
spec:
  clusterIP: 10.96.0.10
  ports: [{port: 0}]
---
apiVersion: v1
kind: Service
metadata: {name: badaffinity}
spec:
  clusterIP: 10.96.0.11
  sessionAffinity: Sticky
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: dupport}
spec:
  clusterIP: 10.96.0.12
  ports: [{name: a, port: 80}, {name: b, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: BadName}
spec:
  clusterIP: 10.96.0.13
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: portslist}
spec:
  clusterIP: 10.96.0.14
  ports: {port: 80}
)");
  ASSERT_FALSE(r.ok());
  const auto& e = r.errors;
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/noip", "spec.clusterIP", "is required"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/badip", "spec.clusterIP",
                       "\"10.96.0.300\" is not an IPv4 address"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/proto", "spec.ports[0].protocol",
                       "invalid protocol \"tcp\": must be TCP, UDP or SCTP"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/unnamed", "spec.ports[0].name",
                       "is required when a service has more than one port"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/unnamed", "spec.ports[1].name",
                       "is required when a service has more than one port"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/dupnames", "spec.ports[1].name",
                       "duplicate port name \"http\" (also spec.ports[0])"));
  EXPECT_TRUE(
      HasError(e, "svc.yaml", "Service default/noport", "spec.ports[0].port", "is required"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/noports", "spec.ports",
                       "at least one port is required"));
  EXPECT_TRUE(
      HasError(e, "svc.yaml", "Service default/badtype", "spec.type", "invalid type \"Magic\""));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/notint", "spec.ports[0].port",
                       "\"eighty\" is not an integer"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/zero", "spec.ports[0].port",
                       "0 is out of range 1..65535"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/badaffinity", "spec.sessionAffinity",
                       "must be None or ClientIP"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/dupport", "spec.ports[1].port",
                       "duplicate port 80/TCP"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service (document 13)", "metadata.name",
                       "\"BadName\" is not a valid name"));
  EXPECT_TRUE(HasError(e, "svc.yaml", "Service default/portslist", "spec.ports", "must be a list"));
  EXPECT_EQ(e.size(), 15u) << weir::testing::dump(e);
}

TEST(ParseErrors, NamedTargetPortMustBeIanaSvcName) {
  for (const char* bad :
       {"HTTP", "my_port", "a--b", "-http", "http-", "1234567890abcdef", "12-34"}) {
    auto r = load_text("t.yaml", fmt::format(R"(
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  clusterIP: 10.96.0.1
  ports: [{{port: 80, targetPort: "{}"}}]
)",
                                             bad));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(HasError(r.errors, "t.yaml", "Service default/web", "spec.ports[0].targetPort",
                         "is not a valid port name (IANA_SVC_NAME"))
        << bad;
  }
  for (const char* good : {"http", "h2c", "grpc-web", "a1", "abcdefghijklmno"}) {
    EXPECT_TRUE(is_iana_svc_name(good)) << good;
  }
  auto r = load_text("t.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.1
  ports: [{port: 80, targetPort: 70000}]
)");
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "Service default/web", "spec.ports[0].targetPort",
                       "70000 is out of range 1..65535"));
}

TEST(ParseErrors, EndpointSliceFields) {
  auto r = load_text("es.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: nolabel}
addressType: IPv4
endpoints: []
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: badaddr
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: ["10.65.0.2", "10.65.0"]
- conditions: {ready: true}
- addresses: ["10.65.0.4"]
  conditions: {ready: maybe}
ports:
- {name: http, port: 65536, protocol: TCP}
- {name: dns, port: 53, protocol: ICMP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: badtype
  labels: {kubernetes.io/service-name: web}
addressType: IPv5
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: notype
  labels: {kubernetes.io/service-name: web}
)");
  ASSERT_FALSE(r.ok());
  const auto& e = r.errors;
  const std::string label = "metadata.labels[\"kubernetes.io/service-name\"]";
  EXPECT_TRUE(HasError(e, "es.yaml", "EndpointSlice default/nolabel", label, "is required"));
  EXPECT_TRUE(HasError(e, "es.yaml", "EndpointSlice default/badaddr", "endpoints[0].addresses[1]",
                       "\"10.65.0\" is not an IPv4 address"));
  EXPECT_TRUE(HasError(e, "es.yaml", "EndpointSlice default/badaddr", "endpoints[1].addresses",
                       "is required"));
  EXPECT_TRUE(HasError(e, "es.yaml", "EndpointSlice default/badaddr",
                       "endpoints[2].conditions.ready", "\"maybe\" is not a boolean"));
  EXPECT_TRUE(HasError(e, "es.yaml", "EndpointSlice default/badaddr", "ports[0].port",
                       "65536 is out of range 1..65535"));
  EXPECT_TRUE(HasError(e, "es.yaml", "EndpointSlice default/badaddr", "ports[1].protocol",
                       "invalid protocol \"ICMP\""));
  EXPECT_TRUE(HasError(e, "es.yaml", "EndpointSlice default/badtype", "addressType",
                       "invalid addressType \"IPv5\""));
  EXPECT_TRUE(HasError(e, "es.yaml", "EndpointSlice default/notype", "addressType", "is required"));
}

TEST(ParseErrors, EndpointSliceWithoutService) {
  auto r = load_text("es.yaml", R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: orphan-abc
  namespace: shop
  labels: {kubernetes.io/service-name: cart}
addressType: IPv4
endpoints: [{addresses: ["10.65.0.9"]}]
)");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << weir::testing::dump(r.errors);
  EXPECT_TRUE(HasError(r.errors, "es.yaml", "EndpointSlice shop/orphan-abc",
                       "metadata.labels[\"kubernetes.io/service-name\"]",
                       "Service shop/cart does not exist"));
}

TEST(ParseErrors, WorkloadEndpointFields) {
  auto r = load_text("wep.yaml", R"(
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: longif}
spec: {node: n1, interface: weir0123456789abc, ips: ["10.65.0.1"]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: slashif}
spec: {node: n1, interface: "a/b", ips: ["10.65.0.2"]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: spaceif}
spec: {node: n1, interface: "a b", ips: ["10.65.0.3"]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: badmac}
spec: {node: n1, interface: eth1, ips: ["10.65.0.4"], mac: "aa:bb:cc:dd:ee"}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: mcastmac}
spec: {node: n1, interface: eth2, ips: ["10.65.0.5"], mac: "01:00:5e:00:00:01"}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: badip}
spec: {node: n1, interface: eth3, ips: ["fe80::1", "10.65.0.0/24", "10.65.0.7/33"]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: missing}
spec: {}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: noips}
spec: {node: n1, interface: eth4, ips: []}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: ports}
spec:
  node: n1
  interface: eth5
  ips: ["10.65.0.9"]
  ports: [{name: web, port: 8080}, {name: web, port: 8081}, {port: 1}]
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: nospec}
)");
  ASSERT_FALSE(r.ok());
  const auto& e = r.errors;
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/longif", "spec.interface",
                       "\"weir0123456789abc\" is not a valid interface name"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/slashif", "spec.interface",
                       "not a valid interface name"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/spaceif", "spec.interface",
                       "not a valid interface name"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/badmac", "spec.mac",
                       "\"aa:bb:cc:dd:ee\" is not a MAC address"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/mcastmac", "spec.mac",
                       "not a unicast MAC address"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/badip", "spec.ips[0]",
                       "\"fe80::1\" is not an IPv4 address"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/badip", "spec.ips[1]",
                       "only /32 prefixes are supported"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/badip", "spec.ips[2]",
                       "only /32 prefixes are supported"));
  EXPECT_TRUE(
      HasError(e, "wep.yaml", "WorkloadEndpoint default/missing", "spec.node", "is required"));
  EXPECT_TRUE(
      HasError(e, "wep.yaml", "WorkloadEndpoint default/missing", "spec.interface", "is required"));
  EXPECT_TRUE(
      HasError(e, "wep.yaml", "WorkloadEndpoint default/missing", "spec.ips", "is required"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/noips", "spec.ips",
                       "at least one address"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/ports", "spec.ports[1].name",
                       "duplicate port name \"web\""));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/ports", "spec.ports[2].name",
                       "is required"));
  EXPECT_TRUE(HasError(e, "wep.yaml", "WorkloadEndpoint default/nospec", "spec", "is required"));
  EXPECT_TRUE(is_valid_ifname("weir0123456789a"));  // 15 chars is the limit
  EXPECT_FALSE(is_valid_ifname("weir0123456789ab"));
  EXPECT_FALSE(is_valid_ifname(""));
}

TEST(ParseErrors, DataplaneConfigFields) {
  auto r = load_text("cfg.yaml", R"(
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata: {name: default}
spec:
  logLevel: verbose
  minSyncPeriod: 5
  conntrackScanPeriod: 0s
  conntrackTimeouts: {udp: 1d, tcpFin: -5s}
  mapSizes: {conntrack: 0, routes: 99999999999}
)");
  ASSERT_FALSE(r.ok());
  const auto& e = r.errors;
  const std::string res = "DataplaneConfig default";
  EXPECT_TRUE(HasError(e, "cfg.yaml", res, "spec.logLevel", "invalid log level \"verbose\""));
  EXPECT_TRUE(
      HasError(e, "cfg.yaml", res, "spec.minSyncPeriod", "invalid duration \"5\": missing unit"));
  EXPECT_TRUE(HasError(e, "cfg.yaml", res, "spec.conntrackScanPeriod", "must be positive"));
  EXPECT_TRUE(HasError(e, "cfg.yaml", res, "spec.conntrackTimeouts.udp",
                       "invalid duration \"1d\": unknown unit \"d\""));
  EXPECT_TRUE(HasError(e, "cfg.yaml", res, "spec.conntrackTimeouts.tcpFin", "must be positive"));
  EXPECT_TRUE(HasError(e, "cfg.yaml", res, "spec.mapSizes.conntrack", "0 is out of range"));
  EXPECT_TRUE(HasError(e, "cfg.yaml", res, "spec.mapSizes.routes", "is out of range"));
}

TEST(ParseDataplaneConfig, ConntrackWarnThresholdPercent) {
  auto ok = load_text("c.yaml", R"(
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata: {name: default}
spec:
  conntrackWarnThresholdPercent: 75
)");
  ASSERT_TRUE(ok.ok()) << weir::testing::dump(ok.errors);
  EXPECT_TRUE(ok.warnings.empty()) << weir::testing::dump(ok.warnings);
  EXPECT_EQ(ok.snapshot->config->conntrack_warn_threshold_percent, 75u);
  for (const char* bad : {"0", "101", "-5", "ninety"}) {
    auto r = load_text("c.yaml", fmt::format(R"(
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata: {{name: default}}
spec:
  conntrackWarnThresholdPercent: {}
)", bad));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(HasError(r.errors, "c.yaml", "DataplaneConfig default",
                         "spec.conntrackWarnThresholdPercent",
                         std::string(bad) == "ninety" ? "is not an integer" : "out of range 1..100"))
        << bad << ": " << weir::testing::dump(r.errors);
  }
}

TEST(ParseErrors, AtMostOneDataplaneConfig) {
  auto r = load_text("cfg.yaml", R"(
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata: {name: default}
---
apiVersion: weir.dev/v1
kind: DataplaneConfig
metadata: {name: other}
)");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "cfg.yaml", "DataplaneConfig other", "metadata.name",
                       "only one DataplaneConfig is allowed"));
}

// ---------------------------------------------------------------- whole-snapshot rules

TEST(ValidateSnapshot, DuplicateNamesAcrossFiles) {
  std::string svc = R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
)";
  std::string svc2 = R"(
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
)";
  auto r = build_snapshot({{"a.yaml", svc}, {"b.yaml", svc2}});
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << weir::testing::dump(r.errors);
  EXPECT_TRUE(HasError(r.errors, "b.yaml", "Service default/web", "metadata.name",
                       "duplicate Service default/web: also defined in a.yaml (document 1)"));
  // The same name in another namespace or of another kind is fine.
  auto ok = build_snapshot({{"a.yaml", svc}, {"b.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: other}
spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
)"}});
  EXPECT_TRUE(ok.ok()) << weir::testing::dump(ok.errors);
}

TEST(ValidateSnapshot, WorkloadEndpointsClaimingTheSameIp) {
  auto r = load_text("w.yaml", R"(
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: a}
spec: {node: n1, interface: if-a, ips: ["10.65.0.2"]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: b, namespace: other}
spec: {node: n2, interface: if-b, ips: ["10.65.0.3", "10.65.0.2/32"]}
)");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << weir::testing::dump(r.errors);
  EXPECT_TRUE(HasError(r.errors, "w.yaml", "WorkloadEndpoint other/b", "spec.ips[1]",
                       "10.65.0.2 is already used by WorkloadEndpoint default/a"));
}

TEST(ValidateSnapshot, SameInterfaceOnOneNode) {
  auto r = load_text("w.yaml", R"(
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: a}
spec: {node: n1, interface: if-a, ips: ["10.65.0.2"]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: b}
spec: {node: n1, interface: if-a, ips: ["10.65.0.3"]}
---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: c}
spec: {node: n2, interface: if-a, ips: ["10.65.0.4"]}
)");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << weir::testing::dump(r.errors);
  EXPECT_TRUE(
      HasError(r.errors, "w.yaml", "WorkloadEndpoint default/b", "spec.interface",
               "interface \"if-a\" on node n1 is already used by WorkloadEndpoint default/a"));
}

TEST(ValidateSnapshot, TwoServicesOnOneFrontend) {
  auto r = load_text("s.yaml", R"(
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {clusterIP: 10.96.0.1, ports: [{name: x, port: 80, protocol: UDP}, {name: y, port: 80}]}
)");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << weir::testing::dump(r.errors);
  EXPECT_TRUE(HasError(r.errors, "s.yaml", "Service default/b", "spec.ports[1].port",
                       "10.96.0.1:80/TCP is already used by Service default/a"));
}

TEST(ValidateSnapshot, LoadIsRejectedAsAWholeWithAllErrors) {
  auto r = build_snapshot({{"good.yaml", testing::testdata("services.yaml")},
                           {"bad1.yaml", "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"},
                           {"bad2.yaml", "a: [\n"}});
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.snapshot.has_value());
  EXPECT_EQ(r.errors.size(), 2u) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.errors[0].file, "bad1.yaml");
  EXPECT_EQ(r.errors[1].file, "bad2.yaml");
  auto res = std::move(r).to_result();
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().msg.find("2 errors:"), std::string::npos);
  EXPECT_NE(res.error().msg.find("bad1.yaml"), std::string::npos);
  EXPECT_NE(res.error().msg.find("bad2.yaml"), std::string::npos);
}

TEST(ValidateSnapshot, FixturesTogetherAreValid) {
  auto r = load_testdata({"dataplane_config.yaml", "endpointslices.yaml", "kubectl_list.yaml",
                          "services.yaml", "workloads.yaml"});
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.snapshot->services.size(), 4u);
  EXPECT_EQ(r.snapshot->endpoint_slices.size(), 4u);
  EXPECT_EQ(r.snapshot->workload_endpoints.size(), 3u);
  EXPECT_TRUE(r.snapshot->config.has_value());
  ASSERT_NE(r.snapshot->find_service("kube-system", "dns"), nullptr);
  EXPECT_EQ(r.snapshot->find_service("default", "dns"), nullptr);
}

}  // namespace
}  // namespace weir::model
