// The harness loads the datapath as the agent does (dataplane::TcPrograms::load): maps pinned
// under a pin root with weir's marker, the policy continuations in jump slots 0 and 1, the VXLAN
// encapsulation in weir_tun_jump1; and it loads once per process and size set, emptying the
// maps for each user.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include "maps/weir_maps.h"
#include "netns_env.h"
#include "tc_harness.h"
#include "weir/tunnel.h"

namespace weir::test {
namespace {

uint32_t prog_id(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
  return info.id;
}

TEST(TcHarness, LoadsThroughTheAgentsLoaderWithPinsAndContinuations) {
  ASSERT_TRUE(topology().ready) << topology().error;
  auto obj = TcObject::shared(MapSizes::small());
  ASSERT_TRUE(obj.ok()) << obj.error().str();
  const maps::PinLayout& layout = (*obj)->layout();
  auto marker = maps::is_pin_marker(layout.marker_path());
  ASSERT_TRUE(marker.ok()) << marker.error().str();
  EXPECT_TRUE(*marker) << "no weir marker under " << layout.root;
  for (const auto& name : maps::all_map_names()) {
    auto pinned = bpf::MapFd::open_pinned(layout.map_path(name));
    ASSERT_TRUE(pinned.ok()) << pinned.error().str();
    EXPECT_EQ(pinned->info().name, name);
  }
  auto p = maps::PolicyMaps::open_pinned(layout);
  ASSERT_TRUE(p.ok()) << p.error().str();
  EXPECT_EQ(p->jump.lookup(WEIR_JUMP_FROM_WL_POLICY_DONE).value(), prog_id((*obj)->prog_fd(Prog::FromWlPol)));
  EXPECT_EQ(p->jump.lookup(WEIR_JUMP_TO_WL_POLICY_DONE).value(), prog_id((*obj)->prog_fd(Prog::ToWlPol)));
  auto t = maps::TunnelMaps::open_pinned(layout);
  ASSERT_TRUE(t.ok()) << t.error().str();
  EXPECT_EQ(t->tun_jump.lookup(WEIR_TUN_JUMP_VXLAN_ENCAP).value(), prog_id((*obj)->prog_fd(Prog::VxlanEncap)));
}

TEST(TcHarness, SharedObjectIsLoadedOnceAndEmptiedForEachUser) {
  ASSERT_TRUE(topology().ready) << topology().error;
  auto first = TcObject::shared(MapSizes::small());
  ASSERT_TRUE(first.ok()) << first.error().str();
  const uint32_t id = prog_id((*first)->prog_fd(Prog::FromWl));
  ASSERT_TRUE((*first)->ct_put(ct_key(1, 2, 3, 4, 6).first, weir_ct_val{}).ok());
  ASSERT_EQ((*first)->ct_all().size(), 1u);
  auto second = TcObject::shared(MapSizes::small());
  ASSERT_TRUE(second.ok()) << second.error().str();
  EXPECT_EQ(*second, *first);
  EXPECT_EQ(prog_id((*second)->prog_fd(Prog::FromWl)), id) << "loaded again";
  EXPECT_TRUE((*second)->ct_all().empty());
  auto p = maps::PolicyMaps::open_pinned((*second)->layout());
  ASSERT_TRUE(p.ok()) << p.error().str();
  EXPECT_TRUE(p->jump.lookup(WEIR_JUMP_FROM_WL_POLICY_DONE).value().has_value())
      << "the continuations are written back after emptying";
  auto t = maps::TunnelMaps::open_pinned((*second)->layout());
  ASSERT_TRUE(t.ok()) << t.error().str();
  EXPECT_TRUE(t->tun_jump.lookup(WEIR_TUN_JUMP_VXLAN_ENCAP).value().has_value())
      << "the encapsulation is written back after emptying";
}

}  // namespace
}  // namespace weir::test
