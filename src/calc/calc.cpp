#include "calc/calc.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "calc/diff.h"

namespace weir::calc {

using model::EndpointSlice;
using model::Protocol;
using model::Service;

std::string FrontendKey::str() const {
  std::string_view p = proto == ip_proto(Protocol::TCP)   ? "TCP"
                       : proto == ip_proto(Protocol::UDP) ? "UDP"
                                                          : "";
  if (p.empty()) return fmt::format("{}:{}/{}", vip.str(), port, proto);
  return fmt::format("{}:{}/{}", vip.str(), port, p);
}

std::string Backend::str() const { return fmt::format("{}:{}", ip.str(), port); }

namespace {

// kube-proxy's ServicePortName: "ns/name:port", or "ns/name" for an unnamed port.
std::string service_port_name(const Service& s, const model::ServicePort& p) {
  if (p.name.empty()) return s.key();
  return s.key() + ":" + p.name;
}

// The backend port a slice gives for a service port, or nullopt when it cannot be resolved.
std::optional<uint16_t> resolve_port(const EndpointSlice& es, const model::ServicePort& sp) {
  for (const auto& p : es.ports) {
    if (p.name == sp.name && p.protocol == sp.protocol && p.port) return *p.port;
  }
  if (!sp.target_port.is_named()) return sp.target_port.number;
  return std::nullopt;
}

}  // namespace

std::set<Ipv4> local_workload_ips(const model::Snapshot& snap, std::string_view node_name) {
  std::set<Ipv4> out;
  for (const auto& w : snap.workload_endpoints)
    if (w.node == node_name) out.insert(w.ips.begin(), w.ips.end());
  return out;
}

void compute_service_frontends(const Service& svc, const std::vector<const EndpointSlice*>& slices,
                               const std::set<Ipv4>& local, std::vector<Frontend>& out,
                               std::vector<model::Warning>* warnings) {
  if (!svc.cluster_ip || svc.headless || svc.type == model::ServiceType::ExternalName) return;
  for (size_t i = 0; i < svc.ports.size(); ++i) {
    const auto& sp = svc.ports[i];
    if (sp.protocol != Protocol::TCP && sp.protocol != Protocol::UDP)
      continue;  // SCTP: warned by the parser
    Frontend fe;
    fe.key = FrontendKey{*svc.cluster_ip, sp.port, model::ip_proto(sp.protocol)};
    fe.service = service_port_name(svc, sp);
    fe.affinity_timeout_s =
        svc.session_affinity == model::SessionAffinity::ClientIP ? svc.affinity_timeout_s : 0;
    std::set<Backend> backends;
    for (const EndpointSlice* es : slices) {
      bool any_usable = std::any_of(es->endpoints.begin(), es->endpoints.end(),
                                    [](const auto& ep) { return ep.conditions.usable(); });
      if (!any_usable) continue;
      auto port = resolve_port(*es, sp);
      if (!port) {
        if (warnings)
          warnings->push_back(
              {svc.source.file, fmt::format("Service {}", svc.key()),
               fmt::format("spec.ports[{}].targetPort", i),
               fmt::format("named targetPort \"{}\" is not resolved by any {} port named \"{}\" "
                           "of EndpointSlice {}/{}: no backends from that slice",
                           sp.target_port.name, model::to_string(sp.protocol), sp.name,
                           es->meta.ns, es->meta.name),
               svc.source.line, 0});
        continue;
      }
      for (const auto& ep : es->endpoints) {
        // Kubernetes: the addresses of one endpoint are interchangeable; consumers use the
        // first (as kube-proxy does).
        if (!ep.conditions.usable() || ep.addresses.empty()) continue;
        backends.insert(Backend{ep.addresses.front(), *port});
      }
    }
    fe.backends.assign(backends.begin(), backends.end());
    fe.local = static_cast<uint32_t>(
        std::count_if(fe.backends.begin(), fe.backends.end(),
                      [&](const Backend& b) { return local.contains(b.ip); }));
    out.push_back(std::move(fe));
  }
}

namespace {

bool by_key(const Frontend& a, const Frontend& b) { return a.key < b.key; }

// "ns/name" of a frontend's service: its ServicePortName up to the port name.
std::string_view owner_of(const Frontend& fe) {
  std::string_view s = fe.service;
  return s.substr(0, s.find(':'));
}

}  // namespace

std::vector<Frontend> compute_frontends(const model::Snapshot& snap, std::string_view node_name,
                                        std::vector<model::Warning>* warnings) {
  std::vector<Frontend> out;
  const std::set<Ipv4> local = local_workload_ips(snap, node_name);
  // Slices by (namespace, service name), in snapshot order: one pass, not one per service.
  std::map<std::pair<std::string_view, std::string_view>, std::vector<const EndpointSlice*>>
      slices_of;
  for (const auto& es : snap.endpoint_slices)
    slices_of[{es.meta.ns, es.service_name}].push_back(&es);
  static const std::vector<const EndpointSlice*> kNone;
  for (const Service& svc : snap.services) {
    auto found = slices_of.find({svc.meta.ns, svc.meta.name});
    compute_service_frontends(svc, found == slices_of.end() ? kNone : found->second, local, out,
                              warnings);
  }
  std::sort(out.begin(), out.end(), by_key);
  return out;
}

SetDiff<FrontendKey, Frontend> update_service_frontends(
    std::vector<Frontend>& frontends, const model::Snapshot& snap,
    const std::vector<std::string>& services, const std::set<Ipv4>& local,
    std::vector<model::Warning>* warnings) {
  std::unordered_set<std::string_view> wanted(services.begin(), services.end());
  auto key_of = [](std::string_view ns, std::string_view name) {
    std::string k;
    k.reserve(ns.size() + name.size() + 1);
    k.append(ns).append("/").append(name);
    return k;
  };
  // The changed services and their slices: one pass over each (snapshot order kept).
  std::map<std::string, std::pair<const Service*, std::vector<const EndpointSlice*>>> changed;
  for (const auto& s : services) changed[s];
  for (const Service& svc : snap.services) {
    std::string k = key_of(svc.meta.ns, svc.meta.name);
    if (wanted.contains(k)) changed[k].first = &svc;
  }
  for (const auto& es : snap.endpoint_slices) {
    std::string k = key_of(es.meta.ns, es.service_name);
    if (wanted.contains(k)) changed[k].second.push_back(&es);
  }
  std::vector<Frontend> before, after;
  size_t kept = 0;
  for (size_t i = 0; i < frontends.size(); i++) {
    if (wanted.contains(owner_of(frontends[i]))) {
      before.push_back(std::move(frontends[i]));
    } else {
      if (kept != i) frontends[kept] = std::move(frontends[i]);
      kept++;
    }
  }
  frontends.resize(kept);
  for (const auto& [k, what] : changed)
    if (what.first) compute_service_frontends(*what.first, what.second, local, after, warnings);
  std::sort(before.begin(), before.end(), by_key);
  std::sort(after.begin(), after.end(), by_key);
  auto d = diff_frontends(before, after);
  size_t mid = frontends.size();
  frontends.insert(frontends.end(), after.begin(), after.end());
  std::inplace_merge(frontends.begin(), frontends.begin() + static_cast<std::ptrdiff_t>(mid),
                    frontends.end(), by_key);
  return d;
}

std::vector<Route> compute_routes(const model::Snapshot& snap, std::string_view node_name) {
  std::vector<Route> out;
  std::unordered_map<std::string_view, const model::Node*> nodes;
  for (const auto& n : snap.nodes) {
    nodes.emplace(n.meta.name, &n);
    if (n.meta.name == node_name) continue;
    Route r;
    r.cidr = n.pod_cidr;
    r.flags = kRouteRemote;
    r.node = n.meta.name;
    r.next_hop = n.underlay_address;
    out.push_back(std::move(r));
  }
  for (const auto& w : snap.workload_endpoints) {
    bool is_local = w.node == node_name;
    for (const Ipv4& ip : w.ips) {
      Route r;
      r.cidr = model::Cidr{ip, 32};
      r.workload = w.key();
      if (is_local) {
        r.flags = kRouteLocalWorkload;
        r.interface = w.interface;
        r.mac = w.mac;
      } else {
        r.flags = kRouteRemote;
        r.node = w.node;
        if (auto n = nodes.find(w.node); n != nodes.end()) r.next_hop = n->second->underlay_address;
      }
      out.push_back(std::move(r));
    }
  }
  std::sort(out.begin(), out.end(), [](const Route& a, const Route& b) { return a.cidr < b.cidr; });
  return out;
}

std::vector<Interface> compute_interfaces(const model::Snapshot& snap, std::string_view node_name) {
  std::vector<Interface> out;
  for (const auto& w : snap.workload_endpoints) {
    if (w.node != node_name) continue;
    Interface i;
    i.name = w.interface;
    i.workload = w.key();
    i.ips = w.ips;
    std::sort(i.ips.begin(), i.ips.end());
    i.mac = w.mac;
    out.push_back(std::move(i));
  }
  std::sort(out.begin(), out.end(),
            [](const Interface& a, const Interface& b) { return a.name < b.name; });
  return out;
}

Output compute(const model::Snapshot& snap, std::string_view node_name) {
  Output o;
  o.frontends = compute_frontends(snap, node_name, &o.warnings);
  o.routes = compute_routes(snap, node_name);
  o.interfaces = compute_interfaces(snap, node_name);
  return o;
}

const Frontend* Output::find_frontend(const FrontendKey& k) const {
  auto it = std::lower_bound(frontends.begin(), frontends.end(), k,
                             [](const Frontend& f, const FrontendKey& key) { return f.key < key; });
  return it != frontends.end() && it->key == k ? &*it : nullptr;
}

const Route* Output::find_route(const model::Cidr& c) const {
  auto it = std::lower_bound(routes.begin(), routes.end(), c,
                             [](const Route& r, const model::Cidr& key) { return r.cidr < key; });
  return it != routes.end() && it->cidr == c ? &*it : nullptr;
}

const Interface* Output::find_interface(std::string_view name) const {
  auto it = std::lower_bound(interfaces.begin(), interfaces.end(), name,
                             [](const Interface& i, std::string_view key) { return i.name < key; });
  return it != interfaces.end() && it->name == name ? &*it : nullptr;
}

}  // namespace weir::calc
