// Fixture for the TC datapath vectors: a fresh weir_tc object per test (small maps), a node with
// three local workloads (a client and two backends, each behind a host-side veth of the test
// namespace), their routes and ifstate entries, and two services (TCP and UDP) with one backend
// each plus two services without backends. Helpers build packets for each side, run a program
// and check frames, checksums and counters.
#pragma once

#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "csum_verify.h"
#include "dataplane/flow_events.h"
#include "netns_env.h"
#include "packet.h"
#include "tc_harness.h"

namespace weir::test {

inline const Mac kClientMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x10};
inline const Mac kClientHostMac{0xee, 0xee, 0x00, 0x00, 0x00, 0x10};
inline const Mac kBe1Mac{0x02, 0x00, 0x00, 0x00, 0x01, 0x11};
inline const Mac kBe1HostMac{0xee, 0xee, 0x00, 0x00, 0x01, 0x11};
inline const Mac kBe2Mac{0x02, 0x00, 0x00, 0x00, 0x01, 0x12};
inline const Mac kBe2HostMac{0xee, 0xee, 0x00, 0x00, 0x01, 0x12};

inline const uint32_t kClientIp = ip4("10.65.0.10");
inline const uint32_t kBe1Ip = ip4("10.65.1.11");
inline const uint32_t kBe2Ip = ip4("10.65.1.12");
inline const uint32_t kVip = ip4("10.96.0.10");
inline const uint32_t kRemoteIp = ip4("192.168.50.5");

constexpr uint16_t kVipTcpPort = 80;
constexpr uint16_t kVipUdpPort = 53;
constexpr uint16_t kVipTcpEmptyPort = 81;   // frontend with count 0
constexpr uint16_t kVipUdpEmptyPort = 54;
constexpr uint16_t kBeTcpPort = 8080;
constexpr uint16_t kBeUdpPort = 5353;
constexpr uint32_t kSvcTcp = 7;
constexpr uint32_t kSvcUdp = 8;
constexpr uint32_t kSvcEmpty = 9;

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kIcmp = 1;

constexpr uint32_t kIngress = WEIR_HOOK_INGRESS;  // from_wl
constexpr uint32_t kEgress = WEIR_HOOK_EGRESS;    // to_wl

inline PacketSpec tcp_pkt(const Mac& eth_src, const Mac& eth_dst, uint32_t saddr, uint16_t sport, uint32_t daddr,
                          uint16_t dport, uint8_t flags, uint32_t seq = 1000, uint32_t ack = 0) {
  PacketSpec s;
  s.eth.src = eth_src;
  s.eth.dst = eth_dst;
  s.ip.saddr = saddr;
  s.ip.daddr = daddr;
  s.ip.df = true;
  TcpSpec t;
  t.sport = sport;
  t.dport = dport;
  t.flags = flags;
  t.seq = seq;
  t.ack = ack;
  s.l4 = t;
  return s;
}

inline PacketSpec udp_pkt(const Mac& eth_src, const Mac& eth_dst, uint32_t saddr, uint16_t sport, uint32_t daddr,
                          uint16_t dport, Bytes payload = {'w', 'e', 'i', 'r', '-', 'u', 'd', 'p', '!', '!'}) {
  PacketSpec s;
  s.eth.src = eth_src;
  s.eth.dst = eth_dst;
  s.ip.saddr = saddr;
  s.ip.daddr = daddr;
  UdpSpec u;
  u.sport = sport;
  u.dport = dport;
  s.l4 = u;
  s.payload = std::move(payload);
  return s;
}

inline PacketSpec icmp_pkt(const Mac& eth_src, const Mac& eth_dst, uint32_t saddr, uint32_t daddr, IcmpSpec ic,
                           Bytes payload = {1, 2, 3, 4, 5, 6, 7, 8}) {
  PacketSpec s;
  s.eth.src = eth_src;
  s.eth.dst = eth_dst;
  s.ip.saddr = saddr;
  s.ip.daddr = daddr;
  s.l4 = ic;
  s.payload = std::move(payload);
  return s;
}

// Client pod -> anything (as it arrives at the client's host veth ingress).
inline PacketSpec client_tcp(uint16_t sport, uint32_t daddr, uint16_t dport, uint8_t flags, uint32_t seq = 1000,
                             uint32_t ack = 0) {
  return tcp_pkt(kClientMac, kClientHostMac, kClientIp, sport, daddr, dport, flags, seq, ack);
}
inline PacketSpec client_udp(uint16_t sport, uint32_t daddr, uint16_t dport) {
  return udp_pkt(kClientMac, kClientHostMac, kClientIp, sport, daddr, dport);
}
// Backend 1 pod -> anything (at backend 1's host veth ingress).
inline PacketSpec be1_tcp(uint16_t sport, uint32_t daddr, uint16_t dport, uint8_t flags, uint32_t seq = 5000,
                          uint32_t ack = 0) {
  return tcp_pkt(kBe1Mac, kBe1HostMac, kBe1Ip, sport, daddr, dport, flags, seq, ack);
}

inline TcpSpec& tcp_of(PacketSpec& s) { return std::get<TcpSpec>(s.l4); }
inline UdpSpec& udp_of(PacketSpec& s) { return std::get<UdpSpec>(s.l4); }

class TcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    start_ns = mono_ns();
    const auto& topo = topology();
    ASSERT_TRUE(topo.ready) << "test network namespace not set up: " << topo.error;
    client_if = topo.client_if;
    be1_if = topo.be1_if;
    be2_if = topo.be2_if;
    auto obj = TcObject::shared(MapSizes::small(), variant());
    ASSERT_TRUE(obj.ok()) << obj.error().str();
    tc = *obj;

    add_workload(client_if, "weir0h", kClientHostMac, kClientIp, kClientMac);
    add_workload(be1_if, "weir1h", kBe1HostMac, kBe1Ip, kBe1Mac);
    add_workload(be2_if, "weir2h", kBe2HostMac, kBe2Ip, kBe2Mac);
    add_service(kVip, kVipTcpPort, kTcp, kSvcTcp, {{kBe1Ip, kBeTcpPort}});
    add_service(kVip, kVipUdpPort, kUdp, kSvcUdp, {{kBe1Ip, kBeUdpPort}});
    add_service(kVip, kVipTcpEmptyPort, kTcp, kSvcEmpty, {});
    add_service(kVip, kVipUdpEmptyPort, kUdp, kSvcEmpty, {});
  }

  // The build of the TC programs the test runs (the log variant's tests override it).
  virtual dataplane::TcPrograms::Variant variant() const { return dataplane::TcPrograms::Variant::Production; }

  // Invariant after every test: on every (ifindex, hook), Total == the sum of the outcomes.
  void TearDown() override {
    if (!tc) return;
    for (const auto& k : tc->counter_keys()) {
      auto c = tc->counters(k.ifindex, k.hook);
      uint64_t sum = 0;
      for (int i = WEIR_CNT_OUTCOME_FIRST; i < WEIR_CNT_OUTCOME_END; i++) sum += c.c[i];
      EXPECT_EQ(c.c[WEIR_CNT_TOTAL], sum) << "ifindex " << k.ifindex << " hook " << k.hook;
    }
  }

  void add_workload(uint32_t ifindex, const std::string& name, const Mac& host_mac, uint32_t ip, const Mac& mac) {
    weir_ifstate_val ifs{};
    std::snprintf(ifs.name, sizeof(ifs.name), "%s", name.c_str());
    ifs.flags = WEIR_IF_F_WORKLOAD | WEIR_IF_F_READY;
    ifs.ingress_slot = WEIR_NO_POLICY_SLOT;
    ifs.egress_slot = WEIR_NO_POLICY_SLOT;
    std::copy(host_mac.begin(), host_mac.end(), ifs.host_mac);
    ASSERT_TRUE(tc->put_ifstate(ifindex, ifs).ok());
    weir_route_val rt{};
    rt.flags = WEIR_RT_F_LOCAL_WORKLOAD | WEIR_RT_F_IN_POOL;
    rt.ifindex = ifindex;
    std::copy(mac.begin(), mac.end(), rt.mac);
    ASSERT_TRUE(tc->put_route(ip, 32, rt).ok());
  }

  struct Backend {
    uint32_t addr;
    uint16_t port;
  };
  void add_service(uint32_t vip, uint16_t port, uint8_t proto, uint32_t svc, const std::vector<Backend>& bes) {
    for (size_t i = 0; i < bes.size(); i++) ASSERT_TRUE(tc->put_backend(svc, uint32_t(i), bes[i].addr, bes[i].port).ok());
    weir_nat_fe_val fe{};
    fe.svc_id = svc;
    fe.count = uint32_t(bes.size());
    fe.local = uint32_t(bes.size());
    ASSERT_TRUE(tc->put_frontend(vip, port, proto, fe).ok());
  }

  // Flow events on (weir_flowcfg1: both kinds; interval 0: no rate limit), as an agent with
  // flow records writes it. The fixture's reset leaves them off.
  void enable_flow_events(uint64_t interval_ns = 0, uint64_t burst_ns = 0) {
    weir_flow_cfg cfg{};
    cfg.flags = WEIR_FLOW_CFG_START | WEIR_FLOW_CFG_DROP | WEIR_FLOW_CFG_END;
    cfg.interval_ns = interval_ns;
    cfg.burst_ns = burst_ns;
    const uint32_t zero = 0;
    ASSERT_EQ(bpf_map_update_elem(tc->map_fd(WEIR_MAP_FLOW_CFG), &zero, &cfg, BPF_ANY), 0) << strerror(errno);
  }

  // Every event weir_flows1 holds now, oldest first, taken out of it (the reader, the agent's,
  // is opened on first use); the ends of replaced flows among them go to flow_ends.
  std::vector<weir_flow_event> flow_events() {
    std::vector<weir_flow_event> out;
    if (!open_flow_reader()) return out;
    auto n = flow_reader_->drain([&](const weir_flow_event& e) { out.push_back(e); },
                                 [&](const dataplane::CtRemoved& r) { flow_ends.push_back(r); });
    EXPECT_TRUE(n.ok()) << n.error().str();
    return out;
  }
  // weir_flowst1 summed over CPUs.
  weir_flow_stats flow_stats() {
    if (!open_flow_reader()) return {};
    auto s = flow_reader_->stats();
    EXPECT_TRUE(s.ok()) << s.error().str();
    return s.ok() ? *s : weir_flow_stats{};
  }

  TestRun run(Prog p, uint32_t ifindex, const Bytes& pkt) {
    auto r = tc->run(p, ifindex, pkt);
    EXPECT_TRUE(r.ok()) << r.error().str();
    return r.ok() ? *r : TestRun{-1, {}, 0};
  }
  TestRun from_wl(uint32_t ifindex, const PacketSpec& s) { return run(Prog::FromWl, ifindex, build(s)); }
  TestRun to_wl(uint32_t ifindex, const PacketSpec& s) { return run(Prog::ToWl, ifindex, build(s)); }

  uint64_t cnt(uint32_t ifindex, uint32_t hook, int counter) const { return tc->counters(ifindex, hook).c[counter]; }

  // The single outcome counter that is non-zero on (ifindex, hook), with its value; -1 if none
  // or several.
  std::pair<int, uint64_t> only_outcome(uint32_t ifindex, uint32_t hook) const {
    auto c = tc->counters(ifindex, hook);
    int which = -1;
    for (int i = WEIR_CNT_OUTCOME_FIRST; i < WEIR_CNT_OUTCOME_END; i++) {
      if (c.c[i] == 0) continue;
      if (which != -1) return {-1, 0};
      which = i;
    }
    return {which, which >= 0 ? c.c[which] : 0};
  }

  std::optional<weir_ct_val> ct(uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport, uint8_t proto) const {
    return tc->ct_get(ct_key(saddr, sport, daddr, dport, proto).first);
  }
  // The leg of the side (addr, port) of an entry keyed by that side and the other one.
  static const weir_ct_leg& leg_of(const weir_ct_val& v, uint32_t addr, uint16_t port, uint32_t other, uint16_t oport) {
    return ct_key(addr, port, other, oport, 0).second ? v.a : v.b;
  }

  // Conntrack timestamps come from CLOCK_MONOTONIC_COARSE (tick resolution): two packets in a
  // row may carry the same time. To see that a packet wrote a timestamp, a test backdates the
  // entry to 1 ns first, then checks that the field holds a current CLOCK_MONOTONIC time.
  static constexpr uint64_t kBackdated = 1;
  void backdate(uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport, uint8_t proto) {
    auto k = ct_key(saddr, sport, daddr, dport, proto).first;
    auto v = tc->ct_get(k);
    ASSERT_TRUE(v.has_value()) << "no entry to backdate";
    v->created_ns = kBackdated;
    v->last_seen_ns = kBackdated;
    ASSERT_TRUE(tc->ct_put(k, *v).ok());
  }
  static uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
  }
  // A timestamp written during this test: not before its start (minus one coarse tick, 20 ms
  // covers HZ >= 50) and not in the future.
  void expect_current(uint64_t ns, const char* what) const {
    EXPECT_GE(ns + 20'000'000u, start_ns) << what << " older than the test";
    EXPECT_LE(ns, mono_ns()) << what << " in the future";
  }

  uint64_t start_ns = 0;
  std::vector<dataplane::CtRemoved> flow_ends;  // what flow_events() found of WEIR_FLOW_EV_END
  std::optional<dataplane::FlowEventReader> flow_reader_;
  bool open_flow_reader() {
    if (flow_reader_) return true;
    auto r = dataplane::FlowEventReader::open(tc->map_fds());
    EXPECT_TRUE(r.ok()) << r.error().str();
    if (r.ok()) flow_reader_.emplace(std::move(*r));
    return r.ok();
  }
  uint32_t client_if = 0, be1_if = 0, be2_if = 0;
  TcObject* tc = nullptr;  // TcObject::shared(): loaded once per process, empty maps per test
};

#define EXPECT_FRAME(got, want) EXPECT_EQ((got), (want)) << ::weir::test::hex_diff((got), (want))
#define EXPECT_CSUMS(frame) EXPECT_EQ(::weir::test::verify::checksums(frame), "")

}  // namespace weir::test
