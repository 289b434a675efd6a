// ServiceSyncer and ConntrackScanner against real BPF maps (created standalone, no programs):
// needs root (CAP_BPF). Fails, never skips, without it.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "calc/conntrack.h"
#include "cli/bpf_ops.h"
#include "dataplane/ct_scanner.h"
#include "dataplane/endpoint_manager.h"
#include "dataplane/policy_slots.h"
#include "dataplane/service_syncer.h"
#include "netns_env.h"
#include "../common/ct_testing.h"
#include "bpf/attach.h"
#include "bpf/bpffs.h"
#include "bpf/netlink.h"
#include "maps/decode.h"
#include "maps/table.h"
#include "maps/weir_maps.h"
#include "util/fd.h"

namespace weir::dataplane {
namespace {

using model::Ipv4;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

// Retired backends go at the very next sync (the ordering under test, not the grace time).
constexpr std::chrono::nanoseconds kNoGrace{0};

// The maps of WeirMaps, created from the map table (types, key/value sizes, flags) with small
// sizes, owned by the test.
struct TestMaps {
  std::vector<Fd> owned;
  std::unique_ptr<maps::WeirMaps> maps;
  std::unique_ptr<maps::KernelTables> tables;  // the managers' views of `maps`

  maps::CoreTables core() { return tables->core(); }

  static Fd create(const maps::MapSpec& m, uint32_t n) {
    LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = m.flags);
    const std::string name = "t_" + std::string(m.base);
    int fd = bpf_map_create(static_cast<bpf_map_type>(m.type), name.c_str(), m.key_size,
                            m.value_size, n, &o);
    if (fd < 0) ADD_FAILURE() << "bpf_map_create " << name << ": " << strerror(errno);
    return Fd(fd);
  }

  explicit TestMaps(uint32_t ct_size = 256) {
    maps::MapFds fds;
    for (const maps::MapSpec& m : maps::kMapSpecs) {
      uint32_t n = m.id == maps::MapId::CT ? ct_size : std::min<uint32_t>(m.max_entries, 256);
      if (m.type == BPF_MAP_TYPE_RINGBUF) n = 4096;  // bytes: one page at least
      owned.push_back(create(m, n));
      fds[m.id] = owned.back().get();
    }
    auto m = maps::WeirMaps::from_fds(fds);
    if (!m) {
      ADD_FAILURE() << m.error().str();
      return;
    }
    maps = std::make_unique<maps::WeirMaps>(std::move(*m));
    tables = std::make_unique<maps::KernelTables>(*maps);
  }
};

calc::Frontend frontend(const char* vip, uint16_t port, uint8_t proto,
                        std::vector<std::pair<const char*, uint16_t>> backends) {
  calc::Frontend fe;
  fe.key = calc::FrontendKey{ip(vip), port, proto};
  fe.service = std::string("default/svc:") + std::to_string(port);
  for (auto& [a, p] : backends) fe.backends.push_back(calc::Backend{ip(a), p});
  std::sort(fe.backends.begin(), fe.backends.end());
  return fe;
}

// (frontend key) -> sorted backend list, read back from the maps.
std::map<calc::FrontendKey, std::pair<uint32_t, std::vector<calc::Backend>>> read_nat(
    maps::WeirMaps& m) {
  std::map<calc::FrontendKey, std::pair<uint32_t, std::vector<calc::Backend>>> out;
  auto fes = m.nat_fe.dump();
  EXPECT_TRUE(fes.ok());
  for (auto& [k, v] : *fes) {
    std::vector<calc::Backend> bes;
    for (uint32_t i = 0; i < v.count; i++) {
      auto b = m.nat_be.lookup(weir_nat_be_key{v.svc_id, i});
      EXPECT_TRUE(b.ok() && b->has_value()) << "backend " << v.svc_id << ":" << i << " missing";
      if (b.ok() && b->has_value())
        bes.push_back(calc::Backend{Ipv4::from_network_order((*b)->addr), ntohs((*b)->port)});
    }
    std::sort(bes.begin(), bes.end());
    out[from_map_key(k)] = {v.svc_id, bes};
  }
  return out;
}

TEST(ServiceSyncer, ProgramsFrontendsAndBackends) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  ServiceSyncer s(t.core(), kNoGrace);
  ASSERT_TRUE(s.adopt().ok());
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  auto b = frontend("10.96.0.10", 53, 17, {{"10.65.0.5", 5353}});
  auto empty = frontend("10.96.0.11", 80, 6, {});
  ASSERT_TRUE(s.apply({a, b, empty}).ok());
  EXPECT_EQ(s.last_stats().written, 3u);
  auto nat = read_nat(*t.maps);
  ASSERT_EQ(nat.size(), 3u);
  EXPECT_EQ(nat[a.key].second, a.backends);
  EXPECT_EQ(nat[b.key].second, b.backends);
  EXPECT_TRUE(nat[empty.key].second.empty());  // kept: the datapath answers RST/ICMP
  EXPECT_EQ(t.maps->nat_be.count().value(), 3u);
}

TEST(ServiceSyncer, UnchangedInputWritesNothingAndChangeUsesFreshId) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  ServiceSyncer s(t.core(), kNoGrace);
  ASSERT_TRUE(s.adopt().ok());
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  auto b = frontend("10.96.0.12", 80, 6, {{"10.65.0.6", 80}});
  ASSERT_TRUE(s.apply({a, b}).ok());
  auto before = read_nat(*t.maps);

  ASSERT_TRUE(s.apply({a, b}).ok());
  EXPECT_EQ(s.last_stats().written, 0u);
  EXPECT_EQ(s.last_stats().unchanged, 2u);
  EXPECT_EQ(read_nat(*t.maps), before);

  // Remove one backend of a: new id, only a's backends under it; the old id's entries are
  // retired (still there for packets that read the old frontend) and go at the next sync.
  auto a2 = frontend("10.96.0.10", 80, 6, {{"10.65.0.4", 8080}});
  ASSERT_TRUE(s.apply({a2, b}).ok());
  EXPECT_EQ(s.last_stats().written, 1u);
  auto after = read_nat(*t.maps);
  EXPECT_NE(after[a.key].first, before[a.key].first);
  EXPECT_EQ(after[a.key].second, a2.backends);
  EXPECT_EQ(after[b.key], before[b.key]);
  EXPECT_EQ(t.maps->nat_be.count().value(), 2u + 2u);
  ASSERT_TRUE(s.apply({a2, b}).ok());
  EXPECT_EQ(s.last_stats().written, 0u);
  for (uint32_t i = 0; i < 2; i++) {
    auto old = t.maps->nat_be.lookup(weir_nat_be_key{before[a.key].first, i});
    ASSERT_TRUE(old.ok());
    EXPECT_FALSE(old->has_value()) << "old backend entry " << i << " left behind";
  }
  EXPECT_EQ(t.maps->nat_be.count().value(), 2u);
  EXPECT_EQ(s.retired(), 0u);

  // Remove the frontend entirely: its backends go one sync later too.
  ASSERT_TRUE(s.apply({b}).ok());
  EXPECT_EQ(s.last_stats().removed, 1u);
  EXPECT_EQ(read_nat(*t.maps).count(a.key), 0u);
  EXPECT_EQ(t.maps->nat_be.count().value(), 2u);
  ASSERT_TRUE(s.apply({b}).ok());
  EXPECT_EQ(t.maps->nat_be.count().value(), 1u);
}

// What a packet does (bpf/lib/nat.h weir_nat_pick): read the frontend, then one backend under
// its id. Here the two reads are split by a sync, the widest a packet's window can be.
struct StalePacket {
  uint32_t svc_id = 0, count = 0;
  static StalePacket read_frontend(maps::WeirMaps& m, const calc::Frontend& fe) {
    auto v = m.nat_fe.lookup(to_map_key(fe.key));
    EXPECT_TRUE(v.ok() && v->has_value());
    return v.ok() && v->has_value() ? StalePacket{(*v)->svc_id, (*v)->count} : StalePacket{};
  }
  // Every ordinal the packet could have picked is still there.
  bool finds_backends(maps::WeirMaps& m) const {
    if (count == 0) return false;
    for (uint32_t i = 0; i < count; i++) {
      auto b = m.nat_be.lookup(weir_nat_be_key{svc_id, i});
      if (!b.ok() || !b->has_value()) return false;
    }
    return true;
  }
};

// The retire ordering on each path that replaces or removes backends: a packet that read the
// frontend before a sync still finds its backends after it; they go at the sync after.
TEST(ServiceSyncer, ABackendOutlivesTheSyncThatReplacedIt) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  ServiceSyncer s(t.core(), kNoGrace);
  ASSERT_TRUE(s.adopt().ok());
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  auto b = frontend("10.96.0.11", 80, 6, {{"10.65.0.5", 80}});
  ASSERT_TRUE(s.apply({a, b}).ok());

  // Full path, backends changed.
  auto p1 = StalePacket::read_frontend(*t.maps, a);
  auto a2 = frontend("10.96.0.10", 80, 6, {{"10.65.0.4", 8080}, {"10.65.0.9", 8080}});
  ASSERT_TRUE(s.apply({a2, b}).ok());
  EXPECT_TRUE(p1.finds_backends(*t.maps)) << "full apply deleted the backends a packet was reading";
  // Incremental path, backends changed: p1's are deleted now, p2's stay.
  auto p2 = StalePacket::read_frontend(*t.maps, a2);
  auto a3 = frontend("10.96.0.10", 80, 6, {{"10.65.0.9", 8080}});
  ASSERT_TRUE(s.apply_changes(calc::diff_frontends({a2, b}, {a3, b})).ok());
  EXPECT_FALSE(p1.finds_backends(*t.maps)) << "retired backends never deleted";
  EXPECT_TRUE(p2.finds_backends(*t.maps)) << "apply_changes deleted the backends a packet was reading";
  // Incremental removal of a frontend.
  auto p3 = StalePacket::read_frontend(*t.maps, b);
  ASSERT_TRUE(s.apply_changes(calc::diff_frontends({a3, b}, {a3})).ok());
  EXPECT_TRUE(p3.finds_backends(*t.maps)) << "removing a frontend deleted its backends at once";
  // Full-path removal.
  auto p4 = StalePacket::read_frontend(*t.maps, a3);
  ASSERT_TRUE(s.apply({}).ok());
  EXPECT_TRUE(p4.finds_backends(*t.maps));
  EXPECT_FALSE(p2.finds_backends(*t.maps));
  EXPECT_FALSE(p3.finds_backends(*t.maps));
  ASSERT_TRUE(s.apply({}).ok());
  EXPECT_EQ(t.maps->nat_be.count().value(), 0u);
  EXPECT_EQ(s.retired(), 0u);
}

// However fast syncs follow each other, retired backends live for the grace time.
TEST(ServiceSyncer, RetiredBackendsLiveAtLeastTheGraceTime) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  ServiceSyncer s(t.core(), std::chrono::milliseconds(300));
  ASSERT_TRUE(s.adopt().ok());
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  auto a2 = frontend("10.96.0.10", 80, 6, {{"10.65.0.4", 8080}});
  ASSERT_TRUE(s.apply({a}).ok());
  auto p = StalePacket::read_frontend(*t.maps, a);
  const auto switched = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.apply({a2}).ok());
  for (int i = 0; i < 5; i++) ASSERT_TRUE(s.apply({a2}).ok());
  if (std::chrono::steady_clock::now() - switched < std::chrono::milliseconds(300)) {
    EXPECT_TRUE(p.finds_backends(*t.maps)) << "deleted within the grace time";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  ASSERT_TRUE(s.apply({a2}).ok());
  EXPECT_FALSE(p.finds_backends(*t.maps));
  EXPECT_EQ(s.retired(), 0u);
}

// Across a restart: the previous agent's retired backends (no frontend refers to them) are
// kept by adoption and deleted at the new agent's first sync; backends a frontend refers to are
// never deleted.
TEST(ServiceSyncer, AdoptionRetiresUnreferencedBackendsAtTheNextSync) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  auto a2 = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}});
  StalePacket in_flight;
  {
    ServiceSyncer first(t.core(), kNoGrace);
    ASSERT_TRUE(first.adopt().ok());
    ASSERT_TRUE(first.apply({a}).ok());
    in_flight = StalePacket::read_frontend(*t.maps, a);
    ASSERT_TRUE(first.apply({a2}).ok());  // the agent stops here: a's old id is retired
  }
  auto live = StalePacket::read_frontend(*t.maps, a2);
  ServiceSyncer second(t.core(), kNoGrace);
  ASSERT_TRUE(second.adopt().ok());
  EXPECT_TRUE(in_flight.finds_backends(*t.maps)) << "adoption deleted backends at once";
  EXPECT_EQ(second.retired(), 1u);
  ASSERT_TRUE(second.apply({a2}).ok());
  EXPECT_EQ(second.last_stats().written, 0u);
  EXPECT_FALSE(in_flight.finds_backends(*t.maps));
  EXPECT_TRUE(live.finds_backends(*t.maps));
  EXPECT_EQ(t.maps->nat_be.count().value(), 1u);
}

TEST(ServiceSyncer, ApplyChangesTouchesOnlyTheDiffAndEqualsAFullApply) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  ServiceSyncer s(t.core(), kNoGrace);
  ASSERT_TRUE(s.adopt().ok());
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  auto b = frontend("10.96.0.11", 80, 6, {{"10.65.0.5", 80}});
  auto c = frontend("10.96.0.12", 53, 17, {{"10.65.0.6", 53}});
  std::vector<calc::Frontend> before = {a, b, c};
  ASSERT_TRUE(s.apply(before).ok());
  auto nat0 = read_nat(*t.maps);

  auto a2 = frontend("10.96.0.10", 80, 6, {{"10.65.0.4", 8080}});
  auto d = frontend("10.96.0.13", 80, 6, {{"10.65.0.7", 80}, {"10.65.0.8", 80}});
  std::vector<calc::Frontend> after = {a2, c, d};
  auto diff = calc::diff_frontends(before, after);
  ASSERT_TRUE(s.apply_changes(diff).ok());
  EXPECT_EQ(s.last_stats().written, 2u);  // a re-pointed, d created
  EXPECT_EQ(s.last_stats().removed, 1u);  // b
  auto nat = read_nat(*t.maps);
  ASSERT_EQ(nat.size(), 3u);
  EXPECT_EQ(nat[a2.key].second, a2.backends);
  EXPECT_EQ(nat[d.key].second, d.backends);
  EXPECT_EQ(nat[c.key], nat0[c.key]);  // untouched: same id
  EXPECT_EQ(nat.count(b.key), 0u);
  // b's and a's old backends are retired: deleted at the next sync.
  EXPECT_EQ(t.maps->nat_be.count().value(), 4u + 2u + 1u);

  // A full apply of the same set finds nothing to do.
  ASSERT_TRUE(s.apply(after).ok());
  EXPECT_EQ(s.last_stats().written, 0u);
  EXPECT_EQ(s.last_stats().unchanged, 3u);
  EXPECT_EQ(s.last_stats().removed, 0u);
  EXPECT_EQ(t.maps->nat_be.count().value(), 4u);  // no backend entry of b or of a's old id left
}

TEST(ServiceSyncer, RestartAdoptsAndChangesNothing) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  {
    ServiceSyncer first(t.core(), kNoGrace);
    ASSERT_TRUE(first.adopt().ok());
    ASSERT_TRUE(first.apply({a}).ok());
  }
  auto before = read_nat(*t.maps);
  // An orphaned backend entry, as a crash between two writes would leave.
  ASSERT_TRUE(t.maps->nat_be.update(weir_nat_be_key{999, 0}, weir_nat_be_val{}).ok());

  ServiceSyncer second(t.core(), kNoGrace);
  ASSERT_TRUE(second.adopt().ok());
  EXPECT_EQ(second.programmed(), 1u);
  ASSERT_TRUE(second.apply({a}).ok());
  EXPECT_FALSE(t.maps->nat_be.lookup(weir_nat_be_key{999, 0})->has_value());  // at the first sync
  EXPECT_EQ(second.last_stats().written, 0u);
  EXPECT_EQ(read_nat(*t.maps), before);
  // A new id after adoption never collides with an adopted one.
  auto a2 = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}});
  ASSERT_TRUE(second.apply({a2}).ok());
  EXPECT_GT(read_nat(*t.maps)[a.key].first, 999u);
}

// ---------------------------------------------------------------- conntrack scanner

using ct_testing::NatPair;
using ct_testing::nat_pair;

void insert(maps::WeirMaps& m, const NatPair& p) {
  ASSERT_TRUE(m.ct.update(p.fwd_key, p.fwd).ok());
  ASSERT_TRUE(m.ct.update(p.rev_key, p.rev).ok());
}

bool present(maps::WeirMaps& m, const weir_ct_key& k) {
  auto r = m.ct.lookup(k);
  return r.ok() && r->has_value();
}

constexpr uint64_t kSec = 1000000000ull;
constexpr uint32_t kEstablished = WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK;

TEST(ConntrackScanner, ExpiresIdlePairsTogetherAndKeepsLiveOnes) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  const uint64_t now = 10000 * kSec;
  model::ConntrackTimeouts to;
  // UDP idle 61s (> 60s): both halves go.
  auto udp = nat_pair("10.65.0.2", 40000, "10.96.0.10", 53, "10.65.0.5", 5353, 17,
                      now - 61 * kSec, 0);
  // UDP whose forward half is old but whose reverse half was just used: the pair lives.
  auto udp_live = nat_pair("10.65.0.2", 40001, "10.96.0.10", 53, "10.65.0.5", 5353, 17,
                           now - 61 * kSec, 0);
  udp_live.rev.last_seen_ns = now - 1 * kSec;
  // TCP established, idle 2 minutes: well within 1h.
  auto tcp = nat_pair("10.65.0.2", 40002, "10.96.0.10", 80, "10.65.0.3", 8080, 6,
                      now - 120 * kSec, kEstablished);
  insert(*t.maps, udp);
  insert(*t.maps, udp_live);
  insert(*t.maps, tcp);

  ConntrackScanner sc(t.core());
  auto st = sc.scan(to, nullptr, now);
  ASSERT_TRUE(st.ok()) << st.error().str();
  EXPECT_EQ(st->scanned, 6u);
  EXPECT_FALSE(present(*t.maps, udp.fwd_key));
  EXPECT_FALSE(present(*t.maps, udp.rev_key));
  EXPECT_TRUE(present(*t.maps, udp_live.fwd_key));
  EXPECT_TRUE(present(*t.maps, udp_live.rev_key));
  EXPECT_TRUE(present(*t.maps, tcp.fwd_key));
  EXPECT_TRUE(present(*t.maps, tcp.rev_key));

  // A shorter configured timeout applies.
  to.tcp_established = std::chrono::seconds(60);
  ASSERT_TRUE(sc.scan(to, nullptr, now).ok());
  EXPECT_FALSE(present(*t.maps, tcp.fwd_key));
  EXPECT_FALSE(present(*t.maps, tcp.rev_key));
}

TEST(ConntrackScanner, RemovesFlowsToRemovedBackendsOnly) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  const uint64_t now = 10000 * kSec;
  auto to_kept = nat_pair("10.65.0.2", 40010, "10.96.0.10", 80, "10.65.0.3", 8080, 6, now,
                          kEstablished);
  auto to_removed = nat_pair("10.65.0.2", 40011, "10.96.0.10", 80, "10.65.0.4", 8080, 6, now,
                             kEstablished);
  insert(*t.maps, to_kept);
  insert(*t.maps, to_removed);
  calc::BackendIndex idx({frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}})});
  ConntrackScanner sc(t.core());
  auto st = sc.scan(model::ConntrackTimeouts{}, &idx, now);
  ASSERT_TRUE(st.ok()) << st.error().str();
  EXPECT_GE(st->stale_backend, 1u);
  EXPECT_TRUE(present(*t.maps, to_kept.fwd_key));
  EXPECT_TRUE(present(*t.maps, to_kept.rev_key));
  EXPECT_FALSE(present(*t.maps, to_removed.fwd_key));
  EXPECT_FALSE(present(*t.maps, to_removed.rev_key));
}

uint64_t agent_deleted(maps::WeirMaps& m) {
  auto v = m.ct_stats.lookup(WEIR_CT_STATS_AGENT);
  EXPECT_TRUE(v.ok() && v->has_value());
  return v.ok() && v->has_value() ? maps::sum_ct_stats(**v).deleted : 0;
}

TEST(ConntrackScanner, ManyChunksPairsAcrossChunksAndDeletionsCountedForTheAgent) {
  // More entries than several scanner chunks: a pair's halves usually lie in different chunks.
  TestMaps t(65536);
  ASSERT_TRUE(t.maps);
  const uint64_t now = 10000 * kSec;
  const int kPairs = 12000;
  std::vector<NatPair> pairs;
  for (int i = 0; i < kPairs; i++) {
    // Every third pair is idle 61 s (UDP: expired); every other third has an old forward half
    // and a fresh reverse half (alive); the rest are fresh.
    auto p = nat_pair(i % 2 ? "10.65.0.2" : "10.65.0.7", static_cast<uint16_t>(1024 + i), "10.96.0.10", 53,
                      "10.65.0.5", 5353, 17, i % 3 == 2 ? now : now - 61 * kSec, 0);
    if (i % 3 == 1) p.rev.last_seen_ns = now - kSec;
    insert(*t.maps, p);
    pairs.push_back(p);
  }
  ASSERT_EQ(*t.maps->ct.count(), 2u * kPairs);
  ASSERT_GT(2u * kPairs, 4 * ConntrackScanner::kChunk);
  ConntrackScanner sc(t.core());
  auto st = sc.scan(model::ConntrackTimeouts{}, nullptr, now);
  ASSERT_TRUE(st.ok()) << st.error().str();
  const size_t dead = 2 * ((kPairs + 2) / 3);  // i % 3 == 0
  EXPECT_EQ(st->expired, dead);
  EXPECT_EQ(st->stale_backend, 0u);
  EXPECT_EQ(st->deleted(), dead);
  EXPECT_EQ(st->kept, 2u * kPairs - dead) << "what the occupancy warning is fed";
  for (int i = 0; i < kPairs; i++) {
    EXPECT_EQ(present(*t.maps, pairs[i].fwd_key), i % 3 != 0) << i;
    EXPECT_EQ(present(*t.maps, pairs[i].rev_key), i % 3 != 0) << i;
  }
  EXPECT_EQ(agent_deleted(*t.maps), dead);
  // A second pass deletes nothing and adds nothing; a later one adds to the total.
  ASSERT_TRUE(sc.scan(model::ConntrackTimeouts{}, nullptr, now).ok());
  EXPECT_EQ(agent_deleted(*t.maps), dead);
  auto later = sc.scan(model::ConntrackTimeouts{}, nullptr, now + 120 * kSec);
  ASSERT_TRUE(later.ok()) << later.error().str();
  EXPECT_EQ(later->deleted(), 2u * kPairs - dead);
  EXPECT_EQ(agent_deleted(*t.maps), 2u * kPairs);
  EXPECT_EQ(*t.maps->ct.count(), 0u);
}

TEST(ConntrackStats, ReadCountsEntriesAndSumsStatisticsOverCpus) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  const uint64_t now = 10000 * kSec;
  for (uint16_t p = 0; p < 40; p++)
    insert(*t.maps, nat_pair("10.65.0.2", 40000 + p, "10.96.0.10", 80, "10.65.0.3", 8080, 6, now,
                             kEstablished));
  const int n = t.maps->ct_stats.ncpus();
  std::vector<weir_ct_stats> dp(n), agent(n);
  dp[0].created = 100, dp[0].deleted = 4, dp[0].midflow_miss = 2, dp[0].midflow_renat = 2;
  dp[n - 1].created += 20, dp[n - 1].create_failed = 3;
  agent[0].deleted = 30;
  ASSERT_TRUE(t.maps->ct_stats.update(WEIR_CT_STATS_DATAPATH, dp).ok());
  ASSERT_TRUE(t.maps->ct_stats.update(WEIR_CT_STATS_AGENT, agent).ok());
  std::vector<weir_counters_val> c(n);
  c[0].c[WEIR_CNT_DROP_CT_CREATE] = 2;
  c[n - 1].c[WEIR_CNT_DROP_CT_CREATE] += 1;
  ASSERT_TRUE(t.maps->counters.update(weir_counters_key{7, WEIR_HOOK_INGRESS}, c).ok());
  ASSERT_TRUE(t.maps->counters.update(weir_counters_key{8, WEIR_HOOK_EGRESS}, c).ok());

  auto r = cli::read_ct_stats(*t.maps);
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->map_name, "t_ct");
  EXPECT_EQ(r->entries, 80u);
  EXPECT_EQ(r->max_entries, 256u);
  EXPECT_EQ(r->datapath.created, 120u);
  EXPECT_EQ(r->datapath.create_failed, 3u);
  EXPECT_EQ(r->datapath.deleted, 4u);
  EXPECT_EQ(r->datapath.midflow_renat, 2u);
  EXPECT_EQ(r->agent.deleted, 30u);
  EXPECT_EQ(r->dropped_ct_create, 6u);
  EXPECT_NE(cli::format_ct_stats(*r).find("80 of 256 entries (31.2% full)"), std::string::npos)
      << cli::format_ct_stats(*r);
  EXPECT_EQ(cli::ct_stats_json(*r)["evictions_estimated"], 120 - 4 - 30 - 80);
}

// ---------------------------------------------------------------- EndpointManager

// Runs `cmd` through the shell; its exit status.
int run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// EndpointManager on a veth of the test namespace (netns_env.h: the whole binary runs in a
// namespace of its own), with trivial programs: the policy hook sees the new interface's
// ifstate entry and no program yet; the slot it sets survives the attach.
TEST(EndpointManager, PolicyHookRunsBetweenIfstateAndAttach) {
  ASSERT_TRUE(test::topology().ready) << test::topology().error;
  TestMaps t;
  ASSERT_TRUE(t.maps);
  struct bpf_insn ok[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  Fd from(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_from_wl", "GPL", ok, 2, nullptr));
  Fd to(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_to_wl", "GPL", ok, 2, nullptr));
  ASSERT_TRUE(from.valid() && to.valid()) << std::strerror(errno);
  const std::string host = "weirhk" + std::to_string(getpid() % 100000);
  ASSERT_EQ(run("ip link add " + host + " type veth peer name " + host + "p"), 0);
  ASSERT_EQ(run("ip link set " + host + " up"), 0);
  maps::PinLayout layout{"/sys/fs/bpf/weir-dpt-" + std::to_string(getpid())};
  // bpffs is not per network namespace: the pins and the veth go also when an assertion fails.
  struct Cleanup {
    std::string root, host;
    ~Cleanup() {
      EXPECT_TRUE(bpf::remove_tree(root).ok());
      EXPECT_EQ(run("ip link del " + host), 0);
    }
  } cleanup{layout.root, host};
  ASSERT_TRUE(bpf::mkdirs(layout.links_dir()).ok());
  auto mode = bpf::probe_tc_mode();
  ASSERT_TRUE(mode.ok()) << mode.error().str();

  {
    TcInterfaces ifs(layout, *mode, from.get(), to.get());
    EndpointManager em(t.core(), ifs);
    calc::Interface itf;
    itf.name = host;
    itf.workload = "default/hook";
    itf.ips = {ip("10.65.9.9")};
    int seen = 0, calls = 0;
    auto check = [&] {
      calls++;
      seen = em.ifindex_of(host);
      ASSERT_GT(seen, 0);
      auto cur = t.maps->ifstate.lookup(uint32_t(seen));
      ASSERT_TRUE(cur.ok() && cur->has_value()) << "no ifstate entry inside the hook";
      EXPECT_EQ((*cur)->flags & WEIR_IF_F_READY, 0u);
      auto progs = bpf::tc_list(seen, bpf::TcDir::Ingress);
      ASSERT_TRUE(progs.ok()) << progs.error().str();
      EXPECT_TRUE(progs->empty()) << "a program was attached before the hook ran";
      EXPECT_TRUE(set_policy_slot(t.core().ifstate, uint32_t(seen), calc::pol::Direction::Ingress, 7).ok());
    };
    auto st = em.apply({itf}, {}, [&] {
      check();
      return Status{};
    });
    ASSERT_TRUE(st.ok()) << st.error().str();
    EXPECT_EQ(calls, 1);
    ASSERT_EQ(em.ifindex_of(host), seen);
    auto after = t.maps->ifstate.lookup(uint32_t(seen));
    ASSERT_TRUE(after.ok() && after->has_value());
    EXPECT_NE((*after)->flags & WEIR_IF_F_READY, 0u);
    EXPECT_EQ((*after)->ingress_slot, 7u);  // the hook's slot is kept by the attach
    auto progs = bpf::tc_list(seen, bpf::TcDir::Ingress);
    ASSERT_TRUE(progs.ok());
    EXPECT_EQ(progs->size(), 1u);

    // Nothing new: the hook still runs once (the agent installs policy changes there).
    calls = 0;
    ASSERT_TRUE(em.apply({itf}, {}, [&] {
                  calls++;
                  return Status{};
                }).ok());
    EXPECT_EQ(calls, 1);
    ASSERT_TRUE(em.apply({}, {}).ok());  // detaches
    progs = bpf::tc_list(seen, bpf::TcDir::Ingress);
    ASSERT_TRUE(progs.ok());
    EXPECT_TRUE(progs->empty());
  }
}

// A hook that reports failure (the policy of a new interface could not be put in place, not even
// deny-all): the interface is not attached, keeps its ifstate entry without READY and is retried;
// once the hook succeeds it is attached; held back and then no longer wanted, its entry goes.
// Remote routes in the kernel's LPM trie: a remote pod's /32 under its node's CIDR, with the
// same next hop, is written too. (A lookup of the /32 answers with the CIDR's entry while the /32
// is absent; taking that for "already written" left remote pods without their /32.)
TEST(EndpointManager, RemotePodUnderItsNodesCidrGetsItsOwnEntry) {
  TestMaps t;
  ASSERT_TRUE(t.maps);
  auto mode = bpf::probe_tc_mode();
  ASSERT_TRUE(mode.ok()) << mode.error().str();
  TcInterfaces ifs(maps::PinLayout{"/sys/fs/bpf/weir-dpr-" + std::to_string(getpid())}, *mode, -1, -1);
  EndpointManager em(t.core(), ifs);
  auto remote = [](const char* a, uint8_t len) {
    calc::Route r;
    r.cidr = model::Cidr{ip(a), len};
    r.flags = calc::kRouteRemote;
    r.node = "node-b";
    r.next_hop = ip("192.168.200.3");
    return r;
  };
  ASSERT_TRUE(em.apply({}, {remote("10.65.1.0", 24), remote("10.65.1.2", 32)}).ok());
  auto all = t.core().routes.dump();
  ASSERT_TRUE(all.ok()) << all.error().str();
  std::set<std::pair<std::string, uint32_t>> keys;
  for (const auto& [k, v] : *all) {
    keys.insert({model::Ipv4{ntohl(k.addr)}.str(), k.prefixlen});
    EXPECT_EQ(v.next_hop, ip("192.168.200.3").network_order());
  }
  EXPECT_EQ(keys, (std::set<std::pair<std::string, uint32_t>>{{"10.65.1.0", 24}, {"10.65.1.2", 32}}));
}

TEST(EndpointManager, FailingPolicyHookHoldsNewInterfacesBack) {
  ASSERT_TRUE(test::topology().ready) << test::topology().error;
  TestMaps t;
  ASSERT_TRUE(t.maps);
  struct bpf_insn ok[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  Fd from(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_from_wl", "GPL", ok, 2, nullptr));
  Fd to(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_to_wl", "GPL", ok, 2, nullptr));
  ASSERT_TRUE(from.valid() && to.valid()) << std::strerror(errno);
  const std::string host = "weirhf" + std::to_string(getpid() % 100000);
  ASSERT_EQ(run("ip link add " + host + " type veth peer name " + host + "p"), 0);
  ASSERT_EQ(run("ip link set " + host + " up"), 0);
  maps::PinLayout layout{"/sys/fs/bpf/weir-dpf-" + std::to_string(getpid())};
  struct Cleanup {
    std::string root, host;
    ~Cleanup() {
      EXPECT_TRUE(bpf::remove_tree(root).ok());
      EXPECT_EQ(run("ip link del " + host), 0);
    }
  } cleanup{layout.root, host};
  ASSERT_TRUE(bpf::mkdirs(layout.links_dir()).ok());
  auto mode = bpf::probe_tc_mode();
  ASSERT_TRUE(mode.ok()) << mode.error().str();

  TcInterfaces ifs(layout, *mode, from.get(), to.get());
  EndpointManager em(t.core(), ifs);
  calc::Interface itf;
  itf.name = host;
  itf.workload = "default/held";
  itf.ips = {ip("10.65.9.10")};
  auto failing = [] { return Status(Error{EIO, "policy not in force: deny-all could not be loaded"}); };
  auto st = em.apply({itf}, {}, failing);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().str().find("default/held"), std::string::npos) << st.error().str();
  EXPECT_TRUE(em.has_pending());
  EXPECT_EQ(em.managed(), 0u);
  const int idx = bpf::link_by_name(host)->ifindex;
  auto progs = bpf::tc_list(idx, bpf::TcDir::Ingress);
  ASSERT_TRUE(progs.ok());
  EXPECT_TRUE(progs->empty()) << "attached although the policy hook failed";
  auto entry = t.maps->ifstate.lookup(uint32_t(idx));
  ASSERT_TRUE(entry.ok() && entry->has_value());
  EXPECT_EQ((*entry)->flags & WEIR_IF_F_READY, 0u);

  // Retried: the hook succeeds now.
  ASSERT_TRUE(em.apply({itf}, {}, [] { return Status{}; }).ok());
  EXPECT_FALSE(em.has_pending());
  EXPECT_EQ(em.managed(), 1u);
  progs = bpf::tc_list(idx, bpf::TcDir::Ingress);
  ASSERT_TRUE(progs.ok());
  EXPECT_EQ(progs->size(), 1u);
  ASSERT_TRUE(em.apply({}, {}).ok());  // detaches

  // Held back, then no longer wanted: nothing of it is left.
  ASSERT_FALSE(em.apply({itf}, {}, failing).ok());
  ASSERT_TRUE(em.apply({}, {}).ok());
  entry = t.maps->ifstate.lookup(uint32_t(idx));
  ASSERT_TRUE(entry.ok());
  EXPECT_FALSE(entry->has_value()) << "ifstate entry of a held-back interface left behind";
}

}  // namespace
}  // namespace weir::dataplane
