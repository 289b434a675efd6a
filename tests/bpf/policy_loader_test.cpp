// The agent's loader and the policy manager's API against the kernel: TcPrograms::load writes
// the policy continuations into jump slots 0 and 1, a restart (load again on the same pins)
// replaces them and keeps the policy programs in the other slots, set_policy_slot flips an
// ifstate entry, PolicyMaps opens the pins, read_ipsets reads the IP set members back.
// Pins live under /sys/fs/bpf/weir-polload-<pid>, removed in TearDown.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "bpf/bpffs.h"
#include "cli/bpf_ops.h"
#include "dataplane/policy_slots.h"
#include "dataplane/programs.h"
#include "netns_env.h"
#include "util/fd.h"
#include "weir/policy.h"

namespace weir::dataplane {
namespace {

uint32_t prog_id(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0) << strerror(errno);
  return info.id;
}

// A trivial SCHED_CLS program (r0 = TC_ACT_SHOT) to stand for a policy program.
Fd shot_prog() {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 2},  // r0 = TC_ACT_SHOT
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_t_shot", "GPL", insns, 2, nullptr);
  EXPECT_GE(fd, 0) << strerror(errno);
  return Fd(fd);
}

class PolicyLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::topology().ready) << test::topology().error;
    ASSERT_TRUE(bpf::ensure_bpffs().ok());
    layout_.root = "/sys/fs/bpf/weir-polload-" + std::to_string(getpid());
    ASSERT_TRUE(bpf::mkdirs(layout_.maps_dir()).ok());
  }
  void TearDown() override {
    auto st = bpf::remove_tree(layout_.root);
    EXPECT_TRUE(st.ok()) << st.error().str();
  }
  std::optional<uint32_t> slot_prog(maps::PolicyMaps& p, uint32_t slot) {
    auto v = p.jump.lookup(slot);
    EXPECT_TRUE(v.ok()) << v.error().str();
    if (!v.ok() || !v->has_value()) return std::nullopt;
    return **v;
  }
  maps::PinLayout layout_;
};

TEST_F(PolicyLoaderTest, ContinuationsInstalledAndReplacedOnRestart) {
  model::MapSizes sizes;
  sizes.ipsets = 4096;
  sizes.rule_counters = 512;
  uint32_t first_from = 0, first_to = 0;
  Fd policy = shot_prog();
  {
    auto progs = TcPrograms::load(layout_, sizes);
    ASSERT_TRUE(progs.ok()) << progs.error().str();
    auto& p = progs->policy_maps();
    first_from = prog_id(progs->from_wl_pol_fd());
    first_to = prog_id(progs->to_wl_pol_fd());
    EXPECT_EQ(slot_prog(p, WEIR_JUMP_FROM_WL_POLICY_DONE), first_from);
    EXPECT_EQ(slot_prog(p, WEIR_JUMP_TO_WL_POLICY_DONE), first_to);
    EXPECT_FALSE(slot_prog(p, WEIR_JUMP_FIRST_POLICY_SLOT).has_value());
    EXPECT_EQ(p.ipsets.info().max_entries, 4096u);
    EXPECT_EQ(p.ipset_exact.info().max_entries, 4096u);  // mapSizes.ipsets sizes both
    EXPECT_EQ(p.rule_cnt.info().max_entries, 512u);
    EXPECT_EQ(p.jump.info().max_entries, uint32_t(WEIR_MAP_JUMP_SIZE));
    // A policy program in slot 2, as the policy manager would install it.
    maps::KernelTable jump(p.jump);
    ASSERT_TRUE(install_program(jump, 2, policy.get()).ok());
    // The fds for polprog::load.
    auto f = progs->policy_map_fds();
    EXPECT_GE(f.state, 0);
    EXPECT_GE(f.ipsets, 0);
    EXPECT_GE(f.ipset_exact, 0);
    EXPECT_GE(f.rule_cnt, 0);
    EXPECT_GE(f.jump, 0);
    EXPECT_GE(f.counters, 0);
  }
  // The agent is gone: the pinned jump map keeps the programs.
  {
    auto p = maps::PolicyMaps::open_pinned(layout_);
    ASSERT_TRUE(p.ok()) << p.error().str();
    EXPECT_EQ(slot_prog(*p, WEIR_JUMP_FROM_WL_POLICY_DONE), first_from);
    EXPECT_EQ(slot_prog(*p, 2), prog_id(policy.get()));
  }
  // Restart: new continuations replace the old ones; the policy program stays.
  auto again = TcPrograms::load(layout_, sizes);
  ASSERT_TRUE(again.ok()) << again.error().str();
  auto& p = again->policy_maps();
  EXPECT_EQ(slot_prog(p, WEIR_JUMP_FROM_WL_POLICY_DONE), prog_id(again->from_wl_pol_fd()));
  EXPECT_EQ(slot_prog(p, WEIR_JUMP_TO_WL_POLICY_DONE), prog_id(again->to_wl_pol_fd()));
  EXPECT_NE(prog_id(again->from_wl_pol_fd()), first_from);
  EXPECT_EQ(slot_prog(p, 2), prog_id(policy.get()));
  maps::KernelTable jump(p.jump);
  ASSERT_TRUE(install_program(jump, 7, policy.get()).ok());
  auto occupied = occupied_policy_slots(jump);
  ASSERT_TRUE(occupied.ok()) << occupied.error().str();
  EXPECT_EQ(*occupied, (std::vector<uint32_t>{2, 7})) << "continuation slots are not policy slots";
  JumpSlotAllocator alloc(p.jump.info().max_entries);
  for (uint32_t s : *occupied) ASSERT_TRUE(alloc.reserve(s).ok());
  EXPECT_EQ(*alloc.take(), 3u);
  ASSERT_TRUE(clear_program(jump, 7).ok());
  ASSERT_TRUE(clear_program(jump, 2).ok());
  EXPECT_FALSE(slot_prog(p, 2).has_value());
  EXPECT_TRUE(clear_program(jump, 2).ok()) << "clearing an empty slot is fine";
  EXPECT_FALSE(install_program(jump, 3, -1).ok());
}

TEST_F(PolicyLoaderTest, SetPolicySlotFlipsOneDirection) {
  auto progs = TcPrograms::load(layout_, model::MapSizes{});
  ASSERT_TRUE(progs.ok()) << progs.error().str();
  auto& ifstate_map = progs->maps().ifstate;
  maps::KernelTable ifstate(ifstate_map);
  weir_ifstate_val v{};
  std::strncpy(v.name, "weirpol0", sizeof(v.name) - 1);
  v.flags = WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY;
  v.ingress_slot = WEIR_NO_POLICY_SLOT;
  v.egress_slot = WEIR_NO_POLICY_SLOT;
  v.host_mac[0] = 0xee;
  ASSERT_TRUE(ifstate.update(42, v).ok());

  ASSERT_TRUE(set_policy_slot(ifstate, 42, calc::pol::Direction::Ingress, 7).ok());
  auto got = ifstate.lookup(42);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->ingress_slot, 7u);
  EXPECT_EQ((*got)->egress_slot, WEIR_NO_POLICY_SLOT);
  EXPECT_EQ((*got)->flags, v.flags) << "the rest of the entry is kept";
  EXPECT_EQ((*got)->host_mac[0], 0xee);
  ASSERT_TRUE(set_policy_slot(ifstate, 42, calc::pol::Direction::Egress, 9).ok());
  got = ifstate.lookup(42);
  EXPECT_EQ((*got)->ingress_slot, 7u);
  EXPECT_EQ((*got)->egress_slot, 9u);
  ASSERT_TRUE(set_policy_slots(ifstate, 42, WEIR_NO_POLICY_SLOT, WEIR_NO_POLICY_SLOT).ok());
  got = ifstate.lookup(42);
  EXPECT_EQ((*got)->ingress_slot, WEIR_NO_POLICY_SLOT);
  EXPECT_EQ((*got)->egress_slot, WEIR_NO_POLICY_SLOT);

  auto missing = set_policy_slot(ifstate, 43, calc::pol::Direction::Ingress, 7);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err, ENOENT);
  EXPECT_NE(missing.error().msg.find("ifindex 43"), std::string::npos) << missing.error().str();
  EXPECT_FALSE(ifstate.lookup(43)->has_value()) << "no entry is created";
}

TEST_F(PolicyLoaderTest, IpsetsReadBackAndMissingPinsExplained) {
  {
    auto none = maps::PolicyMaps::open_pinned(layout_);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().err, ENOENT);
    EXPECT_NE(none.error().msg.find("no weir state under " + layout_.root), std::string::npos)
        << none.error().str();
  }
  auto progs = TcPrograms::load(layout_, model::MapSizes{});
  ASSERT_TRUE(progs.ok()) << progs.error().str();
  auto p = maps::PolicyMaps::open_pinned(layout_);
  ASSERT_TRUE(p.ok()) << p.error().str();
  auto empty = cli::read_ipsets(*p);
  ASSERT_TRUE(empty.ok()) << empty.error().str();
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(cli::format_ipsets_dump(*empty), "");

  // A /24 in the trie; a /32 and a named-port member in the exact hash; another set's /32.
  const uint64_t id = 0x303904ae5eae5418, id2 = 0xffef9f925a8a4ca4;
  weir_ipset_key k{};
  for (int i = 0; i < 8; i++) k.set_id[i] = uint8_t(id >> (56 - 8 * i));
  k.prefixlen = WEIR_IPSET_PREFIX_BASE + 24;
  k.addr = htonl(0xc0a83a00);  // 192.168.58.0/24
  ASSERT_TRUE(p->ipsets.update(k, 1).ok());
  weir_ipset_exact_key x{};
  std::memcpy(x.set_id, k.set_id, 8);
  x.addr = htonl(0xc0a83a05);  // 192.168.58.5
  ASSERT_TRUE(p->ipset_exact.update(x, 1).ok());
  weir_ipset_exact_key np = x;
  np.addr = htonl(0x0a000005);
  np.port = htons(8080);
  np.proto = 6;
  ASSERT_TRUE(p->ipset_exact.update(np, 1).ok());
  weir_ipset_exact_key other{};
  for (int i = 0; i < 8; i++) other.set_id[i] = uint8_t(id2 >> (56 - 8 * i));
  other.addr = htonl(0xc0a88142);  // 192.168.129.66
  ASSERT_TRUE(p->ipset_exact.update(other, 1).ok());
  auto keys = cli::read_ipsets(*p);
  ASSERT_TRUE(keys.ok()) << keys.error().str();
  EXPECT_EQ(cli::format_ipsets_dump(*keys),
            "IP set 0x303904ae5eae5418\n10.0.0.5:8080/TCP\n192.168.58.0/24\n192.168.58.5/32\n"
            "IP set 0xffef9f925a8a4ca4\n192.168.129.66/32\n");

  // The datapath's lookup semantics: a full-length key finds the trie's CIDR member whatever
  // the port; the exact hash finds the named-port member only with its port and protocol.
  weir_ipset_key q = k;
  q.prefixlen = WEIR_IPSET_PREFIX_FULL;
  q.addr = htonl(0xc0a83a63);  // 192.168.58.99
  q.port = htons(443);
  q.proto = 6;
  uint32_t val = 0;
  EXPECT_EQ(bpf_map_lookup_elem(p->ipsets.fd().fd(), &q, &val), 0);
  q.addr = np.addr;
  EXPECT_NE(bpf_map_lookup_elem(p->ipsets.fd().fd(), &q, &val), 0);
  weir_ipset_exact_key qx = np;
  EXPECT_EQ(bpf_map_lookup_elem(p->ipset_exact.fd().fd(), &qx, &val), 0);
  qx.port = htons(8081);
  EXPECT_NE(bpf_map_lookup_elem(p->ipset_exact.fd().fd(), &qx, &val), 0);
}

}  // namespace
}  // namespace weir::dataplane
