// weir_policy_bench: the rule compiler (src/polprog/compiler.*) measured.
//   1. compile + load (verifier) time of policies of 10, 100, 1,000 and 10,000 rules;
//   2. per-packet cost (BPF_PROG_TEST_RUN) of a packet through a 1,000-rule policy decided by
//      its last rule, against an empty policy and an empty TC program;
//   3. the cost of an IP set match with 10, 10,000 and 1,000,000 /32 members, written where
//      the policy manager writes them (the exact-member hash weir_ipsetx1; the trie weir_ipsets1
//      holds only shorter CIDRs and is empty here), for a member and for a non-member.
// Maps are created by the benchmark with the production shapes and sizes (weir/maps.h); no
// program is attached anywhere, no interface is touched. Method and figures: bench/README.md.
//
//   weir_policy_bench [--repeat N] [--runs M] [--cpu C]
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "bench_options.h"
#include "calc/policy_ir.h"
#include "maps/map_table.h"
#include "polprog/asm.h"
#include "polprog/compiler.h"
#include "util/fd.h"
#include "weir/counters.h"
#include "weir/maps.h"
#include "weir/policy.h"

namespace weir::bench {
namespace {

namespace pol = calc::pol;
using polprog::CompiledPolicy;
using polprog::LoadedPolicy;

[[noreturn]] void die(const std::string& what) { weir::bench::die("weir_policy_bench", what); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2.0);
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

class Bench {
 public:
  explicit Bench(const Options& o) : opt_(o) {
    ncpu_ = libbpf_num_possible_cpus();
    if (ncpu_ <= 0) die("libbpf_num_possible_cpus failed");
    // The policy path's maps as the map table declares them (default sizes).
    state_ = make_map(maps::MapId::PSTATE);
    ipsets_ = make_map(maps::MapId::IPSETS);
    ipset_x_ = make_map(maps::MapId::IPSET_X);
    rule_cnt_ = make_map(maps::MapId::RULE_CNT);
    jump_ = make_map(maps::MapId::JUMP);
    counters_ = make_map(maps::MapId::COUNTERS);
    // The continuations return the verdict (1 allow, 2 deny), so every run checks the decision.
    for (uint32_t slot : {0u, 1u}) {
      cont_[slot] = load_raw(continuation_insns(), "weir_pb_cont");
      int fd = cont_[slot].get();
      if (bpf_map_update_elem(jump_.get(), &slot, &fd, BPF_ANY) != 0) die("installing a continuation");
    }
    const bpf_insn floor[] = {{BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, TC_ACT_OK}, {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
    floor_ = load_raw(std::vector<bpf_insn>(std::begin(floor), std::end(floor)), "weir_pb_floor");
  }

  polprog::PolicyMapFds fds() const {
    return {state_.get(), ipsets_.get(), rule_cnt_.get(), jump_.get(), counters_.get(), ipset_x_.get()};
  }

  polprog::CompileOptions opts() {
    polprog::CompileOptions o;
    o.slot_of_chunk = [this](size_t) { return next_slot_++; };
    return o;
  }

  // Compiles, loads and installs; returns the entry's fd owner. Times go to *compile_ms/*load_ms.
  LoadedPolicy build(const pol::EndpointPolicy& p, double* compile_ms = nullptr, double* load_ms = nullptr,
                     size_t* chunks = nullptr, size_t* insns = nullptr) {
    next_slot_ = WEIR_JUMP_FIRST_POLICY_SLOT;
    auto t0 = Clock::now();
    auto c = polprog::compile(p, opts());
    if (!c.ok()) die(c.error().str());
    if (compile_ms) *compile_ms = ms_since(t0);
    t0 = Clock::now();
    auto l = polprog::load(*c, fds(), "weir_pb_pol");
    if (!l.ok()) die(l.error().str());
    auto st = polprog::install_chunks(*l, jump_.get());
    if (!st.ok()) die(st.error().str());
    if (load_ms) *load_ms = ms_since(t0);
    if (chunks) *chunks = c->chunks.size();
    if (insns) {
      *insns = 0;
      for (const auto& ch : c->chunks) *insns += ch.insns.size();
    }
    return std::move(*l);
  }

  void set_packet(const pol::Packet& p) {
    std::vector<weir_pol_state> vals(static_cast<size_t>(ncpu_));
    for (auto& v : vals) {
      v = {};
      v.saddr = p.saddr.network_order();
      v.daddr = p.daddr.network_order();
      v.saddr_h = p.saddr.value;
      v.daddr_h = p.daddr.value;
      v.sport = p.sport;
      v.dport = p.dport;
      v.proto = p.proto;
      v.hook = WEIR_HOOK_INGRESS;
      v.ifindex = 1;
    }
    uint32_t zero = 0;
    if (bpf_map_update_elem(state_.get(), &zero, vals.data(), BPF_ANY) != 0) die("writing the state");
  }

  // Kernel-reported ns per run of `fd` (repeat runs in one syscall).
  uint32_t test_run(int fd, int repeat, int expect) {
    std::vector<uint8_t> pkt(64, 0), out(256);
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = pkt.data();
    o.data_size_in = static_cast<uint32_t>(pkt.size());
    o.data_out = out.data();
    o.data_size_out = static_cast<uint32_t>(out.size());
    o.repeat = repeat;
    if (bpf_prog_test_run_opts(fd, &o) != 0) die(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(errno));
    if (expect >= 0 && static_cast<int>(o.retval) != expect)
      die("unexpected return " + std::to_string(o.retval) + " (want " + std::to_string(expect) + ")");
    return o.duration;
  }

  // Median of 5 repeat-mode syscalls.
  double repeated(int fd, int expect) {
    test_run(fd, opt_.repeat / 10 + 1, expect);  // warm-up
    std::vector<double> v;
    for (int i = 0; i < 5; i++) v.push_back(test_run(fd, opt_.repeat, expect));
    return median(v);
  }

  // Median of `runs` repeat=1 syscalls, packet i from make(i) (written into the state first).
  double single(int fd, const std::function<pol::Packet(int)>& make, int expect) {
    std::vector<double> v;
    v.reserve(static_cast<size_t>(opt_.runs));
    for (int i = 0; i < opt_.runs; i++) {
      set_packet(make(i));
      v.push_back(test_run(fd, 1, expect));
    }
    return median(v);
  }

  int floor_fd() const { return floor_.get(); }
  int state_fd() const { return state_.get(); }

  void clear_ipsets() {
    weir_ipset_key k{};
    while (bpf_map_get_next_key(ipsets_.get(), nullptr, &k) == 0)
      if (bpf_map_delete_elem(ipsets_.get(), &k) != 0) die("clearing ipsets");
    weir_ipset_exact_key x{};
    while (bpf_map_get_next_key(ipset_x_.get(), nullptr, &x) == 0)
      if (bpf_map_delete_elem(ipset_x_.get(), &x) != 0) die("clearing ipset_x");
  }

  // A /32 member, where the policy manager writes it: the exact-member hash.
  void add_member(calc::SetId id, uint32_t addr_h) {
    weir_ipset_exact_key key{};
    for (int i = 0; i < 8; i++) key.set_id[i] = static_cast<uint8_t>(id >> (56 - 8 * i));
    key.addr = htonl(addr_h);
    uint32_t one = 1;
    if (bpf_map_update_elem(ipset_x_.get(), &key, &one, BPF_ANY) != 0)
      die(std::string("adding an ipset member: ") + std::strerror(errno));
  }

 private:
  static std::vector<bpf_insn> continuation_insns() {
    // r2 = fp-4 (key 0); r0 = lookup(pstate); if (!r0) return 99; return r0->verdict
    return {
        {BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0},
        {BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0},
        {BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4},
        {BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, 0},  // fd patched below
        {0, 0, 0, 0, 0},
        {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem},
        {BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 2, 0},
        {BPF_LDX | BPF_MEM | BPF_W, BPF_REG_0, BPF_REG_0, static_cast<int16_t>(offsetof(weir_pol_state, verdict)), 0},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 99},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
  }

  Fd load_raw(std::vector<bpf_insn> insns, const char* name) {
    for (auto& i : insns)
      if (i.code == (BPF_LD | BPF_DW | BPF_IMM) && i.src_reg == BPF_PSEUDO_MAP_FD) i.imm = state_.get();
    int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name, "GPL", insns.data(), insns.size(), nullptr);
    if (fd < 0) die(std::string("loading ") + name + ": " + std::strerror(errno));
    return Fd(fd);
  }

  static Fd make_map(maps::MapId id) {
    const maps::MapSpec& m = maps::spec(id);
    const std::string name(m.name);
    bpf_map_create_opts o{};
    o.sz = sizeof(o);
    o.map_flags = m.flags;
    int fd = bpf_map_create(static_cast<bpf_map_type>(m.type), name.c_str(), m.key_size, m.value_size,
                            m.max_entries, &o);
    if (fd < 0) die("bpf_map_create(" + name + "): " + std::strerror(errno));
    return Fd(fd);
  }

  Options opt_;
  int ncpu_ = 0;
  Fd state_, ipsets_, ipset_x_, rule_cnt_, jump_, counters_, floor_;
  Fd cont_[2];
  uint32_t next_slot_ = WEIR_JUMP_FIRST_POLICY_SLOT;
};

constexpr calc::SetId kSetA = 0x303904ae5eae5418ull;

// n rules of a realistic mix: TCP to one port from a /16 (every rule), from an IP set (one in
// four), a port range (one in eight); rule n-1 (the last) allows the benchmark packet, no
// other rule matches it.
pol::EndpointPolicy policy_of(size_t n) {
  pol::EndpointPolicy p;
  p.direction = pol::Direction::Ingress;
  std::vector<pol::Rule> rules;
  for (size_t i = 0; i < n; i++) {
    pol::Rule r;
    r.id = 1000 + i;
    r.action = i % 2 ? pol::Action::Allow : pol::Action::Deny;
    r.match.protocol = 6;
    uint16_t port = static_cast<uint16_t>(20000 + i % 40000);
    if (i % 8 == 7) r.match.dst_ports = {{port, port}, {static_cast<uint16_t>(port + 100), static_cast<uint16_t>(port + 200)}};
    else r.match.dst_ports = {{port, port}};
    r.match.src_nets = {{model::Ipv4{0x0a000000u + (uint32_t(i % 200) << 16)}, 16}};
    if (i % 4 == 3) r.match.src_sets = {kSetA};
    rules.push_back(r);
  }
  // The deciding rule: the last, allow TCP to port 80 from 10.99.0.0/16.
  pol::Rule& last = rules.back();
  last.action = pol::Action::Allow;
  last.match.dst_ports = {{80, 80}};
  last.match.src_nets = {{model::Ipv4{0x0a630000u}, 16}};
  p.tiers.push_back({"default", {{"ns/bench", rules}}, pol::Action::Deny});
  return p;
}

pol::Packet bench_packet() {
  pol::Packet p;
  p.proto = 6;
  p.saddr = model::Ipv4{0x0a630001u};  // 10.99.0.1
  p.daddr = model::Ipv4{0x0a640001u};
  p.sport = 40000;
  p.dport = 80;
  return p;
}

int run(const Options& opt) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(opt.cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) die("sched_setaffinity: " + std::string(std::strerror(errno)));
  Bench b(opt);

  // ---- 1. compile + load
  std::printf("weir_policy_bench: CPU %d, repeat %d, runs %d\n\n", opt.cpu, opt.repeat, opt.runs);
  std::printf("## Compile + load (median of the rounds)\n\n");
  std::printf("| rules | chunks | instructions | compile ms | load ms (verifier) | total ms | rounds |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  double total_1000 = 0;
  for (size_t n : {10u, 100u, 1000u, 10000u}) {
    int rounds = n >= 10000 ? 3 : 7;
    std::vector<double> cms, lms, tms;
    size_t chunks = 0, insns = 0;
    pol::EndpointPolicy p = policy_of(n);
    for (int r = 0; r < rounds; r++) {
      double c = 0, l = 0;
      LoadedPolicy lp = b.build(p, &c, &l, &chunks, &insns);
      cms.push_back(c);
      lms.push_back(l);
      tms.push_back(c + l);
    }
    if (n == 1000) total_1000 = median(tms);
    std::printf("| %zu | %zu | %zu | %.2f | %.2f | %.2f | %d |\n", n, chunks, insns, median(cms), median(lms),
                median(tms), rounds);
  }
  std::printf("\n1,000 rules compile+load: %.1f ms (goal < 100 ms: %s)\n\n", total_1000,
              total_1000 < 100 ? "met" : "NOT met");

  // ---- 2. per packet: 1,000 rules, the last decides
  b.clear_ipsets();
  b.add_member(kSetA, 0x0a630001u);
  const pol::Packet pkt = bench_packet();
  b.set_packet(pkt);
  LoadedPolicy empty = b.build(pol::EndpointPolicy{});
  LoadedPolicy big = b.build(policy_of(1000));
  const double floor_ns = b.repeated(b.floor_fd(), TC_ACT_OK);
  const double empty_ns = b.repeated(empty.chunks[0].get(), WEIR_POL_ALLOW);
  const double big_ns = b.repeated(big.chunks[0].get(), WEIR_POL_ALLOW);
  std::printf("## Per packet (BPF_PROG_TEST_RUN, repeat %d, median of 5)\n\n", opt.repeat);
  std::printf("| program | ns/packet | x empty policy |\n|---|---:|---:|\n");
  std::printf("| empty TC program (floor) | %.1f | %.2f |\n", floor_ns, floor_ns / empty_ns);
  std::printf("| empty policy (no tiers: allow, tail call to the continuation) | %.1f | 1.00 |\n", empty_ns);
  std::printf("| 1,000-rule policy, deciding rule last (999 rules fail on the port; the last matches port, source /16 and an IP set) | %.1f | %.2f |\n",
              big_ns, big_ns / empty_ns);
  std::printf("\nper rule: %.2f ns ((1000-rule - empty) / 1000)\n\n", (big_ns - empty_ns) / 1000);

  // ---- 3. IP set match cost by set size
  pol::EndpointPolicy one;
  one.direction = pol::Direction::Ingress;
  {
    pol::Rule r;
    r.id = 1;
    r.action = pol::Action::Allow;
    r.match.src_sets = {kSetA};
    one.tiers.push_back({"default", {{"ns/set", {r}}}, pol::Action::Deny});
  }
  LoadedPolicy setpol = b.build(one);
  std::printf("## IP set match (one rule: source in set A; /32 members spread over 10.0.0.0/8, in the exact-member hash)\n\n");
  std::printf("| members | repeat-mode ns/packet (one address) | x 10 members | lookup ns (minus empty policy) | repeat=1 median ns (%d addresses) | x 10 members | non-member repeat-mode ns (hash miss + trie) |\n",
              opt.runs);
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  std::mt19937 rng(1);
  double base_rep = 0, base_one = 0;
  std::vector<uint32_t> members;
  std::unordered_set<uint32_t> seen;
  b.clear_ipsets();
  const double empty_one = b.single(empty.chunks[0].get(), [&](int) { return pkt; }, WEIR_POL_ALLOW);
  for (size_t n : {10u, 10000u, 1000000u}) {
    // Distinct random members 10.x.y.z; the set grows from one size to the next.
    while (members.size() < n) {
      uint32_t a = 0x0a000000u | (rng() & 0x00ffffffu);
      if (!seen.insert(a).second) continue;
      members.push_back(a);
      b.add_member(kSetA, a);
    }
    pol::Packet p = pkt;
    p.saddr = model::Ipv4{members[members.size() / 2]};
    b.set_packet(p);
    double rep = b.repeated(setpol.chunks[0].get(), WEIR_POL_ALLOW);
    double one_ns = b.single(setpol.chunks[0].get(), [&](int i) {
      pol::Packet q = pkt;
      q.saddr = model::Ipv4{members[(static_cast<size_t>(i) * 7919) % members.size()]};
      return q;
    }, WEIR_POL_ALLOW);
    if (n == 10) {
      base_rep = rep;
      base_one = one_ns;
    }
    pol::Packet outside = pkt;
    outside.saddr = model::Ipv4{0x0b000001u};  // 11.0.0.1: never a member
    b.set_packet(outside);
    double miss_rep = b.repeated(setpol.chunks[0].get(), WEIR_POL_DENY);
    std::printf("| %zu | %.1f | %.2f | %.1f | %.0f | %.2f | %.1f |\n", n, rep, rep / base_rep, rep - empty_ns, one_ns,
                one_ns / base_one, miss_rep);
  }
  std::printf("\n(empty policy: repeat mode %.1f ns, repeat=1 median %.0f ns)\n", empty_ns, empty_one);

  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) {
  return weir::bench::run(weir::bench::parse_options(argc, argv, "weir_policy_bench"));
}
