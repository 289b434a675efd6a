#include "model/parse.h"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <set>
#include <tuple>
#include <variant>

#include "model/duration.h"
#include "model/parse_ctx.h"
#include "model/parse_policy.h"

namespace weir::model {

// ---------------------------------------------------------------- field validators

bool is_iana_svc_name(std::string_view s) {
  if (s.empty() || s.size() > 15) return false;
  bool letter = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'a' && c <= 'z') {
      letter = true;
    } else if (c == '-') {
      if (i == 0 || i + 1 == s.size() || s[i - 1] == '-') return false;
    } else if (!(c >= '0' && c <= '9')) {
      return false;
    }
  }
  return letter;
}

bool is_dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-') return false;
    if (c == '-' && (i == 0 || i + 1 == s.size())) return false;
  }
  return true;
}

bool is_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_dns_label(label)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool is_valid_ifname(std::string_view s) {
  if (s.empty() || s.size() > 15) return false;
  if (s == "." || s == "..") return false;
  for (char c : s) {
    if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
        c == '\f' || c == '\0')
      return false;
  }
  return true;
}

// ---------------------------------------------------------------- SnapshotResult

Result<Snapshot> SnapshotResult::to_result() const& {
  if (snapshot) return *snapshot;
  return to_error(errors);
}

Result<Snapshot> SnapshotResult::to_result() && {
  if (snapshot) return std::move(*snapshot);
  return to_error(errors);
}

namespace {

using namespace parse_detail;  // NOLINT(google-build-using-namespace)

constexpr const char* kKindService = "Service";
constexpr const char* kKindEndpointSlice = "EndpointSlice";
constexpr const char* kKindWorkloadEndpoint = "WorkloadEndpoint";
constexpr const char* kKindDataplaneConfig = "DataplaneConfig";
constexpr const char* kKindNode = "Node";

struct KindInfo {
  std::string_view kind;
  std::string_view api_version;
  bool namespaced;
};
constexpr KindInfo kKinds[] = {
    {"Service", "v1", true},
    {"EndpointSlice", "discovery.k8s.io/v1", true},
    {"WorkloadEndpoint", "weir.dev/v1", true},
    {"DataplaneConfig", "weir.dev/v1", false},
    {"Namespace", "v1", false},
    {"NetworkPolicy", "networking.k8s.io/v1", true},
    {"Tier", "weir.dev/v1", false},
    {"GlobalNetworkPolicy", "weir.dev/v1", false},
    {"Node", "weir.dev/v1", false},
    {"List", "v1", false},
};

const KindInfo* find_kind(std::string_view kind) {
  for (const auto& k : kKinds)
    if (k.kind == kind) return &k;
  return nullptr;
}

std::string supported_kinds() {
  std::string out;
  for (const auto& k : kKinds) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} ({})", k.kind, k.api_version);
  }
  return out;
}

// ---------------------------------------------------------------- Service

// spec.ports[].targetPort: 1..65535 or an IANA_SVC_NAME; 0 and "" mean "same as port".
void parse_target_port(Ctx& c, const YAML::Node& tp, const std::string& path, ServicePort& sp) {
  if (scalar_type(tp) == ScalarType::Int && tp.Scalar() == "0") {
    sp.target_port.number = sp.port;  // Kubernetes: 0 / "" mean "same as port"
    return;
  }
  auto v = int_or_string(c, tp, path, 1, 65535);
  if (!v) return;
  if (const int64_t* n = std::get_if<int64_t>(&*v)) {
    sp.target_port.number = static_cast<uint16_t>(*n);
    return;
  }
  const std::string& name = std::get<std::string>(*v);
  if (name.empty())
    sp.target_port.number = sp.port;
  else if (!is_iana_svc_name(name))
    c.error(path, tp,
            fmt::format("{} is not a valid port name (IANA_SVC_NAME: 1-15 characters "
                        "a-z, 0-9, '-', at least one letter, no leading, trailing or "
                        "double '-')",
                        quote(name)));
  else
    sp.target_port.name = name;
}

void parse_service_type(Ctx& c, const YAML::Node& spec, Service& svc) {
  if (auto t = c.str(spec, "type", "spec.type", false)) {
    if (*t == "ClusterIP")
      svc.type = ServiceType::ClusterIP;
    else if (*t == "NodePort")
      svc.type = ServiceType::NodePort;
    else if (*t == "LoadBalancer")
      svc.type = ServiceType::LoadBalancer;
    else if (*t == "ExternalName")
      svc.type = ServiceType::ExternalName;
    else
      c.error("spec.type", Ctx::child(spec, "type"),
              fmt::format("invalid type {}: must be ClusterIP, NodePort, LoadBalancer or "
                          "ExternalName",
                          quote(*t)));
    if (svc.type == ServiceType::NodePort || svc.type == ServiceType::LoadBalancer)
      c.warn("spec.type", Ctx::child(spec, "type"),
             fmt::format("type {}: only the ClusterIP part is load-balanced", *t));
  }
}

// What parse_cluster_ip learns from spec.clusterIP and spec.clusterIPs.
struct ClusterIpScan {
  bool have_ip_field = false;         // either field holds a non-empty value
  std::optional<YAML::Node> ip_node;  // where svc.cluster_ip was read
  bool v6_seen = false;               // an IPv6 address was ignored (warned once)
};

// spec.clusterIP: an IPv4 address, None (headless) or IPv6 (ignored, with a warning).
void read_cluster_ip(Ctx& c, const YAML::Node& spec, Service& svc, ClusterIpScan& scan) {
  YAML::Node cip = Ctx::child(spec, "clusterIP");
  if (cip.IsDefined()) {
    auto s = c.scalar(cip, "spec.clusterIP");
    if (s && !s->empty()) {
      scan.have_ip_field = true;
      if (*s == "None") {
        svc.headless = true;
      } else {
        bool v6 = false;
        svc.cluster_ip = parse_ip_field(c, cip, "spec.clusterIP", false, &v6);
        if (svc.cluster_ip) scan.ip_node.emplace(cip);
        if (v6) scan.v6_seen = true;
        if (v6) c.warn("spec.clusterIP", cip, fmt::format("IPv6 address {} ignored", quote(*s)));
      }
    }
  }
}

// spec.clusterIPs: its first IPv4 entry is the cluster IP and must agree with spec.clusterIP.
void read_cluster_ips(Ctx& c, const YAML::Node& spec, Service& svc, ClusterIpScan& scan) {
  YAML::Node cips = c.seq(spec, "clusterIPs", "spec.clusterIPs", false);
  if (cips.IsDefined()) {
    std::optional<Ipv4> first_v4;
    std::string first_v4_path;
    std::optional<YAML::Node> first_v4_node;
    for (size_t i = 0; i < cips.size(); ++i) {
      std::string path = idx("spec.clusterIPs", i);
      auto s = c.scalar(cips[i], path);
      if (!s) continue;
      scan.have_ip_field = true;
      if (*s == "None") {
        if (!svc.cluster_ip) svc.headless = true;
        continue;
      }
      bool v6 = false;
      auto ip = parse_ip_field(c, cips[i], path, false, &v6);
      if (v6) {
        if (!scan.v6_seen) c.warn(path, cips[i], fmt::format("IPv6 address {} ignored", quote(*s)));
        scan.v6_seen = true;
      }
      if (ip && !first_v4) {
        first_v4 = ip;
        first_v4_path = path;
        first_v4_node.emplace(cips[i]);
      }
    }
    if (!svc.cluster_ip && !svc.headless && first_v4) {
      svc.cluster_ip = first_v4;
      svc.cluster_ip_field = first_v4_path;
      scan.ip_node.emplace(*first_v4_node);
    }
    if (svc.cluster_ip && first_v4 && *first_v4 != *svc.cluster_ip)
      c.error("spec.clusterIPs", cips,
              fmt::format("the IPv4 entry {} differs from spec.clusterIP {}", first_v4->str(),
                          svc.cluster_ip->str()));
  }
}

void parse_cluster_ip(Ctx& c, const YAML::Node& spec, Service& svc) {
  ClusterIpScan scan;
  read_cluster_ip(c, spec, svc, scan);
  read_cluster_ips(c, spec, svc, scan);
  if (svc.type == ServiceType::ExternalName) {
    svc.cluster_ip.reset();
    svc.headless = false;
  } else if (!scan.have_ip_field) {
    c.error("spec.clusterIP", spec,
            "is required (weir does not allocate cluster IPs; use None for a headless service)");
  }
  if (svc.cluster_ip) {
    svc.cluster_ip_line = line_of(*scan.ip_node);
    if (const SpecialBlock* b = special_block(*svc.cluster_ip))
      c.error(svc.cluster_ip_field, *scan.ip_node,
              fmt::format("{} is {}: a cluster IP must be a unicast address of the service CIDR",
                          svc.cluster_ip->str(), b->what));
  }
}

// One entry of spec.ports (at `path`, index i of n): names and port/protocol pairs must be
// unique across the entries (`names`, `numbers`: the entries seen so far).
ServicePort parse_service_port(Ctx& c, const YAML::Node& pn, const std::string& path, size_t i,
                               size_t n, std::map<std::string, size_t>& names,
                               std::map<std::pair<uint16_t, Protocol>, size_t>& numbers) {
  ServicePort sp;
  if (auto name = c.str(pn, "name", path + ".name", false)) sp.name = *name;
  if (sp.name.empty()) {
    if (n > 1) c.error(path + ".name", pn, "is required when a service has more than one port");
  } else if (!is_dns_label(sp.name)) {
    c.error(path + ".name", Ctx::child(pn, "name"),
            fmt::format("{} is not a valid port name: must be a lowercase RFC 1123 label",
                        quote(sp.name)));
  } else if (auto [it, fresh] = names.emplace(sp.name, i); !fresh) {
    c.error(
        path + ".name", Ctx::child(pn, "name"),
        fmt::format("duplicate port name {} (also spec.ports[{}])", quote(sp.name), it->second));
  }
  auto proto = c.protocol(pn, path + ".protocol");
  if (proto) sp.protocol = *proto;
  if (proto == Protocol::SCTP)
    c.warn(path + ".protocol", Ctx::child(pn, "protocol"),
           "SCTP is parsed but not load-balanced yet");
  auto port = c.integer(pn, "port", path + ".port", 1, 65535, true);
  if (port) sp.port = static_cast<uint16_t>(*port);
  YAML::Node tp = Ctx::child(pn, "targetPort");
  if (tp.IsDefined()) {
    parse_target_port(c, tp, path + ".targetPort", sp);
  } else {
    sp.target_port.number = sp.port;
  }
  if (port && proto) {
    auto [it, fresh] = numbers.emplace(std::pair{sp.port, sp.protocol}, i);
    if (!fresh)
      c.error(path + ".port", Ctx::child(pn, "port"),
              fmt::format("duplicate port {}/{} (also spec.ports[{}])", sp.port,
                          to_string(sp.protocol), it->second));
  }
  return sp;
}

void parse_service_ports(Ctx& c, const YAML::Node& spec, Service& svc) {
  bool needs_ports = svc.type != ServiceType::ExternalName && !svc.headless;
  YAML::Node raw_ports = Ctx::child(spec, "ports");
  YAML::Node ports = c.seq(spec, "ports", "spec.ports", false);
  if (needs_ports && (!ports.IsDefined() || ports.size() == 0) &&
      (!raw_ports.IsDefined() || raw_ports.IsSequence()))
    c.error("spec.ports", ports.IsDefined() ? ports : spec, "at least one port is required");
  if (ports.IsDefined()) {
    std::map<std::string, size_t> names;
    std::map<std::pair<uint16_t, Protocol>, size_t> numbers;
    for (size_t i = 0; i < ports.size(); ++i) {
      std::string path = idx("spec.ports", i);
      YAML::Node pn = ports[i];
      if (!pn.IsMap()) {
        c.error(path, pn, "must be a mapping");
        continue;
      }
      svc.ports.push_back(parse_service_port(c, pn, path, i, ports.size(), names, numbers));
    }
  }
}

void parse_session_affinity(Ctx& c, const YAML::Node& spec, Service& svc) {
  if (auto sa = c.str(spec, "sessionAffinity", "spec.sessionAffinity", false)) {
    if (*sa == "None")
      svc.session_affinity = SessionAffinity::None;
    else if (*sa == "ClientIP")
      svc.session_affinity = SessionAffinity::ClientIP;
    else
      c.error("spec.sessionAffinity", Ctx::child(spec, "sessionAffinity"),
              fmt::format("invalid value {}: must be None or ClientIP", quote(*sa)));
  }
  if (svc.session_affinity == SessionAffinity::ClientIP) {
    svc.affinity_timeout_s = 10800;
    YAML::Node sac = c.map(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig", false);
    YAML::Node cl = c.map(sac, "clientIP", "spec.sessionAffinityConfig.clientIP", false);
    if (auto t = c.integer(cl, "timeoutSeconds",
                           "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 1, 86400, false))
      svc.affinity_timeout_s = static_cast<uint32_t>(*t);
  }
}

std::optional<Service> parse_service(Ctx& c, const YAML::Node& root, const Source& src) {
  Service svc;
  svc.source = src;
  svc.meta = parse_meta(c, root, kKindService, true);
  YAML::Node spec = c.map(root, "spec", "spec", true);
  if (!spec.IsDefined()) return std::nullopt;
  parse_service_type(c, spec, svc);
  parse_cluster_ip(c, spec, svc);
  parse_service_ports(c, spec, svc);
  parse_session_affinity(c, spec, svc);
  if (c.failed()) return std::nullopt;
  return svc;
}

// ---------------------------------------------------------------- EndpointSlice

std::optional<EndpointSlice> parse_endpoint_slice(Ctx& c, const YAML::Node& root,
                                                  const Source& src) {
  EndpointSlice es;
  es.source = src;
  es.meta = parse_meta(c, root, kKindEndpointSlice, true);

  auto at = c.str(root, "addressType", "addressType", true);
  if (at && *at != "IPv4") {
    if (*at == "IPv6" || *at == "FQDN") {
      if (c.failed()) return std::nullopt;
      c.warn("addressType", Ctx::child(root, "addressType"),
             fmt::format("{} slices are ignored (only IPv4 is supported)", *at));
      return std::nullopt;
    }
    c.error("addressType", Ctx::child(root, "addressType"),
            fmt::format("invalid addressType {}: must be IPv4, IPv6 or FQDN", quote(*at)));
  }

  auto it = es.meta.labels.find(kServiceNameLabel);
  std::string label_path = fmt::format("metadata.labels[\"{}\"]", kServiceNameLabel);
  if (it == es.meta.labels.end() || it->second.empty()) {
    YAML::Node md = Ctx::child(root, "metadata");
    c.error(label_path, Ctx::child(md, "labels").IsDefined() ? Ctx::child(md, "labels") : md,
            "is required (names the Service this slice belongs to)");
  } else if (!is_dns_subdomain(it->second)) {
    c.error(label_path, Ctx::child(root, "metadata"),
            fmt::format("{} is not a valid service name", quote(it->second)));
  } else {
    es.service_name = it->second;
  }

  YAML::Node eps = c.seq(root, "endpoints", "endpoints", false);
  if (eps.IsDefined()) {
    for (size_t i = 0; i < eps.size(); ++i) {
      std::string path = idx("endpoints", i);
      YAML::Node en = eps[i];
      if (!en.IsMap()) {
        c.error(path, en, "must be a mapping");
        continue;
      }
      Endpoint ep;
      YAML::Node addrs = c.seq(en, "addresses", path + ".addresses", true);
      if (addrs.IsDefined()) {
        if (addrs.size() == 0)
          c.error(path + ".addresses", addrs, "must list at least one address");
        for (size_t j = 0; j < addrs.size(); ++j) {
          if (auto ip = parse_ip_field(c, addrs[j], idx(path + ".addresses", j), false))
            ep.addresses.push_back(*ip);
        }
      }
      YAML::Node cond = c.map(en, "conditions", path + ".conditions", false);
      ep.conditions.ready = c.boolean(cond, "ready", path + ".conditions.ready");
      ep.conditions.serving = c.boolean(cond, "serving", path + ".conditions.serving");
      ep.conditions.terminating = c.boolean(cond, "terminating", path + ".conditions.terminating");
      if (auto nn = c.str(en, "nodeName", path + ".nodeName", false)) ep.node_name = *nn;
      YAML::Node tr = c.map(en, "targetRef", path + ".targetRef", false);
      if (tr.IsDefined()) {
        ObjectReference ref;
        ref.kind = c.str(tr, "kind", path + ".targetRef.kind", false).value_or("");
        ref.ns = c.str(tr, "namespace", path + ".targetRef.namespace", false).value_or("");
        ref.name = c.str(tr, "name", path + ".targetRef.name", false).value_or("");
        ep.target_ref = std::move(ref);
      }
      es.endpoints.push_back(std::move(ep));
    }
  }

  YAML::Node ports = c.seq(root, "ports", "ports", false);
  if (ports.IsDefined()) {
    std::map<std::string, size_t> names;
    for (size_t i = 0; i < ports.size(); ++i) {
      std::string path = idx("ports", i);
      YAML::Node pn = ports[i];
      if (!pn.IsMap()) {
        c.error(path, pn, "must be a mapping");
        continue;
      }
      EndpointPort p;
      p.name = c.str(pn, "name", path + ".name", false).value_or("");
      if (!p.name.empty() && !is_dns_label(p.name))
        c.error(path + ".name", Ctx::child(pn, "name"),
                fmt::format("{} is not a valid port name: must be a lowercase RFC 1123 label",
                            quote(p.name)));
      if (auto [it2, fresh] = names.emplace(p.name, i); !fresh)
        c.error(path + ".name", pn,
                fmt::format("duplicate port name {} (also ports[{}])", quote(p.name), it2->second));
      if (auto proto = c.protocol(pn, path + ".protocol")) p.protocol = *proto;
      if (auto port = c.integer(pn, "port", path + ".port", 1, 65535, false))
        p.port = static_cast<uint16_t>(*port);
      es.ports.push_back(std::move(p));
    }
  }
  if (c.failed()) return std::nullopt;
  return es;
}

// ---------------------------------------------------------------- WorkloadEndpoint

std::optional<WorkloadEndpoint> parse_workload_endpoint(Ctx& c, const YAML::Node& root,
                                                        const Source& src) {
  WorkloadEndpoint w;
  w.source = src;
  w.meta = parse_meta(c, root, kKindWorkloadEndpoint, true);
  YAML::Node spec = c.map(root, "spec", "spec", true);
  if (!spec.IsDefined()) return std::nullopt;
  c.warn_unknown_keys(spec, "spec", {"node", "interface", "ips", "mac", "ports"});

  if (auto node = c.str(spec, "node", "spec.node", true)) {
    if (!is_dns_subdomain(*node))
      c.error("spec.node", Ctx::child(spec, "node"),
              fmt::format("{} is not a valid node name: must be a lowercase RFC 1123 subdomain",
                          quote(*node)));
    else
      w.node = *node;
  }
  if (auto ifn = c.str(spec, "interface", "spec.interface", true)) {
    if (!is_valid_ifname(*ifn))
      c.error("spec.interface", Ctx::child(spec, "interface"),
              fmt::format("{} is not a valid interface name: 1-15 characters, no '/', ':' or "
                          "whitespace",
                          quote(*ifn)));
    else
      w.interface = *ifn;
  }
  YAML::Node ips = c.seq(spec, "ips", "spec.ips", true);
  if (ips.IsDefined()) {
    if (ips.size() == 0) c.error("spec.ips", ips, "must list at least one address");
    std::map<Ipv4, size_t> seen;
    for (size_t i = 0; i < ips.size(); ++i) {
      std::string path = idx("spec.ips", i);
      auto ip = parse_ip_field(c, ips[i], path, true);
      if (!ip) continue;
      if (auto [it, fresh] = seen.emplace(*ip, i); !fresh) {
        c.error(path, ips[i],
                fmt::format("duplicate address {} (also spec.ips[{}])", ip->str(), it->second));
        continue;
      }
      w.ips.push_back(*ip);
    }
  }
  YAML::Node macn = Ctx::child(spec, "mac");
  if (auto ms = c.scalar(macn, "spec.mac")) {
    auto mac = Mac::parse(*ms);
    if (!mac)
      c.error("spec.mac", macn,
              fmt::format("{} is not a MAC address (expected aa:bb:cc:dd:ee:ff)", quote(*ms)));
    else if (!mac->is_unicast())
      c.error("spec.mac", macn,
              fmt::format("{} is not a unicast MAC address (all-zero or multicast bit set)",
                          quote(*ms)));
    else
      w.mac = mac;
  }
  YAML::Node ports = c.seq(spec, "ports", "spec.ports", false);
  if (ports.IsDefined()) {
    std::map<std::string, size_t> names;
    for (size_t i = 0; i < ports.size(); ++i) {
      std::string path = idx("spec.ports", i);
      YAML::Node pn = ports[i];
      if (!pn.IsMap()) {
        c.error(path, pn, "must be a mapping");
        continue;
      }
      WorkloadPort p;
      if (auto name = c.str(pn, "name", path + ".name", true)) {
        if (!is_iana_svc_name(*name))
          c.error(path + ".name", Ctx::child(pn, "name"),
                  fmt::format("{} is not a valid port name (IANA_SVC_NAME)", quote(*name)));
        else if (auto [it, fresh] = names.emplace(*name, i); !fresh)
          c.error(path + ".name", Ctx::child(pn, "name"),
                  fmt::format("duplicate port name {} (also spec.ports[{}])", quote(*name),
                              it->second));
        p.name = *name;
      }
      if (auto proto = c.protocol(pn, path + ".protocol")) p.protocol = *proto;
      if (auto port = c.integer(pn, "port", path + ".port", 1, 65535, true))
        p.port = static_cast<uint16_t>(*port);
      w.ports.push_back(std::move(p));
    }
  }
  if (c.failed()) return std::nullopt;
  return w;
}

// ---------------------------------------------------------------- Node

// spec.<key>, or nullopt with "is required" reported at `path`.
std::optional<YAML::Node> required_child(Ctx& c, const YAML::Node& spec, const char* key,
                                         const std::string& path) {
  YAML::Node n = Ctx::child(spec, key);
  if (n.IsDefined()) return n;
  c.error(path, spec, "is required");
  return std::nullopt;
}

// `s` (the scalar at n) as an IPv4 CIDR in canonical form (no host bits). An IPv6 CIDR gives
// nullopt with `ipv6` set and nothing reported (the caller decides); anything else that is wrong
// is reported ("the <noun> is a.b.c.d/n" for host bits).
std::optional<Cidr> canonical_cidr(Ctx& c, const YAML::Node& n, const std::string& path,
                                   const std::string& s, std::string_view noun, bool& ipv6) {
  Cidr r;
  switch (parse_cidr(s, false, r)) {
    case CidrParse::Ipv6:
      ipv6 = true;
      return std::nullopt;
    case CidrParse::Invalid:
      c.error(path, n, fmt::format("{} is not a CIDR (expected a.b.c.d/n)", quote(s)));
      return std::nullopt;
    case CidrParse::Ok:
      break;
  }
  if (r.addr.str() != s.substr(0, s.find('/'))) {
    c.error(path, n, fmt::format("{} has host bits set: the {} is {}", quote(s), noun, r.str()));
    return std::nullopt;
  }
  return r;
}

// spec.underlayAddress: a unicast IPv4 address (the other nodes send this node's pods' traffic
// to it).
std::optional<Ipv4> underlay_address(Ctx& c, const YAML::Node& spec) {
  const std::string path = "spec.underlayAddress";
  auto field = required_child(c, spec, "underlayAddress", path);
  if (!field) return std::nullopt;
  const YAML::Node& n = *field;
  auto ip = parse_ip_field(c, n, path, false);
  if (!ip) return std::nullopt;
  if (const SpecialBlock* b = special_block(*ip)) {
    c.error(path, n,
            fmt::format("{} is {}: the underlay address must be a unicast address the other "
                        "nodes can reach",
                        ip->str(), b->what));
    return std::nullopt;
  }
  return ip;
}

// spec.podCIDR: an IPv4 CIDR in canonical form (no host bits), /8../30, clear of the special
// blocks.
std::optional<Cidr> pod_cidr(Ctx& c, const YAML::Node& spec) {
  const std::string path = "spec.podCIDR";
  auto field = required_child(c, spec, "podCIDR", path);
  if (!field) return std::nullopt;
  const YAML::Node& n = *field;
  auto s = c.scalar(n, path);
  if (!s) return std::nullopt;
  bool ipv6 = false;
  auto parsed = canonical_cidr(c, n, path, *s, "CIDR", ipv6);
  if (ipv6) c.error(path, n, fmt::format("{} is an IPv6 CIDR: only IPv4 is supported", quote(*s)));
  if (!parsed) return std::nullopt;
  const Cidr r = *parsed;
  if (r.prefix_len < kMinPodCidrPrefix || r.prefix_len > kMaxPodCidrPrefix) {
    c.error(path, n,
            fmt::format("{}: the prefix length {} is out of range {}..{}", quote(*s), r.prefix_len,
                        kMinPodCidrPrefix, kMaxPodCidrPrefix));
  } else if (const SpecialBlock* b = special_block(r)) {
    c.error(path, n, fmt::format("{} overlaps {}", quote(*s), b->cidr.str()));
  } else {
    return r;
  }
  return std::nullopt;
}

std::optional<Node> parse_node(Ctx& c, const YAML::Node& root, const Source& src) {
  Node node;
  node.source = src;
  node.meta = parse_meta(c, root, kKindNode, false);
  YAML::Node spec = c.map(root, "spec", "spec", true);
  if (!spec.IsDefined()) return std::nullopt;
  c.warn_unknown_keys(spec, "spec", {"underlayAddress", "podCIDR"});
  if (auto ip = underlay_address(c, spec)) node.underlay_address = *ip;
  if (auto r = pod_cidr(c, spec)) node.pod_cidr = *r;
  if (c.failed()) return std::nullopt;
  return node;
}

// ---------------------------------------------------------------- DataplaneConfig

// One entry of spec.serviceClusterIPRanges: an IPv4 CIDR in canonical form (no host bits), at
// most /12 wide (as kube-apiserver's --service-cluster-ip-range), clear of the special blocks.
// IPv6 entries are ignored with a warning.
std::optional<Cidr> service_range(Ctx& c, const YAML::Node& n, const std::string& path,
                                  bool& ipv6) {
  auto s = c.scalar(n, path);
  if (!s) return std::nullopt;
  auto parsed = canonical_cidr(c, n, path, *s, "range", ipv6);
  if (ipv6) c.warn(path, n, fmt::format("IPv6 range {} ignored", quote(*s)));
  if (!parsed) return std::nullopt;
  const Cidr r = *parsed;
  if (r.prefix_len < kMinServiceRangePrefix) {
    c.error(path, n, fmt::format("{} is too large: the prefix must be /{} or longer", quote(*s),
                                 kMinServiceRangePrefix));
  } else if (const SpecialBlock* b = special_block(r)) {
    c.error(path, n, fmt::format("{} overlaps {}", quote(*s), b->cidr.str()));
  } else {
    return r;
  }
  return std::nullopt;
}

// spec.serviceClusterIPRanges: absent = kubeadm's 10.96.0.0/12; else at least one IPv4 range.
std::optional<std::vector<Cidr>> service_ranges(Ctx& c, const YAML::Node& spec) {
  const std::string path = "spec.serviceClusterIPRanges";
  YAML::Node list = c.seq(spec, "serviceClusterIPRanges", path, false);
  if (!list.IsDefined()) return std::nullopt;
  std::vector<Cidr> out;
  size_t ipv6 = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    bool v6 = false;
    if (auto r = service_range(c, list[i], idx(path, i), v6)) out.push_back(*r);
    ipv6 += v6 ? 1 : 0;
  }
  if (ipv6 == list.size()) c.error(path, list, "must list at least one IPv4 CIDR");
  if (out.empty()) return std::nullopt;
  return out;
}

// Inter-node encapsulation and the underlay's MTU: vxlanEnabled, vxlanVNI, vxlanPort,
// ipipEnabled (only false), underlayMTU.
void parse_encapsulation(Ctx& c, const YAML::Node& spec, DataplaneConfig& cfg) {
  if (auto v = c.boolean(spec, "vxlanEnabled", "spec.vxlanEnabled")) cfg.vxlan_enabled = *v;
  if (auto v = c.integer(spec, "vxlanVNI", "spec.vxlanVNI", 1, kMaxVxlanVni, false))
    cfg.vxlan_vni = static_cast<uint32_t>(*v);
  if (auto v = c.integer(spec, "vxlanPort", "spec.vxlanPort", 1, 65535, false))
    cfg.vxlan_port = static_cast<uint16_t>(*v);
  // Accepted as a field so that the refusal can say what to write instead (Calico users
  // reach for it); `false` is what weir does anyway.
  if (auto v = c.boolean(spec, "ipipEnabled", "spec.ipipEnabled"); v && *v)
    c.error("spec.ipipEnabled", Ctx::child(spec, "ipipEnabled"),
            "IPIP is not supported: set vxlanEnabled: true for VXLAN, or leave both off for "
            "routed mode");
  if (auto v = c.integer(spec, "underlayMTU", "spec.underlayMTU", kMinUnderlayMtu, kMaxUnderlayMtu,
                         false))
    cfg.underlay_mtu = static_cast<uint32_t>(*v);
}

// The BPF debug log: bpfLogLevel (Off, Info, Debug; any case), bpfLogFilters (interface name or
// "all" -> pcap expression: docs/bpf-log.md); runtime profiling: bpfProfiling (Enabled,
// Disabled; any case: docs/profiling.md).
void parse_bpf_log(Ctx& c, const YAML::Node& spec, DataplaneConfig& cfg) {
  if (auto lvl = c.str(spec, "bpfLogLevel", "spec.bpfLogLevel", false)) {
    if (auto l = parse_bpf_log_level(*lvl))
      cfg.bpf_log_level = *l;
    else
      c.error("spec.bpfLogLevel", Ctx::child(spec, "bpfLogLevel"),
              fmt::format("invalid BPF log level {}: must be Off, Info or Debug", quote(*lvl)));
  }
  if (auto prof = c.str(spec, "bpfProfiling", "spec.bpfProfiling", false)) {
    std::string v = *prof;
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (v == "enabled" || v == "disabled")
      cfg.bpf_profiling = v == "enabled";
    else
      c.error("spec.bpfProfiling", Ctx::child(spec, "bpfProfiling"),
              fmt::format("invalid value {}: must be Enabled or Disabled", quote(*prof)));
  }
  YAML::Node filters = c.map(spec, "bpfLogFilters", "spec.bpfLogFilters", false);
  if (!filters.IsDefined()) return;
  for (const auto& kv : filters) {
    const std::string key = kv.first.Scalar();
    const std::string path = fmt::format("spec.bpfLogFilters[{}]", quote(key));
    if (key != kBpfLogFilterAll && !is_valid_ifname(key)) {
      c.error(path, kv.first,
              fmt::format("{} is not an interface name (1 to 15 characters, none of them '/', ':' or "
                          "white space) nor \"{}\"", quote(key), kBpfLogFilterAll));
      continue;
    }
    auto expr = c.scalar(kv.second, path);
    if (!expr) continue;
    if (expr->find_first_not_of(" \t\n") == std::string::npos)
      c.error(path, kv.second, "is empty: give a pcap expression, e.g. \"tcp port 80\"");
    else if (expr->size() > kMaxBpfLogFilterLength)
      c.error(path, kv.second, fmt::format("is {} characters long, more than {}", expr->size(), kMaxBpfLogFilterLength));
    else
      cfg.bpf_log_filters[key] = *expr;
  }
}

std::optional<DataplaneConfig> parse_dataplane_config(Ctx& c, const YAML::Node& root,
                                                      const Source& src) {
  DataplaneConfig cfg;
  cfg.source = src;
  cfg.meta = parse_meta(c, root, kKindDataplaneConfig, false);
  YAML::Node spec = c.map(root, "spec", "spec", false);
  c.warn_unknown_keys(
      spec, "spec",
      {"logLevel", "minSyncPeriod", "conntrackTimeouts", "mapSizes", "conntrackScanPeriod",
       "serviceClusterIPRanges", "conntrackWarnThresholdPercent", "vxlanEnabled", "vxlanVNI",
       "vxlanPort", "ipipEnabled", "underlayMTU", "bpfLogLevel", "bpfLogFilters", "bpfProfiling"});
  parse_bpf_log(c, spec, cfg);
  if (auto lvl = c.str(spec, "logLevel", "spec.logLevel", false)) {
    if (*lvl == "trace" || *lvl == "debug" || *lvl == "info" || *lvl == "warn" || *lvl == "error")
      cfg.log_level = *lvl;
    else
      c.error("spec.logLevel", Ctx::child(spec, "logLevel"),
              fmt::format("invalid log level {}: must be trace, debug, info, warn or error",
                          quote(*lvl)));
  }
  if (auto d = c.duration(spec, "minSyncPeriod", "spec.minSyncPeriod",
                         {kMinSyncPeriodMin, kPeriodMax, true}))
    cfg.min_sync_period = *d;
  if (auto d = c.duration(spec, "conntrackScanPeriod", "spec.conntrackScanPeriod",
                         {kConntrackScanPeriodMin, kPeriodMax}))
    cfg.conntrack_scan_period = *d;
  if (auto v = c.integer(spec, "conntrackWarnThresholdPercent",
                         "spec.conntrackWarnThresholdPercent", 1, 100, false))
    cfg.conntrack_warn_threshold_percent = static_cast<uint32_t>(*v);
  if (auto r = service_ranges(c, spec)) cfg.service_cluster_ip_ranges = std::move(*r);
  parse_encapsulation(c, spec, cfg);

  YAML::Node ct = c.map(spec, "conntrackTimeouts", "spec.conntrackTimeouts", false);
  c.warn_unknown_keys(
      ct, "spec.conntrackTimeouts",
      {"tcpSynSent", "tcpEstablished", "tcpFin", "tcpReset", "udp", "icmp", "other"});
  auto timeout = [&](const char* key, std::chrono::nanoseconds& out) {
    if (auto d = c.duration(ct, key, fmt::format("spec.conntrackTimeouts.{}", key),
                           {kConntrackTimeoutMin, std::chrono::nanoseconds::max()}))
      out = *d;
  };
  timeout("tcpSynSent", cfg.conntrack_timeouts.tcp_syn_sent);
  timeout("tcpEstablished", cfg.conntrack_timeouts.tcp_established);
  timeout("tcpFin", cfg.conntrack_timeouts.tcp_fin);
  timeout("tcpReset", cfg.conntrack_timeouts.tcp_reset);
  timeout("udp", cfg.conntrack_timeouts.udp);
  timeout("icmp", cfg.conntrack_timeouts.icmp);
  timeout("other", cfg.conntrack_timeouts.other);

  YAML::Node ms = c.map(spec, "mapSizes", "spec.mapSizes", false);
  c.warn_unknown_keys(ms, "spec.mapSizes",
                      {"natFrontend", "natBackend", "conntrack", "routes", "ifstate", "counters",
                       "ipsets", "ruleCounters"});
  auto size = [&](const char* key, uint32_t& out) {
    if (auto v = c.integer(ms, key, fmt::format("spec.mapSizes.{}", key), 1, kMaxMapSize, false))
      out = static_cast<uint32_t>(*v);
  };
  size("natFrontend", cfg.map_sizes.nat_frontend);
  size("natBackend", cfg.map_sizes.nat_backend);
  size("conntrack", cfg.map_sizes.conntrack);
  size("routes", cfg.map_sizes.routes);
  size("ifstate", cfg.map_sizes.ifstate);
  size("counters", cfg.map_sizes.counters);
  size("ipsets", cfg.map_sizes.ipsets);
  size("ruleCounters", cfg.map_sizes.rule_counters);
  if (c.failed()) return std::nullopt;
  return cfg;
}

// ---------------------------------------------------------------- documents

void parse_resource(const SourceText& src, const YAML::Node& root, int doc, int item, Snapshot& out,
                    ValidationErrors& errors);

std::string where(int doc, int item) {
  return item >= 0 ? fmt::format("document {} items[{}]", doc, item)
                   : fmt::format("document {}", doc);
}

void parse_resource(const SourceText& src, const YAML::Node& root, int doc, int item, Snapshot& out,
                    ValidationErrors& errors) {
  Ctx c(src.file, errors, out.warnings, where(doc, item), root);
  if (!root.IsMap()) {
    c.error("", root, "a resource must be a mapping with apiVersion, kind and metadata");
    return;
  }
  auto kind = c.str(root, "kind", "kind", true);
  auto api = c.str(root, "apiVersion", "apiVersion", true);
  if (!kind || !api) return;
  const KindInfo* info = find_kind(*kind);
  if (!info) {
    c.error("kind", Ctx::child(root, "kind"),
            fmt::format("unknown kind {} (apiVersion {}): supported kinds are {}", quote(*kind),
                        clip(*api), supported_kinds()));
    return;
  }
  c.set_resource(fmt::format("{} ({})", *kind, where(doc, item)));
  if (info->api_version != *api) {
    c.error("apiVersion", Ctx::child(root, "apiVersion"),
            fmt::format("apiVersion {} does not match kind {} (expected {})", quote(*api), *kind,
                        info->api_version));
    return;
  }
  Source source{src.file, doc, item, c.root_line()};

  if (*kind == "List") {
    if (item >= 0) {
      c.error("kind", Ctx::child(root, "kind"), "a List may not contain another List");
      return;
    }
    YAML::Node items = c.seq(root, "items", "items", false);
    if (!items.IsDefined()) return;
    for (size_t i = 0; i < items.size(); ++i)
      parse_resource(src, items[i], doc, static_cast<int>(i), out, errors);
    return;
  }
  if (*kind == kKindService) {
    if (auto s = parse_service(c, root, source)) out.services.push_back(std::move(*s));
  } else if (*kind == kKindEndpointSlice) {
    if (auto s = parse_endpoint_slice(c, root, source))
      out.endpoint_slices.push_back(std::move(*s));
  } else if (*kind == kKindWorkloadEndpoint) {
    if (auto w = parse_workload_endpoint(c, root, source))
      out.workload_endpoints.push_back(std::move(*w));
  } else if (*kind == "Namespace") {
    if (auto n = parse_namespace(c, root, source)) out.namespaces.push_back(std::move(*n));
  } else if (*kind == "NetworkPolicy") {
    if (auto n = parse_network_policy(c, root, source))
      out.network_policies.push_back(std::move(*n));
  } else if (*kind == "Tier") {
    if (auto t = parse_tier(c, root, source)) out.tiers.push_back(std::move(*t));
  } else if (*kind == "GlobalNetworkPolicy") {
    if (auto g = parse_global_network_policy(c, root, source))
      out.global_network_policies.push_back(std::move(*g));
  } else if (*kind == kKindNode) {
    if (auto n = parse_node(c, root, source)) out.nodes.push_back(std::move(*n));
  } else if (*kind == kKindDataplaneConfig) {
    auto cfg = parse_dataplane_config(c, root, source);
    if (!cfg) return;
    if (out.config) {
      c.error("metadata.name", Ctx::child(Ctx::child(root, "metadata"), "name"),
              fmt::format("only one DataplaneConfig is allowed; DataplaneConfig {} is already "
                          "defined in {}",
                          out.config->meta.name, out.config->source.str()));
      return;
    }
    out.config = std::move(cfg);
  }
}

std::string too_deep() {
  return fmt::format("nested deeper than {} levels of mappings and lists", kMaxNestingDepth);
}

// How parse_resource() will name the resource `res` (document `doc`, List item `item`), for
// errors found before it runs: "Service default/web", "Tier gold", "Service (document 2)",
// "document 2".
std::string resource_label(const YAML::Node& res, int doc, int item) {
  YAML::Node k = Ctx::child(res, "kind");
  const KindInfo* info = k.IsScalar() ? find_kind(k.Scalar()) : nullptr;
  if (!info || info->kind == "List") return where(doc, item);
  YAML::Node md = Ctx::child(res, "metadata");
  YAML::Node name = Ctx::child(md, "name");
  if (!name.IsScalar() || !is_dns_subdomain(name.Scalar()))
    return fmt::format("{} ({})", info->kind, where(doc, item));
  if (!info->namespaced) return fmt::format("{} {}", info->kind, name.Scalar());
  YAML::Node ns = Ctx::child(md, "namespace");
  std::string nss = ns.IsScalar() && is_dns_label(ns.Scalar()) ? ns.Scalar() : "default";
  return fmt::format("{} {}/{}", info->kind, nss, name.Scalar());
}

// A structure problem (check_structure()) as a ValidationError: in a List, the item is the
// resource and the field path starts below it.
ValidationError structure_error(const SourceText& src, int doc, const std::vector<PathStep>& path,
                                const YAML::Mark& at, std::string msg) {
  std::string resource = where(doc, -1);
  size_t from = 1;
  if (!path.empty()) {
    YAML::Node k = Ctx::child(path[0].node, "kind");
    bool list = k.IsScalar() && k.Scalar() == "List";
    if (list && path.size() > 2 && path[1].key == "items" && path[2].index >= 0) {
      resource = resource_label(path[2].node, doc, static_cast<int>(path[2].index));
      from = 3;
    } else {
      resource = resource_label(path[0].node, doc, -1);
    }
  }
  int line = at.line >= 0 ? at.line + 1 : 0;
  int column = at.column >= 0 ? at.column + 1 : 0;
  return {src.file, resource, clip(field_path(path, from), 2 * kMaxEchoBytes), std::move(msg),
          line, column};
}

// "Node node-a (nodes.yaml (document 1))": the other party of a conflict.
std::string node_ref(const Node& n) {
  return fmt::format("{} {} ({})", kKindNode, n.meta.name, n.source.str());
}

// The rules between Nodes, and between Nodes and the other kinds. A name defined twice is
// reported once, as a duplicate name: its two definitions are not checked against each other.
void validate_nodes(const Snapshot& snap, ValidationErrors& errors,
                    std::vector<Warning>& warnings) {
  auto error = [&](const Node& n, const char* field, std::string msg) {
    errors.push_back({n.source.file, fmt::format("{} {}", kKindNode, n.meta.name), field,
                      std::move(msg), n.source.line, 0});
  };
  auto same = [](const Node& a, const Node& b) { return a.meta.name == b.meta.name; };

  std::map<Ipv4, const Node*> underlay_owner;
  for (const Node& n : snap.nodes) {
    auto [it, fresh] = underlay_owner.emplace(n.underlay_address, &n);
    if (!fresh && !same(*it->second, n))
      error(n, "spec.underlayAddress",
            fmt::format("{} is already the underlay address of {}", n.underlay_address.str(),
                        node_ref(*it->second)));
  }

  // Pod CIDRs by (prefix length, network): the CIDRs that contain an address are found with
  // one lookup per prefix length, however many nodes there are. Two CIDRs overlap only when
  // one contains the other, so looking up each CIDR's own address finds every overlap.
  std::map<std::pair<unsigned, uint32_t>, std::vector<const Node*>> by_cidr;
  for (const Node& n : snap.nodes)
    by_cidr[{n.pod_cidr.prefix_len, n.pod_cidr.addr.value}].push_back(&n);
  // The node of the narrowest pod CIDR of at most /max_len containing `a` for which
  // accept(node, its prefix length) holds, or nullptr.
  auto containing = [&](Ipv4 a, unsigned max_len, auto accept) -> const Node* {
    for (unsigned len = max_len; len >= kMinPodCidrPrefix; --len) {
      auto it = by_cidr.find({len, a.value & Cidr::netmask(len)});
      if (it == by_cidr.end()) continue;
      for (const Node* o : it->second)
        if (accept(*o, len)) return o;
    }
    return nullptr;
  };

  const std::vector<Cidr> service_ranges = snap.effective_config().service_cluster_ip_ranges;
  for (const Node& n : snap.nodes) {
    const Cidr& pc = n.pod_cidr;
    // Reported on the narrower CIDR; of two equal CIDRs, on the one defined later.
    const Node* wider = containing(pc.addr, pc.prefix_len, [&](const Node& o, unsigned len) {
      return !same(o, n) && (len < pc.prefix_len || &o < &n);
    });
    if (wider)
      error(n, "spec.podCIDR",
            fmt::format("{} overlaps {}, the pod CIDR of {}", pc.str(), wider->pod_cidr.str(),
                        node_ref(*wider)));
    for (const Cidr& r : service_ranges) {
      if (r.overlaps(pc)) {
        error(n, "spec.podCIDR",
              fmt::format("{} overlaps the service CIDR {} (DataplaneConfig "
                          "spec.serviceClusterIPRanges)",
                          pc.str(), r.str()));
        break;
      }
    }
    // The underlay carries the pods' traffic: an underlay address that is also a pod address
    // would be routed to the pods.
    const Node* pods = containing(n.underlay_address, kMaxPodCidrPrefix,
                                  [](const Node&, unsigned) { return true; });
    if (pods && same(*pods, n))
      error(
          n, "spec.underlayAddress",
          fmt::format("{} lies in the node's own pod CIDR {}", n.underlay_address.str(), pc.str()));
    else if (pods)
      error(n, "spec.underlayAddress",
            fmt::format("{} lies in {}, the pod CIDR of {}", n.underlay_address.str(),
                        pods->pod_cidr.str(), node_ref(*pods)));
  }

  // A workload outside its node's pod CIDR still works where it is (its routes are /32), but
  // the other nodes route by pod CIDR: warned, not refused, so that a cluster can move to
  // Nodes one resource at a time.
  std::map<std::string_view, const Node*> by_name;
  for (const Node& n : snap.nodes) by_name.emplace(n.meta.name, &n);
  for (const auto& w : snap.workload_endpoints) {
    auto it = by_name.find(w.node);
    if (it == by_name.end()) continue;
    const Node& n = *it->second;
    for (size_t i = 0; i < w.ips.size(); ++i)
      if (!n.pod_cidr.contains(w.ips[i]))
        warnings.push_back({w.source.file, fmt::format("{} {}", kKindWorkloadEndpoint, w.key()),
                            idx("spec.ips", i),
                            fmt::format("{} is outside {}, the pod CIDR of its node ({})",
                                        w.ips[i].str(), n.pod_cidr.str(), node_ref(n)),
                            w.source.line, 0});
  }
}

}  // namespace

std::string file_too_large(uint64_t bytes) {
  return fmt::format("the file is {} bytes, over the limit of {} MiB per file ({} bytes): split "
                     "it into several files",
                     bytes, kMaxFileBytes >> 20, kMaxFileBytes);
}

void parse_text(const SourceText& src, Snapshot& out, ValidationErrors& errors) {
  out.files.push_back(src.file);
  auto file_error = [&](std::string msg, int line, int column) {
    errors.push_back({src.file, "", "", std::move(msg), line, column});
  };
  if (src.text.size() > kMaxFileBytes) return file_error(file_too_large(src.text.size()), 0, 0);
  if (int line = flow_depth_exceeded(src.text, kMaxNestingDepth))
    return file_error(too_deep(), line, 0);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(src.text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own guard (a few hundred levels of block nesting): the same rule, reported
    // the same way as the pre-scan and the structure walk report it.
    return file_error(too_deep(), e.mark.line >= 0 ? e.mark.line + 1 : 0, 0);
  } catch (const YAML::Exception& e) {
    if (e.mark.line >= 0)
      return file_error(fmt::format("YAML syntax error: {}", clip(e.msg)), e.mark.line + 1,
                        e.mark.column + 1);
    return file_error(fmt::format("YAML syntax error: {}", clip(e.msg)), 0, 0);
  }
  // Nodes visited across the file's documents, aliases expanded: twice the text is generous
  // for any document written out (each node takes at least one character).
  size_t budget = 2 * src.text.size() + 10000;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (!docs[i].IsDefined() || docs[i].IsNull()) continue;  // empty document
    int doc = static_cast<int>(i) + 1;
    auto sink = [&](const std::vector<PathStep>& path, const YAML::Mark& at, std::string msg) {
      errors.push_back(structure_error(src, doc, path, at, std::move(msg)));
    };
    if (!check_structure(docs[i], budget, sink)) continue;
    try {
      parse_resource(src, docs[i], doc, -1, out, errors);
    } catch (const YAML::Exception& e) {
      // Defensive: yaml-cpp throws on unexpected node shapes we did not anticipate.
      errors.push_back({src.file, where(doc, -1), "",
                        fmt::format("cannot read resource: {}", clip(e.what())), line_of(docs[i]),
                        0});
    }
  }
}

void validate_snapshot(Snapshot& snap, ValidationErrors& errors) {
  std::vector<Warning> warnings;
  validate_snapshot(snap, errors, warnings);
  snap.warnings.insert(snap.warnings.end(), warnings.begin(), warnings.end());
}

void validate_snapshot(const Snapshot& snap, ValidationErrors& errors,
                       std::vector<Warning>& warnings) {
  // Duplicate (kind, namespace, name).
  std::map<std::tuple<std::string, std::string, std::string>, const Source*> seen;
  auto dup = [&](std::string_view kind, const ObjectMeta& m, const Source& src) {
    auto [it, fresh] = seen.emplace(std::tuple{std::string(kind), m.ns, m.name}, &src);
    if (!fresh) {
      std::string res = m.ns.empty() ? fmt::format("{} {}", kind, m.name)
                                     : fmt::format("{} {}/{}", kind, m.ns, m.name);
      errors.push_back({src.file, res, "metadata.name",
                        fmt::format("duplicate {}: also defined in {}", res, it->second->str()),
                        src.line, 0});
    }
  };
  for (const auto& s : snap.services) dup(kKindService, s.meta, s.source);
  for (const auto& s : snap.endpoint_slices) dup(kKindEndpointSlice, s.meta, s.source);
  for (const auto& w : snap.workload_endpoints) dup(kKindWorkloadEndpoint, w.meta, w.source);
  for (const auto& n : snap.namespaces) dup("Namespace", n.meta, n.source);
  for (const auto& n : snap.network_policies) dup("NetworkPolicy", n.meta, n.source);
  for (const auto& t : snap.tiers) dup("Tier", t.meta, t.source);
  for (const auto& g : snap.global_network_policies) dup("GlobalNetworkPolicy", g.meta, g.source);
  for (const auto& n : snap.nodes) dup(kKindNode, n.meta, n.source);
  validate_policy_refs(snap, errors);

  // EndpointSlice -> Service.
  std::set<std::pair<std::string_view, std::string_view>> services;
  for (const auto& s : snap.services) services.insert({s.meta.ns, s.meta.name});
  for (const auto& es : snap.endpoint_slices) {
    if (!services.contains({es.meta.ns, es.service_name})) {
      errors.push_back({es.source.file,
                        fmt::format("EndpointSlice {}/{}", es.meta.ns, es.meta.name),
                        fmt::format("metadata.labels[\"{}\"]", kServiceNameLabel),
                        fmt::format("Service {}/{} does not exist", es.meta.ns, es.service_name),
                        es.source.line, 0});
    }
  }

  // WorkloadEndpoint IPs and (node, interface) unique.
  std::map<Ipv4, const WorkloadEndpoint*> ip_owner;
  std::map<std::pair<std::string, std::string>, const WorkloadEndpoint*> if_owner;
  for (const auto& w : snap.workload_endpoints) {
    std::string res = fmt::format("WorkloadEndpoint {}", w.key());
    for (size_t i = 0; i < w.ips.size(); ++i) {
      auto [it, fresh] = ip_owner.emplace(w.ips[i], &w);
      if (!fresh)
        errors.push_back({w.source.file, res, idx("spec.ips", i),
                          fmt::format("{} is already used by WorkloadEndpoint {} ({})",
                                      w.ips[i].str(), it->second->key(), it->second->source.str()),
                          w.source.line, 0});
    }
    auto [it, fresh] = if_owner.emplace(std::pair{w.node, w.interface}, &w);
    if (!fresh)
      errors.push_back(
          {w.source.file, res, "spec.interface",
           fmt::format("interface {} on node {} is already used by WorkloadEndpoint "
                       "{} ({})",
                       quote(w.interface), w.node, it->second->key(), it->second->source.str()),
           w.source.line, 0});
  }

  const ClusterIPRules cluster_ips(snap);
  for (const auto& s : snap.services) cluster_ips.check(s, errors);

  // Frontend collisions: two services with the same (clusterIP, port, protocol).
  std::map<std::tuple<Ipv4, uint16_t, Protocol>, const Service*> fe_owner;
  for (const auto& s : snap.services) {
    if (!s.cluster_ip || s.headless) continue;
    for (size_t i = 0; i < s.ports.size(); ++i) {
      const auto& p = s.ports[i];
      auto [it, fresh] = fe_owner.emplace(std::tuple{*s.cluster_ip, p.port, p.protocol}, &s);
      // A duplicate definition of the same service is reported once, as a duplicate name.
      if (!fresh && it->second != &s && it->second->key() != s.key())
        errors.push_back(
            {s.source.file, fmt::format("Service {}", s.key()), idx("spec.ports", i) + ".port",
             fmt::format("{}:{}/{} is already used by Service {} ({})", s.cluster_ip->str(), p.port,
                         to_string(p.protocol), it->second->key(), it->second->source.str()),
             s.source.line, 0});
    }
  }

  validate_nodes(snap, errors, warnings);
}

ClusterIPRules::ClusterIPRules(const Snapshot& snap)
    : ranges_(snap.effective_config().service_cluster_ip_ranges) {
  for (const auto& w : snap.workload_endpoints)
    for (const auto& ip : w.ips)
      pods_.emplace(ip.value, fmt::format("WorkloadEndpoint {} ({})", w.key(), w.source.str()));
}

void ClusterIPRules::check(const Service& svc, ValidationErrors& errors) const {
  if (!svc.cluster_ip || svc.headless) return;
  const Ipv4 ip = *svc.cluster_ip;
  auto error = [&](std::string msg) {
    errors.push_back({svc.source.file, fmt::format("Service {}", svc.key()), svc.cluster_ip_field,
                      std::move(msg), svc.cluster_ip_line ? svc.cluster_ip_line : svc.source.line,
                      0});
  };
  if (auto it = pods_.find(ip.value); it != pods_.end())
    error(fmt::format("{} is the address of {}: a Service may not take a pod's IP", ip.str(),
                      it->second));
  std::string names;
  for (const Cidr& r : ranges_) {
    bool edge = r.prefix_len <= 30 && (ip == r.first() || ip == r.last());
    if (r.contains(ip) && !edge) return;
    names += (names.empty() ? "" : ", ") + r.str();
  }
  for (const Cidr& r : ranges_) {
    if (r.contains(ip)) {
      error(fmt::format("{} is the {} address of the service CIDR {}", ip.str(),
                        ip == r.first() ? "network" : "broadcast", r.str()));
      return;
    }
  }
  error(fmt::format("{} is outside the service CIDR ({}; DataplaneConfig "
                    "spec.serviceClusterIPRanges)",
                    ip.str(), names));
}

void merge_parsed(Snapshot& into, const Snapshot& part, ValidationErrors& errors) {
  auto append = [](auto& dst, const auto& src) { dst.insert(dst.end(), src.begin(), src.end()); };
  append(into.services, part.services);
  append(into.endpoint_slices, part.endpoint_slices);
  append(into.workload_endpoints, part.workload_endpoints);
  append(into.namespaces, part.namespaces);
  append(into.network_policies, part.network_policies);
  append(into.tiers, part.tiers);
  append(into.global_network_policies, part.global_network_policies);
  append(into.nodes, part.nodes);
  append(into.files, part.files);
  append(into.warnings, part.warnings);
  if (part.config) {
    if (into.config) {
      errors.push_back({part.config->source.file,
                        fmt::format("{} {}", kKindDataplaneConfig, part.config->meta.name),
                        "metadata.name",
                        fmt::format("only one DataplaneConfig is allowed; DataplaneConfig {} is "
                                    "already defined in {}",
                                    into.config->meta.name, into.config->source.str()),
                        part.config->source.line, 0});
    } else {
      into.config = part.config;
    }
  }
}

SnapshotResult build_snapshot(const std::vector<SourceText>& sources) {
  SnapshotResult r;
  Snapshot snap;
  for (const auto& src : sources) {
    Snapshot part;
    parse_text(src, part, r.errors);
    merge_parsed(snap, part, r.errors);
  }
  validate_snapshot(snap, r.errors);
  r.warnings = snap.warnings;
  if (r.errors.empty()) r.snapshot = std::move(snap);
  return r;
}

}  // namespace weir::model
