// What VXLAN between nodes needs on this node, from the DataplaneConfig and the Node resources
// (docs/cluster.md): pure, so that it is unit-tested without the kernel. The agent writes the
// plan into the BPF tunnel config and VTEP maps and attaches the decapsulating program to the
// interface that holds `underlay` (dataplane/tunnel_sync.h).
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include "model/resources.h"
#include "util/result.h"

namespace weir::calc {

struct TunnelPlan {
  bool enabled = false;     // DataplaneConfig vxlanEnabled
  uint32_t vni = 0;         // vxlanVNI
  uint16_t port = 0;        // vxlanPort (host order)
  uint32_t underlay_mtu = 0;
  model::Ipv4 underlay;     // this node's underlay address (its Node's underlayAddress)
  std::vector<model::Ipv4> vteps;  // the other nodes' underlay addresses, sorted: decap accepts
                                   // VXLAN from these only
  auto operator<=>(const TunnelPlan&) const = default;
  // "VXLAN VNI 4096 port 4789 underlay 192.168.200.2 mtu 1500, 2 peers" / "VXLAN off".
  std::string str() const;
};

// Disabled → {enabled = false} (whatever the Nodes say). Enabled → the plan, or an Error naming
// what is missing: this node has no Node resource (its underlay address is unknown).
Result<TunnelPlan> tunnel_plan(const model::DataplaneConfig& config,
                               const std::vector<model::Node>& nodes, const std::string& node);

}  // namespace weir::calc
