// Policy in the TC datapath (bpf/include/weir/policy.h, docs/packet-path.md): hand-assembled
// policy programs (polprog::Assembler) in jump slots, the ifstate pointing at them, run through
// the main programs with BPF_PROG_TEST_RUN. The tail calls, the per-CPU state and the
// continuations all run in the kernel: verdicts, output frames, conntrack and counters are
// checked, and what the policy program saw is read back from weir_pstate1.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <set>

#include "polprog/asm.h"
#include "polprog/disasm.h"
#include "tc_fixture.h"
#include "trace_lines.h"
#include "util/fd.h"
#include "weir/maps.h"
#include "weir/policy.h"

namespace weir::test {
namespace {

using polprog::Assembler;
using polprog::Label;
using polprog::MapRef;
using polprog::Size;
using namespace polprog;  // registers

constexpr uint64_t kAllowRule = 0x1001;
constexpr uint64_t kDenyRule = 0x2002;
constexpr uint64_t kSilentRule = 0x3003;

struct PolicySpec {
  uint32_t verdict = WEIR_POL_ALLOW;
  bool write_verdict = true;
  uint32_t cont_slot = WEIR_JUMP_FROM_WL_POLICY_DONE;
  uint64_t rule_id = kAllowRule;
};

class PolicyPathTest : public TcTest {
 protected:
  // A policy program as the compiler will generate them, reduced to its contract: write the
  // verdict and rule id into weir_pstate1[0], count the rule in weir_rule_cnt1, tail-call the
  // continuation; if that fails, TC_ACT_SHOT.
  Fd policy(const PolicySpec& spec) {
    Assembler a("test_policy");
    Label out = a.new_label("out");
    Label insert = a.new_label("insert");
    Label tail = a.new_label("tail");
    a.mov(R6, R1);
    a.st(Size::U32, R10, -4, 0);
    a.ld_map_fd(R1, MapRef{"pstate"});
    a.mov(R2, R10);
    a.add(R2, -4);
    a.call(BPF_FUNC_map_lookup_elem);
    a.jeq(R0, 0, out);
    if (spec.write_verdict) a.st(Size::U32, R0, int(offsetof(weir_pol_state, verdict)), spec.verdict);
    a.ld_imm64(R1, spec.rule_id);
    a.stx(Size::U64, R0, int(offsetof(weir_pol_state, rule_id)), R1);
    // weir_rule_cnt1[rule_id]++ (insert 1 when missing)
    a.stx(Size::U64, R10, -16, R1);
    a.ld_map_fd(R1, MapRef{"rule_cnt"});
    a.mov(R2, R10);
    a.add(R2, -16);
    a.call(BPF_FUNC_map_lookup_elem);
    a.jeq(R0, 0, insert);
    a.ldx(Size::U64, R1, R0, 0);
    a.add(R1, 1);
    a.stx(Size::U64, R0, 0, R1);
    a.ja(tail);
    a.bind(insert);
    a.st(Size::U64, R10, -24, 1);
    a.ld_map_fd(R1, MapRef{"rule_cnt"});
    a.mov(R2, R10);
    a.add(R2, -16);
    a.mov(R3, R10);
    a.add(R3, -24);
    a.mov(R4, BPF_NOEXIST);
    a.call(BPF_FUNC_map_update_elem);
    a.bind(tail);
    a.mov(R1, R6);
    a.ld_map_fd(R2, MapRef{"jump"});
    a.mov32(R3, spec.cont_slot);
    a.call(BPF_FUNC_tail_call);
    a.bind(out);
    a.mov(R0, TC_ACT_SHOT);
    a.exit();
    auto prog = a.assemble();
    EXPECT_TRUE(prog.ok()) << prog.error().str();
    if (!prog.ok()) return Fd();
    auto rel = relocate(*prog, {{MapRef{"pstate"}, tc->map_fd(WEIR_MAP_PSTATE)},
                                {MapRef{"rule_cnt"}, tc->map_fd(WEIR_MAP_RULE_CNT)},
                                {MapRef{"jump"}, tc->map_fd(WEIR_MAP_JUMP)}});
    EXPECT_TRUE(rel.ok()) << rel.error().str();
    std::string log(1 << 20, '\0');
    bpf_prog_load_opts opts{};
    opts.sz = sizeof(opts);
    opts.log_buf = log.data();
    opts.log_size = uint32_t(log.size());
    opts.log_level = 1;
    int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_t_pol", "GPL", as_bpf_insns(prog->insns.data()),
                           prog->insns.size(), &opts);
    EXPECT_GE(fd, 0) << "bpf_prog_load: " << strerror(errno) << "\n"
                     << log.c_str() << "\n"
                     << disassemble(*prog);
    return Fd(fd);
  }
  Fd allow(uint32_t cont = WEIR_JUMP_FROM_WL_POLICY_DONE) { return policy({WEIR_POL_ALLOW, true, cont, kAllowRule}); }
  Fd deny(uint32_t cont = WEIR_JUMP_FROM_WL_POLICY_DONE) { return policy({WEIR_POL_DENY, true, cont, kDenyRule}); }

  void install(uint32_t slot, const Fd& prog) {
    int fd = prog.get();
    ASSERT_EQ(bpf_map_update_elem(tc->map_fd(WEIR_MAP_JUMP), &slot, &fd, BPF_ANY), 0) << strerror(errno);
  }
  void set_slots(uint32_t ifindex, uint32_t ingress, uint32_t egress) {
    weir_ifstate_val v{};
    ASSERT_EQ(bpf_map_lookup_elem(tc->map_fd(WEIR_MAP_IFSTATE), &ifindex, &v), 0);
    v.ingress_slot = ingress;
    v.egress_slot = egress;
    ASSERT_TRUE(tc->put_ifstate(ifindex, v).ok());
  }

  // weir_pstate1[0] of every CPU, zeroed / read back.
  void clear_state() {
    int n = libbpf_num_possible_cpus();
    std::vector<weir_pol_state> zero(static_cast<size_t>(n));
    uint32_t k = 0;
    ASSERT_EQ(bpf_map_update_elem(tc->map_fd(WEIR_MAP_PSTATE), &k, zero.data(), BPF_ANY), 0);
  }
  // The state a policy program saw: the one CPU whose state is not all zero (nullopt if none,
  // failure if several: clear_state() before each run).
  std::optional<weir_pol_state> seen_state() {
    int n = libbpf_num_possible_cpus();
    std::vector<weir_pol_state> all(static_cast<size_t>(n));
    uint32_t k = 0;
    EXPECT_EQ(bpf_map_lookup_elem(tc->map_fd(WEIR_MAP_PSTATE), &k, all.data()), 0);
    std::optional<weir_pol_state> found;
    static const weir_pol_state zero{};
    for (const auto& s : all) {
      if (std::memcmp(&s, &zero, sizeof(s)) == 0) continue;
      EXPECT_FALSE(found.has_value()) << "state written on several CPUs";
      found = s;
    }
    return found;
  }
  uint64_t rule_count(uint64_t id) {
    int n = libbpf_num_possible_cpus();
    std::vector<uint64_t> v(static_cast<size_t>(n));
    if (bpf_map_lookup_elem(tc->map_fd(WEIR_MAP_RULE_CNT), &id, v.data()) != 0) return 0;
    uint64_t sum = 0;
    for (auto x : v) sum += x;
    return sum;
  }
  size_t ct_count() { return tc->ct_all().size(); }
};

// ---------------------------------------------------------------- egress policy (from_wl)

TEST_F(PolicyPathTest, EgressAllowToServiceSeesTheBackendAndCarriesOn) {
  Fd pol = allow();
  install(5, pol);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);
  clear_state();

  auto syn = client_tcp(40100, kVip, kVipTcpPort, kTcpSyn);
  auto r = from_wl(client_if, syn);
  // Backend 1 is a local workload: plain redirect, DNATed, exactly as without a policy.
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  auto want = syn;
  want.ip.daddr = kBe1Ip;
  tcp_of(want).dport = kBeTcpPort;
  want.eth.dst = kBe1Mac;
  want.eth.src = kBe1HostMac;
  EXPECT_FRAME(r.out, build(want));
  EXPECT_CSUMS(r.out);
  // One outcome: accepted by policy (not REDIRECT_PLAIN).
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_ACCEPT_BY_POLICY), uint64_t(1)));
  EXPECT_EQ(rule_count(kAllowRule), 1u);

  auto fwd = ct(kClientIp, 40100, kVip, kVipTcpPort, kTcp);
  auto rev = ct(kClientIp, 40100, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(fwd.has_value());
  ASSERT_TRUE(rev.has_value());
  EXPECT_EQ(fwd->type, WEIR_CT_NAT_FWD);
  EXPECT_EQ(fwd->nat_addr, kBe1Ip);
  EXPECT_EQ(rev->type, WEIR_CT_NAT_REV);

  // What the policy saw: the destination after DNAT, host-order copies, this hook.
  auto st = seen_state();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->saddr, kClientIp);
  EXPECT_EQ(st->daddr, kBe1Ip);
  EXPECT_EQ(st->saddr_h, ntohl(kClientIp));
  EXPECT_EQ(st->daddr_h, ntohl(kBe1Ip));
  EXPECT_EQ(st->sport, 40100);
  EXPECT_EQ(st->dport, kBeTcpPort);
  EXPECT_EQ(st->proto, kTcp);
  EXPECT_EQ(st->icmp_type, 0);
  EXPECT_EQ(st->hook, WEIR_HOOK_INGRESS);
  EXPECT_EQ(st->ifindex, client_if);
  EXPECT_EQ(st->pre_nat_daddr, kVip);
  EXPECT_EQ(st->pre_nat_dport, htons(kVipTcpPort));
  EXPECT_EQ(st->nat, 1);
  EXPECT_EQ(st->rule_id, kAllowRule);
  EXPECT_EQ(st->verdict, uint32_t(WEIR_POL_NONE)) << "the continuation consumes the verdict";
}

TEST_F(PolicyPathTest, ContinuationUsesTheBackendThePolicySaw) {
  // Two backends: the backend is picked once, before the policy; the continuation must DNAT to
  // the one the policy judged, never pick again.
  const uint16_t port = 88;
  add_service(kVip, port, kTcp, 20, {{kBe1Ip, 9001}, {kBe2Ip, 9002}});
  Fd pol = allow();
  install(6, pol);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 6);
  std::set<uint32_t> seen;
  for (uint16_t sport = 41000; sport < 41032; sport++) {
    clear_state();
    auto r = from_wl(client_if, client_tcp(sport, kVip, port, kTcpSyn));
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
    auto st = seen_state();
    ASSERT_TRUE(st.has_value());
    ASSERT_GE(r.out.size(), 14u + 20u + 4u);
    uint32_t daddr = 0;
    std::memcpy(&daddr, &r.out[14 + 16], 4);  // IPv4 destination (20-byte header)
    uint16_t dport = uint16_t(r.out[14 + 20 + 2] << 8 | r.out[14 + 20 + 3]);
    EXPECT_EQ(daddr, st->daddr) << "sport " << sport;
    EXPECT_EQ(dport, st->dport) << "sport " << sport;
    EXPECT_CSUMS(r.out);
    auto fwd = ct(kClientIp, sport, kVip, port, kTcp);
    ASSERT_TRUE(fwd.has_value());
    EXPECT_EQ(fwd->nat_addr, st->daddr);
    seen.insert(st->daddr);
  }
  EXPECT_EQ(seen.size(), 2u) << "32 flows should have reached both backends";
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_BY_POLICY), 32u);
}

TEST_F(PolicyPathTest, EgressDenyDropsAndCreatesNoState) {
  Fd pol = deny();
  install(5, pol);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);
  auto r = from_wl(client_if, client_tcp(40200, kBe1Ip, kBeTcpPort, kTcpSyn));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_DROP_BY_POLICY), uint64_t(1)));
  EXPECT_EQ(ct_count(), 0u);
  EXPECT_EQ(rule_count(kDenyRule), 1u);
  // To a service: no NAT entries either.
  auto r2 = from_wl(client_if, client_udp(40201, kVip, kVipUdpPort));
  EXPECT_EQ(r2.retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_BY_POLICY), 2u);
  EXPECT_EQ(ct_count(), 0u);
}

TEST_F(PolicyPathTest, UndecidedVerdictIsADeny) {
  Fd pol = policy({WEIR_POL_NONE, false, WEIR_JUMP_FROM_WL_POLICY_DONE, kSilentRule});
  install(5, pol);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);
  auto r = from_wl(client_if, client_tcp(40300, kRemoteIp, 443, kTcpSyn));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_DROP_BY_POLICY);
  EXPECT_EQ(rule_count(kSilentRule), 1u) << "the policy did run";
  EXPECT_EQ(ct_count(), 0u);
}

TEST_F(PolicyPathTest, EmptySlotDropsAsMissedTailCall) {
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 9);  // nothing installed in slot 9
  auto r = from_wl(client_if, client_tcp(40400, kRemoteIp, 443, kTcpSyn));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_DROP_TAIL_CALL), uint64_t(1)));
  EXPECT_EQ(ct_count(), 0u);
  // A slot beyond the map: same.
  set_slots(client_if, WEIR_NO_POLICY_SLOT, WEIR_MAP_JUMP_SIZE + 5);
  EXPECT_EQ(from_wl(client_if, client_tcp(40401, kRemoteIp, 443, kTcpSyn)).retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_TAIL_CALL), 2u);
}

TEST_F(PolicyPathTest, StateFromAnotherHookIsABrokenChain) {
  // An egress policy that (wrongly) returns to the to_wl continuation: the state says
  // from_wl, so the continuation refuses it.
  Fd pol = allow(WEIR_JUMP_TO_WL_POLICY_DONE);
  install(5, pol);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);
  auto r = from_wl(client_if, client_tcp(40500, kRemoteIp, 443, kTcpSyn));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(ct_count(), 0u);
  // The continuation counts at its own hook (to_wl = egress) on this ifindex.
  EXPECT_EQ(only_outcome(client_if, kEgress), std::make_pair(int(WEIR_CNT_DROP_TAIL_CALL), uint64_t(1)));
  EXPECT_EQ(tc->counters(client_if, kIngress).c[WEIR_CNT_TOTAL], 0u);
}

TEST_F(PolicyPathTest, EstablishedFlowsNeverRunPolicy) {
  Fd pass = allow(), block = deny();
  install(5, pass);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);
  const uint16_t cport = 40600;
  auto r1 = from_wl(client_if, client_tcp(cport, kRemoteIp, 443, kTcpSyn));
  EXPECT_EQ(r1.retval, TC_ACT_OK);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_BY_POLICY), 1u);
  ASSERT_TRUE(ct(kClientIp, cport, kRemoteIp, 443, kTcp).has_value());

  // The policy changes to deny (same slot replaced atomically, as the policy manager would).
  install(5, block);
  // The reply from the remote side (to_wl of the client, no ingress policy) and the client's
  // next packets belong to the established flow: they continue, no policy runs.
  auto synack = tcp_pkt(kClientHostMac, kClientMac, kRemoteIp, 443, kClientIp, cport, kTcpSyn | kTcpAck, 7000, 1001);
  EXPECT_EQ(to_wl(client_if, synack).retval, TC_ACT_OK);
  auto ack = client_tcp(cport, kRemoteIp, 443, kTcpAck, 1001, 7001);
  for (int i = 0; i < 3; i++) EXPECT_EQ(from_wl(client_if, ack).retval, TC_ACT_OK);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_ESTABLISHED), 3u);
  EXPECT_EQ(cnt(client_if, kEgress, WEIR_CNT_ACCEPT_ESTABLISHED), 1u);
  EXPECT_EQ(rule_count(kDenyRule), 0u) << "the deny policy must not have run for the established flow";
  EXPECT_EQ(rule_count(kAllowRule), 1u);

  // A new flow meets the new policy.
  auto r2 = from_wl(client_if, client_tcp(cport + 1, kRemoteIp, 443, kTcpSyn));
  EXPECT_EQ(r2.retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_BY_POLICY), 1u);
  EXPECT_EQ(rule_count(kDenyRule), 1u);

  // Removing the policy (slot none): new flows are allowed without one again.
  set_slots(client_if, WEIR_NO_POLICY_SLOT, WEIR_NO_POLICY_SLOT);
  EXPECT_EQ(from_wl(client_if, client_tcp(cport + 2, kRemoteIp, 443, kTcpSyn)).retval, TC_ACT_OK);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_NEW_FLOW), 1u);
}

TEST_F(PolicyPathTest, MidStreamTcpWithoutEntryIsJudgedButNotTracked) {
  Fd block = deny(), pass = allow();
  install(5, block);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);
  auto ack = client_tcp(40700, kRemoteIp, 443, kTcpAck, 5000, 6000);
  EXPECT_EQ(from_wl(client_if, ack).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_DROP_BY_POLICY);
  install(5, pass);
  auto r = from_wl(client_if, ack);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FRAME(r.out, build(ack));
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_BY_POLICY), 1u);
  EXPECT_EQ(ct_count(), 0u) << "mid-stream packets never create state";
}

TEST_F(PolicyPathTest, StateInputsForUdpServiceAndIcmp) {
  Fd pol = allow();
  install(5, pol);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);

  clear_state();
  auto r = from_wl(client_if, client_udp(40800, kVip, kVipUdpPort));
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  auto st = seen_state();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->proto, kUdp);
  EXPECT_EQ(st->daddr, kBe1Ip);
  EXPECT_EQ(st->dport, kBeUdpPort);
  EXPECT_EQ(st->sport, 40800);
  EXPECT_EQ(st->pre_nat_dport, htons(kVipUdpPort));

  clear_state();
  IcmpSpec echo = IcmpSpec::echo(8, 0x4242, 1);
  auto r2 = from_wl(client_if, icmp_pkt(kClientMac, kClientHostMac, kClientIp, kRemoteIp, echo));
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  st = seen_state();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->proto, kIcmp);
  EXPECT_EQ(st->daddr, kRemoteIp);
  EXPECT_EQ(st->daddr_h, ntohl(kRemoteIp));
  EXPECT_EQ(st->sport, 0) << "ICMP has no ports";
  EXPECT_EQ(st->dport, 0);
  EXPECT_EQ(st->icmp_type, 8);
  EXPECT_EQ(st->icmp_code, 0);
  EXPECT_EQ(st->nat, 0);
  EXPECT_TRUE(ct(kClientIp, 0x4242, kRemoteIp, 0x4242, kIcmp).has_value());
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_BY_POLICY), 2u);
}

// ---------------------------------------------------------------- ingress policy (to_wl)

TEST_F(PolicyPathTest, IngressPolicyForANewFlowAtToWl) {
  Fd block = deny(WEIR_JUMP_TO_WL_POLICY_DONE), pass = allow(WEIR_JUMP_TO_WL_POLICY_DONE);
  install(5, block);
  set_slots(be1_if, 5, WEIR_NO_POLICY_SLOT);
  // From the host stack / another node to backend 1.
  auto syn = tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, 33000, kBe1Ip, kBeTcpPort, kTcpSyn);
  clear_state();
  EXPECT_EQ(to_wl(be1_if, syn).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(be1_if, kEgress).first, WEIR_CNT_DROP_BY_POLICY);
  EXPECT_EQ(ct_count(), 0u);
  auto st = seen_state();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->hook, WEIR_HOOK_EGRESS);
  EXPECT_EQ(st->ifindex, be1_if);
  EXPECT_EQ(st->saddr, kRemoteIp);
  EXPECT_EQ(st->daddr, kBe1Ip);
  EXPECT_EQ(st->sport, 33000);
  EXPECT_EQ(st->dport, kBeTcpPort);
  EXPECT_EQ(st->ct_exists, 0);

  install(5, pass);
  auto r = to_wl(be1_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FRAME(r.out, build(syn));
  EXPECT_EQ(cnt(be1_if, kEgress, WEIR_CNT_ACCEPT_BY_POLICY), 1u);
  auto e = ct(kRemoteIp, 33000, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(leg_of(*e, kBe1Ip, kBeTcpPort, kRemoteIp, 33000).flags,
            uint32_t(WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD));
  EXPECT_EQ(leg_of(*e, kBe1Ip, kBeTcpPort, kRemoteIp, 33000).ifindex, be1_if);

  // Established now: a deny policy does not affect it.
  install(5, block);
  auto ack = tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, 33000, kBe1Ip, kBeTcpPort, kTcpAck, 1001, 1);
  EXPECT_EQ(to_wl(be1_if, ack).retval, TC_ACT_OK);
  EXPECT_EQ(cnt(be1_if, kEgress, WEIR_CNT_ACCEPT_ESTABLISHED), 1u);
  EXPECT_EQ(rule_count(kDenyRule), 1u) << "only the first, denied SYN ran the deny policy";
}

TEST_F(PolicyPathTest, IngressPolicyApprovesTheLegOfAPodToPodFlow) {
  Fd block = deny(WEIR_JUMP_TO_WL_POLICY_DONE), pass = allow(WEIR_JUMP_TO_WL_POLICY_DONE);
  install(5, block);
  set_slots(be1_if, 5, WEIR_NO_POLICY_SLOT);
  const uint16_t cport = 40900;
  // The client (no egress policy) opens a flow to backend 1: entry created, plain redirect.
  auto syn = client_tcp(cport, kBe1Ip, kBeTcpPort, kTcpSyn);
  auto r1 = from_wl(client_if, syn);
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_REDIRECT_PLAIN);
  auto before = ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(before.has_value());

  // At backend 1's to_wl: the entry exists, its leg is not approved: ingress policy denies.
  clear_state();
  EXPECT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(be1_if, kEgress).first, WEIR_CNT_DROP_BY_POLICY);
  auto st = seen_state();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->ct_exists, 1);
  EXPECT_EQ(st->saddr, kClientIp);
  EXPECT_EQ(st->daddr, kBe1Ip);
  auto after_deny = ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(after_deny.has_value());
  EXPECT_EQ(std::memcmp(&*after_deny, &*before, sizeof(weir_ct_val)), 0) << "a denied packet leaves the entry alone";
  // The client's retransmission: established, not approved by the destination: host stack;
  // it reaches backend 1's to_wl again and is denied again.
  EXPECT_EQ(from_wl(client_if, syn).retval, TC_ACT_OK);
  EXPECT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(be1_if, kEgress, WEIR_CNT_DROP_BY_POLICY), 2u);

  // Allowed: the leg is approved, the packet delivered.
  install(5, pass);
  auto r2 = run(Prog::ToWl, be1_if, r1.out);
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  EXPECT_FRAME(r2.out, r1.out);
  EXPECT_EQ(cnt(be1_if, kEgress, WEIR_CNT_ACCEPT_BY_POLICY), 1u);
  auto e = ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(leg_of(*e, kBe1Ip, kBeTcpPort, kClientIp, cport).flags,
            uint32_t(WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD));

  // Both legs approved: replies go peer to peer, and a deny policy now changes nothing.
  install(5, block);
  auto synack = be1_tcp(kBeTcpPort, kClientIp, cport, kTcpSyn | kTcpAck, 1, 1001);
  EXPECT_EQ(from_wl(be1_if, synack).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(cnt(be1_if, kIngress, WEIR_CNT_REDIRECT_PEER), 1u);
  EXPECT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_OK);
  EXPECT_EQ(cnt(be1_if, kEgress, WEIR_CNT_ACCEPT_ESTABLISHED), 1u);
  EXPECT_EQ(rule_count(kDenyRule), 2u);
}

TEST_F(PolicyPathTest, IngressApprovalOfAServiceFlowReachesBothNatEntries) {
  Fd pass = allow(WEIR_JUMP_TO_WL_POLICY_DONE);
  install(5, pass);
  set_slots(be1_if, 5, WEIR_NO_POLICY_SLOT);
  const uint16_t cport = 41100;
  auto r1 = from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpSyn));
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  clear_state();
  auto r2 = run(Prog::ToWl, be1_if, r1.out);
  EXPECT_EQ(r2.retval, TC_ACT_OK);
  EXPECT_EQ(only_outcome(be1_if, kEgress).first, WEIR_CNT_ACCEPT_BY_POLICY);
  auto st = seen_state();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->daddr, kBe1Ip) << "the ingress policy sees the backend (DNATed packet)";
  EXPECT_EQ(st->dport, kBeTcpPort);
  auto fwd = ct(kClientIp, cport, kVip, kVipTcpPort, kTcp);
  auto rev = ct(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_TRUE(fwd.has_value() && rev.has_value());
  EXPECT_TRUE(leg_of(*rev, kBe1Ip, kBeTcpPort, kClientIp, cport).flags & WEIR_CT_LEG_APPROVED);
  EXPECT_TRUE(leg_of(*fwd, kVip, kVipTcpPort, kClientIp, cport).flags & WEIR_CT_LEG_APPROVED)
      << "approval mirrored into the NAT_FWD entry";
}

TEST_F(PolicyPathTest, IngressEmptySlotDropsAsMissedTailCall) {
  set_slots(be1_if, 11, WEIR_NO_POLICY_SLOT);
  auto syn = tcp_pkt(kBe1HostMac, kBe1Mac, kRemoteIp, 33100, kBe1Ip, kBeTcpPort, kTcpSyn);
  EXPECT_EQ(to_wl(be1_if, syn).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(be1_if, kEgress), std::make_pair(int(WEIR_CNT_DROP_TAIL_CALL), uint64_t(1)));
  EXPECT_EQ(ct_count(), 0u);
}

TEST_F(PolicyPathTest, BothPoliciesOnOneFlow) {
  // Client egress allows, backend ingress allows: two policy runs, each counted at its hook.
  Fd out = allow(WEIR_JUMP_FROM_WL_POLICY_DONE), in = policy({WEIR_POL_ALLOW, true, WEIR_JUMP_TO_WL_POLICY_DONE, kSilentRule});
  install(5, out);
  install(6, in);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);
  set_slots(be1_if, 6, WEIR_NO_POLICY_SLOT);
  auto r1 = from_wl(client_if, client_udp(41200, kBe1Ip, 7000));
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  EXPECT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_OK);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_ACCEPT_BY_POLICY), 1u);
  EXPECT_EQ(cnt(be1_if, kEgress, WEIR_CNT_ACCEPT_BY_POLICY), 1u);
  EXPECT_EQ(rule_count(kAllowRule), 1u);
  EXPECT_EQ(rule_count(kSilentRule), 1u);
  // Now peer to peer both ways; no further policy runs.
  auto reply = udp_pkt(kBe1Mac, kBe1HostMac, kBe1Ip, 7000, kClientIp, 41200);
  EXPECT_EQ(from_wl(be1_if, reply).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(from_wl(client_if, client_udp(41200, kBe1Ip, 7000)).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(rule_count(kAllowRule), 1u);
  EXPECT_EQ(rule_count(kSilentRule), 1u);
}

// ---------------------------------------------------------------- the log variant's policy lines

class PolicyPathLogTest : public PolicyPathTest {
 protected:
  dataplane::TcPrograms::Variant variant() const override { return dataplane::TcPrograms::Variant::Log; }
};

TEST_F(PolicyPathLogTest, DebugLogNamesTheSlotTheVerdictAndTheRuleOfAPolicyDrop) {
  Fd pol = deny();
  install(5, pol);
  set_slots(client_if, WEIR_NO_POLICY_SLOT, 5);
  // A name of this run's own for the client's interface: the log's tag.
  const std::string name = "wp" + std::to_string(getpid() % 100000);
  weir_ifstate_val v{};
  ASSERT_EQ(bpf_map_lookup_elem(tc->map_fd(WEIR_MAP_IFSTATE), &client_if, &v), 0);
  std::snprintf(v.name, sizeof(v.name), "%s", name.c_str());
  ASSERT_TRUE(tc->put_ifstate(client_if, v).ok());
  const uint32_t zero = 0;
  const weir_log_if_val debug{WEIR_LOG_DEBUG, WEIR_LOG_FILTER_ALL};
  ASSERT_EQ(bpf_map_update_elem(tc->map_fd(WEIR_MAP_LOG_IF), &zero, &debug, BPF_ANY), 0);

  auto r = from_wl(client_if, client_tcp(40299, kBe1Ip, kBeTcpPort, kTcpSyn));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_DROP_BY_POLICY), uint64_t(1)));
  auto lines = trace_of(name);
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(in_order(lines, {"IP 10.65.0.10:40299 -> 10.65.1.11:8080 proto=6", "CT: miss", "NAT: no frontend",
                               "Policy: calling jump slot 5", "Policy: verdict=DENY rule_id=2002",
                               "Drop reason=dropped_by_policy"}))
      << messages(lines);
  EXPECT_EQ(lines.back().message.rfind("Final result=DENY (2). Program execution time: ", 0), 0u) << messages(lines);
}

}  // namespace
}  // namespace weir::test
