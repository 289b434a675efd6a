#include "calc/tunnel.h"

#include <fmt/format.h>

#include <algorithm>

namespace weir::calc {

std::string TunnelPlan::str() const {
  if (!enabled) return "VXLAN off";
  return fmt::format("VXLAN VNI {} port {} underlay {} mtu {}, {} peer{}", vni, port,
                     underlay.str(), underlay_mtu, vteps.size(), vteps.size() == 1 ? "" : "s");
}

Result<TunnelPlan> tunnel_plan(const model::DataplaneConfig& config,
                               const std::vector<model::Node>& nodes, const std::string& node) {
  TunnelPlan p;
  if (!config.vxlan_enabled) return p;
  p.enabled = true;
  p.vni = config.vxlan_vni;
  p.port = config.vxlan_port;
  p.underlay_mtu = config.underlay_mtu;
  bool found = false;
  for (const auto& n : nodes) {
    if (n.meta.name == node) {
      p.underlay = n.underlay_address;
      found = true;
    } else {
      p.vteps.push_back(n.underlay_address);
    }
  }
  if (!found)
    return Error{ENOENT, fmt::format("vxlanEnabled: this node ({}) has no Node resource, so its "
                                     "underlay address (where VXLAN leaves and arrives) is unknown",
                                     node)};
  std::sort(p.vteps.begin(), p.vteps.end());
  p.vteps.erase(std::unique(p.vteps.begin(), p.vteps.end()), p.vteps.end());
  return p;
}

}  // namespace weir::calc
