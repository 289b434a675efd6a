// The rule compiler's programs through the verifier and BPF_PROG_TEST_RUN, with real maps of the
// shapes of bpf/include/weir/policy.h: every match kind, action, tier default, chunking, a
// 20,000-rule policy, and a differential test against the reference evaluator pol::evaluate().
// Needs root (CAP_BPF, CAP_NET_ADMIN): a missing privilege fails the map creation and the tests.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "calc/policy_ir.h"
#include "polprog/compiler.h"
#include "polprog/disasm.h"
#include "prog_load.h"
#include "util/fd.h"
#include "util/result.h"
#include "weir/counters.h"
#include "weir/policy.h"

namespace weir::polprog {
namespace {

namespace pol = calc::pol;
using model::Cidr;
using model::Ipv4;

constexpr uint32_t kSentinel = 0xdeadbeef;
constexpr uint32_t kMarkFromWl = 1000;  // continuation in slot 0 returns 1000 + verdict
constexpr uint32_t kMarkToWl = 2000;    // slot 1: 2000 + verdict
constexpr uint32_t kJumpSize = 256;
constexpr uint32_t kIfindex = 42;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
Cidr net(const char* s, uint8_t len) { return Cidr{ip(s), len}; }

// The maps, the two continuations (slots 0 and 1) and helpers to drive a test run.
class Env {
 public:
  static Result<std::unique_ptr<Env>> create() {
    auto e = std::make_unique<Env>();
    e->ncpu_ = libbpf_num_possible_cpus();
    if (e->ncpu_ <= 0) return sys_error(e->ncpu_, "libbpf_num_possible_cpus");
    bpf_map_create_opts lpm{};
    lpm.sz = sizeof(lpm);
    lpm.map_flags = BPF_F_NO_PREALLOC;
    struct Spec {
      Fd* fd;
      bpf_map_type type;
      const char* name;
      uint32_t key, value, entries;
      const bpf_map_create_opts* opts;
    } specs[] = {
        {&e->state_, BPF_MAP_TYPE_PERCPU_ARRAY, "weir_t_pstate", 4, sizeof(weir_pol_state), 1, nullptr},
        {&e->ipsets_, BPF_MAP_TYPE_LPM_TRIE, "weir_t_ipsets", sizeof(weir_ipset_key), 4, 4096, &lpm},
        {&e->ipset_x_, BPF_MAP_TYPE_HASH, "weir_t_ipsetx", sizeof(weir_ipset_exact_key), 4, 4096, &lpm},
        {&e->rule_cnt_, BPF_MAP_TYPE_PERCPU_HASH, "weir_t_rulecnt", 8, 8, 65536, nullptr},
        {&e->jump_, BPF_MAP_TYPE_PROG_ARRAY, "weir_t_jump", 4, 4, kJumpSize, nullptr},
        {&e->counters_, BPF_MAP_TYPE_PERCPU_HASH, "weir_t_counters", sizeof(weir_counters_key),
         sizeof(weir_counters_val), 64, nullptr},
    };
    for (const Spec& s : specs) {
      int fd = bpf_map_create(s.type, s.name, s.key, s.value, s.entries, s.opts);
      if (fd < 0) return errno_error(fmt::format("bpf_map_create({})", s.name));
      s.fd->reset(fd);
    }
    for (uint32_t slot : {uint32_t(WEIR_JUMP_FROM_WL_POLICY_DONE), uint32_t(WEIR_JUMP_TO_WL_POLICY_DONE)}) {
      auto fd = e->continuation(slot == WEIR_JUMP_FROM_WL_POLICY_DONE ? kMarkFromWl : kMarkToWl);
      if (!fd.ok()) return fd.error();
      e->cont_[slot] = std::move(*fd);
    }
    WEIR_TRY(e->install_continuations());
    return e;
  }

  PolicyMapFds fds() const {
    return {state_.get(), ipsets_.get(), rule_cnt_.get(), jump_.get(), counters_.get(), ipset_x_.get()};
  }
  int jump() const { return jump_.get(); }

  Status install_continuations() {
    for (uint32_t slot : {0u, 1u}) {
      int fd = cont_[slot].get();
      if (bpf_map_update_elem(jump_.get(), &slot, &fd, BPF_ANY) != 0)
        return errno_error("installing continuation");
    }
    return {};
  }
  Status remove_continuation(uint32_t slot) {
    if (bpf_map_delete_elem(jump_.get(), &slot) != 0) return errno_error("removing continuation");
    return {};
  }

  // Loads (and installs the chunks of) a compiled policy.
  Result<LoadedPolicy> load_policy(const CompiledPolicy& c) {
    auto l = load(c, fds(), "weir_t_pol");
    if (!l.ok()) return l.error();
    WEIR_TRY(install_chunks(*l, jump_.get()));
    return l;
  }

  struct Outcome {
    uint32_t retval = 0;
    uint32_t verdict = 0;
    uint64_t rule_id = 0;
  };

  Result<Outcome> run(const LoadedPolicy& l, const pol::Packet& p, uint8_t hook = WEIR_HOOK_EGRESS) {
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
      v.icmp_type = p.icmp_type;
      v.icmp_code = p.icmp_code;
      v.hook = hook;
      v.ifindex = kIfindex;
      v.verdict = kSentinel;
      v.rule_id = kSentinel;
    }
    uint32_t zero = 0;
    if (bpf_map_update_elem(state_.get(), &zero, vals.data(), BPF_ANY) != 0)
      return errno_error("writing the policy state");
    auto retval = test::run_once(l.chunks.at(0), std::vector<uint8_t>(64, 0));
    if (!retval) return retval.error();
    if (bpf_map_lookup_elem(state_.get(), &zero, vals.data()) != 0)
      return errno_error("reading the policy state");
    Outcome r;
    r.retval = *retval;
    int changed = 0;
    for (const auto& v : vals) {
      if (v.verdict == kSentinel) continue;
      changed++;
      r.verdict = v.verdict;
      r.rule_id = v.rule_id;
    }
    if (changed != 1) return make_error("{} CPUs' policy state changed, expected exactly 1", changed);
    return r;
  }

  // Sum over CPUs of every rule counter.
  Result<std::map<uint64_t, uint64_t>> rule_counts() const {
    std::map<uint64_t, uint64_t> out;
    std::vector<uint64_t> vals(static_cast<size_t>(ncpu_));
    uint64_t key = 0, next = 0;
    uint64_t* prev = nullptr;
    while (bpf_map_get_next_key(rule_cnt_.get(), prev, &next) == 0) {
      if (bpf_map_lookup_elem(rule_cnt_.get(), &next, vals.data()) != 0)
        return errno_error("reading a rule counter");
      for (uint64_t v : vals) out[next] += v;
      key = next;
      prev = &key;
    }
    return out;
  }

  Status clear_rule_counts() {
    uint64_t key = 0;
    while (bpf_map_get_next_key(rule_cnt_.get(), nullptr, &key) == 0)
      if (bpf_map_delete_elem(rule_cnt_.get(), &key) != 0) return errno_error("clearing rule counters");
    return {};
  }

  // Sum over CPUs of counter `c` for (kIfindex, hook); nullopt when the entry is missing.
  std::optional<uint64_t> counter(uint32_t hook, int c) const {
    weir_counters_key k{kIfindex, hook};
    std::vector<weir_counters_val> vals(static_cast<size_t>(ncpu_));
    if (bpf_map_lookup_elem(counters_.get(), &k, vals.data()) != 0) return std::nullopt;
    uint64_t sum = 0;
    for (const auto& v : vals) sum += v.c[c];
    return sum;
  }

  // Replaces the IP sets' contents (maps and reference table alike), as the policy manager
  // writes them: /32 and named-port members to the exact hash, shorter CIDRs to the trie.
  Status set_ipsets(const pol::IpSetTable& t) {
    weir_ipset_key k{};
    while (bpf_map_get_next_key(ipsets_.get(), nullptr, &k) == 0)
      if (bpf_map_delete_elem(ipsets_.get(), &k) != 0) return errno_error("clearing ipsets");
    weir_ipset_exact_key x{};
    while (bpf_map_get_next_key(ipset_x_.get(), nullptr, &x) == 0)
      if (bpf_map_delete_elem(ipset_x_.get(), &x) != 0) return errno_error("clearing ipset_x");
    for (const auto& [id, nets] : t.nets())
      for (Cidr n : nets) {
        if (n.prefix_len == 32) {
          if (put_exact(id, n.addr.network_order(), 0, 0) != 0) return errno_error("writing an ipset /32 member");
        } else if (put_cidr(id, WEIR_IPSET_PREFIX_BASE + n.prefix_len, n.addr.network_order(), 0, 0) != 0) {
          return errno_error("writing an ipset CIDR member");
        }
      }
    for (const auto& [id, members] : t.ports())
      for (const auto& [addr, proto, port] : members)
        if (put_exact(id, htonl(addr), htons(port), proto) != 0)
          return errno_error("writing an ipset named-port member");
    return {};
  }
  // Entries in the trie / in the exact hash.
  size_t trie_entries() const { return count_keys<weir_ipset_key>(ipsets_.get()); }
  size_t exact_entries() const { return count_keys<weir_ipset_exact_key>(ipset_x_.get()); }
  template <typename K>
  static size_t count_keys(int fd) {
    size_t n = 0;
    K k{}, next{};
    for (const K* cur = nullptr; bpf_map_get_next_key(fd, cur, &next) == 0; cur = &k, n++) k = next;
    return n;
  }
  // One raw entry of the trie (any prefix length) / of the exact hash.
  int put_cidr(calc::SetId id, uint32_t prefixlen, uint32_t addr_be, uint16_t port_be, uint8_t proto) {
    weir_ipset_key key{};
    key.prefixlen = prefixlen;
    for (int i = 0; i < 8; i++) key.set_id[i] = static_cast<uint8_t>(id >> (56 - 8 * i));
    key.addr = addr_be;
    key.port = port_be;
    key.proto = proto;
    const uint32_t one = 1;
    return bpf_map_update_elem(ipsets_.get(), &key, &one, BPF_ANY);
  }
  int put_exact(calc::SetId id, uint32_t addr_be, uint16_t port_be, uint8_t proto) {
    weir_ipset_exact_key key{};
    for (int i = 0; i < 8; i++) key.set_id[i] = static_cast<uint8_t>(id >> (56 - 8 * i));
    key.addr = addr_be;
    key.port = port_be;
    key.proto = proto;
    const uint32_t one = 1;
    return bpf_map_update_elem(ipset_x_.get(), &key, &one, BPF_ANY);
  }

 private:
  // Looks weir_pstate1[0] up and returns marker + state->verdict.
  Result<Fd> continuation(uint32_t marker) {
    Assembler a("continuation");
    Label none = a.new_label("none");
    a.st(Size::U32, R10, -4, 0);
    a.mov(R2, R10);
    a.add(R2, -4);
    a.ld_map_fd(R1, MapRef{kMapState});
    a.call(BPF_FUNC_map_lookup_elem);
    a.jeq(R0, 0, none);
    a.ldx(Size::U32, R0, R0, offsetof(weir_pol_state, verdict));
    a.add32(R0, marker);
    a.exit();
    a.bind(none);
    a.mov(R0, 999);
    a.exit();
    auto prog = a.assemble();
    if (!prog.ok()) return prog.error();
    WEIR_TRY(relocate(*prog, {{MapRef{kMapState}, state_.get()}}));
    int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_t_cont", "GPL", as_bpf_insns(prog->insns.data()),
                           prog->insns.size(), nullptr);
    if (fd < 0) return errno_error("loading a continuation");
    return Fd(fd);
  }

  int ncpu_ = 0;
  Fd state_, ipsets_, rule_cnt_, jump_, counters_, ipset_x_;
  Fd cont_[2];
};

Env& env() {
  static std::unique_ptr<Env> e = [] {
    auto r = Env::create();
    if (!r.ok()) {
      ADD_FAILURE() << r.error().str();
      return std::unique_ptr<Env>();
    }
    return std::move(*r);
  }();
  if (!e) throw std::runtime_error("test environment not available (see the first failure)");
  return *e;
}

pol::Rule rule(uint64_t id, pol::Action a, pol::Match m = {}) {
  pol::Rule r;
  r.id = id;
  r.action = a;
  r.match = std::move(m);
  return r;
}

pol::EndpointPolicy one_rule(pol::Rule r, pol::Direction d = pol::Direction::Egress) {
  pol::EndpointPolicy p;
  p.direction = d;
  p.tiers.push_back({"default", {{"ns/pol", {std::move(r)}}}, pol::Action::Deny});
  return p;
}

pol::Packet tcp(const char* s, uint16_t sport, const char* d, uint16_t dport, uint8_t proto = 6) {
  pol::Packet p;
  p.proto = proto;
  p.saddr = ip(s);
  p.daddr = ip(d);
  p.sport = sport;
  p.dport = dport;
  return p;
}

pol::Packet icmp(const char* s, const char* d, uint8_t type, uint8_t code) {
  pol::Packet p;
  p.proto = 1;
  p.saddr = ip(s);
  p.daddr = ip(d);
  p.icmp_type = type;
  p.icmp_code = code;
  return p;
}

uint32_t marker(pol::Direction d) { return d == pol::Direction::Egress ? kMarkFromWl : kMarkToWl; }

// Compiles, loads, runs one packet; checks the outcome against pol::evaluate() and returns it.
Env::Outcome check(const pol::EndpointPolicy& p, const pol::Packet& pkt, const pol::IpSetTable& sets,
                   const CompileOptions& opts = {}) {
  auto c = compile(p, opts);
  EXPECT_TRUE(c.ok()) << c.error().str();
  if (!c.ok()) return {};
  auto l = env().load_policy(*c);
  EXPECT_TRUE(l.ok()) << l.error().str();
  if (!l.ok()) return {};
  EXPECT_TRUE(env().set_ipsets(sets).ok());
  EXPECT_TRUE(env().clear_rule_counts().ok());
  auto out = env().run(*l, pkt);
  EXPECT_TRUE(out.ok()) << out.error().str();
  if (!out.ok()) return {};
  pol::Decision want = pol::evaluate(p, pkt, sets);
  EXPECT_EQ(out->verdict, want.allow ? uint32_t(WEIR_POL_ALLOW) : uint32_t(WEIR_POL_DENY));
  EXPECT_EQ(out->rule_id, want.rule_id);
  EXPECT_EQ(out->retval, marker(p.direction) + out->verdict);
  auto counts = env().rule_counts();
  EXPECT_TRUE(counts.ok());
  std::map<uint64_t, uint64_t> want_counts;
  // A rule that decided is counted; a tier default (its own id) is not.
  if (want.rule_id && !pol::tier_of_default_rule_id(want.rule_id)) want_counts[want.rule_id]++;
  for (uint64_t id : want.logged) want_counts[id]++;
  if (counts.ok()) {
    EXPECT_EQ(*counts, want_counts);
  }
  return *out;
}

// ---------------------------------------------------------------- match kinds
struct MatchCase {
  const char* name;
  pol::Match match;
  pol::Packet pkt;
  bool want;
};

TEST(PolprogCompile, EachMatchKind) {
  const calc::SetId kA = 0x303904ae5eae5418ull, kB = 0xffef9f925a8a4ca4ull, kN = 0x1122334455667788ull;
  pol::IpSetTable sets;
  sets.add(kA, net("10.0.0.0", 24));
  sets.add(kB, net("10.0.0.5", 32));
  sets.add(kB, net("192.168.1.0", 30));
  sets.add_port(kN, ip("10.0.1.2"), 6, 8080);
  const auto P = tcp("10.0.0.5", 40000, "10.0.1.2", 8080);  // TCP 10.0.0.5:40000 -> 10.0.1.2:8080
  auto M = [](auto f) {
    pol::Match m;
    f(m);
    return m;
  };
  std::vector<MatchCase> cases = {
      {"empty", {}, P, true},
      {"protocol hit", M([](auto& m) { m.protocol = 6; }), P, true},
      {"protocol miss", M([](auto& m) { m.protocol = 17; }), P, false},
      {"not_protocol hit", M([](auto& m) { m.not_protocol = 6; }), P, false},
      {"not_protocol miss", M([](auto& m) { m.not_protocol = 1; }), P, true},
      {"src_nets /24", M([](auto& m) { m.src_nets = {net("10.0.0.0", 24)}; }), P, true},
      {"src_nets /32 miss", M([](auto& m) { m.src_nets = {net("10.0.0.6", 32)}; }), P, false},
      {"src_nets any of", M([](auto& m) { m.src_nets = {net("10.9.0.0", 16), net("10.0.0.4", 31)}; }), P, true},
      {"src_nets /0", M([](auto& m) { m.src_nets = {net("1.2.3.4", 0)}; }), P, true},
      {"src_not_nets hit", M([](auto& m) { m.src_not_nets = {net("10.9.0.0", 16), net("10.0.0.0", 8)}; }), P, false},
      {"src_not_nets miss", M([](auto& m) { m.src_not_nets = {net("10.0.0.6", 32)}; }), P, true},
      {"src_not_nets /0", M([](auto& m) { m.src_not_nets = {net("0.0.0.0", 0)}; }), P, false},
      {"dst_nets", M([](auto& m) { m.dst_nets = {net("10.0.1.0", 24)}; }), P, true},
      {"dst_nets miss", M([](auto& m) { m.dst_nets = {net("10.0.0.0", 24)}; }), P, false},
      {"dst_not_nets", M([](auto& m) { m.dst_not_nets = {net("10.0.1.2", 32)}; }), P, false},
      {"src_sets hit", M([&](auto& m) { m.src_sets = {kA}; }), P, true},
      {"src_sets all hit", M([&](auto& m) { m.src_sets = {kA, kB}; }), P, true},
      {"src_sets one misses", M([&](auto& m) { m.src_sets = {kA, kN}; }), P, false},
      {"src_sets unknown set", M([&](auto& m) { m.src_sets = {0x42}; }), P, false},
      {"src_not_sets hit", M([&](auto& m) { m.src_not_sets = {kN, kB}; }), P, false},
      {"src_not_sets miss", M([&](auto& m) { m.src_not_sets = {kN}; }), P, true},
      {"dst_sets miss", M([&](auto& m) { m.dst_sets = {kA}; }), P, false},
      {"dst_sets named-port set is not a CIDR member", M([&](auto& m) { m.dst_sets = {kN}; }), P, false},
      {"dst_not_sets", M([&](auto& m) { m.dst_not_sets = {kA}; }), P, true},
      {"src_ports", M([](auto& m) { m.src_ports = {{1, 10}, {39000, 41000}}; }), P, true},
      {"src_ports miss", M([](auto& m) { m.src_ports = {{1, 10}}; }), P, false},
      {"src_ports need tcp/udp", M([](auto& m) { m.src_ports = {{0, 65535}}; }), icmp("10.0.0.5", "10.0.1.2", 8, 0), false},
      {"dst_ports single", M([](auto& m) { m.dst_ports = {{8080, 8080}}; }), P, true},
      {"dst_ports full range", M([](auto& m) { m.dst_ports = {{0, 65535}}; }), P, true},
      {"dst_ports upper", M([](auto& m) { m.dst_ports = {{8081, 65535}}; }), P, false},
      {"dst_ports lower", M([](auto& m) { m.dst_ports = {{0, 8080}}; }), P, true},
      {"dst_ports udp", M([](auto& m) { m.dst_ports = {{8080, 8080}}; }), tcp("10.0.0.5", 1, "10.0.1.2", 8080, 17), true},
      {"dst_ports other protocol", M([](auto& m) { m.dst_ports = {{0, 0}}; }), tcp("10.0.0.5", 0, "10.0.1.2", 0, 47), false},
      {"named port hit", M([&](auto& m) { m.dst_named_port_sets = {kN}; }), P, true},
      {"named port wrong port", M([&](auto& m) { m.dst_named_port_sets = {kN}; }), tcp("10.0.0.5", 1, "10.0.1.2", 8081), false},
      {"named port wrong proto", M([&](auto& m) { m.dst_named_port_sets = {kN}; }), tcp("10.0.0.5", 1, "10.0.1.2", 8080, 17), false},
      {"named port or dst_ports", M([&](auto& m) { m.dst_named_port_sets = {kN}; m.dst_ports = {{8081, 8081}}; }), tcp("10.0.0.5", 1, "10.0.1.2", 8081), true},
      {"named port CIDR member of the set", M([&](auto& m) { m.dst_named_port_sets = {kA}; }), tcp("10.0.0.5", 1, "10.0.0.9", 5), true},
      {"dst_not_ports hit", M([](auto& m) { m.dst_not_ports = {{8000, 8100}}; }), P, false},
      {"dst_not_ports miss", M([](auto& m) { m.dst_not_ports = {{80, 80}}; }), P, true},
      {"dst_not_ports need tcp/udp", M([](auto& m) { m.dst_not_ports = {{80, 80}}; }), icmp("10.0.0.5", "10.0.1.2", 8, 0), false},
      {"icmp type", M([](auto& m) { m.protocol = 1; m.icmp_type = 8; }), icmp("10.0.0.5", "10.0.1.2", 8, 0), true},
      {"icmp type miss", M([](auto& m) { m.protocol = 1; m.icmp_type = 0; }), icmp("10.0.0.5", "10.0.1.2", 8, 0), false},
      {"icmp code", M([](auto& m) { m.icmp_type = 3; m.icmp_code = 4; }), icmp("10.0.0.5", "10.0.1.2", 3, 4), true},
      {"icmp code miss", M([](auto& m) { m.icmp_type = 3; m.icmp_code = 4; }), icmp("10.0.0.5", "10.0.1.2", 3, 1), false},
      {"icmp type on tcp", M([](auto& m) { m.icmp_type = 0; }), P, false},
      {"all together", M([&](auto& m) {
         m.protocol = 6;
         m.src_nets = {net("10.0.0.0", 16)};
         m.src_sets = {kA};
         m.src_not_sets = {kN};
         m.dst_nets = {net("10.0.1.0", 24)};
         m.dst_not_nets = {net("10.0.1.3", 32)};
         m.dst_named_port_sets = {kN};
         m.src_ports = {{40000, 40000}};
         m.dst_not_ports = {{80, 80}};
       }), P, true},
  };
  for (const MatchCase& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(pol::matches(c.match, c.pkt, sets), c.want) << "the reference disagrees with the case";
    auto out = check(one_rule(rule(77, pol::Action::Allow, c.match)), c.pkt, sets);
    EXPECT_EQ(out.verdict, c.want ? uint32_t(WEIR_POL_ALLOW) : uint32_t(WEIR_POL_DENY));
    EXPECT_EQ(out.rule_id, c.want ? 77u : pol::tier_default_rule_id(0)) << "else the tier's default decided";
  }
}

// /32 and named-port members live in the exact hash, shorter CIDRs in the trie: a set match is
// the hash first, then the trie; a named-port set also tries the packet's (port, proto).
TEST(PolprogCompile, IpSetMembersSplitAcrossHashAndTrie) {
  const calc::SetId kS = 0x0102030405060708ull, kN = 0x8877665544332211ull;
  pol::IpSetTable sets;
  sets.add(kS, net("10.0.0.5", 32));       // hash
  sets.add(kS, net("192.168.1.0", 24));    // trie
  sets.add_port(kN, ip("10.0.1.2"), 6, 8080);  // hash, TCP 8080 only
  sets.add(kN, net("10.0.1.3", 32));       // hash, any port
  sets.add(kN, net("10.0.2.0", 24));       // trie, any port
  ASSERT_TRUE(env().set_ipsets(sets).ok());
  EXPECT_EQ(env().exact_entries(), 3u);
  EXPECT_EQ(env().trie_entries(), 2u);
  auto M = [](auto f) {
    pol::Match m;
    f(m);
    return m;
  };
  const auto src_in = M([&](auto& m) { m.src_sets = {kS}; });
  const auto src_not = M([&](auto& m) { m.src_not_sets = {kS}; });
  const auto named = M([&](auto& m) { m.dst_named_port_sets = {kN}; });
  const auto dst_in = M([&](auto& m) { m.dst_sets = {kN}; });
  std::vector<MatchCase> cases = {
      {"/32 member in the hash", src_in, tcp("10.0.0.5", 1, "10.9.9.9", 80), true},
      {"/24 member in the trie", src_in, tcp("192.168.1.77", 1, "10.9.9.9", 80), true},
      {"next to the /32", src_in, tcp("10.0.0.6", 1, "10.9.9.9", 80), false},
      {"next to the /24", src_in, tcp("192.168.2.1", 1, "10.9.9.9", 80), false},
      {"not-set, /32 member", src_not, tcp("10.0.0.5", 1, "10.9.9.9", 80), false},
      {"not-set, /24 member", src_not, tcp("192.168.1.1", 1, "10.9.9.9", 80), false},
      {"not-set, no member", src_not, tcp("10.0.0.4", 1, "10.9.9.9", 80), true},
      {"named-port member, its port", named, tcp("10.0.0.5", 1, "10.0.1.2", 8080), true},
      {"named-port member, other port", named, tcp("10.0.0.5", 1, "10.0.1.2", 8081), false},
      {"named-port member, other proto", named, tcp("10.0.0.5", 1, "10.0.1.2", 8080, 17), false},
      {"/32 member of a named-port set, any port", named, tcp("10.0.0.5", 1, "10.0.1.3", 9), true},
      {"CIDR member of a named-port set, any port", named, tcp("10.0.0.5", 1, "10.0.2.9", 5), true},
      {"CIDR member of a named-port set, UDP", named, tcp("10.0.0.5", 1, "10.0.2.9", 53, 17), true},
      {"named-port set, no member", named, tcp("10.0.0.5", 1, "10.0.3.1", 8080), false},
      {"plain match ignores named-port members", dst_in, tcp("10.0.0.5", 1, "10.0.1.2", 8080), false},
      {"plain match, /32 member", dst_in, tcp("10.0.0.5", 1, "10.0.1.3", 8080), true},
      {"plain match, CIDR member", dst_in, tcp("10.0.0.5", 1, "10.0.2.200", 1), true},
  };
  for (const MatchCase& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(pol::matches(c.match, c.pkt, sets), c.want) << "the reference disagrees with the case";
    auto out = check(one_rule(rule(78, pol::Action::Allow, c.match)), c.pkt, sets);
    EXPECT_EQ(out.verdict, c.want ? uint32_t(WEIR_POL_ALLOW) : uint32_t(WEIR_POL_DENY));
  }

  // Members an earlier writer left in the trie (/32 as prefix 96, named-port as prefix 128)
  // still match.
  auto c = compile(one_rule(rule(79, pol::Action::Allow, M([&](auto& m) { m.src_sets = {kS}; m.dst_named_port_sets = {kN}; }))), {});
  ASSERT_TRUE(c.ok()) << c.error().str();
  auto l = env().load_policy(*c);
  ASSERT_TRUE(l.ok()) << l.error().str();
  ASSERT_TRUE(env().set_ipsets({}).ok());
  EXPECT_EQ(env().exact_entries() + env().trie_entries(), 0u);
  ASSERT_EQ(env().put_cidr(kS, WEIR_IPSET_PREFIX_BASE + 32, ip("10.0.0.7").network_order(), 0, 0), 0);
  ASSERT_EQ(env().put_cidr(kN, WEIR_IPSET_PREFIX_FULL, ip("10.0.1.4").network_order(), htons(443), 6), 0);
  auto hit = env().run(*l, tcp("10.0.0.7", 1, "10.0.1.4", 443));
  ASSERT_TRUE(hit.ok()) << hit.error().str();
  EXPECT_EQ(hit->verdict, uint32_t(WEIR_POL_ALLOW));
  auto miss = env().run(*l, tcp("10.0.0.7", 1, "10.0.1.4", 444));
  ASSERT_TRUE(miss.ok()) << miss.error().str();
  EXPECT_EQ(miss->verdict, uint32_t(WEIR_POL_DENY));
  ASSERT_TRUE(env().set_ipsets({}).ok());
}

// ---------------------------------------------------------------- actions and tiers
TEST(PolprogCompile, ActionsTiersAndDefaults) {
  pol::IpSetTable none;
  const auto P = tcp("10.0.0.1", 1000, "10.0.0.2", 80);
  pol::Match port80;
  port80.dst_ports = {{80, 80}};
  pol::Match port81;
  port81.dst_ports = {{81, 81}};
  using A = pol::Action;

  // Allow / Deny decide; the rule counter counts.
  for (A a : {A::Allow, A::Deny}) {
    auto out = check(one_rule(rule(5, a, port80)), P, none);
    EXPECT_EQ(out.rule_id, 5u);
  }
  // No tiers: allow, rule 0.
  {
    pol::EndpointPolicy p;
    auto out = check(p, P, none);
    EXPECT_EQ(out.verdict, uint32_t(WEIR_POL_ALLOW));
    EXPECT_EQ(out.rule_id, 0u);
  }
  // An empty tier (no policies) denies by default; a tier of empty policies too; a Pass default
  // goes on to the next tier.
  {
    pol::EndpointPolicy p;
    p.tiers.push_back({"empty", {}, A::Deny});
    EXPECT_EQ(check(p, P, none).verdict, uint32_t(WEIR_POL_DENY));
    p.tiers[0].policies = {{"a", {}}, {"b", {}}};
    EXPECT_EQ(check(p, P, none).verdict, uint32_t(WEIR_POL_DENY));
    p.tiers[0].default_action = A::Pass;
    EXPECT_EQ(check(p, P, none).verdict, uint32_t(WEIR_POL_ALLOW));
    p.tiers.push_back({"second", {{"c", {rule(9, A::Deny, port80)}}}, A::Deny});
    EXPECT_EQ(check(p, P, none).rule_id, 9u);
    p.tiers[0].default_action = A::Allow;
    auto out = check(p, P, none);
    EXPECT_EQ(out.verdict, uint32_t(WEIR_POL_ALLOW));
    EXPECT_EQ(out.rule_id, pol::tier_default_rule_id(0)) << "the first tier's default decided";
    EXPECT_EQ(out.rule_id, WEIR_RULE_ID_TIER_DEFAULT(0));
    p.tiers[0].default_action = A::Pass;
    p.tiers[1].policies.clear();
    out = check(p, P, none);
    EXPECT_EQ(out.verdict, uint32_t(WEIR_POL_DENY));
    EXPECT_EQ(out.rule_id, WEIR_RULE_ID_TIER_DEFAULT(1)) << "the second tier's default decided";
  }
  // Pass skips the rest of the tier (later policies included) to the next tier; Log counts and
  // goes on; a non-matching rule is skipped.
  {
    pol::EndpointPolicy p;
    p.direction = pol::Direction::Ingress;
    p.tiers.push_back({"t1",
                       {{"p1", {rule(1, A::Log), rule(2, A::Deny, port81), rule(3, A::Pass, port80), rule(4, A::Deny)}},
                        {"p2", {rule(5, A::Deny)}}},
                       A::Deny});
    p.tiers.push_back({"t2", {{"p3", {rule(6, A::Log, port80), rule(7, A::Log, port81), rule(8, A::Allow, port80)}}},
                       A::Deny});
    auto out = check(p, P, none);
    EXPECT_EQ(out.retval, kMarkToWl + WEIR_POL_ALLOW);
    EXPECT_EQ(out.rule_id, 8u);
    // Pass from the last tier: allow with rule 0.
    p.tiers[1].policies[0].rules = {rule(10, A::Pass)};
    out = check(p, P, none);
    EXPECT_EQ(out.verdict, uint32_t(WEIR_POL_ALLOW));
    EXPECT_EQ(out.rule_id, 0u);
  }
  // Rules after one that always decides are unreachable: the compiler drops them (the verifier
  // rejects unreachable code) and the program still loads.
  {
    pol::EndpointPolicy p;
    p.tiers.push_back({"t", {{"p", {rule(1, A::Allow), rule(2, A::Deny, port80), rule(3, A::Pass)}}}, A::Deny});
    p.tiers.push_back({"u", {{"q", {rule(4, A::Deny)}}}, A::Deny});
    EXPECT_EQ(check(p, P, none).rule_id, 1u);
  }
}

TEST(PolprogCompile, RuleCountersAccumulate) {
  pol::IpSetTable none;
  pol::EndpointPolicy p;
  p.tiers.push_back({"t", {{"p", {rule(11, pol::Action::Log), rule(12, pol::Action::Allow)}}}, pol::Action::Deny});
  auto c = compile(p, {});
  ASSERT_TRUE(c.ok()) << c.error().str();
  auto l = env().load_policy(*c);
  ASSERT_TRUE(l.ok()) << l.error().str();
  ASSERT_TRUE(env().clear_rule_counts().ok());
  for (int i = 0; i < 5; i++) ASSERT_TRUE(env().run(*l, tcp("1.1.1.1", 1, "2.2.2.2", 2)).ok());
  auto counts = env().rule_counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<uint64_t, uint64_t>{{11, 5}, {12, 5}}));
}

// A missing continuation: the packet is dropped and counted as a missed tail call, for the
// interface and hook in the state; a second miss increments the existing entry.
TEST(PolprogCompile, MissedTailCallIsCountedAndDropped) {
  auto c = compile(one_rule(rule(3, pol::Action::Allow), pol::Direction::Ingress), {});
  ASSERT_TRUE(c.ok()) << c.error().str();
  auto l = env().load_policy(*c);
  ASSERT_TRUE(l.ok()) << l.error().str();
  // Put back for the tests that follow, also when an assertion below ends this one.
  struct Restore {
    ~Restore() { EXPECT_TRUE(env().install_continuations().ok()); }
  } restore;
  ASSERT_TRUE(env().remove_continuation(WEIR_JUMP_TO_WL_POLICY_DONE).ok());
  const uint32_t hook = WEIR_HOOK_EGRESS;
  const uint64_t before = env().counter(hook, WEIR_CNT_DROP_TAIL_CALL).value_or(0);
  const uint64_t total_before = env().counter(hook, WEIR_CNT_TOTAL).value_or(0);
  for (int i = 0; i < 2; i++) {
    auto out = env().run(*l, tcp("1.1.1.1", 1, "2.2.2.2", 2), hook);
    ASSERT_TRUE(out.ok()) << out.error().str();
    EXPECT_EQ(out->retval, uint32_t(TC_ACT_SHOT));
    EXPECT_EQ(out->verdict, uint32_t(WEIR_POL_ALLOW));
  }
  EXPECT_EQ(env().counter(hook, WEIR_CNT_DROP_TAIL_CALL), before + 2);
  EXPECT_EQ(env().counter(hook, WEIR_CNT_TOTAL), total_before + 2);
  EXPECT_EQ(env().counter(hook, WEIR_CNT_ACCEPT_BY_POLICY), 0u);
}

// ---------------------------------------------------------------- chunking
pol::Rule port_rule(uint64_t id, pol::Action a, uint16_t port) {
  pol::Match m;
  m.protocol = 6;
  m.dst_ports = {{port, port}};
  m.src_nets = {net("10.0.0.0", 8)};
  return rule(id, a, m);
}

CompileOptions small_chunks(size_t max, std::vector<size_t>* asked = nullptr) {
  CompileOptions o;
  o.max_insns_per_chunk = max;
  o.slot_of_chunk = [asked](size_t i) {
    if (asked) asked->push_back(i);
    return static_cast<uint32_t>(WEIR_JUMP_FIRST_POLICY_SLOT + 10 + i);
  };
  return o;
}

TEST(PolprogCompile, ChunkedPolicyWithPassAcrossChunks) {
  using A = pol::Action;
  pol::EndpointPolicy p;
  // Tier 1: 40 port rules, a Pass for port 7000 early (its target, tier 2, lies chunks later),
  // a Log for port 7001 early.
  std::vector<pol::Rule> t1 = {port_rule(1, A::Pass, 7000), port_rule(2, A::Log, 7001)};
  for (uint64_t i = 0; i < 40; i++) t1.push_back(port_rule(100 + i, A::Deny, static_cast<uint16_t>(1000 + i)));
  p.tiers.push_back({"t1", {{"p1", t1}}, A::Pass});
  std::vector<pol::Rule> t2;
  for (uint64_t i = 0; i < 40; i++) t2.push_back(port_rule(200 + i, A::Allow, static_cast<uint16_t>(2000 + i)));
  t2.push_back(port_rule(300, A::Deny, 7000));
  p.tiers.push_back({"t2", {{"p2", t2}, {"p3", {port_rule(301, A::Deny, 7001)}}}, A::Deny});

  std::vector<size_t> asked;
  auto opts = small_chunks(300, &asked);
  auto c = compile(p, opts);
  ASSERT_TRUE(c.ok()) << c.error().str();
  ASSERT_GE(c->chunks.size(), 5u);
  for (size_t i = 0; i < asked.size(); i++) EXPECT_EQ(asked[i], i + 1);
  EXPECT_EQ(asked.size(), c->chunks.size() - 1);
  for (const Program& prog : c->chunks) EXPECT_LE(prog.insns.size(), 300u);

  pol::IpSetTable none;
  for (uint16_t port : {1000, 1039, 2000, 2039, 7000, 7001, 9999}) {
    SCOPED_TRACE(port);
    check(p, tcp("10.1.1.1", 5, "10.2.2.2", port), none, opts);
  }
  check(p, tcp("11.1.1.1", 5, "10.2.2.2", 1000), none, opts);
}

TEST(PolprogCompile, LargePolicyLoadsIn20000Rules) {
  using A = pol::Action;
  pol::EndpointPolicy p;
  p.direction = pol::Direction::Ingress;
  const calc::SetId kSet = 0xabcdef0123456789ull;
  std::vector<pol::Rule> rules;
  for (uint64_t i = 0; i < 20000; i++) {
    pol::Rule r = port_rule(1000 + i, i % 2 ? A::Allow : A::Deny, static_cast<uint16_t>(1 + i % 60000));
    if (i % 10 == 0) r.match.src_sets = {kSet};
    rules.push_back(r);
  }
  p.tiers.push_back({"big", {{"ns/big", rules}}, A::Deny});
  uint32_t next_slot = WEIR_JUMP_FIRST_POLICY_SLOT;
  CompileOptions opts;
  opts.slot_of_chunk = [&](size_t) { return next_slot++; };
  auto t0 = std::chrono::steady_clock::now();
  auto c = compile(p, opts);
  ASSERT_TRUE(c.ok()) << c.error().str();
  auto l = env().load_policy(*c);
  ASSERT_TRUE(l.ok()) << l.error().str();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  size_t insns = 0;
  for (const auto& ch : c->chunks) insns += ch.insns.size();
  std::printf("20000 rules: %zu chunks, %zu instructions, compile+load %lld ms\n", c->chunks.size(), insns,
              static_cast<long long>(ms));
  pol::IpSetTable sets;
  sets.add(kSet, net("10.0.0.0", 8));
  ASSERT_TRUE(env().set_ipsets(sets).ok());
  for (uint16_t port : {uint16_t(1), uint16_t(19999), uint16_t(20000), uint16_t(30000)}) {
    auto out = env().run(*l, tcp("10.0.0.1", 1, "10.0.0.2", port));
    ASSERT_TRUE(out.ok()) << out.error().str();
    pol::Decision want = pol::evaluate(p, tcp("10.0.0.1", 1, "10.0.0.2", port), sets);
    EXPECT_EQ(out->rule_id, want.rule_id) << port;
    EXPECT_EQ(out->verdict, want.allow ? uint32_t(WEIR_POL_ALLOW) : uint32_t(WEIR_POL_DENY)) << port;
  }
}

TEST(PolprogCompile, LoadErrorsNameTheChunk) {
  auto c = compile(one_rule(rule(1, pol::Action::Allow)), {});
  ASSERT_TRUE(c.ok());
  PolicyMapFds fds = env().fds();
  fds.rule_cnt = -1;
  auto l = load(*c, fds, "weir_t_pol");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().str().find("rule_cnt"), std::string::npos) << l.error().str();
}

// ---------------------------------------------------------------- differential
struct Gen {
  std::mt19937_64 rng;
  std::vector<calc::SetId> set_ids;

  explicit Gen(uint64_t seed) : rng(seed) {
    for (int i = 0; i < 4; i++) set_ids.push_back(rng());
  }
  uint64_t below(uint64_t n) { return rng() % n; }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }

  // 10.0.{0,1}.{0..7}: small so that nets, sets and packets collide.
  Ipv4 addr() { return Ipv4{0x0a000000u | (uint32_t(below(2)) << 8) | uint32_t(below(8))}; }
  Cidr cidr() {
    static constexpr uint8_t kLens[] = {0, 8, 23, 24, 29, 30, 31, 32, 32};
    uint8_t len = kLens[below(std::size(kLens))];
    return Cidr{addr(), len};
  }
  uint16_t port() { return static_cast<uint16_t>(78 + below(7)); }
  uint8_t proto() {
    static constexpr uint8_t kProtos[] = {1, 6, 17, 6, 17, 47};
    return kProtos[below(std::size(kProtos))];
  }
  pol::PortRange range() {
    uint16_t a = port(), b = port();
    if (chance(10)) return {0, 65535};
    if (chance(10)) return {0, b};
    if (chance(10)) return {a, 65535};
    return {std::min(a, b), std::max(a, b)};
  }
  template <typename T, typename F>
  std::vector<T> some(int max, F f) {
    std::vector<T> v;
    for (uint64_t n = below(static_cast<uint64_t>(max) + 1); n > 0; n--) v.push_back(f());
    return v;
  }
  calc::SetId set() { return set_ids[below(set_ids.size())]; }

  pol::Match match() {
    pol::Match m;
    auto maybe = [&](int percent, auto f) {
      if (chance(percent)) f();
    };
    maybe(25, [&] { m.protocol = proto(); });
    maybe(10, [&] { m.not_protocol = proto(); });
    maybe(25, [&] { m.src_nets = some<Cidr>(3, [&] { return cidr(); }); });
    maybe(15, [&] { m.src_not_nets = some<Cidr>(2, [&] { return cidr(); }); });
    maybe(20, [&] { m.src_sets = some<calc::SetId>(2, [&] { return set(); }); });
    maybe(10, [&] { m.src_not_sets = some<calc::SetId>(2, [&] { return set(); }); });
    maybe(15, [&] { m.src_ports = some<pol::PortRange>(2, [&] { return range(); }); });
    maybe(25, [&] { m.dst_nets = some<Cidr>(3, [&] { return cidr(); }); });
    maybe(15, [&] { m.dst_not_nets = some<Cidr>(2, [&] { return cidr(); }); });
    maybe(20, [&] { m.dst_sets = some<calc::SetId>(2, [&] { return set(); }); });
    maybe(10, [&] { m.dst_not_sets = some<calc::SetId>(2, [&] { return set(); }); });
    maybe(25, [&] { m.dst_ports = some<pol::PortRange>(3, [&] { return range(); }); });
    maybe(15, [&] { m.dst_named_port_sets = some<calc::SetId>(2, [&] { return set(); }); });
    maybe(10, [&] { m.dst_not_ports = some<pol::PortRange>(2, [&] { return range(); }); });
    maybe(10, [&] {
      m.icmp_type = static_cast<uint8_t>(below(3));
      if (chance(50)) m.icmp_code = static_cast<uint8_t>(below(2));
      if (chance(50)) m.protocol = 1;
    });
    return m;
  }

  pol::Action action() {
    static constexpr pol::Action kActions[] = {pol::Action::Allow, pol::Action::Deny, pol::Action::Pass,
                                               pol::Action::Log,   pol::Action::Allow, pol::Action::Deny};
    return kActions[below(std::size(kActions))];
  }

  pol::EndpointPolicy policy(uint64_t& next_id) {
    pol::EndpointPolicy p;
    p.direction = chance(50) ? pol::Direction::Ingress : pol::Direction::Egress;
    for (uint64_t t = below(4) + (chance(90) ? 1 : 0); t > 0; t--) {
      pol::Tier tier;
      tier.name = fmt::format("tier{}", t);
      static constexpr pol::Action kDefaults[] = {pol::Action::Deny, pol::Action::Deny, pol::Action::Pass,
                                                  pol::Action::Allow};
      tier.default_action = kDefaults[below(std::size(kDefaults))];
      for (uint64_t n = below(4); n > 0; n--) {
        pol::Policy po;
        po.name = fmt::format("ns/p{}", n);
        for (uint64_t r = below(6); r > 0; r--) po.rules.push_back(rule(next_id++, action(), match()));
        tier.policies.push_back(po);
      }
      p.tiers.push_back(tier);
    }
    return p;
  }

  pol::IpSetTable sets() {
    pol::IpSetTable t;
    for (calc::SetId id : set_ids) {
      for (uint64_t n = below(4); n > 0; n--) {
        Cidr c = cidr();
        if (c.prefix_len < 24) c.prefix_len = 24;
        uint32_t mask = c.prefix_len >= 32 ? 0xffffffffu : ~(0xffffffffu >> c.prefix_len);
        c.addr.value &= mask;
        t.add(id, c);
      }
      for (uint64_t n = below(4); n > 0; n--) t.add_port(id, addr(), chance(50) ? 6 : 17, port());
    }
    return t;
  }

  pol::Packet packet() {
    pol::Packet p;
    p.proto = proto();
    p.saddr = addr();
    p.daddr = addr();
    if (p.proto == 6 || p.proto == 17) {
      p.sport = port();
      p.dport = port();
    } else if (p.proto == 1) {
      p.icmp_type = static_cast<uint8_t>(below(3));
      p.icmp_code = static_cast<uint8_t>(below(2));
    }
    return p;
  }
};

std::string describe_packet(const pol::Packet& p) {
  return fmt::format("proto {} {}:{} -> {}:{} icmp {}/{}", p.proto, p.saddr.str(), p.sport, p.daddr.str(),
                     p.dport, p.icmp_type, p.icmp_code);
}

TEST(PolprogCompile, DifferentialAgainstEvaluate) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("WEIR_POLPROG_SEED")) seed = std::strtoull(s, nullptr, 0);
  SCOPED_TRACE(fmt::format("seed {} (rerun with WEIR_POLPROG_SEED={})", seed, seed));
  Gen g(seed);
  // 300 random policies; WEIR_POLPROG_POLICIES changes it (the 6.1 guest runs 100: each load
  // goes through its verifier under TCG).
  int policies = 300;
  if (const char* n = std::getenv("WEIR_POLPROG_POLICIES")) policies = std::max(20, std::atoi(n));
  SCOPED_TRACE(fmt::format("{} policies", policies));
  constexpr int kPackets = 40;
  int chunked = 0, compared = 0, allowed = 0, by_rule = 0;
  uint64_t next_id = 1;
  for (int i = 0; i < policies && !HasFailure(); i++) {
    pol::EndpointPolicy p = g.policy(next_id);
    CompileOptions opts;
    if (i % 2 == 0) opts = small_chunks(190 + g.below(250));
    auto c = compile(p, opts);
    if (!c.ok() && (c.error().msg.find("chunks of at most") != std::string::npos ||
                    c.error().msg.find("more than fit in a chunk") != std::string::npos)) {
      opts = small_chunks(4000);  // too many small chunks, or a rule too large for them
      c = compile(p, opts);
    }
    ASSERT_TRUE(c.ok()) << "policy " << i << ": " << c.error().str();
    if (c->chunks.size() > 1) chunked++;
    auto l = env().load_policy(*c);
    ASSERT_TRUE(l.ok()) << "policy " << i << ": " << l.error().str();
    pol::IpSetTable sets = g.sets();
    ASSERT_TRUE(env().set_ipsets(sets).ok());
    for (int k = 0; k < kPackets; k++) {
      pol::Packet pkt = g.packet();
      ASSERT_TRUE(env().clear_rule_counts().ok());
      auto out = env().run(*l, pkt);
      ASSERT_TRUE(out.ok()) << out.error().str();
      pol::Decision want = pol::evaluate(p, pkt, sets);
      std::map<uint64_t, uint64_t> want_counts;
      // A rule that decided is counted; a tier default (its own id) is not.
  if (want.rule_id && !pol::tier_of_default_rule_id(want.rule_id)) want_counts[want.rule_id]++;
      for (uint64_t id : want.logged) want_counts[id]++;
      auto counts = env().rule_counts();
      ASSERT_TRUE(counts.ok());
      const bool same = out->verdict == (want.allow ? uint32_t(WEIR_POL_ALLOW) : uint32_t(WEIR_POL_DENY)) &&
                        out->rule_id == want.rule_id && *counts == want_counts &&
                        out->retval == marker(p.direction) + out->verdict;
      ASSERT_TRUE(same) << "policy " << i << " (" << c->chunks.size() << " chunks), packet "
                        << describe_packet(pkt) << ": program verdict " << out->verdict << " rule "
                        << out->rule_id << " retval " << out->retval << ", evaluate() "
                        << (want.allow ? "allow" : "deny") << " rule " << want.rule_id << "\n"
                        << describe(*c);
      compared++;
      allowed += want.allow;
      by_rule += want.rule_id != 0;
    }
  }
  std::printf("differential: %d packets, %d allowed, %d decided by a rule, %d chunked policies\n", compared,
              allowed, by_rule, chunked);
  EXPECT_GT(chunked, policies / 10);
  EXPECT_GT(by_rule, compared / 5);  // the generator exercises rules, not only defaults
  EXPECT_GT(allowed, compared / 10);
  EXPECT_LT(allowed, compared - compared / 10);
}

}  // namespace
}  // namespace weir::polprog
