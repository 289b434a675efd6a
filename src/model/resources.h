// The resources weir reads from its datastore, after parsing and validation. Field names follow
// the Kubernetes YAML; docs/resources.md describes every field, default and validation rule.
// All addresses are host-order model::Ipv4 (see net.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/net.h"
#include "model/policy.h"
#include "model/validation.h"

namespace weir::model {

// Where a resource was defined: used in error messages and duplicate detection.
struct Source {
  std::string file;  // file name as given to the parser
  int document = 0;  // 1-based YAML document index within the file
  int item = -1;     // index within a `kind: List`'s items, or -1
  int line = 0;      // 1-based line of the resource's first line, 0 if unknown

  // "services.yaml (document 2)" or "all.yaml (document 1 items[3])".
  std::string str() const;
};

// metadata.* that weir uses. Everything else in metadata is ignored.
struct ObjectMeta {
  std::string name;
  std::string ns;  // metadata.namespace; "default" when absent. Empty for cluster-scoped kinds.
  std::map<std::string, std::string> labels;
};

// ---------------------------------------------------------------- Service (v1)

enum class ServiceType { ClusterIP, NodePort, LoadBalancer, ExternalName };
enum class SessionAffinity { None, ClientIP };

// "ClusterIP", "NodePort", "LoadBalancer", "ExternalName".
std::string_view to_string(ServiceType t);

// spec.ports[].targetPort: an int or an IANA_SVC_NAME (named port).
struct TargetPort {
  uint16_t number = 0;  // non-zero when numeric
  std::string name;     // non-empty when named

  bool is_named() const { return !name.empty(); }
  // "8080" or "http".
  std::string str() const;
  auto operator<=>(const TargetPort&) const = default;
};

struct ServicePort {
  std::string name;                   // may be empty only when the service has a single port
  Protocol protocol = Protocol::TCP;  // default TCP
  uint16_t port = 0;                  // 1..65535
  TargetPort target_port;             // default: numeric, = port
  auto operator<=>(const ServicePort&) const = default;
};

struct Service {
  ObjectMeta meta;
  Source source;
  ServiceType type = ServiceType::ClusterIP;  // only the ClusterIP part of other types is used
  bool headless = false;                      // spec.clusterIP: None -> no NAT entries
  std::optional<Ipv4> cluster_ip;             // IPv4 VIP; nullopt when headless, ExternalName,
                                              // or an IPv6-only service (warned)
  std::string cluster_ip_field = "spec.clusterIP";  // where cluster_ip was read (for errors):
                                                    // spec.clusterIP or spec.clusterIPs[i]
  int cluster_ip_line = 0;                          // its line, 0 if unknown
  std::vector<ServicePort> ports;
  SessionAffinity session_affinity = SessionAffinity::None;
  uint32_t affinity_timeout_s = 0;  // spec.sessionAffinityConfig.clientIP.timeoutSeconds when
                                    // ClientIP (default 10800), else 0

  // "ns/name".
  std::string key() const { return meta.ns + "/" + meta.name; }
};

// ---------------------------------------------------------------- EndpointSlice
// (discovery.k8s.io/v1)

inline constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";

struct EndpointConditions {
  std::optional<bool> ready;  // absent = true (Kubernetes API semantics)
  std::optional<bool> serving;
  std::optional<bool> terminating;  // absent = false

  // True when the endpoint may receive new connections: ready (absent = true) and not
  // terminating.
  bool usable() const { return ready.value_or(true) && !terminating.value_or(false); }
};

struct ObjectReference {
  std::string kind, ns, name;
};

struct Endpoint {
  std::vector<Ipv4> addresses;  // at least one
  EndpointConditions conditions;
  std::string node_name;  // empty when absent
  std::optional<ObjectReference> target_ref;
};

struct EndpointPort {
  std::string name;                   // "" when absent; matches the service port name
  Protocol protocol = Protocol::TCP;  // default TCP
  std::optional<uint16_t> port;       // absent in Kubernetes means "all ports" (headless only)
};

struct EndpointSlice {
  ObjectMeta meta;
  Source source;
  std::string service_name;  // metadata.labels["kubernetes.io/service-name"], required
  std::vector<Endpoint> endpoints;
  std::vector<EndpointPort> ports;
  // Only IPv4 slices are kept in a Snapshot; IPv6 and FQDN slices are dropped with a warning.

  // "ns/name".
  std::string key() const { return meta.ns + "/" + meta.name; }
};

// ---------------------------------------------------------------- WorkloadEndpoint (weir.dev/v1)

struct WorkloadPort {
  std::string name;
  Protocol protocol = Protocol::TCP;
  uint16_t port = 0;
};

struct WorkloadEndpoint {
  ObjectMeta meta;
  Source source;
  std::string node;        // spec.node, required
  std::string interface;   // spec.interface: host-side interface name, 1..15 chars
  std::vector<Ipv4> ips;   // spec.ips, at least one; "a.b.c.d" or "a.b.c.d/32"
  std::optional<Mac> mac;  // spec.mac: the workload's own MAC
  std::vector<WorkloadPort> ports;

  // "ns/name".
  std::string key() const { return meta.ns + "/" + meta.name; }
};

// ---------------------------------------------------------------- DataplaneConfig (weir.dev/v1)

struct ConntrackTimeouts {
  std::chrono::nanoseconds tcp_syn_sent = std::chrono::seconds(20);
  std::chrono::nanoseconds tcp_established = std::chrono::hours(1);
  std::chrono::nanoseconds tcp_fin = std::chrono::seconds(30);
  std::chrono::nanoseconds tcp_reset = std::chrono::seconds(40);
  std::chrono::nanoseconds udp = std::chrono::seconds(60);
  std::chrono::nanoseconds icmp = std::chrono::seconds(5);
  std::chrono::nanoseconds other = std::chrono::minutes(10);
  bool operator==(const ConntrackTimeouts&) const = default;
};

// Map sizes (max_entries). Defaults equal WEIR_MAP_*_SIZE in bpf/include/weir/maps.h.
struct MapSizes {
  uint32_t nat_frontend = 65536;
  uint32_t nat_backend = 262144;
  uint32_t conntrack = 524288;
  uint32_t routes = 262144;
  uint32_t ifstate = 1024;
  uint32_t counters = 20480;
  uint32_t ipsets = 1048576;        // IP set members (all sets), each of the two IP set maps
  uint32_t rule_counters = 65536;   // policy rules with a packet count
  bool operator==(const MapSizes&) const = default;
};

// Largest value accepted for any spec.mapSizes entry.
inline constexpr uint32_t kMaxMapSize = 16u * 1024 * 1024;

// Bounds of DataplaneConfig's durations (docs/resources.md). minSyncPeriod may also be 0
// (apply every change at once, as kube-proxy's minSyncPeriod: 0).
inline constexpr std::chrono::nanoseconds kMinSyncPeriodMin = std::chrono::milliseconds(10);
inline constexpr std::chrono::nanoseconds kConntrackScanPeriodMin = std::chrono::seconds(1);
inline constexpr std::chrono::nanoseconds kPeriodMax = std::chrono::hours(24);
inline constexpr std::chrono::nanoseconds kConntrackTimeoutMin = std::chrono::seconds(1);

// kubeadm's default service CIDR, 10.96.0.0/12.
inline constexpr Cidr kDefaultServiceClusterIPRange{Ipv4{0x0a600000}, 12};
// The widest service CIDR accepted: /12 (2^20 addresses), as kube-apiserver's
// --service-cluster-ip-range.
inline constexpr uint8_t kMinServiceRangePrefix = 12;

// Inter-node encapsulation. VXLAN's defaults are the Linux/IANA port and Calico's VNI.
inline constexpr uint32_t kDefaultVxlanVni = 4096;
inline constexpr uint32_t kMaxVxlanVni = (1u << 24) - 1;  // the VNI is a 24-bit field
inline constexpr uint16_t kDefaultVxlanPort = 4789;
// spec.underlayMTU: 576 is the smallest datagram every IPv4 host must accept (RFC 791).
inline constexpr uint32_t kDefaultUnderlayMtu = 1500;
inline constexpr uint32_t kMinUnderlayMtu = 576;
inline constexpr uint32_t kMaxUnderlayMtu = 65535;
// What VXLAN over IPv4 adds to a pod's packet: outer IPv4 (20) + UDP (8) + VXLAN (8) + the
// inner Ethernet header (14).
inline constexpr uint32_t kVxlanOverhead = 20 + 8 + 8 + 14;

// spec.bpfLogLevel: what the TC programs write to the kernel trace buffer (docs/bpf-log.md).
// Off loads the production programs; Info and Debug the log variant.
enum class BpfLogLevel { Off, Info, Debug };
std::string_view to_string(BpfLogLevel l);  // "Off", "Info", "Debug"
// "Off"/"Info"/"Debug" in any case, or nullopt.
std::optional<BpfLogLevel> parse_bpf_log_level(std::string_view s);

struct DataplaneConfig {
  ObjectMeta meta;  // cluster-scoped: meta.ns is empty
  Source source;
  std::optional<std::string> log_level;  // trace|debug|info|warn|error; nullopt = not set
  std::chrono::nanoseconds min_sync_period = std::chrono::seconds(1);
  ConntrackTimeouts conntrack_timeouts;
  MapSizes map_sizes;
  std::chrono::nanoseconds conntrack_scan_period = std::chrono::seconds(10);
  // spec.serviceClusterIPRanges: every Service's IPv4 cluster IP lies in one of them.
  std::vector<Cidr> service_cluster_ip_ranges{kDefaultServiceClusterIPRange};
  // The agent logs a WARNING when the conntrack table is at least this full (1..100).
  uint32_t conntrack_warn_threshold_percent = 90;
  // spec.vxlanEnabled: inter-node pod traffic is VXLAN-encapsulated; false = routed (plain L3
  // through the underlay). spec.ipipEnabled is refused when true, so it has no field.
  bool vxlan_enabled = false;
  uint32_t vxlan_vni = kDefaultVxlanVni;        // spec.vxlanVNI, 1..kMaxVxlanVni
  uint16_t vxlan_port = kDefaultVxlanPort;      // spec.vxlanPort: UDP destination port
  uint32_t underlay_mtu = kDefaultUnderlayMtu;  // spec.underlayMTU, kMin..kMaxUnderlayMtu
  BpfLogLevel bpf_log_level = BpfLogLevel::Off;  // spec.bpfLogLevel
  // spec.bpfLogFilters: interface name, or kBpfLogFilterAll for every interface without a
  // filter of its own, -> pcap expression. The shape is checked here; whether libpcap and weir
  // can compile an expression is the agent's (and `weir apply`'s) check, see docs/bpf-log.md.
  std::map<std::string, std::string> bpf_log_filters;
  // spec.bpfProfiling: Enabled puts the profiling build of the TC programs in place, which times
  // every packet per interface, hook and new/established (docs/profiling.md); Disabled (default).
  bool bpf_profiling = false;
};

inline constexpr const char* kBpfLogFilterAll = "all";
// The longest pcap expression accepted (a filter longer than this is a mistake, not a filter).
inline constexpr size_t kMaxBpfLogFilterLength = 1024;

// The MTU of the pods' interfaces: the underlay's, less kVxlanOverhead when inter-node traffic
// is VXLAN-encapsulated (so that an encapsulated full-size packet still fits the underlay).
uint32_t pod_mtu(const DataplaneConfig& c);

// ---------------------------------------------------------------- Node (weir.dev/v1)

// Pod CIDRs take a prefix length in this range: /8 is the widest block worth giving one node,
// and a /31 or /32 leaves no address for a pod once the network and broadcast are excluded.
inline constexpr uint8_t kMinPodCidrPrefix = 8;
inline constexpr uint8_t kMaxPodCidrPrefix = 30;

// One node of the cluster: where to send its pods' traffic.
struct Node {
  ObjectMeta meta;  // cluster-scoped; metadata.name is what WorkloadEndpoint spec.node names
  Source source;
  Ipv4 underlay_address;  // spec.underlayAddress: the node's IPv4 address on the underlay
  Cidr pod_cidr;          // spec.podCIDR: its pods' addresses; canonical (no host bits)
};

// ---------------------------------------------------------------- Namespace (v1)

struct Namespace {
  ObjectMeta meta;  // cluster-scoped; labels used by namespace selectors
  Source source;
};

// ---------------------------------------------------------------- NetworkPolicy
// (networking.k8s.io/v1; spec types in policy.h)

struct NetworkPolicy {
  ObjectMeta meta;
  Source source;
  LabelSelector pod_selector;  // spec.podSelector; empty = every pod of the namespace
  PolicyTypes types;           // spec.policyTypes, defaulted (Ingress, + Egress with egress rules)
  std::vector<NetworkPolicyRule> ingress;
  std::vector<NetworkPolicyRule> egress;

  // "ns/name".
  std::string key() const { return meta.ns + "/" + meta.name; }
};

// ---------------------------------------------------------------- Tier (weir.dev/v1)

struct Tier {
  ObjectMeta meta;  // cluster-scoped
  Source source;
  std::optional<double> order;                      // absent: after every ordered tier
  PolicyAction default_action = PolicyAction::Deny;  // Deny or Pass
};

// ---------------------------------------------------------------- GlobalNetworkPolicy
// (weir.dev/v1)

struct GlobalNetworkPolicy {
  ObjectMeta meta;  // cluster-scoped
  Source source;
  std::string tier = kDefaultTier;
  std::optional<double> order;                    // absent: after every ordered policy
  std::string selector;                           // validated Calico selector; "" = all()
  std::optional<std::string> namespace_selector;  // endpoints in matching namespaces only
  PolicyTypes types;  // spec.types, defaulted (Ingress, + Egress with egress rules)
  std::vector<GnpRule> ingress;
  std::vector<GnpRule> egress;
};

// ---------------------------------------------------------------- Snapshot

// Every resource of a datastore at one point in time. A Snapshot handed out by the datastore
// has been validated as a whole (see parse.h: build_snapshot); resources keep the order in
// which they were read (files sorted by name, then document order).
struct Snapshot {
  std::vector<Service> services;
  std::vector<EndpointSlice> endpoint_slices;  // IPv4 slices only
  std::vector<WorkloadEndpoint> workload_endpoints;
  std::optional<DataplaneConfig> config;  // at most one
  std::vector<Namespace> namespaces;
  std::vector<NetworkPolicy> network_policies;
  std::vector<Tier> tiers;
  std::vector<GlobalNetworkPolicy> global_network_policies;
  std::vector<Node> nodes;
  std::vector<std::string> files;         // the source files read, in order
  std::vector<Warning> warnings;          // accepted-but-ignored input, for logging

  // The service namespace/name, or nullptr.
  const Service* find_service(std::string_view ns, std::string_view name) const;
  // The DataplaneConfig, or one with all defaults when none was given.
  DataplaneConfig effective_config() const;
};

}  // namespace weir::model
