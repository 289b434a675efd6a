// The trace build of the TC programs (`weir bpf trace`, docs/bpf-trace.md): the log's stages for
// every packet, tagged with the nonce in the packet's mark, and no side effect on the maps the
// node shares: whatever path a packet takes, every map reads the same afterwards. Runs on both
// kernels (scripts/test-kernel.sh).
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <fmt/format.h>

#include <map>
#include <string>
#include <vector>

#include "bpf/map.h"
#include "calc/policy_ir.h"
#include "dataplane/programs.h"
#include "polprog/compiler.h"
#include "maps/map_table.h"
#include "tc_fixture.h"
#include "trace_lines.h"
#include "weir/maps.h"

namespace weir::test {
namespace {

using Variant = dataplane::TcPrograms::Variant;
constexpr int kAnyVerdict = -100;

// Every key and value of every map a packet could leave a trace in, as bytes (per-CPU values:
// every CPU's). The per-CPU scratch maps of one packet's chain (policy, log and profiling
// state) and the prog arrays are left out: they hold nothing that outlives a packet, or programs.
std::map<std::string, std::map<std::string, std::string>> snapshot(const TcObject& tc) {
  std::map<std::string, std::map<std::string, std::string>> out;
  auto ncpu = bpf::num_possible_cpus();
  EXPECT_TRUE(ncpu.ok());
  for (const maps::MapSpec& spec : maps::kMapSpecs) {
    // The ring buffer has no keys: what it was sent shows in weir_flowst1 (sent/lost/limited),
    // which is compared (the fixture enables flow events, see TraceTest).
    if (spec.type == BPF_MAP_TYPE_PROG_ARRAY || spec.type == BPF_MAP_TYPE_RINGBUF || spec.id == maps::MapId::PSTATE ||
        spec.id == maps::MapId::LOG_ST || spec.id == maps::MapId::PROF_ST)
      continue;
    auto m = bpf::MapFd::dup_of(tc.map_fd(std::string(spec.name)));
    EXPECT_TRUE(m.ok()) << spec.name;
    if (!m.ok()) continue;
    size_t vsize = m->info().value_size;
    if (bpf::is_percpu_map_type(m->info().type)) vsize = (vsize + 7) / 8 * 8 * static_cast<size_t>(*ncpu);
    std::vector<std::string> keys;
    const bool array = spec.type == BPF_MAP_TYPE_ARRAY || spec.type == BPF_MAP_TYPE_PERCPU_ARRAY;
    if (array) {
      for (uint32_t i = 0; i < m->info().max_entries; i++) keys.emplace_back(reinterpret_cast<const char*>(&i), 4);
    } else {
      auto k = bpf::detail::raw_keys(*m);
      EXPECT_TRUE(k.ok()) << spec.name;
      if (k.ok()) keys = *k;
    }
    auto& entries = out[std::string(spec.name)];
    for (const std::string& key : keys) {
      std::string val(vsize, '\0');
      auto r = bpf::detail::raw_lookup(*m, key.data(), val.data());
      if (r.ok() && *r) entries[key] = val;
    }
  }
  return out;
}

class TraceTest : public TcTest {
 protected:
  Variant variant() const override { return Variant::Trace; }
  // With flow events on, an event the programs sent shows in weir_flowst1 (snapshot()).
  void SetUp() override {
    TcTest::SetUp();
    if (!HasFatalFailure()) enable_flow_events();
  }
  // Runs `p` on `pkt` at `ifindex` with the nonce `mark`; the trace's lines.
  std::vector<calc::TraceLine> trace(Prog p, uint32_t ifindex, const Bytes& pkt, uint32_t mark, int& retval) {
    auto r = tc->run(p, ifindex, pkt, 1, mark);
    EXPECT_TRUE(r.ok()) << r.error().str();
    retval = r.ok() ? r->retval : -100;
    return trace_of("wtr" + std::to_string(mark));
  }
  uint32_t nonce() {
    static uint32_t n = static_cast<uint32_t>(getpid()) * 1000u;
    return ++n;
  }
};

TEST_F(TraceTest, EveryPathItTakesLeavesEveryMapAsItWas) {
  // An established flow for the trace to find: written as the programs would have.
  const auto [key, client_is_a] = ct_key(kClientIp, 43300, kBe1Ip, 8080, kTcp);
  weir_ct_val v{};
  v.type = WEIR_CT_NORMAL;
  v.flags = client_is_a ? WEIR_CT_F_A_IS_CLIENT : 0;
  weir_ct_leg& client = client_is_a ? v.a : v.b;
  weir_ct_leg& server = client_is_a ? v.b : v.a;
  client.flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;
  client.ifindex = client_if;
  server.flags = WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK;  // not approved yet: the trace would approve it
  ASSERT_TRUE(tc->ct_put(key, v).ok());
  const auto before = snapshot(*tc);
  ASSERT_FALSE(before.at(WEIR_MAP_CT).empty());

  struct Case {
    std::string what;
    Prog prog;
    uint32_t ifindex;
    Bytes pkt;
    int verdict;
    std::vector<std::string> stages;  // in order, among the trace's lines
  };
  const std::vector<Case> cases = {
      {"a new TCP flow through a service", Prog::FromWl, client_if, build(client_tcp(43301, kVip, kVipTcpPort, kTcpSyn)),
       TC_ACT_REDIRECT,
       {"IP 10.65.0.10:43301 -> 10.96.0.10:80 proto=6", "CT: miss",
        "NAT: frontend 10.96.0.10:80 -> backend 10.65.1.11:8080", "Redirect to ifindex=" + std::to_string(be1_if)}},
      {"a new UDP flow through a service", Prog::FromWl, client_if, build(client_udp(40100, kVip, kVipUdpPort)),
       TC_ACT_REDIRECT, {"IP 10.65.0.10:40100 -> 10.96.0.10:53 proto=17", "CT: miss"}},
      {"the established flow", Prog::FromWl, client_if, build(client_tcp(43300, kBe1Ip, 8080, kTcpAck)), kAnyVerdict,
       {"IP 10.65.0.10:43300 -> 10.65.1.11:8080 proto=6", fmt::format("CT: hit type=0 leg_flags={:x}", client.flags)}},
      {"towards a workload, no entry", Prog::ToWl, be1_if,
       build(tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, 41100, kBe1Ip, 8080, kTcpSyn)), TC_ACT_OK,
       {"IP 192.168.50.5:41100 -> 10.65.1.11:8080 proto=6", "CT: miss"}},
      {"a spoofed source (dropped)", Prog::FromWl, client_if,
       build(tcp_pkt(kClientMac, kClientHostMac, ip4("10.65.9.9"), 40000, kBe1Ip, 80, kTcpSyn)), TC_ACT_SHOT,
       {"Drop reason=dropped_unknown_source"}},
  };
  for (const Case& c : cases) {
    const uint32_t mark = nonce();
    int retval = 0;
    auto lines = trace(c.prog, c.ifindex, c.pkt, mark, retval);
    if (c.verdict != kAnyVerdict) EXPECT_EQ(retval, c.verdict) << c.what << "\n" << messages(lines);
    EXPECT_TRUE(in_order(lines, c.stages)) << c.what << "\n" << messages(lines);
    ASSERT_FALSE(lines.empty()) << c.what;
    EXPECT_EQ(lines.front().message.rfind("New packet at ifindex=" + std::to_string(c.ifindex), 0), 0u) << c.what;
    EXPECT_EQ(lines.back().message.rfind("Final result=", 0), 0u) << c.what << "\n" << messages(lines);
    EXPECT_EQ(snapshot(*tc), before) << c.what << ": a map changed";
  }
}

// Through a policy program compiled with the trace capability (the agent's are): the trace
// follows the packet into it and out through the trace build's continuation, with the verdict,
// and the policy counts nothing either.
TEST_F(TraceTest, APolicyProgramTakesTheTraceThroughWithoutCountingTheRule) {
  polprog::CompileOptions opts;
  opts.trace = true;
  auto compiled = polprog::compile(calc::pol::fail_closed_policy(calc::pol::Direction::Egress), opts);
  ASSERT_TRUE(compiled.ok()) << compiled.error().str();
  auto loaded = polprog::load(*compiled, tc->policy_map_fds(), "wtrace{}_deny");
  ASSERT_TRUE(loaded.ok()) << loaded.error().str();
  constexpr uint32_t kSlot = 5;
  const int fd = loaded->chunks[0].get();
  ASSERT_EQ(bpf_map_update_elem(tc->map_fd(WEIR_MAP_JUMP), &kSlot, &fd, BPF_ANY), 0);
  weir_ifstate_val ifs{};
  ASSERT_EQ(bpf_map_lookup_elem(tc->map_fd(WEIR_MAP_IFSTATE), &client_if, &ifs), 0);
  ifs.egress_slot = kSlot;
  ASSERT_TRUE(tc->put_ifstate(client_if, ifs).ok());

  const auto before = snapshot(*tc);
  int retval = 0;
  auto lines = trace(Prog::FromWl, client_if, build(client_tcp(43303, kBe1Ip, 8080, kTcpSyn)), nonce(), retval);
  EXPECT_EQ(retval, TC_ACT_SHOT) << messages(lines);
  EXPECT_TRUE(in_order(lines, {"IP 10.65.0.10:43303 -> 10.65.1.11:8080 proto=6", "CT: miss",
                               "Policy: calling jump slot 5", "Policy: verdict=DENY rule_id=ffffffffffffffff",
                               "Drop reason=dropped_by_policy"}))
      << messages(lines);
  EXPECT_EQ(lines.back().message.rfind("Final result=DENY (2)", 0), 0u) << messages(lines);
  EXPECT_EQ(snapshot(*tc), before) << "a map changed (the rule counters among them)";
}

// What the same packets do to the maps through the production build: the snapshot comparison
// above would see it (a test that could not fail would prove nothing).
class ProductionSideEffectsTest : public TraceTest {
 protected:
  Variant variant() const override { return Variant::Production; }
};

TEST_F(ProductionSideEffectsTest, TheProductionBuildChangesTheMapsTheTraceLeavesAlone) {
  const auto before = snapshot(*tc);
  ASSERT_EQ(tc->run(Prog::FromWl, client_if, build(client_tcp(43302, kVip, kVipTcpPort, kTcpSyn)))->retval,
            TC_ACT_REDIRECT);
  const auto after = snapshot(*tc);
  EXPECT_NE(after.at(WEIR_MAP_CT), before.at(WEIR_MAP_CT)) << "conntrack entries created";
  EXPECT_NE(after.at(WEIR_MAP_COUNTERS), before.at(WEIR_MAP_COUNTERS)) << "the packet counted";
  EXPECT_NE(after.at(WEIR_MAP_CT_STATS), before.at(WEIR_MAP_CT_STATS)) << "creations counted";
  EXPECT_NE(after.at(WEIR_MAP_FLOW_ST), before.at(WEIR_MAP_FLOW_ST)) << "a flow event sent";
}

}  // namespace
}  // namespace weir::test
