#include "dataplane/tunnel.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cerrno>
#include <set>

namespace weir::dataplane {

TunnelConfig tunnel_config(const calc::TunnelPlan& plan, uint32_t underlay_ifindex) {
  TunnelConfig t;
  t.vxlan_enabled = plan.enabled;
  t.vni = plan.vni;
  t.port = plan.port;
  t.underlay_mtu = plan.underlay_mtu;
  t.underlay_ifindex = underlay_ifindex;
  t.underlay_addr = plan.underlay;
  return t;
}

Result<weir_tunnel_val> tunnel_value(const TunnelConfig& c) {
  weir_tunnel_val v{};
  if (!c.vxlan_enabled) return v;
  auto invalid = [](const std::string& what) {
    return Error{EINVAL, "VXLAN tunnel configuration: " + what};
  };
  if (c.vni == 0 || c.vni > model::kMaxVxlanVni)
    return invalid(fmt::format("VNI {} is not in 1..{}", c.vni, model::kMaxVxlanVni));
  if (c.port == 0) return invalid("UDP port 0");
  if (c.underlay_mtu < model::kMinUnderlayMtu || c.underlay_mtu > model::kMaxUnderlayMtu)
    return invalid(fmt::format("underlay MTU {} is not in {}..{}", c.underlay_mtu,
                               model::kMinUnderlayMtu, model::kMaxUnderlayMtu));
  if (c.underlay_ifindex == 0) return invalid("no underlay interface (ifindex 0)");
  if (c.underlay_addr.value == 0) return invalid("no underlay address (0.0.0.0)");
  v.flags = WEIR_TUNNEL_F_VXLAN;
  v.vni = c.vni;
  v.port = htons(c.port);
  v.mtu = static_cast<__u16>(c.underlay_mtu);
  v.underlay_ifindex = c.underlay_ifindex;
  v.underlay_addr = c.underlay_addr.network_order();
  return v;
}

Status set_tunnel(maps::TunnelTable& t, const TunnelConfig& c) {
  auto v = tunnel_value(c);
  if (!v) return v.error();
  auto st = t.update(0, *v, BPF_ANY);
  if (!st) {
    return st.error().wrap(fmt::format("writing the tunnel configuration (VXLAN {}) into {}",
                                       c.vxlan_enabled ? "on" : "off", t.name()));
  }
  return {};
}

Status set_vteps(maps::VtepsTable& t, const std::vector<model::Ipv4>& nodes) {
  std::set<uint32_t> want;  // network order, as the keys
  for (const model::Ipv4& n : nodes) {
    if (n.value == 0)
      return Error{EINVAL, "VXLAN peer 0.0.0.0: a node without an underlay address"};
    want.insert(n.network_order());
  }
  auto have = t.dump();
  if (!have) return have.error().wrap("reading the VXLAN peers (" + t.name() + ")");
  std::set<uint32_t> stale;
  for (const auto& [addr, flags] : *have) {
    if (!want.contains(addr)) stale.insert(addr);
  }
  for (const auto& [addr, flags] : *have) {
    if (want.contains(addr) && flags == WEIR_VTEP_F_NODE) want.erase(addr);  // already right
  }
  for (uint32_t addr : want) {
    auto st = t.update(addr, WEIR_VTEP_F_NODE, BPF_ANY);
    if (!st) {
      const std::string who = model::Ipv4::from_network_order(addr).str();
      if (st.error().err == E2BIG) {
        return st.error().wrap(fmt::format(
            "adding VXLAN peer {}: {} holds at most {} nodes; that node's VXLAN packets are "
            "dropped here",
            who, t.name(), t.max_entries()));
      }
      return st.error().wrap("adding VXLAN peer " + who + " to " + t.name());
    }
  }
  for (uint32_t addr : stale) {
    auto r = t.remove(addr);
    if (!r) {
      return r.error().wrap("removing VXLAN peer " + model::Ipv4::from_network_order(addr).str() +
                            " from " + t.name());
    }
  }
  return {};
}

}  // namespace weir::dataplane
