// Userspace pieces of the policy path that need no kernel: `weir bpf ipsets dump` formatting,
// the policy rows of the counters table, and the jump slot allocator.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "cli/format.h"
#include "dataplane/policy_slots.h"
#include "weir/policy.h"

namespace weir {
namespace {

weir_ipset_key member(uint64_t id, const char* ip, uint32_t len) {
  weir_ipset_key k{};
  for (int i = 0; i < 8; i++) k.set_id[i] = uint8_t(id >> (56 - 8 * i));
  k.prefixlen = WEIR_IPSET_PREFIX_BASE + len;
  inet_pton(AF_INET, ip, &k.addr);
  return k;
}
weir_ipset_key named_port(uint64_t id, const char* ip, uint16_t port, uint8_t proto) {
  weir_ipset_key k = member(id, ip, 32);
  k.prefixlen = WEIR_IPSET_PREFIX_FULL;
  k.port = htons(port);
  k.proto = proto;
  return k;
}

TEST(IpsetsDump, SeedFormatSortedBySetAndMember) {
  // Given out of order: sets sorted by id, members by address.
  std::vector<weir_ipset_key> keys = {
      member(0xffef9f925a8a4ca4, "192.168.129.68", 32),
      member(0x303904ae5eae5418, "192.168.58.5", 32),
      member(0xffef9f925a8a4ca4, "192.168.129.66", 32),
  };
  EXPECT_EQ(cli::format_ipsets_dump(keys),
            "IP set 0x303904ae5eae5418\n"
            "192.168.58.5/32\n"
            "IP set 0xffef9f925a8a4ca4\n"
            "192.168.129.66/32\n"
            "192.168.129.68/32\n");
}

TEST(IpsetsDump, CidrsNamedPortsSmallIdsAndEmpty) {
  std::vector<weir_ipset_key> keys = {
      named_port(0x1, "10.0.0.5", 8080, 6),
      member(0x1, "10.0.0.0", 8),
      named_port(0x1, "10.0.0.5", 53, 17),
      member(0x1, "0.0.0.0", 0),
  };
  EXPECT_EQ(cli::format_ipsets_dump(keys),
            "IP set 0x0000000000000001\n"
            "0.0.0.0/0\n"
            "10.0.0.0/8\n"
            "10.0.0.5:8080/TCP\n"
            "10.0.0.5:53/UDP\n");
  EXPECT_EQ(cli::format_ipsets_dump({}), "");
  EXPECT_EQ(cli::ipsets_json({}).dump(), "[]");
  auto j = cli::ipsets_json(keys);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["id"], "0x0000000000000001");
  EXPECT_EQ(j[0]["members"][3], "10.0.0.5:53/UDP");
  // The id reads the same as the key's bytes.
  EXPECT_EQ(cli::ipset_id(member(0x303904ae5eae5418, "1.2.3.4", 32)), 0x303904ae5eae5418u);
  EXPECT_EQ(member(0x303904ae5eae5418, "1.2.3.4", 32).set_id[0], 0x30);
}

// Members of the exact hash (weir_ipsetx1) print as the trie's would: /32 or ip:port/PROTO.
TEST(IpsetsDump, ExactMembersPrintLikeTrieMembers) {
  weir_ipset_exact_key x{};
  const uint64_t id = 0x303904ae5eae5418;
  for (int i = 0; i < 8; i++) x.set_id[i] = uint8_t(id >> (56 - 8 * i));
  inet_pton(AF_INET, "192.168.58.5", &x.addr);
  weir_ipset_exact_key np = x;
  inet_pton(AF_INET, "10.0.0.5", &np.addr);
  np.port = htons(8080);
  np.proto = 6;
  weir_ipset_key k = cli::ipset_key_of(x);
  EXPECT_EQ(k.prefixlen, uint32_t(WEIR_IPSET_PREFIX_BASE + 32));
  EXPECT_EQ(cli::ipset_id(k), id);
  EXPECT_EQ(cli::ipset_member(k), "192.168.58.5/32");
  EXPECT_EQ(cli::ipset_member(cli::ipset_key_of(np)), "10.0.0.5:8080/TCP");
  // Merged with a trie member of the same set: one set, members sorted as before.
  EXPECT_EQ(cli::format_ipsets_dump({cli::ipset_key_of(x), member(id, "192.168.58.0", 24),
                                     cli::ipset_key_of(np)}),
            "IP set 0x303904ae5eae5418\n10.0.0.5:8080/TCP\n192.168.58.0/24\n192.168.58.5/32\n");
  // A port without a protocol is malformed: shown raw.
  weir_ipset_exact_key bad = x;
  bad.port = htons(80);
  EXPECT_EQ(cli::ipset_member(cli::ipset_key_of(bad)), "192.168.58.5 (prefixlen 128, port 80, proto 0)");
}

TEST(IpsetsDump, MalformedMembersStayVisible) {
  weir_ipset_key k = member(0x2, "10.1.2.3", 32);
  k.prefixlen = 40;  // below the id part: not a member weir writes
  EXPECT_EQ(cli::ipset_member(k), "10.1.2.3 (prefixlen 40, port 0, proto 0)");
}

TEST(CountersTablePolicyRows, ShowTheirCounts) {
  cli::IfaceCounters c;
  c.ifname = "weir0";
  weir_counters_val in{}, eg{};
  in.c[WEIR_CNT_ACCEPT_BY_POLICY] = 7;
  in.c[WEIR_CNT_DROP_BY_POLICY] = 3;
  in.c[WEIR_CNT_DROP_TAIL_CALL] = 1;
  in.c[WEIR_CNT_TOTAL] = 11;
  eg.c[WEIR_CNT_DROP_BY_POLICY] = 2;
  eg.c[WEIR_CNT_TOTAL] = 2;
  c.hooks[WEIR_HOOK_INGRESS] = in;
  c.hooks[WEIR_HOOK_EGRESS] = eg;
  std::string t = cli::format_counters_table(c);
  EXPECT_NE(t.find("| Accepted | by another program             |       0 |      0 | N/A |\n"
                   "|          | by failsafe                    |       0 |      0 | N/A |\n"
                   "|          | by policy                      |       7 |      0 | N/A |\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("|          | by policy                      |       3 |      2 | N/A |\n"), std::string::npos) << t;
  EXPECT_NE(t.find("|          | missed tail call               |       1 |      0 | N/A |\n"), std::string::npos) << t;
}

TEST(JumpSlotAllocator, TakesLowestFreePolicySlot) {
  dataplane::JumpSlotAllocator a(6);  // slots 2..5 for policies
  EXPECT_EQ(*a.take(), uint32_t(WEIR_JUMP_FIRST_POLICY_SLOT));
  EXPECT_EQ(*a.take(), 3u);
  EXPECT_EQ(*a.take(), 4u);
  a.release(3);
  EXPECT_FALSE(a.in_use(3));
  EXPECT_EQ(*a.take(), 3u);
  EXPECT_EQ(*a.take(), 5u);
  auto full = a.take();
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().err, ENOSPC);
  EXPECT_NE(full.error().msg.find("weir_jump1"), std::string::npos) << full.error().str();
  EXPECT_EQ(a.used(), 4u);
  a.release(0);  // a continuation slot: never handed out, ignored
  a.release(2);
  EXPECT_EQ(*a.take(), 2u);
}

TEST(JumpSlotAllocator, ReserveForAdoptedSlots) {
  dataplane::JumpSlotAllocator a(10);
  EXPECT_TRUE(a.reserve(2).ok());
  EXPECT_TRUE(a.reserve(4).ok());
  EXPECT_EQ(a.reserve(4).error().err, EEXIST);
  EXPECT_EQ(a.reserve(WEIR_JUMP_FROM_WL_POLICY_DONE).error().err, EINVAL);
  EXPECT_EQ(a.reserve(WEIR_JUMP_TO_WL_POLICY_DONE).error().err, EINVAL);
  EXPECT_EQ(a.reserve(10).error().err, EINVAL);
  EXPECT_EQ(*a.take(), 3u);
  EXPECT_EQ(*a.take(), 5u);
  a.release(4);
  EXPECT_EQ(*a.take(), 4u);
}

}  // namespace
}  // namespace weir
