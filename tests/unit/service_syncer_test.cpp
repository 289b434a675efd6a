// ServiceSyncer and ConntrackScanner over in-memory maps: their logic without root. The same
// managers against kernel maps: tests/bpf/dataplane_test.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "dataplane/ct_scanner.h"
#include "dataplane/service_syncer.h"
#include "dataplane_testing.h"
#include "log_capture.h"

namespace weir::dataplane {
namespace {

using namespace test;

constexpr std::chrono::nanoseconds kNoGrace{0};

// Every ordinal a packet that read `fe`'s frontend now could pick, looked up later.
struct InFlight {
  uint32_t svc_id = 0, count = 0;
  static InFlight read(const maps::FakeTables& m, const calc::Frontend& fe) {
    auto v = m.nat_fe.peek(to_map_key(fe.key));
    EXPECT_TRUE(v.has_value());
    return v ? InFlight{v->svc_id, v->count} : InFlight{};
  }
  bool finds_backends(const maps::FakeTables& m) const {
    for (uint32_t i = 0; i < count; i++)
      if (!m.nat_be.contains(weir_nat_be_key{svc_id, i})) return false;
    return count > 0;
  }
};

TEST(ServiceSyncerFake, ReplacedBackendsStayUntilTheNextSync) {
  maps::FakeTables m;
  ServiceSyncer s(m.core(), kNoGrace);
  ASSERT_TRUE(s.adopt().ok());
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  ASSERT_TRUE(s.apply({a}).ok());
  auto packet = InFlight::read(m, a);

  auto a2 = frontend("10.96.0.10", 80, 6, {{"10.65.0.4", 8080}});
  ASSERT_TRUE(s.apply({a2}).ok());
  EXPECT_NE(InFlight::read(m, a2).svc_id, packet.svc_id) << "a change takes a fresh id";
  EXPECT_TRUE(packet.finds_backends(m)) << "the sync that replaced the backends deleted them";
  EXPECT_EQ(s.retired(), 1u);
  EXPECT_EQ(read_nat(m)[a.key].second, a2.backends);

  ASSERT_TRUE(s.apply({a2}).ok());
  EXPECT_FALSE(packet.finds_backends(m)) << "retired backends never deleted";
  EXPECT_EQ(m.nat_be.size(), 1u);
  EXPECT_EQ(s.retired(), 0u);
}

// At INFO a sync is one line whatever the number of services; each frontend's line is DEBUG.
TEST(ServiceSyncerFake, InfoLogsOneSummaryPerSyncAndDebugEachFrontend) {
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
    return n;
  };
  std::vector<calc::Frontend> fes;
  for (int i = 0; i < 300; i++)
    fes.push_back(frontend(fmt::format("10.96.{}.{}", i / 200, i % 200 + 1).c_str(), 80, 6,
                           {{"10.65.0.3", 8080}}));
  {
    maps::FakeTables m;
    ServiceSyncer s(m.core(), kNoGrace);
    weir::test::LogCapture log(spdlog::level::info);
    ASSERT_TRUE(s.apply(fes).ok());
    auto removed = fes;
    removed.resize(100);
    ASSERT_TRUE(s.apply(removed).ok());
    ASSERT_TRUE(s.apply(removed).ok());  // nothing changed: nothing to say
    const std::string text = log.text();
    EXPECT_EQ(count(text, "\n"), 2u) << text;
    EXPECT_EQ(count(text, "NAT frontends: 300 written, 0 removed, 0 unchanged"), 1u) << text;
    EXPECT_EQ(count(text, "NAT frontends: 0 written, 200 removed, 100 unchanged"), 1u) << text;
    EXPECT_EQ(count(text, "backends"), 0u) << text;
  }
  maps::FakeTables m;
  ServiceSyncer s(m.core(), kNoGrace);
  weir::test::LogCapture log(spdlog::level::debug);
  ASSERT_TRUE(s.apply(fes).ok());
  EXPECT_EQ(count(log.text(), ": 1 backends"), 300u);
}

TEST(ServiceSyncerFake, RemovedFrontendsBackendsGoAtTheNextChangeSync) {
  maps::FakeTables m;
  ServiceSyncer s(m.core(), kNoGrace);
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}});
  auto b = frontend("10.96.0.11", 80, 6, {{"10.65.0.5", 8080}});
  ASSERT_TRUE(s.apply({a, b}).ok());
  auto packet = InFlight::read(m, a);
  calc::SetDiff<calc::FrontendKey, calc::Frontend> d;
  d.removed = {a.key};
  ASSERT_TRUE(s.apply_changes(d).ok());
  EXPECT_FALSE(m.nat_fe.contains(to_map_key(a.key)));
  EXPECT_TRUE(packet.finds_backends(m)) << "removing a frontend deleted its backends at once";
  ASSERT_TRUE(s.apply_changes({}).ok());
  EXPECT_FALSE(packet.finds_backends(m));
  EXPECT_EQ(m.nat_be.size(), 1u);
}

TEST(ServiceSyncerFake, RetiredBackendsOutliveTheGrace) {
  maps::FakeTables m;
  ServiceSyncer s(m.core(), std::chrono::hours(1));
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}});
  ASSERT_TRUE(s.apply({a}).ok());
  auto packet = InFlight::read(m, a);
  ASSERT_TRUE(s.apply({frontend("10.96.0.10", 80, 6, {{"10.65.0.9", 8080}})}).ok());
  for (int i = 0; i < 3; i++) ASSERT_TRUE(s.apply_changes({}).ok());
  EXPECT_TRUE(packet.finds_backends(m)) << "deleted within the grace time";
}

TEST(ServiceSyncerFake, AFullBackendMapFailsOneServiceKeepsTheOthersAndLeavesNoHalfWrite) {
  maps::FakeTables m;
  m.nat_be.set_max_entries(3);
  ServiceSyncer s(m.core(), kNoGrace);
  auto small = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}});
  auto big = frontend("10.96.0.11", 80, 6, {{"10.65.0.4", 80}, {"10.65.0.5", 80}, {"10.65.0.6", 80}});
  auto st = s.apply({small, big});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().msg.find("default/svc:80"), std::string::npos) << st.error().str();
  EXPECT_NE(st.error().msg.find(std::strerror(E2BIG)), std::string::npos) << st.error().str();
  auto nat = read_nat(m);
  EXPECT_EQ(nat.count(small.key), 1u);
  EXPECT_EQ(nat.count(big.key), 0u) << "a frontend pointing at an incomplete backend list";
  EXPECT_EQ(m.nat_be.size(), 1u) << "the failed service's backends were not rolled back";
  // Room again: the next full apply writes what is missing, nothing else.
  m.nat_be.set_max_entries(16);
  ASSERT_TRUE(s.apply({small, big}).ok());
  EXPECT_EQ(s.last_stats().written, 1u);
  EXPECT_EQ(read_nat(m)[big.key].second, big.backends);
}

TEST(ServiceSyncerFake, ARestartAdoptsWritesNothingAndRetiresOrphans) {
  maps::FakeTables m;
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.4", 8080}});
  auto b = frontend("10.96.0.11", 53, 17, {{"10.65.0.5", 53}});
  {
    ServiceSyncer first(m.core(), kNoGrace);
    ASSERT_TRUE(first.apply({a, b}).ok());
  }
  ASSERT_TRUE(m.nat_be.update(weir_nat_be_key{999, 0}, weir_nat_be_val{}).ok());  // an orphan
  const auto before = read_nat(m);
  const size_t writes = m.nat_fe.updates() + m.nat_be.updates();
  ServiceSyncer second(m.core(), kNoGrace);
  ASSERT_TRUE(second.adopt().ok());
  EXPECT_EQ(second.programmed(), 2u);
  EXPECT_TRUE(m.nat_be.contains(weir_nat_be_key{999, 0})) << "adoption deleted at once";
  ASSERT_TRUE(second.apply({a, b}).ok());
  EXPECT_EQ(m.nat_fe.updates() + m.nat_be.updates(), writes) << "unchanged input was rewritten";
  EXPECT_EQ(read_nat(m), before);
  EXPECT_FALSE(m.nat_be.contains(weir_nat_be_key{999, 0})) << "orphan never deleted";
  // Ids go on above everything found.
  ASSERT_TRUE(second.apply({frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}}), b}).ok());
  EXPECT_GT(read_nat(m)[a.key].first, 999u);
}

TEST(ServiceSyncerFake, ApplyChangesEqualsAFullApply) {
  auto a = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}});
  auto b = frontend("10.96.0.11", 80, 6, {{"10.65.0.4", 8080}});
  auto a2 = frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}, {"10.65.0.7", 8080}});
  auto c = frontend("10.96.0.12", 80, 6, {{"10.65.0.8", 80}});
  maps::FakeTables full, incr;
  ServiceSyncer f(full.core(), kNoGrace), i(incr.core(), kNoGrace);
  ASSERT_TRUE(f.apply({a, b}).ok());
  ASSERT_TRUE(i.apply({a, b}).ok());
  ASSERT_TRUE(f.apply({a2, c}).ok());
  calc::SetDiff<calc::FrontendKey, calc::Frontend> d;
  d.removed = {b.key};
  d.added = {c};
  d.updated = {a2};
  ASSERT_TRUE(i.apply_changes(d).ok());
  EXPECT_EQ(nat_content(full), nat_content(incr));
  ASSERT_TRUE(i.apply({a2, c}).ok());
  EXPECT_EQ(i.last_stats().written, 0u) << "the full set found something left to do";
  ASSERT_TRUE(f.apply({a2, c}).ok());
  EXPECT_EQ(full.nat_be.size(), incr.nat_be.size()) << "retired backends differ";
}

// ---------------------------------------------------------------- conntrack scanner

bool present(const maps::FakeTables& m, const weir_ct_key& k) { return m.ct.contains(k); }

TEST(ConntrackScannerFake, APairLivesWhileEitherHalfDoesAndGoesTogether) {
  maps::FakeTables m;
  const uint64_t now = 10000 * kSec;
  auto idle = nat_pair("10.65.0.2", 40000, "10.96.0.10", 53, "10.65.0.5", 5353, 17, now - 61 * kSec, 0);
  auto half = nat_pair("10.65.0.2", 40001, "10.96.0.10", 53, "10.65.0.5", 5353, 17, now - 61 * kSec, 0);
  half.rev.last_seen_ns = now - kSec;  // the reply half was just used
  auto tcp = nat_pair("10.65.0.2", 40002, "10.96.0.10", 80, "10.65.0.3", 8080, 6, now - 120 * kSec,
                      kEstablished);
  for (const auto* p : {&idle, &half, &tcp}) insert(m, *p);
  ConntrackScanner sc(m.core());
  auto st = sc.scan(model::ConntrackTimeouts{}, nullptr, now);
  ASSERT_TRUE(st.ok()) << st.error().str();
  EXPECT_EQ(st->scanned, 6u);
  EXPECT_EQ(st->expired, 2u);
  EXPECT_EQ(st->kept, 4u);
  EXPECT_FALSE(present(m, idle.fwd_key));
  EXPECT_FALSE(present(m, idle.rev_key));
  EXPECT_TRUE(present(m, half.fwd_key)) << "a pair whose other half is live was expired";
  EXPECT_TRUE(present(m, half.rev_key));
  EXPECT_TRUE(present(m, tcp.fwd_key)) << "an established flow idle 2 min was expired";
  EXPECT_EQ(agent_deleted(m), 2u);
}

TEST(ConntrackScannerFake, EachStateMeetsItsOwnTimeout) {
  maps::FakeTables m;
  const uint64_t now = 10000 * kSec;
  model::ConntrackTimeouts to;
  to.tcp_syn_sent = std::chrono::seconds(20);
  to.tcp_established = std::chrono::seconds(300);
  // Idle 30 s: past SYN-SENT's timeout, well within ESTABLISHED's.
  auto syn = nat_pair("10.65.0.2", 41000, "10.96.0.10", 80, "10.65.0.3", 8080, 6, now - 30 * kSec,
                      WEIR_CT_LEG_SYN);
  syn.rev.a.flags = syn.rev.b.flags = syn.fwd.b.flags = 0;
  auto est = nat_pair("10.65.0.2", 41001, "10.96.0.10", 80, "10.65.0.3", 8080, 6, now - 30 * kSec,
                      kEstablished);
  insert(m, syn);
  insert(m, est);
  ConntrackScanner sc(m.core());
  auto st = sc.scan(to, nullptr, now);
  ASSERT_TRUE(st.ok()) << st.error().str();
  EXPECT_FALSE(present(m, syn.fwd_key)) << "a SYN-SENT flow outlived its 20 s";
  EXPECT_TRUE(present(m, est.fwd_key)) << "an established flow expired by another state's timeout";
  // Past the established timeout it goes too.
  ASSERT_TRUE(sc.scan(to, nullptr, now + 301 * kSec).ok());
  EXPECT_FALSE(present(m, est.fwd_key));
}

TEST(ConntrackScannerFake, FlowsToRemovedBackendsGoAcrossChunks) {
  maps::FakeTables m;
  const uint64_t now = 10000 * kSec;
  const int kPairs = 5000;  // 10,000 entries: three chunks, a pair's halves often apart
  std::vector<NatPair> pairs;
  for (int i = 0; i < kPairs; i++) {
    pairs.push_back(nat_pair("10.65.0.2", static_cast<uint16_t>(1024 + i), "10.96.0.10", 80,
                             i % 2 ? "10.65.0.3" : "10.65.0.4", 8080, 6, now, kEstablished));
    insert(m, pairs.back());
  }
  ASSERT_GT(2u * kPairs, 2 * ConntrackScanner::kChunk);
  calc::BackendIndex idx({frontend("10.96.0.10", 80, 6, {{"10.65.0.3", 8080}})});
  ConntrackScanner sc(m.core());
  auto st = sc.scan(model::ConntrackTimeouts{}, &idx, now);
  ASSERT_TRUE(st.ok()) << st.error().str();
  EXPECT_EQ(st->stale_backend, static_cast<size_t>(kPairs));  // both halves of every other pair
  EXPECT_EQ(st->expired, 0u);
  for (int i = 0; i < kPairs; i++) {
    EXPECT_EQ(present(m, pairs[i].fwd_key), i % 2 == 1) << i;
    EXPECT_EQ(present(m, pairs[i].rev_key), i % 2 == 1) << i;
  }
  EXPECT_EQ(agent_deleted(m), static_cast<uint64_t>(kPairs));
}

TEST(ConntrackScannerFake, AMissingStatsIndexIsAnErrorButTheEntriesGo) {
  maps::FakeTables m;
  ASSERT_TRUE(*m.ct_stats.remove(WEIR_CT_STATS_AGENT));
  const uint64_t now = 10000 * kSec;
  auto idle = nat_pair("10.65.0.2", 40000, "10.96.0.10", 53, "10.65.0.5", 5353, 17, now - 61 * kSec, 0);
  insert(m, idle);
  ConntrackScanner sc(m.core());
  auto st = sc.scan(model::ConntrackTimeouts{}, nullptr, now);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().msg.find("weir_ct_stats"), std::string::npos) << st.error().str();
  EXPECT_EQ(m.ct.size(), 0u);
}

}  // namespace
}  // namespace weir::dataplane
