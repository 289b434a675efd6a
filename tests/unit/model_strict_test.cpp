// Strict input (issue 8, section 6): cluster IPs in the service CIDR and off pods' addresses,
// duplicate keys, typed scalars, duration bounds, size and nesting bounds, clipped echoes.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "cpu_time.h"
#include "model/parse.h"
#include "model/yaml_input.h"
#include "model_testing.h"

namespace weir::model {
namespace {

using weir::testing::dump;
using weir::testing::HasError;
using weir::testing::load_text;

std::string svc(const std::string& name, const std::string& cluster_ip) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         "}\nspec:\n  clusterIP: " + cluster_ip + "\n  ports: [{port: 80}]\n";
}

const char* kPod2 =
    "apiVersion: weir.dev/v1\nkind: WorkloadEndpoint\nmetadata: {name: pod2}\n"
    "spec: {node: node-a, interface: weirp2, ips: [10.65.0.3]}\n";

// ---------------------------------------------------------------- cluster IPs

TEST(StrictClusterIP, APodsAddressIsRefused) {
  // The lab's pod2 has 10.65.0.3: a Service there would take every connection to the pod.
  auto r = build_snapshot({{"pods.yaml", kPod2}, {"svc.yaml", svc("hijack", "10.65.0.3")}});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "svc.yaml", "Service default/hijack", "spec.clusterIP",
                       "10.65.0.3 is the address of WorkloadEndpoint default/pod2 (pods.yaml "
                       "(document 1)): a Service may not take a pod's IP"));
  // Also when the pod's address lies in the service CIDR.
  std::string pod_in_range =
      "apiVersion: weir.dev/v1\nkind: WorkloadEndpoint\nmetadata: {name: odd}\n"
      "spec: {node: node-a, interface: weirodd, ips: [10.96.7.7]}\n";
  auto r2 = build_snapshot({{"pods.yaml", pod_in_range}, {"svc.yaml", svc("s", "10.96.7.7")}});
  ASSERT_FALSE(r2.ok());
  EXPECT_TRUE(HasError(r2.errors, "svc.yaml", "Service default/s", "spec.clusterIP",
                       "is the address of WorkloadEndpoint default/odd"));
  EXPECT_EQ(r2.errors.size(), 1u) << dump(r2.errors);
}

TEST(StrictClusterIP, OutsideTheDefaultServiceCidr) {
  auto r = load_text("svc.yaml", svc("far", "192.168.1.10"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "svc.yaml", "Service default/far", "spec.clusterIP",
                       "192.168.1.10 is outside the service CIDR (10.96.0.0/12; DataplaneConfig "
                       "spec.serviceClusterIPRanges)"));
  EXPECT_EQ(r.errors[0].line, 5);
  // The edges of 10.96.0.0/12: first and last usable address pass, network and broadcast do not.
  EXPECT_TRUE(load_text("a.yaml", svc("a", "10.96.0.1")).ok());
  EXPECT_TRUE(load_text("a.yaml", svc("a", "10.111.255.254")).ok());
  auto net = load_text("a.yaml", svc("a", "10.96.0.0"));
  EXPECT_TRUE(HasError(net.errors, "a.yaml", "Service default/a", "spec.clusterIP",
                       "10.96.0.0 is the network address of the service CIDR 10.96.0.0/12"));
  auto bc = load_text("a.yaml", svc("a", "10.111.255.255"));
  EXPECT_TRUE(HasError(bc.errors, "a.yaml", "Service default/a", "spec.clusterIP",
                       "10.111.255.255 is the broadcast address of the service CIDR"));
  EXPECT_FALSE(load_text("a.yaml", svc("a", "10.112.0.1")).ok());
}

TEST(StrictClusterIP, SpecialAddressesAreRefusedEvenInAConfiguredRange) {
  struct Case {
    const char* ip;
    const char* what;
  } cases[] = {
      {"0.0.0.0", "the unspecified address"},
      {"0.1.2.3", "in \"this network\" (0.0.0.0/8)"},
      {"127.0.0.1", "a loopback address (127.0.0.0/8)"},
      {"169.254.169.254", "a link-local address (169.254.0.0/16)"},
      {"224.0.0.251", "a multicast address (224.0.0.0/4)"},
      {"239.255.255.250", "a multicast address"},
      {"255.255.255.255", "the broadcast address"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.ip);
    auto r = load_text("svc.yaml", svc("x", c.ip));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(HasError(r.errors, "svc.yaml", "Service default/x", "spec.clusterIP",
                         std::string(c.ip) + " is " + c.what));
  }
  // Read from spec.clusterIPs when clusterIP is absent: that field is named.
  auto r = load_text("svc.yaml",
                     "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n"
                     "  clusterIPs: [\"fd00::1\", 127.0.0.2]\n  ports: [{port: 80}]\n");
  EXPECT_TRUE(HasError(r.errors, "svc.yaml", "Service default/x", "spec.clusterIPs[1]",
                       "127.0.0.2 is a loopback address"));
}

TEST(StrictClusterIP, HeadlessAndExternalNameStayValid) {
  auto r = load_text("svc.yaml",
                     "apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None}\n"
                     "---\napiVersion: v1\nkind: Service\nmetadata: {name: e}\n"
                     "spec: {type: ExternalName, externalName: example.com}\n");
  EXPECT_TRUE(r.ok()) << dump(r.errors);
}

TEST(StrictClusterIP, ConfiguredRanges) {
  std::string cfg =
      "apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\n"
      "spec:\n  serviceClusterIPRanges: [172.20.0.0/16, \"fd00:10::/108\", 10.100.0.0/24]\n";
  auto ok = build_snapshot(
      {{"cfg.yaml", cfg}, {"svc.yaml", svc("a", "172.20.3.4") + "---\n" + svc("b", "10.100.0.9")}});
  ASSERT_TRUE(ok.ok()) << dump(ok.errors);
  EXPECT_EQ(ok.snapshot->config->service_cluster_ip_ranges.size(), 2u);
  EXPECT_EQ(ok.warnings.size(), 1u);  // the IPv6 range is ignored with a warning
  // 10.96.0.10 is no longer in range once the ranges are set.
  auto bad = build_snapshot({{"cfg.yaml", cfg}, {"svc.yaml", svc("c", "10.96.0.10")}});
  EXPECT_TRUE(HasError(bad.errors, "svc.yaml", "Service default/c", "spec.clusterIP",
                       "outside the service CIDR (172.20.0.0/16, 10.100.0.0/24;"));
  // The default, when absent.
  EXPECT_EQ(DataplaneConfig{}.service_cluster_ip_ranges,
            (std::vector<Cidr>{Cidr{Ipv4{0x0a600000}, 12}}));
}

TEST(StrictClusterIP, RangesAreValidated) {
  auto cfg = [](const std::string& ranges) {
    return load_text("cfg.yaml",
                     "apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\n"
                     "spec:\n  serviceClusterIPRanges: " +
                         ranges + "\n");
  };
  const std::string res = "DataplaneConfig default";
  const std::string f0 = "spec.serviceClusterIPRanges[0]";
  EXPECT_TRUE(HasError(cfg("[10.96.0.0]").errors, "cfg.yaml", res, f0, "is not a CIDR"));
  EXPECT_TRUE(HasError(cfg("[10.96.0.0/33]").errors, "cfg.yaml", res, f0, "is not a CIDR"));
  EXPECT_TRUE(HasError(cfg("[10.96.0.1/12]").errors, "cfg.yaml", res, f0,
                       "\"10.96.0.1/12\" has host bits set: the range is 10.96.0.0/12"));
  EXPECT_TRUE(HasError(cfg("[10.0.0.0/8]").errors, "cfg.yaml", res, f0,
                       "is too large: the prefix must be /12 or longer"));
  EXPECT_TRUE(HasError(cfg("[127.0.0.0/16]").errors, "cfg.yaml", res, f0, "overlaps 127.0.0.0/8"));
  EXPECT_TRUE(HasError(cfg("[]").errors, "cfg.yaml", res, "spec.serviceClusterIPRanges",
                       "must list at least one IPv4 CIDR"));
  EXPECT_TRUE(HasError(cfg("[\"fd00::/108\"]").errors, "cfg.yaml", res,
                       "spec.serviceClusterIPRanges", "must list at least one IPv4 CIDR"));
  EXPECT_TRUE(HasError(cfg("10.96.0.0/12").errors, "cfg.yaml", res, "spec.serviceClusterIPRanges",
                       "must be a list"));
}

// The generators of the lab, the demo, the e2e tests and the scaling benchmark put their
// services at 10.96.0.x (lab, demo, e2e) and 10.96.0.16 + i (bench): all inside the default
// range, up to the benchmark's 50,000 services and far beyond.
TEST(StrictClusterIP, GeneratedAddressesFitTheDefaultRange) {
  const Cidr def = DataplaneConfig{}.service_cluster_ip_ranges.front();
  uint32_t bench_first = 0x0a600010, bench_last = bench_first + 50000 - 1;
  EXPECT_TRUE(def.contains(Ipv4{bench_first}));
  EXPECT_TRUE(def.contains(Ipv4{bench_last}));
  EXPECT_EQ(Ipv4{bench_last}.str(), "10.96.195.95");
  EXPECT_NE(Ipv4{bench_last}, def.last());
}

// ---------------------------------------------------------------- duplicate keys

TEST(StrictDuplicateKeys, YamlAtAnyDepthNamesTheKeyAndItsLines) {
  auto r = load_text("svc.yaml",
                     "apiVersion: v1\n"
                     "kind: Service\n"
                     "metadata:\n"
                     "  name: web\n"
                     "  labels: {app: a, app: b}\n"
                     "spec:\n"
                     "  clusterIP: 10.96.0.10\n"
                     "  ports:\n"
                     "  - port: 80\n"
                     "    name: http\n"
                     "    port: 8080\n"
                     "spec: {}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "svc.yaml", "Service default/web", "metadata.labels.app",
                       "duplicate key \"app\" (first at line 5, column 12)"));
  EXPECT_TRUE(HasError(r.errors, "svc.yaml", "Service default/web", "spec.ports[0].port",
                       "duplicate key \"port\" (first at line 9, column 5)"));
  EXPECT_TRUE(HasError(r.errors, "svc.yaml", "Service default/web", "spec",
                       "duplicate key \"spec\" (first at line 6, column 1)"));
  for (const auto& e : r.errors)
    if (e.field == "spec.ports[0].port") {
      EXPECT_EQ(e.line, 11);
    }
}

TEST(StrictDuplicateKeys, JsonToo) {
  // One line of JSON: the column tells the two apart.
  auto r = load_text(
      "svc.json",
      R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"j","namespace":"a","namespace":"b"},)"
      R"("spec":{"clusterIP":"10.96.1.1","ports":[{"port":1}]}})");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "svc.json", "Service a/j", "metadata.namespace",
                       "duplicate key \"namespace\" (first at line 1, column 60)"));
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_EQ(r.errors[0].column, 76);
}

TEST(StrictDuplicateKeys, InListItemsTheItemIsTheResource) {
  auto r = load_text("list.yaml",
                     "apiVersion: v1\nkind: List\nitems:\n"
                     "- apiVersion: v1\n  kind: Service\n  metadata: {name: one}\n"
                     "  spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n"
                     "- apiVersion: v1\n  kind: Service\n  metadata: {name: two}\n"
                     "  spec: {clusterIP: 10.96.0.2, clusterIP: 10.96.0.3, ports: [{port: 80}]}\n");
  EXPECT_TRUE(HasError(r.errors, "list.yaml", "Service default/two", "spec.clusterIP",
                       "duplicate key \"clusterIP\""));
}

TEST(StrictDuplicateKeys, KeysMustBeScalars) {
  auto r =
      load_text("x.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n? [a, b]\n: c\n");
  EXPECT_TRUE(HasError(r.errors, "x.yaml", "Namespace n", "",
                       "a mapping key must be a string, not a list or mapping"));
}

// ---------------------------------------------------------------- scalar types

TEST(StrictTypes, QuotedNumbersAndBooleansAreStrings) {
  auto r = load_text("t.yaml",
                     "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
                     "spec: {clusterIP: 10.96.0.1, ports: [{port: \"80\"}]}\n"
                     "---\n"
                     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                     "metadata: {name: a-1, labels: {kubernetes.io/service-name: a}}\n"
                     "addressType: IPv4\n"
                     "endpoints: [{addresses: [10.65.0.2], conditions: {ready: \"true\"}}]\n"
                     "ports: [{port: '8080'}]\n");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "Service default/a", "spec.ports[0].port",
                       "\"80\" is a string, not an integer (write it without quotes)"));
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "EndpointSlice default/a-1",
                       "endpoints[0].conditions.ready",
                       "\"true\" is a string, not a boolean (write it without quotes)"));
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "EndpointSlice default/a-1", "ports[0].port",
                       "\"8080\" is a string, not an integer"));
}

TEST(StrictTypes, NumbersAndBooleansWhereStringsAreExpected) {
  auto r = load_text("t.yaml",
                     "apiVersion: weir.dev/v1\nkind: WorkloadEndpoint\n"
                     "metadata: {name: 123, labels: {version: 1.0, canary: true}}\n"
                     "spec: {node: node-a, interface: 1234, ips: [10.65.0.2]}\n"
                     "---\n"
                     "apiVersion: weir.dev/v1\nkind: WorkloadEndpoint\n"
                     "metadata: {name: w2, labels: {version: \"1.0\"}}\n"
                     "spec: {node: node-a, interface: \"1234\", ips: [10.65.0.3]}\n");
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "WorkloadEndpoint (document 1)", "metadata.name",
                       "123 is an integer, not a string (write it in quotes: \"123\")"));
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "WorkloadEndpoint (document 1)",
                       "metadata.labels[\"version\"]", "1.0 is a number, not a string"));
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "WorkloadEndpoint (document 1)",
                       "metadata.labels[\"canary\"]", "true is a boolean, not a string"));
  EXPECT_TRUE(HasError(r.errors, "t.yaml", "WorkloadEndpoint (document 1)", "spec.interface",
                       "1234 is an integer, not a string"));
  EXPECT_EQ(r.errors.size(), 4u) << dump(r.errors);  // the quoted document is fine
}

TEST(StrictTypes, TargetPortStaysIntOrString) {
  auto port = [](const std::string& tp) {
    return load_text("svc.yaml",
                     "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
                     "spec: {clusterIP: 10.96.0.1, ports: [{port: 80, targetPort: " +
                         tp + "}]}\n");
  };
  auto num = port("8080");
  ASSERT_TRUE(num.ok()) << dump(num.errors);
  EXPECT_EQ(num.snapshot->services[0].ports[0].target_port.number, 8080);
  auto named = port("http");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named.snapshot->services[0].ports[0].target_port.name, "http");
  auto quoted_name = port("\"http\"");
  ASSERT_TRUE(quoted_name.ok());
  EXPECT_EQ(quoted_name.snapshot->services[0].ports[0].target_port.name, "http");
  for (const char* same : {"0", "\"\""}) {
    auto s = port(same);
    ASSERT_TRUE(s.ok()) << same << dump(s.errors);
    EXPECT_EQ(s.snapshot->services[0].ports[0].target_port.number, 80) << same;
  }
  // A quoted number is a string, and as a port name it has no letter: Kubernetes refuses it.
  EXPECT_TRUE(HasError(port("\"8080\"").errors, "svc.yaml", "Service default/a",
                       "spec.ports[0].targetPort",
                       "\"8080\" is a string: write a port number without quotes"));
  EXPECT_TRUE(HasError(port("80.5").errors, "svc.yaml", "Service default/a",
                       "spec.ports[0].targetPort",
                       "80.5 is a number: expected a port number or a port name"));
  EXPECT_TRUE(HasError(port("true").errors, "svc.yaml", "Service default/a",
                       "spec.ports[0].targetPort", "true is a boolean"));
}

TEST(StrictTypes, PolicyFields) {
  auto r = load_text(
      "p.yaml",
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n"
      "spec:\n  podSelector: {matchLabels: {tier: 1}}\n"
      "  ingress: [{ports: [{port: \"80\"}, {port: http}, {port: 443}]}]\n"
      "---\n"
      "apiVersion: weir.dev/v1\nkind: Tier\nmetadata: {name: t}\nspec: {order: \"10\"}\n");
  EXPECT_TRUE(HasError(r.errors, "p.yaml", "NetworkPolicy default/np",
                       "spec.podSelector.matchLabels[\"tier\"]", "1 is an integer, not a string"));
  EXPECT_TRUE(HasError(r.errors, "p.yaml", "NetworkPolicy default/np",
                       "spec.ingress[0].ports[0].port",
                       "\"80\" is a string: write a port number without quotes"));
  EXPECT_TRUE(HasError(r.errors, "p.yaml", "Tier t", "spec.order",
                       "\"10\" is a string, not a number (write it without quotes)"));
  EXPECT_EQ(r.errors.size(), 3u) << dump(r.errors);
}

TEST(StrictTypes, ScalarTypeResolution) {
  auto type = [](const char* doc) { return scalar_type(YAML::Load(doc)["v"]); };
  EXPECT_EQ(type("v: 80"), ScalarType::Int);
  EXPECT_EQ(type("v: -3"), ScalarType::Int);
  EXPECT_EQ(type("v: 0x1f"), ScalarType::Int);
  EXPECT_EQ(type("v: 1.5e3"), ScalarType::Float);
  EXPECT_EQ(type("v: .inf"), ScalarType::Float);
  EXPECT_EQ(type("v: True"), ScalarType::Bool);
  EXPECT_EQ(type("v: yes"), ScalarType::String);  // YAML 1.2 core schema
  EXPECT_EQ(type("v: 10.96.0.1"), ScalarType::String);
  EXPECT_EQ(type("v: 02:00:0a:41:00:02"), ScalarType::String);
  EXPECT_EQ(type("v: \"80\""), ScalarType::String);
  EXPECT_EQ(type("v: '80'"), ScalarType::String);
  EXPECT_EQ(type("v: !!str 80"), ScalarType::String);
  EXPECT_EQ(type("v: |\n  80\n"), ScalarType::String);
  EXPECT_EQ(type("v: ~"), ScalarType::Null);
}

// ---------------------------------------------------------------- durations

TEST(StrictDurations, MinimumsAndMaximums) {
  auto cfg = [](const std::string& spec) {
    return load_text("cfg.yaml",
                     "apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\n"
                     "spec: " +
                         spec + "\n");
  };
  const std::string res = "DataplaneConfig default";
  EXPECT_TRUE(HasError(cfg("{conntrackScanPeriod: 1ns}").errors, "cfg.yaml", res,
                       "spec.conntrackScanPeriod", "\"1ns\" is below the minimum of 1s"));
  EXPECT_TRUE(HasError(cfg("{conntrackScanPeriod: 999ms}").errors, "cfg.yaml", res,
                       "spec.conntrackScanPeriod", "is below the minimum of 1s"));
  EXPECT_TRUE(HasError(cfg("{conntrackScanPeriod: 25h}").errors, "cfg.yaml", res,
                       "spec.conntrackScanPeriod", "\"25h\" is above the maximum of 24h0m0s"));
  EXPECT_TRUE(HasError(cfg("{minSyncPeriod: 1us}").errors, "cfg.yaml", res, "spec.minSyncPeriod",
                       "is below the minimum of 10ms"));
  EXPECT_TRUE(HasError(cfg("{conntrackTimeouts: {tcpEstablished: 500ms}}").errors, "cfg.yaml", res,
                       "spec.conntrackTimeouts.tcpEstablished", "is below the minimum of 1s"));
  // What the lab, the e2e tests, the demo and the benchmark write stays valid; so does 0 for
  // minSyncPeriod (every change at once, as kube-proxy's minSyncPeriod: 0).
  auto ok = cfg("{minSyncPeriod: 200ms, conntrackScanPeriod: 1000ms}");
  ASSERT_TRUE(ok.ok()) << dump(ok.errors);
  EXPECT_EQ(ok.snapshot->config->conntrack_scan_period, std::chrono::seconds(1));
  EXPECT_TRUE(cfg("{minSyncPeriod: 0, conntrackScanPeriod: 24h}").ok());
  EXPECT_TRUE(cfg("{minSyncPeriod: 10ms, conntrackTimeouts: {icmp: 1s}}").ok());
}

// ---------------------------------------------------------------- bounds

TEST(StrictBounds, FileSizeLimit) {
  std::string big(kMaxFileBytes + 1, '#');
  auto r = load_text("big.yaml", big);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(),
            "big.yaml: the file is 67108865 bytes, over the limit of 64 MiB per file (67108864 "
            "bytes): split it into several files");
}

TEST(StrictBounds, DeepFlowNestingIsRefusedBeforeYamlCppScansIt) {
  // 2 MB, a million levels deep: yaml-cpp alone takes seconds and hundreds of MB on it.
  std::string deep = "a: " + std::string(1000000, '[') + std::string(1000000, ']');
  auto t0 = test::thread_cpu_time();  // CPU time: see cpu_time.h
  auto r = load_text("deep.yaml", deep);
  auto took = test::thread_cpu_time() - t0;
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].str(),
            "deep.yaml: nested deeper than 100 levels of mappings and lists (line 1)");
  EXPECT_LT(took, std::chrono::milliseconds(500));
  // Brackets in quotes and comments do not count; 100 levels pass.
  std::string quoted = "a: \"" + std::string(5000, '[') + "\" # " + std::string(5000, '{') + "\n";
  EXPECT_TRUE(
      HasError(load_text("q.yaml", quoted).errors, "q.yaml", "document 1", "kind", "is required"));
  EXPECT_EQ(flow_depth_exceeded(std::string(100, '[') + std::string(100, ']'), 100), 0);
  EXPECT_EQ(flow_depth_exceeded("x: 1\ny: " + std::string(101, '{'), 100), 2);
  EXPECT_EQ(flow_depth_exceeded("x: a[b[c[d\n", 2), 0);  // brackets inside a plain scalar
  EXPECT_EQ(flow_depth_exceeded("x: 'it''s [[[' \n", 2), 0);
}

TEST(StrictBounds, DeepBlockNestingAndAliasBombs) {
  // Block nesting: 150 levels (yaml-cpp parses it; the structure walk refuses it) and 5000
  // (yaml-cpp's own recursion guard): the same error.
  for (int levels : {150, 5000}) {
    SCOPED_TRACE(levels);
    std::string doc;
    for (int i = 0; i < levels; ++i) doc += std::string(size_t(i), ' ') + "k:\n";
    auto r = load_text("block.yaml", doc);
    ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
    EXPECT_NE(r.errors[0].message.find("nested deeper than 100 levels"), std::string::npos)
        << r.errors[0].str();
  }
  // A billion laughs: nine levels of ten aliases each.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    std::string prev(1, char(c - 1));
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += (i ? ", *" : "*") + prev;
    bomb += "]\n";
  }
  auto t0 = test::thread_cpu_time();
  auto r = load_text("bomb.yaml", bomb);
  EXPECT_LT(test::thread_cpu_time() - t0, std::chrono::seconds(1));
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_NE(r.errors[0].message.find("expands to too many nodes"), std::string::npos);
}

TEST(StrictBounds, EchoedValuesAreClipped) {
  std::string name(1 << 20, 'A');
  auto r = load_text("svc.yaml", svc(name, "10.96.0.1"));
  ASSERT_FALSE(r.ok());
  std::string all = dump(r.errors);
  EXPECT_LT(all.size(), 1000u) << all.substr(0, 2000);
  EXPECT_NE(all.find("\"" + std::string(kMaxEchoBytes, 'A') + "\xe2\x80\xa6(1048576 bytes)\""),
            std::string::npos)
      << all;
  // Keys in field paths, durations, label values, unknown kinds: all clipped.
  std::string long_key(1000, 'k');  // YAML keys stop at 1024 characters
  auto w = load_text(
      "w.yaml",
      "apiVersion: weir.dev/v1\nkind: WorkloadEndpoint\n"
      "metadata: {name: w, labels: {" +
          long_key +
          ": [x]}}\n"
          "spec: {node: n, interface: i, ips: [10.65.0.2], " +
          long_key +
          ": 1}\n"
          "---\napiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: c}\n"
          "spec: {minSyncPeriod: " +
          std::string(5000, '9') +
          "x}\n"
          "---\napiVersion: " +
          std::string(5000, 'v') + "\nkind: " + std::string(5000, 'K') + "\nmetadata: {name: z}\n");
  for (const auto& e : w.errors) EXPECT_LT(e.str().size(), 600u) << e.str().substr(0, 700);
  for (const auto& e : w.warnings) EXPECT_LT(e.str().size(), 600u) << e.str().substr(0, 700);
  EXPECT_EQ(w.errors.size(), 3u) << dump(w.errors).substr(0, 3000);
  EXPECT_EQ(clip("short"), "short");
  EXPECT_EQ(clip("abcdef", 3), "abc\xe2\x80\xa6(6 bytes)");
  EXPECT_EQ(clip("a\xc3\xa9z", 2), "a\xe2\x80\xa6(4 bytes)");  // not inside the é
}

}  // namespace
}  // namespace weir::model
