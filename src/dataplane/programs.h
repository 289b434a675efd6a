// The TC programs and maps as the agent loads them: the embedded object (bpf/tc.bpf.c) with
// every map pinned under the pin root, so that a restarted or upgraded agent adopts the maps
// of the previous one (and with them every established flow).
#pragma once

#include <memory>

#include "maps/pin_layout.h"
#include "maps/weir_maps.h"
#include "model/resources.h"
#include "util/result.h"

namespace weir::dataplane {

class TcPrograms {
 public:
  TcPrograms(TcPrograms&&) noexcept;
  TcPrograms& operator=(TcPrograms&&) noexcept;
  ~TcPrograms();

  // Opens the embedded object, sizes the maps, points every map at its pin under
  // layout.maps_dir() and loads. A map already pinned there is reused as it is: when its size
  // differs from `sizes`, the pinned size wins (a warning says that the new size takes effect
  // after `weir bpf cleanup`), because recreating it would drop every tracked flow.
  static Result<TcPrograms> load(const maps::PinLayout& layout, const model::MapSizes& sizes);

  int from_wl_fd() const;  // weir_from_wl: tc ingress of a workload's host-side veth
  int to_wl_fd() const;    // weir_to_wl: tc egress of a workload's host-side veth
  maps::WeirMaps& maps() { return *maps_; }

 private:
  struct Impl;
  explicit TcPrograms(std::unique_ptr<Impl> impl, std::unique_ptr<maps::WeirMaps> m);
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<maps::WeirMaps> maps_;
};

}  // namespace weir::dataplane
