// The kernel side of dataplane::TunnelOps: the underlay interface found by its address
// (getifaddrs in the calling thread's network namespace), weir_from_ul attached to its TC
// ingress with bpf::tc_attach (tcx link pinned under the pin root's links/, or a clsact filter),
// and the tunnel maps written by the function the agent passes (the loaded object's maps).
#pragma once

#include <functional>
#include <string>

#include "bpf/attach.h"
#include "dataplane/tunnel_sync.h"
#include "maps/pin_layout.h"

namespace weir::dataplane {

class KernelTunnel final : public TunnelOps {
 public:
  using Writer = std::function<Status(const calc::TunnelPlan&, int underlay_ifindex)>;
  // `from_ul_fd`: the loaded weir_from_ul program (borrowed; outlives this object).
  KernelTunnel(int from_ul_fd, bpf::TcMode mode, maps::PinLayout layout, Writer writer)
      : prog_fd_(from_ul_fd), mode_(mode), layout_(std::move(layout)), writer_(std::move(writer)) {}

  Result<UnderlayIf> interface_of(model::Ipv4 addr) override;
  Status attach(const UnderlayIf& itf) override;
  Status detach(const UnderlayIf& itf) override;
  Result<std::optional<UnderlayIf>> find_attached() override;
  Status write(const calc::TunnelPlan& plan, int underlay_ifindex) override {
    return writer_(plan, underlay_ifindex);
  }
  // The program attach() attaches from now on (another build of the programs).
  void set_program(int from_ul_fd) { prog_fd_ = from_ul_fd; }

 private:
  int prog_fd_;
  bpf::TcMode mode_;
  maps::PinLayout layout_;
  Writer writer_;
};

// The program's name in the kernel (bpf_prog_info.name keeps 15 characters).
inline constexpr const char* kFromUnderlayProgName = "weir_from_ul";

}  // namespace weir::dataplane
