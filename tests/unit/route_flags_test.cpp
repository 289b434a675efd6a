// calc's route flags reach weir_routes1 in the BPF encoding (dataplane/route_flags.h).
#include "dataplane/route_flags.h"

#include <gtest/gtest.h>

namespace weir::dataplane {
namespace {

TEST(RouteFlags, EachCalcFlagBecomesItsBpfFlag) {
  EXPECT_EQ(bpf_route_flags(0), 0u);
  EXPECT_EQ(bpf_route_flags(calc::kRouteLocalWorkload), WEIR_RT_F_LOCAL_WORKLOAD);
  EXPECT_EQ(bpf_route_flags(calc::kRouteRemote), WEIR_RT_F_REMOTE);
  EXPECT_EQ(bpf_route_flags(calc::kRouteHost), WEIR_RT_F_HOST);
  EXPECT_EQ(bpf_route_flags(calc::kRouteInPool), WEIR_RT_F_IN_POOL);
  EXPECT_EQ(bpf_route_flags(calc::kRouteRemote | calc::kRouteInPool),
            WEIR_RT_F_REMOTE | WEIR_RT_F_IN_POOL);
}

}  // namespace
}  // namespace weir::dataplane
