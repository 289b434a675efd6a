// VXLAN between nodes on this node (DataplaneConfig vxlanEnabled, docs/cluster.md): the agent
// writes calc::TunnelPlan into the BPF tunnel config and VTEP maps (weir_from_wl then
// encapsulates packets to remote pods; weir_from_ul decapsulates what arrives from the peers),
// and keeps weir_from_ul attached to the TC ingress of the interface that holds this node's
// underlay address. TunnelOps is the kernel side (a fake in unit tests); sync_tunnel is the
// logic, over it.
#pragma once

#include <optional>
#include <string>

#include "calc/tunnel.h"
#include "model/net.h"
#include "util/result.h"

namespace weir::dataplane {

struct UnderlayIf {
  int ifindex = 0;
  std::string name;
  auto operator<=>(const UnderlayIf&) const = default;
};

class TunnelOps {
 public:
  virtual ~TunnelOps() = default;
  // The interface that holds `addr` in this network namespace (ENOENT when none does).
  virtual Result<UnderlayIf> interface_of(model::Ipv4 addr) = 0;
  // weir_from_ul on the TC ingress of the interface (idempotent; replaces an older one).
  virtual Status attach(const UnderlayIf& itf) = 0;
  // The interface whose TC ingress carries weir_from_ul now (a previous agent's), if any.
  virtual Result<std::optional<UnderlayIf>> find_attached() = 0;
  virtual Status detach(const UnderlayIf& itf) = 0;
  // The tunnel config map (enabled, VNI, port, MTU, underlay ifindex and address) and the VTEP
  // set; a disabled plan writes "off", so weir_from_wl stops encapsulating.
  virtual Status write(const calc::TunnelPlan& plan, int underlay_ifindex) = 0;
};

// What sync_tunnel last left in place.
struct TunnelState {
  calc::TunnelPlan plan;            // written to the maps
  std::optional<UnderlayIf> attached;  // where weir_from_ul is
  bool ok = false;                  // false: retry at the next sync
  bool adopted = false;             // `attached` was read from the kernel (first sync)
  bool reattach = false;            // the program changed (another build, a previous agent's
                                    // found at adoption): attach this one in its place
};

// Brings the kernel in line with `plan` (an Error from calc::tunnel_plan counts as "off", and is
// the caller's to log): first adopts where a previous agent left weir_from_ul; finds the underlay interface, attaches weir_from_ul there (and detaches
// it from an interface that no longer holds the address), writes the maps; with VXLAN off,
// writes "off" and detaches. Cheap when nothing changed and the last run succeeded. On error the
// state says what is in place and ok = false.
Status sync_tunnel(TunnelOps& ops, const calc::TunnelPlan& plan, TunnelState& state);

}  // namespace weir::dataplane
