// Every program variant through the verifier. The object has one variant (no read-only
// configuration): the two main programs and the two policy continuations, loaded with the
// compiled-in default map sizes, exactly as the agent loads them before it overrides sizes.
#include <gtest/gtest.h>

#include "netns_env.h"
#include "tc_harness.h"
#include "weir/maps.h"

namespace weir::test {
namespace {

TEST(TcVerifier, WholeObjectLoadsWithDefaultMapSizes) {
  ASSERT_TRUE(topology().ready) << topology().error;
  auto obj = TcObject::load(MapSizes::defaults());
  ASSERT_TRUE(obj.ok()) << obj.error().str();
  for (Prog p : {Prog::FromWl, Prog::ToWl, Prog::FromWlPol, Prog::ToWlPol}) {
    EXPECT_GE((*obj)->prog_fd(p), 0);
    auto insns = (*obj)->prog_insns(p);
    ASSERT_TRUE(insns.ok()) << insns.error().str();
    EXPECT_GT(*insns, 100u);
  }
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_NAT_FE), uint32_t(WEIR_MAP_NAT_FE_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_NAT_BE), uint32_t(WEIR_MAP_NAT_BE_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_CT), uint32_t(WEIR_MAP_CT_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_ROUTES), uint32_t(WEIR_MAP_ROUTES_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_IFSTATE), uint32_t(WEIR_MAP_IFSTATE_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_COUNTERS), uint32_t(WEIR_MAP_COUNTERS_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_JUMP), uint32_t(WEIR_MAP_JUMP_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_PSTATE), 1u);
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_IPSETS), uint32_t(WEIR_MAP_IPSETS_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_IPSET_X), uint32_t(WEIR_MAP_IPSET_X_SIZE));
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_RULE_CNT), uint32_t(WEIR_MAP_RULE_CNT_SIZE));
}

TEST(TcVerifier, MapSizesCanBeOverriddenBeforeLoad) {
  ASSERT_TRUE(topology().ready) << topology().error;
  MapSizes s;
  s.ct = 1000;
  s.routes = 77;
  auto obj = TcObject::load(s);
  ASSERT_TRUE(obj.ok()) << obj.error().str();
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_CT), 1000u);
  EXPECT_EQ((*obj)->map_max_entries(WEIR_MAP_ROUTES), 77u);
}

}  // namespace
}  // namespace weir::test
