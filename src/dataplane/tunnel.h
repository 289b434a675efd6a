// VXLAN between nodes (DataplaneConfig vxlanEnabled: true), done by weir's own TC programs
// (docs/packet-path.md, section 12): the agent writes this node's tunnel configuration into
// weir_tunnel1 and the other nodes' underlay addresses into weir_vteps1
// (bpf/include/weir/tunnel.h), and attaches TcPrograms::from_ul_fd() to the tc ingress of the
// underlay interface.
//
//   auto cfg = tunnel_config(plan, underlay_ifindex);   // calc::tunnel_plan(...)
//   WEIR_TRY(set_tunnel(tables.tunnel, cfg));        // or TcPrograms::set_tunnel(cfg)
//   WEIR_TRY(set_vteps(tables.vteps, other_nodes));  // or TcPrograms::set_vteps(...)
//
// Order when switching VXLAN on: the VTEPs first, then the configuration (a node that starts
// encapsulating finds its peers accepting); off: the configuration first.
#pragma once

#include <cstdint>
#include <vector>

#include "calc/tunnel.h"
#include "maps/table.h"
#include "model/net.h"
#include "model/resources.h"
#include "util/result.h"
#include "weir/tunnel.h"

namespace weir::dataplane {

struct TunnelConfig {
  bool vxlan_enabled = false;
  uint32_t vni = model::kDefaultVxlanVni;              // 1..model::kMaxVxlanVni
  uint16_t port = model::kDefaultVxlanPort;            // UDP destination port, host order
  uint32_t underlay_mtu = model::kDefaultUnderlayMtu;  // kMinUnderlayMtu..kMaxUnderlayMtu
  uint32_t underlay_ifindex = 0;  // the interface VXLAN leaves by (and arrives on)
  model::Ipv4 underlay_addr;      // this node's address on it (Node spec.underlayAddress)
};

// The configuration of a node's plan (calc::tunnel_plan) on its underlay interface.
TunnelConfig tunnel_config(const calc::TunnelPlan& plan, uint32_t underlay_ifindex);

// The weir_tunnel1 value of `c` (VNI and MTU host order, port and address network order). With
// VXLAN on, Error{EINVAL} naming the field when the VNI is 0 or wider than 24 bits, the port is
// 0, the MTU is out of range, or the interface or the address is missing. With VXLAN off the
// value is all zero whatever the other fields: nothing is encapsulated or decapsulated.
Result<weir_tunnel_val> tunnel_value(const TunnelConfig& c);

// Writes weir_tunnel1[0] (one update). A packet racing the update may see some fields old and
// some new (an array update is not atomic for the programs): they check the fields they depend
// on and drop (DROP_ENCAP) rather than send a packet half configured.
Status set_tunnel(maps::TunnelTable& t, const TunnelConfig& c);

// Makes weir_vteps1 exactly `nodes` (the underlay addresses of the cluster's other nodes; this
// node's own is harmless): the new ones are added before the stale ones are removed, so a node
// in both sets is never absent. 0.0.0.0 is refused (EINVAL). A full map (E2BIG) leaves the
// nodes already written in place and says how many it holds.
Status set_vteps(maps::VtepsTable& t, const std::vector<model::Ipv4>& nodes);

}  // namespace weir::dataplane
