// The in-memory maps (maps/fake_table.h) answer as the kernel does where the managers depend on
// it: flags, capacity, absent keys, chunked walks that see deletions.
#include <gtest/gtest.h>

#include "maps/fake_table.h"

namespace weir::maps {
namespace {

TEST(FakeTable, UpdateFlagsFollowTheKernel) {
  FakeTable<uint32_t, uint32_t> t("t", 4);
  ASSERT_TRUE(t.update(1, 10, BPF_NOEXIST).ok());
  auto again = t.update(1, 11, BPF_NOEXIST);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().err, EEXIST);
  auto absent = t.update(2, 20, BPF_EXIST);
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.error().err, ENOENT);
  EXPECT_NE(absent.error().str().find("map t"), std::string::npos) << absent.error().str();
  ASSERT_TRUE(t.update(1, 12, BPF_EXIST).ok());
  EXPECT_EQ(**t.lookup(1), 12u);
  EXPECT_EQ(t.update(1, 1, 7).error().err, EINVAL);
  EXPECT_FALSE(t.lookup(2)->has_value());
  EXPECT_FALSE(*t.remove(2));
  EXPECT_TRUE(*t.remove(1));
}

TEST(FakeTable, AFullTableRefusesNewKeysAsItsKindDoes) {
  FakeTable<uint32_t, uint32_t> hash("h", 2);
  ASSERT_TRUE(hash.update(1, 1).ok());
  ASSERT_TRUE(hash.update(2, 2).ok());
  EXPECT_EQ(hash.update(3, 3).error().err, E2BIG);
  EXPECT_TRUE(hash.update(2, 22).ok()) << "replacing a key needs no room";

  FakeTable<uint32_t, uint32_t> trie("t", 1, FakeKind::LpmTrie);
  ASSERT_TRUE(trie.update(1, 1).ok());
  EXPECT_EQ(trie.update(2, 2).error().err, ENOSPC);

  FakeTable<uint32_t, uint32_t> lru("l", 2, FakeKind::LruHash);
  ASSERT_TRUE(lru.update(1, 1).ok());
  ASSERT_TRUE(lru.update(2, 2).ok());
  ASSERT_TRUE(lru.lookup(1).ok());  // 2 is now the least recently used
  ASSERT_TRUE(lru.update(3, 3).ok());
  EXPECT_TRUE(lru.contains(1));
  EXPECT_FALSE(lru.contains(2));
  EXPECT_TRUE(lru.contains(3));

  FakeTable<uint32_t, uint32_t> progs("j", 4, FakeKind::ProgArray);
  EXPECT_TRUE(progs.update(3, 9).ok());
  EXPECT_EQ(progs.update(4, 9).error().err, E2BIG);
  EXPECT_EQ(progs.update(1, 9, BPF_NOEXIST).error().err, EEXIST) << "arrays are preallocated";
}

TEST(FakeTable, ChunkedWalkSeesDeletionsOfLaterEntries) {
  FakeTable<uint32_t, uint32_t> t("t", 100);
  for (uint32_t i = 0; i < 10; i++) ASSERT_TRUE(t.update(i, i * 10).ok());
  std::vector<uint32_t> seen;
  auto st = t.for_each_chunk(
      [&](const uint32_t* k, const uint32_t* v, size_t n) -> Status {
        for (size_t i = 0; i < n; i++) {
          EXPECT_EQ(v[i], k[i] * 10);
          seen.push_back(k[i]);
          (void)t.remove(k[i] + 5);  // a later chunk then lacks it
        }
        return {};
      },
      3);
  ASSERT_TRUE(st.ok());
  // [0 1 2] deletes 5 6 7; [3 4 8] deletes 8 9 (8 already handed out): 9 is never seen.
  EXPECT_EQ(seen, (std::vector<uint32_t>{0, 1, 2, 3, 4, 8}));
  auto failing = t.for_each_chunk([](const uint32_t*, const uint32_t*, size_t) -> Status {
    return Error{EIO, "stop"};
  }, 2);
  EXPECT_EQ(failing.error().err, EIO);
}

TEST(FakeTable, InjectedFailuresCarryTheirErrno) {
  FakeTable<uint32_t, uint32_t> t("t", 4);
  t.fail_updates(ENOMEM);
  EXPECT_EQ(t.update(1, 1).error().err, ENOMEM);
  t.fail_updates(0);
  EXPECT_TRUE(t.update(1, 1).ok());
  EXPECT_EQ(t.updates(), 2u);
}

}  // namespace
}  // namespace weir::maps
