#include "dataplane/tunnel_sync.h"

#include <fmt/format.h>

namespace weir::dataplane {

Status sync_tunnel(TunnelOps& ops, const calc::TunnelPlan& plan, TunnelState& state) {
  if (!state.adopted) {
    auto found = ops.find_attached();
    if (!found) return found.error().wrap("VXLAN: looking for weir_from_ul on this node's interfaces");
    state.attached = *found;
    state.adopted = true;
    // A previous agent's program, perhaps of another build (an upgrade): this agent's takes its
    // place, attached in place (no detach), as the workloads' programs at the first apply.
    state.reattach = state.attached.has_value();
  }
  std::optional<UnderlayIf> want;
  if (plan.enabled) {
    auto itf = ops.interface_of(plan.underlay);
    if (!itf) {
      state.ok = false;
      return itf.error().wrap(fmt::format("VXLAN: finding the interface of this node's underlay "
                                          "address {}",
                                          plan.underlay.str()));
    }
    want = *itf;
  }
  // Unchanged: nothing to do, unless the interface moved (a new ifindex for the same address).
  if (state.ok && state.plan == plan && state.attached == want && !state.reattach) return {};
  state.ok = false;
  // The maps first: switching on, they name the interface the program is about to sit on;
  // switching off, no packet is encapsulated any more before the decap program goes.
  if (auto st = ops.write(plan, want ? want->ifindex : 0); !st) return st;
  state.plan = plan;
  if (state.attached != want || state.reattach) {
    if (want) {
      if (auto st = ops.attach(*want); !st)
        return st.error().wrap(fmt::format("VXLAN: attaching weir_from_ul to {}", want->name));
    }
    state.reattach = false;
    if (state.attached && state.attached != want) {
      if (auto st = ops.detach(*state.attached); !st)
        return st.error().wrap(fmt::format("VXLAN: detaching weir_from_ul from {}",
                                           state.attached->name));
    }
    state.attached = want;
  }
  state.ok = true;
  return {};
}

}  // namespace weir::dataplane
