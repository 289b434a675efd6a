// Typed maps (src/bpf/map.h), bpffs helpers and WeirMaps on real kernel maps. Needs root
// (fails otherwise). Pins live under /sys/fs/bpf/weir-maps-<pid>, removed in TearDown.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <set>
#include <thread>

#include "bpf/bpffs.h"
#include "bpf/map.h"
#include "maps/weir_maps.h"
#include "util/fd.h"

namespace weir::attach_maps_test {
namespace {

struct Key {
  uint32_t a;
  uint16_t b;
  uint16_t c;
};
struct Val12 {  // 12 bytes: per-CPU slots are rounded up to 16
  uint32_t x, y, z;
};

Fd make_map(bpf_map_type type, uint32_t key, uint32_t val, uint32_t max, const char* name, uint32_t flags = 0) {
  auto m = bpf::MapFd::create(type, name, key, val, max, flags);
  EXPECT_TRUE(m.ok()) << m.error().str();
  if (!m.ok()) return Fd();
  return Fd(::dup(m->fd()));
}

// Wrap an fd; a failure is a test failure and yields an invalid MapFd (whose use then fails).
bpf::MapFd mapfd(Fd fd) {
  auto m = bpf::MapFd::from_fd(std::move(fd));
  EXPECT_TRUE(m.ok()) << m.error().str();
  if (!m.ok()) return bpf::MapFd();
  return std::move(m).value();
}

class MapsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "map tests need root (CAP_BPF)";
    auto st = bpf::ensure_bpffs();
    ASSERT_TRUE(st.ok()) << st.error().str();
    root_ = "/sys/fs/bpf/weir-maps-" + std::to_string(getpid());
    ASSERT_TRUE(bpf::mkdirs(root_).ok());
  }
  void TearDown() override {
    if (!root_.empty()) {
      auto st = bpf::remove_tree(root_);
      EXPECT_TRUE(st.ok()) << st.error().str();
      struct stat sb {};
      EXPECT_NE(::stat(root_.c_str(), &sb), 0);
    }
  }
  std::string root_;
};

TEST_F(MapsTest, TypedHashMapOperations) {
  Fd fd = make_map(BPF_MAP_TYPE_HASH, sizeof(Key), sizeof(uint64_t), 64, "weir_t_hash");
  ASSERT_TRUE(fd.valid());
  auto mfd = bpf::MapFd::from_fd(std::move(fd));
  ASSERT_TRUE(mfd.ok()) << mfd.error().str();
  EXPECT_EQ(mfd->name(), "weir_t_hash");
  EXPECT_EQ(mfd->info().key_size, sizeof(Key));
  EXPECT_EQ(mfd->info().max_entries, 64u);
  EXPECT_NE(mfd->info().id, 0u);
  auto m = bpf::Map<Key, uint64_t>::create(std::move(*mfd));
  ASSERT_TRUE(m.ok()) << m.error().str();

  auto miss = m->lookup({1, 2, 3});
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss->has_value());
  for (uint32_t i = 0; i < 40; i++) ASSERT_TRUE(m->update({i, 7, 0}, i * 10).ok());
  auto hit = m->lookup({5, 7, 0});
  ASSERT_TRUE(hit.ok() && hit->has_value());
  EXPECT_EQ(**hit, 50u);
  EXPECT_EQ(*m->count(), 40u);
  // BPF_NOEXIST on an existing key fails with EEXIST and names the map.
  auto dup = m->update({5, 7, 0}, 1, BPF_NOEXIST);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().err, EEXIST);
  EXPECT_NE(dup.error().msg.find("weir_t_hash"), std::string::npos);

  auto rm = m->remove({5, 7, 0});
  ASSERT_TRUE(rm.ok());
  EXPECT_TRUE(*rm);
  rm = m->remove({5, 7, 0});
  ASSERT_TRUE(rm.ok());
  EXPECT_FALSE(*rm);

  auto d = m->dump();
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->size(), 39u);
  std::set<uint32_t> seen;
  for (const auto& [k, v] : *d) {
    EXPECT_EQ(v, k.a * 10u);
    EXPECT_TRUE(seen.insert(k.a).second) << "key returned twice";
  }
  EXPECT_EQ(seen.count(5), 0u);
  auto cleared = m->clear();
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(*cleared, 39u);
  EXPECT_EQ(*m->count(), 0u);
}

TEST_F(MapsTest, DumpWhileDeletingNeverRepeatsKeys) {
  Fd fd = make_map(BPF_MAP_TYPE_HASH, 4, 4, 4096, "weir_t_churn");
  ASSERT_TRUE(fd.valid());
  auto m = bpf::Map<uint32_t, uint32_t>::create(mapfd(std::move(fd)));
  ASSERT_TRUE(m.ok());
  for (uint32_t i = 0; i < 2000; i++) ASSERT_TRUE(m->update(i, i).ok());
  // A second handle on the same map deletes entries while the first walks it.
  auto other = bpf::MapFd::from_id(m->info().id);
  ASSERT_TRUE(other.ok()) << other.error().str();
  auto m2 = bpf::Map<uint32_t, uint32_t>::create(std::move(*other));
  ASSERT_TRUE(m2.ok());
  std::thread deleter([&] {
    for (uint32_t i = 0; i < 2000; i += 2) (void)m2->remove(i);
  });
  auto d = m->dump();
  deleter.join();
  ASSERT_TRUE(d.ok()) << d.error().str();
  std::set<uint32_t> seen;
  for (const auto& [k, v] : *d) {
    EXPECT_EQ(k, v);
    EXPECT_TRUE(seen.insert(k).second) << "key " << k << " returned twice";
  }
  // Every odd key was never deleted, so it must be in the dump.
  for (uint32_t i = 1; i < 2000; i += 2) EXPECT_EQ(seen.count(i), 1u) << i;
}

TEST_F(MapsTest, BatchAndKeyWalkAgreeOnLargeMaps) {
  // More entries than one batch chunk (1024), per-CPU values: dump() (batched) and count()
  // (BPF_MAP_GET_NEXT_KEY walk) must see the same entries, with every CPU's value intact.
  Fd fd = make_map(BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, sizeof(Val12), 8192, "weir_t_big");
  ASSERT_TRUE(fd.valid());
  auto m = bpf::PerCpuMap<uint32_t, Val12>::create(mapfd(std::move(fd)));
  ASSERT_TRUE(m.ok()) << m.error().str();
  const int n = m->ncpus();
  for (uint32_t k = 0; k < 3000; k++) {
    std::vector<Val12> v(n);
    for (int c = 0; c < n; c++) v[c] = {k, uint32_t(c), k ^ 0x5a5a5a5au};
    ASSERT_TRUE(m->update(k, v).ok());
  }
  auto d = m->dump();
  ASSERT_TRUE(d.ok()) << d.error().str();
  EXPECT_EQ(d->size(), 3000u);
  EXPECT_EQ(*m->count(), 3000u);
  std::set<uint32_t> seen;
  for (const auto& [k, v] : *d) {
    EXPECT_TRUE(seen.insert(k).second);
    ASSERT_EQ(v.size(), static_cast<size_t>(n));
    for (int c = 0; c < n; c++) {
      EXPECT_EQ(v[c].x, k);
      EXPECT_EQ(v[c].y, uint32_t(c));
      EXPECT_EQ(v[c].z, k ^ 0x5a5a5a5au);
    }
  }
}

TEST_F(MapsTest, ForEachChunkStreamsInBoundedChunksAndAllowsDeletion) {
  // The conntrack scanner's and `conntrack stats`' walk: chunks of at most `chunk` elements in
  // reused buffers, every entry once, deletions from inside the callback allowed.
  Fd fd = make_map(BPF_MAP_TYPE_LRU_HASH, sizeof(weir_ct_key), sizeof(weir_ct_val), 16384, "weir_t_stream");
  ASSERT_TRUE(fd.valid());
  auto m = bpf::Map<weir_ct_key, weir_ct_val>::create(mapfd(std::move(fd)));
  ASSERT_TRUE(m.ok()) << m.error().str();
  const uint32_t kN = 10000;
  for (uint32_t i = 0; i < kN; i++) {
    weir_ct_key k{};
    k.addr_a = i;
    k.proto = 6;
    weir_ct_val v{};
    v.last_seen_ns = i;
    ASSERT_TRUE(m->update(k, v).ok());
  }
  EXPECT_EQ(*m->count(), kN);
  std::set<uint32_t> seen;
  size_t chunks = 0, biggest = 0;
  auto st = m->for_each_chunk(
      [&](const weir_ct_key* keys, const weir_ct_val* vals, size_t n) -> Status {
        chunks++;
        biggest = std::max(biggest, n);
        for (size_t i = 0; i < n; i++) {
          EXPECT_EQ(vals[i].last_seen_ns, keys[i].addr_a) << "key and value out of step";
          EXPECT_TRUE(seen.insert(keys[i].addr_a).second) << keys[i].addr_a << " twice";
          if (keys[i].addr_a % 2 == 0) {
            auto r = m->remove(keys[i]);
            if (!r) return r.error();
          }
        }
        return {};
      },
      512);
  ASSERT_TRUE(st.ok()) << st.error().str();
  EXPECT_EQ(seen.size(), kN);
  EXPECT_LE(biggest, 1024u) << "chunks stay near the size asked for";
  EXPECT_GE(chunks, kN / 1024);
  EXPECT_EQ(*m->count(), kN / 2);
  // An error of the callback stops the walk and comes back.
  int calls = 0;
  auto stop = m->for_each_chunk([&](const weir_ct_key*, const weir_ct_val*, size_t) -> Status {
    ++calls;
    return make_error("stop here");
  }, 64);
  ASSERT_FALSE(stop.ok());
  EXPECT_EQ(stop.error().msg, "stop here");
  EXPECT_EQ(calls, 1);
  // A map type without batch ops (LPM trie) is streamed from a key walk.
  Fd lpm = make_map(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 64, "weir_t_lpm2", BPF_F_NO_PREALLOC);
  auto t = bpf::Map<std::array<uint32_t, 2>, uint32_t>::create(mapfd(std::move(lpm)));
  ASSERT_TRUE(t.ok()) << t.error().str();
  for (uint32_t i = 0; i < 10; i++) ASSERT_TRUE(t->update({32, htonl(0x0a000000u + i)}, i).ok());
  EXPECT_EQ(*t->count(), 10u);
  size_t in_chunks = 0;
  ASSERT_TRUE(t->for_each_chunk([&](const std::array<uint32_t, 2>*, const uint32_t*, size_t n) -> Status {
                 EXPECT_LE(n, 4u);
                 in_chunks += n;
                 return {};
               }, 4).ok());
  EXPECT_EQ(in_chunks, 10u);
}

TEST_F(MapsTest, SizeAndKindMismatchAreErrors) {
  Fd fd = make_map(BPF_MAP_TYPE_HASH, 8, 8, 4, "weir_t_sizes");
  ASSERT_TRUE(fd.valid());
  auto bad = bpf::Map<uint32_t, uint64_t>::create(mapfd(std::move(fd)));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().msg.find("weir_t_sizes"), std::string::npos) << bad.error().str();
  EXPECT_NE(bad.error().msg.find("8/8"), std::string::npos) << bad.error().str();

  Fd pc = make_map(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4, "weir_t_pc");
  ASSERT_TRUE(pc.valid());
  auto notpc = bpf::Map<uint32_t, uint64_t>::create(mapfd(std::move(pc)));
  ASSERT_FALSE(notpc.ok());
  EXPECT_NE(notpc.error().msg.find("per-CPU"), std::string::npos) << notpc.error().str();
}

TEST_F(MapsTest, PerCpuValuesUseEightByteSlots) {
  Fd fd = make_map(BPF_MAP_TYPE_PERCPU_HASH, 4, sizeof(Val12), 16, "weir_t_pcpu");
  ASSERT_TRUE(fd.valid());
  auto m = bpf::PerCpuMap<uint32_t, Val12>::create(mapfd(std::move(fd)));
  ASSERT_TRUE(m.ok()) << m.error().str();
  static_assert(bpf::PerCpuMap<uint32_t, Val12>::kSlot == 16);
  const int n = m->ncpus();
  ASSERT_EQ(n, libbpf_num_possible_cpus());
  std::vector<Val12> vals(n);
  for (int i = 0; i < n; i++) vals[i] = {uint32_t(i + 1), uint32_t(100 + i), uint32_t(1000 + i)};
  ASSERT_TRUE(m->update(7, vals).ok());
  // Read through the raw syscall with the kernel's layout: 16-byte slots.
  std::vector<uint8_t> raw(16 * n);
  uint32_t k = 7;
  ASSERT_EQ(bpf_map_lookup_elem(m->fd().fd(), &k, raw.data()), 0);
  for (int i = 0; i < n; i++) {
    Val12 v;
    std::memcpy(&v, raw.data() + 16 * i, sizeof(v));
    EXPECT_EQ(v.x, uint32_t(i + 1));
    EXPECT_EQ(v.z, uint32_t(1000 + i));
  }
  auto got = m->lookup(7);
  ASSERT_TRUE(got.ok() && got->has_value());
  ASSERT_EQ((*got)->size(), static_cast<size_t>(n));
  EXPECT_EQ((**got)[n - 1].y, uint32_t(100 + n - 1));
  auto wrong = m->update(8, std::vector<Val12>(n + 1));
  EXPECT_FALSE(wrong.ok());
  auto d = m->dump();
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->size(), 1u);
  auto sum = bpf::sum_percpu(d->front().second, [](Val12& acc, const Val12& v) { acc.x += v.x; });
  EXPECT_EQ(sum.x, static_cast<uint32_t>(n * (n + 1) / 2));
}

TEST_F(MapsTest, CountersSumAcrossCpus) {
  Fd fd = make_map(BPF_MAP_TYPE_PERCPU_HASH, sizeof(weir_counters_key), sizeof(weir_counters_val), 16, "weir_t_cnt");
  ASSERT_TRUE(fd.valid());
  auto m = maps::CountersMap::create(mapfd(std::move(fd)));
  ASSERT_TRUE(m.ok()) << m.error().str();
  const int n = m->ncpus();
  std::vector<weir_counters_val> v(n);
  for (int i = 0; i < n; i++) {
    v[i].c[WEIR_CNT_TOTAL] = 10 + i;
    v[i].c[WEIR_CNT_DROP_SHORT] = 1;
  }
  weir_counters_key key{5, WEIR_HOOK_EGRESS};
  ASSERT_TRUE(m->update(key, v).ok());
  auto got = m->lookup(key);
  ASSERT_TRUE(got.ok() && got->has_value());
  auto s = bpf::sum_percpu_u64(**got);
  EXPECT_EQ(s.c[WEIR_CNT_TOTAL], static_cast<uint64_t>(10 * n + n * (n - 1) / 2));
  EXPECT_EQ(s.c[WEIR_CNT_DROP_SHORT], static_cast<uint64_t>(n));
  ASSERT_TRUE(m->update_all(key, weir_counters_val{}).ok());
  EXPECT_EQ(bpf::sum_percpu_u64(**m->lookup(key)).c[WEIR_CNT_TOTAL], 0u);
}

TEST_F(MapsTest, OpenPinnedAndMissingPins) {
  // LPM tries need BPF_F_NO_PREALLOC.
  Fd fd = make_map(BPF_MAP_TYPE_LPM_TRIE, sizeof(weir_route_key), sizeof(weir_route_val), 16, "weir_t_lpm",
                   BPF_F_NO_PREALLOC);
  ASSERT_TRUE(fd.valid());
  const std::string path = root_ + "/weir_t_lpm";
  ASSERT_EQ(bpf_obj_pin(fd.get(), path.c_str()), 0);
  auto m = maps::RoutesMap::open_pinned(path);
  ASSERT_TRUE(m.ok()) << m.error().str();
  weir_route_key k{24, htonl(0x0a420000)};
  weir_route_val v{};
  v.flags = WEIR_RT_F_REMOTE;
  ASSERT_TRUE(m->update(k, v).ok());
  auto d = m->dump();
  ASSERT_TRUE(d.ok()) << d.error().str();
  ASSERT_EQ(d->size(), 1u);
  EXPECT_EQ(d->front().first.prefixlen, 24u);

  auto missing = bpf::MapFd::open_pinned(root_ + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err, ENOENT);
  EXPECT_NE(missing.error().msg.find(root_ + "/nope"), std::string::npos) << missing.error().str();
}

TEST_F(MapsTest, WeirMapsOpenPinnedExplainsMissingState) {
  maps::PinLayout layout{root_ + "/weir"};
  auto w = maps::WeirMaps::open_pinned(layout);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().err, ENOENT);
  EXPECT_NE(w.error().msg.find("no weir state under " + layout.root), std::string::npos) << w.error().str();
  EXPECT_NE(w.error().msg.find("maps/weir_nat_fe1 not found"), std::string::npos) << w.error().str();
  EXPECT_NE(w.error().msg.find("--pin-root"), std::string::npos);

  // With every map pinned (right sizes), it opens; one wrong size is named.
  ASSERT_TRUE(bpf::mkdirs(layout.maps_dir()).ok());
  // The maps of WeirMaps as the table declares them, but the counters value 8 bytes short.
  const maps::MapId core[] = {maps::MapId::NAT_FE, maps::MapId::NAT_BE,  maps::MapId::CT,
                              maps::MapId::ROUTES, maps::MapId::IFSTATE, maps::MapId::COUNTERS,
                              maps::MapId::CT_STATS};
  std::vector<Fd> keep;
  maps::MapFds fds;
  for (maps::MapId id : core) {
    const maps::MapSpec& s = maps::spec(id);
    const std::string name(s.name);
    const uint32_t v = s.value_size - (id == maps::MapId::COUNTERS ? 8 : 0);
    Fd f = make_map(static_cast<bpf_map_type>(s.type), s.key_size, v, 16, name.c_str(), s.flags);
    ASSERT_TRUE(f.valid()) << name;
    ASSERT_EQ(bpf_obj_pin(f.get(), layout.map_path(name).c_str()), 0) << name;
    fds[id] = f.get();
    keep.push_back(std::move(f));
  }
  w = maps::WeirMaps::open_pinned(layout);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().msg.find(WEIR_MAP_COUNTERS), std::string::npos) << w.error().str();
  // Fix the counters map: now everything opens, and from_fds works on the same fds.
  ASSERT_EQ(::unlink(layout.map_path(WEIR_MAP_COUNTERS).c_str()), 0);
  Fd c = make_map(BPF_MAP_TYPE_PERCPU_HASH, sizeof(weir_counters_key), sizeof(weir_counters_val), 16,
                  WEIR_MAP_COUNTERS);
  ASSERT_TRUE(c.valid());
  ASSERT_EQ(bpf_obj_pin(c.get(), layout.map_path(WEIR_MAP_COUNTERS).c_str()), 0);
  w = maps::WeirMaps::open_pinned(layout);
  ASSERT_TRUE(w.ok()) << w.error().str();
  EXPECT_EQ(w->ct.name(), WEIR_MAP_CT);
  fds[maps::MapId::COUNTERS] = c.get();
  auto w2 = maps::WeirMaps::from_fds(fds);
  ASSERT_TRUE(w2.ok()) << w2.error().str();
  keep.clear();  // from_fds duplicated the fds: the maps stay usable
  c.reset();
  ASSERT_TRUE(w2->ifstate.update(5, weir_ifstate_val{}).ok());
  EXPECT_EQ(*w->ifstate.count(), 1u) << "both views see the same kernel map";
}

TEST(Bpffs, MkdirsRemoveTreeAndRefusals) {
  ASSERT_EQ(geteuid(), 0u);
  ASSERT_TRUE(bpf::ensure_bpffs().ok());
  EXPECT_TRUE(bpf::is_on_bpffs("/sys/fs/bpf"));
  EXPECT_TRUE(bpf::is_on_bpffs("/sys/fs/bpf/does/not/exist"));
  EXPECT_FALSE(bpf::is_on_bpffs("/tmp"));
  EXPECT_FALSE(bpf::remove_tree("/").ok());
  EXPECT_FALSE(bpf::remove_tree("").ok());
  const std::string root = "/sys/fs/bpf/weir-bpffs-" + std::to_string(getpid());
  ASSERT_TRUE(bpf::mkdirs(root + "/a/b/c").ok());
  Fd m = make_map(BPF_MAP_TYPE_ARRAY, 4, 4, 1, "weir_t_arr");
  ASSERT_TRUE(m.valid());
  ASSERT_EQ(bpf_obj_pin(m.get(), (root + "/a/b/c/pin").c_str()), 0);
  ASSERT_EQ(bpf_obj_pin(m.get(), (root + "/a/pin2").c_str()), 0);
  // A dot in a bpffs name is rejected by the kernel: sanitize_pin_name exists for that.
  EXPECT_NE(bpf_obj_pin(m.get(), (root + "/a/x.y").c_str()), 0);
  EXPECT_EQ(bpf_obj_pin(m.get(), (root + "/a/" + bpf::sanitize_pin_name("x.y")).c_str()), 0);
  auto st = bpf::remove_tree(root + "/");
  ASSERT_TRUE(st.ok()) << st.error().str();
  struct stat sb {};
  EXPECT_NE(::stat(root.c_str(), &sb), 0);
  EXPECT_TRUE(bpf::remove_tree(root).ok()) << "removing a missing tree is fine";
}

}  // namespace
}  // namespace weir::attach_maps_test
