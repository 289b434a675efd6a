// calc's route flags (calc::RouteFlag) -> the BPF encoding of weir_routes1 (WEIR_RT_F_*).
// calc says what a route is in its own terms; this is the one place that knows both.
#pragma once

#include <cstdint>

#include "calc/calc.h"
#include "weir/routes.h"

namespace weir::dataplane {

constexpr uint32_t bpf_route_flags(uint32_t calc_flags) {
  uint32_t out = 0;
  if (calc_flags & calc::kRouteLocalWorkload) out |= WEIR_RT_F_LOCAL_WORKLOAD;
  if (calc_flags & calc::kRouteHost) out |= WEIR_RT_F_HOST;
  if (calc_flags & calc::kRouteRemote) out |= WEIR_RT_F_REMOTE;
  if (calc_flags & calc::kRouteInPool) out |= WEIR_RT_F_IN_POOL;
  return out;
}

}  // namespace weir::dataplane
