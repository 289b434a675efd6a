// calc: pure functions from a validated model::Snapshot to the entries the dataplane programs.
// No syscalls, no libbpf; output order is deterministic (sorted by key) so that identical input
// yields identical output. Addresses and ports are host order (model::Ipv4, uint16_t); the
// dataplane converts them to network order for the maps.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "model/net.h"
#include "model/resources.h"
#include "model/validation.h"

namespace weir::calc {

using model::Ipv4;
using model::Mac;

// ---------------------------------------------------------------- services -> NAT

// nat frontend key: (VIP, port, protocol). proto is the IP protocol number (6 TCP, 17 UDP).
struct FrontendKey {
  Ipv4 vip;
  uint16_t port = 0;
  uint8_t proto = 0;

  // "10.96.0.10:53/UDP".
  std::string str() const;
  auto operator<=>(const FrontendKey&) const = default;
};

struct Backend {
  Ipv4 ip;
  uint16_t port = 0;

  // "10.65.0.2:8080".
  std::string str() const;
  auto operator<=>(const Backend&) const = default;
};

struct Frontend {
  FrontendKey key;
  std::string service;  // "ns/name:portname" ("ns/name" for an unnamed port), as kube-proxy
  std::vector<Backend> backends;    // ready backends, deduplicated, sorted; may be empty
  uint32_t local = 0;               // how many backends are IPs of WorkloadEndpoints on this node
  uint32_t affinity_timeout_s = 0;  // ClientIP session affinity timeout; 0 = none

  bool operator==(const Frontend&) const = default;
};

// For each Service with an IPv4 clusterIP (not headless, not ExternalName) and each TCP/UDP
// port: one Frontend. Backends come from the merged IPv4 EndpointSlices labelled with the
// service's name in its namespace, endpoints whose conditions are usable (ready absent = true,
// not terminating). Backend port, per slice: the slice port with the same name and protocol as
// the service port; else the numeric targetPort; a named targetPort that no slice port resolves
// gives no backends from that slice (warning), never a guess. SCTP ports are skipped (warning).
// Sorted by key. Warnings are appended to *warnings when it is non-null.
std::vector<Frontend> compute_frontends(const model::Snapshot& snap, std::string_view node_name,
                                        std::vector<model::Warning>* warnings = nullptr);

// The IPs of the WorkloadEndpoints on node_name (what makes a backend "local").
std::set<Ipv4> local_workload_ips(const model::Snapshot& snap, std::string_view node_name);

// One Service's frontends, as compute_frontends() makes them, appended to `out` (unsorted):
// `slices` are the service's EndpointSlices in snapshot order, `local` the node's workload IPs.
void compute_service_frontends(const model::Service& svc,
                               const std::vector<const model::EndpointSlice*>& slices,
                               const std::set<Ipv4>& local, std::vector<Frontend>& out,
                               std::vector<model::Warning>* warnings = nullptr);

// ---------------------------------------------------------------- endpoints -> routes, interfaces

// What a route is, in calc's own terms (a bit set). The BPF encoding (WEIR_RT_F_* of
// weir/routes.h) is the dataplane's business: dataplane/route_flags.h translates when it
// writes weir_routes1.
enum RouteFlag : uint32_t {
  kRouteLocalWorkload = 1u << 0,  // a workload on this node: interface (and MAC) known
  kRouteRemote = 1u << 1,         // a workload on another node
  kRouteHost = 1u << 2,           // one of this host's addresses              (not used yet)
  kRouteInPool = 1u << 3,         // inside an IP pool                          (not used yet)
};

struct Route {
  model::Cidr cidr;        // /32 per workload IP; another node's pod CIDR
  uint32_t flags = 0;      // RouteFlag bits: kRouteLocalWorkload or kRouteRemote
  std::string interface;   // local workload: host-side interface name; else empty
  std::optional<Mac> mac;  // local workload: its MAC when known
  std::string workload;    // "ns/name" of the WorkloadEndpoint owning the IP; "" for a pod CIDR
  std::string node;        // remote: the node the address lives on (spec.node / Node name)
  // remote: that node's underlay address when a Node resource names it; nullopt when the node
  // has no Node resource (then nothing routes to it across the underlay)
  std::optional<Ipv4> next_hop;

  bool operator==(const Route&) const = default;
};

struct Interface {
  std::string name;        // host-side interface name
  std::string workload;    // "ns/name"
  std::vector<Ipv4> ips;   // sorted
  std::optional<Mac> mac;  // the workload's MAC when known

  bool operator==(const Interface&) const = default;
};

// One /32 route per WorkloadEndpoint IP: flags kRouteLocalWorkload with interface and MAC
// for endpoints whose spec.node == node_name, kRouteRemote for the rest, with their node's
// underlay address as next hop when a Node resource names that node. One kRouteRemote route
// per other Node's pod CIDR, next hop its underlay address (the /32s of the pods inside it say
// the same; a pod outside its node's CIDR is routed by its /32). This node's own pod CIDR gets
// no route: its pods' /32s are the routes. Sorted by cidr.
std::vector<Route> compute_routes(const model::Snapshot& snap, std::string_view node_name);

// One Interface per WorkloadEndpoint on node_name. Sorted by name.
std::vector<Interface> compute_interfaces(const model::Snapshot& snap, std::string_view node_name);

// ---------------------------------------------------------------- everything

struct Output {
  std::vector<Frontend> frontends;    // sorted by key
  std::vector<Route> routes;          // sorted by cidr
  std::vector<Interface> interfaces;  // sorted by name
  std::vector<model::Warning> warnings;

  // Lookups by key (binary search); nullptr when absent.
  const Frontend* find_frontend(const FrontendKey& k) const;
  const Route* find_route(const model::Cidr& c) const;
  const Interface* find_interface(std::string_view name) const;
};

// compute_frontends + compute_routes + compute_interfaces for this node.
Output compute(const model::Snapshot& snap, std::string_view node_name);

}  // namespace weir::calc
