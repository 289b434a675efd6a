// The rule compiler (see compiler.h and docs/polprog.md "Rule compiler").
//
// Code shape of one chunk:
//
//   prologue     r6 = ctx; r7 = &weir_pstate1[0] (null: TC_ACT_SHOT); state.scratch =
//                (proto << 16) | dport; chunk 0: verdict/resume/rule_id = 0; chunk k > 0:
//                dispatch on state.resume
//   steps        tiers, policies, rules in order; a rule is a list of checks that jump to its
//                `next` label when they fail, then its action
//   epilogue     continuation to the next chunk, the end-of-tiers allow, Pass stubs to tiers of
//                later chunks, `decided` (count the deciding rule) -> `finish` (tail call the
//                continuation) -> `tail_fail` (count the missed tail call, TC_ACT_SHOT)
//
// The kernel rejects unreachable instructions, so emission goes through Gen, which tracks
// whether the next instruction is reachable (every jump is forward, so a label's reachability
// is known when it is bound) and drops what is not.
#include "polprog/compiler.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <cerrno>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "polprog/count_emit.h"
#include "polprog/disasm.h"
#include "weir/counters.h"
#include "weir/policy.h"

namespace weir::polprog {

using calc::pol::Action;
using calc::pol::Direction;
using calc::pol::EndpointPolicy;
using calc::pol::Match;
using calc::pol::PortRange;
using calc::pol::Rule;

namespace {

// ---------------------------------------------------------------- layout
constexpr int kOffSaddr = offsetof(weir_pol_state, saddr);
constexpr int kOffDaddr = offsetof(weir_pol_state, daddr);
constexpr int kOffSaddrH = offsetof(weir_pol_state, saddr_h);
constexpr int kOffDaddrH = offsetof(weir_pol_state, daddr_h);
constexpr int kOffSport = offsetof(weir_pol_state, sport);
constexpr int kOffDport = offsetof(weir_pol_state, dport);
constexpr int kOffProto = offsetof(weir_pol_state, proto);
constexpr int kOffIcmpType = offsetof(weir_pol_state, icmp_type);
constexpr int kOffIcmpCode = offsetof(weir_pol_state, icmp_code);
constexpr int kOffHook = offsetof(weir_pol_state, hook);
constexpr int kOffIfindex = offsetof(weir_pol_state, ifindex);
constexpr int kOffVerdict = offsetof(weir_pol_state, verdict);
constexpr int kOffResume = offsetof(weir_pol_state, resume);
constexpr int kOffRuleId = offsetof(weir_pol_state, rule_id);
constexpr int kOffPflags = offsetof(weir_pol_state, pflags);

// Stack (r10-relative), every slot 8-byte aligned: the IP set key, the rule counter key/value (the state map key at entry),
// the interface counters key/value (missed tail call).
constexpr int kStIpsetKey = -24;  // struct weir_ipset_key, 20 bytes in 3 words
constexpr int kStIpsetExactKey = -16;  // struct weir_ipset_exact_key, 16 bytes in 2 words (shared)
constexpr int kStRuleKey = -32;   // u64
constexpr int kStRuleVal = -40;   // u64
constexpr int kStCntKey = -48;    // struct weir_counters_key
constexpr int kStCntVal = kStCntKey - static_cast<int>(sizeof(weir_counters_val));
static_assert(sizeof(weir_ipset_key) == 20 && kStIpsetKey + 20 <= 0);
static_assert(sizeof(weir_ipset_exact_key) == 16 && kStIpsetExactKey + 16 <= 0 &&
              kStIpsetExactKey >= kStIpsetKey);
static_assert(kStCntVal >= -512);

constexpr Reg kCtx = R6;
constexpr Reg kState = R7;
// state.scratch holds (proto << 16) | dport, computed once per chunk: "TCP to port 80" is one
// load, one add and one compare. Kept in memory, not in a callee-saved register: a register
// compared against constants gets narrowed (linked copies included) by the verifier, which then
// cannot prune the states of later rules.
constexpr int kOffProtoPort = offsetof(weir_pol_state, scratch);

constexpr size_t kMaxChunks = kMaxPolicyChunks;

// ---------------------------------------------------------------- reachability-aware emitter
struct Target {
  Label label;
  bool used = false;   // referenced by a reachable jump
  bool bound = false;
};

class Gen {
 public:
  explicit Gen(std::string name) : a(std::move(name)) {}

  Target& target(std::string name) {
    targets_.push_back(Target{a.new_label(std::move(name))});
    return targets_.back();
  }
  void bind(Target& t) {
    a.bind(t.label);
    t.bound = true;
    live = live || t.used;
  }
  void comment(std::string s) { a.comment(std::move(s)); }
  size_t pos() const { return a.pos(); }
  // Instructions the verifier adds when it inlines a hash map lookup (htab_map_gen_lookup: the
  // call becomes call + jeq + add, 2 more; 4 kept as margin). Counted by the chunk budget: a
  // chunk must stay within the 16-bit jump range after the kernel's patching too.
  static constexpr size_t kHashLookupInlineExtra = 4;
  void hash_lookup_inlined() { if (live) inline_extra += kHashLookupInlineExtra; }
  size_t inline_extra = 0;

  void ldx(Size s, Reg d, Reg src, int off) { if (live) a.ldx(s, d, src, off); }
  void stx(Size s, Reg d, int off, Reg src) { if (live) a.stx(s, d, off, src); }
  void st(Size s, Reg d, int off, Imm32 imm) { if (live) a.st(s, d, off, imm); }
  void mov(Reg d, Reg s) { if (live) a.mov(d, s); }
  void mov(Reg d, Imm i) { if (live) a.mov(d, i); }
  void mov32(Reg d, Imm32 i) { if (live) a.mov32(d, i); }
  void mov32(Reg d, Reg s) { if (live) a.mov32(d, s); }
  void add(Reg d, Imm i) { if (live) a.add(d, i); }
  void and32(Reg d, Imm32 i) { if (live) a.and32(d, i); }
  void or32(Reg d, Reg s) { if (live) a.or32(d, s); }
  void add32(Reg d, Imm32 i) { if (live) a.add32(d, i); }
  void lsh32(Reg d, Imm32 i) { if (live) a.lsh32(d, i); }
  void lsh(Reg d, Imm i) { if (live) a.lsh(d, i); }
  void or_(Reg d, Reg s) { if (live) a.or_(d, s); }
  void be16(Reg d) { if (live) a.be16(d); }
  void ld_imm64(Reg d, uint64_t v) { if (live) a.ld_imm64(d, v); }
  void ld_map_fd(Reg d, const char* map) { if (live) a.ld_map_fd(d, MapRef{map}); }
  void call(bpf_func_id f) { if (live) a.call(f); }
  void exit() {
    if (live) a.exit();
    live = false;
  }
  void ja(Target& t) {
    if (!live) return;
    t.used = true;
    a.ja(t.label);
    live = false;
  }
  void jmp(Cond c, Reg d, Imm i, Target& t) {
    if (!live) return;
    t.used = true;
    a.jmp(c, d, i, t.label);
  }
  void jmp32(Cond c, Reg d, Imm32 i, Target& t) {
    if (!live) return;
    t.used = true;
    a.jmp32(c, d, i, t.label);
  }

  Assembler a;
  bool live = true;
  bool trace = false;  // CompileOptions::trace: honour WEIR_PSTATE_F_TRACE

 private:
  std::deque<Target> targets_;  // stable addresses
};

// r2 = r10 + off
void stack_ptr(Gen& g, Reg r, int off) {
  g.mov(r, R10);
  g.add(r, off);
}

// Tests whether the packet's address (state field `addr_off`, network order) is in set `id` and
// jumps to `target` when it is (jump_if_member) or when it is not (!jump_if_member); falls
// through otherwise. Lookups, first hit wins (weir/policy.h): the exact-member hash
// weir_ipsetx1 with (addr, dport, proto) for a named-port set, the hash with (addr, 0, 0), then
// the LPM trie weir_ipsets1 with the full key (CIDR members, any port).
//
// Keys are written as full 8-byte stack words, every time: a full-word write tells the verifier
// the old contents are dead, so states that differ only in a previous rule's key still prune.
// (Narrower writes leave half-written slots whose types differ between paths, and the verifier
// then explores every later rule again for each of them.) The exact key (2 words) shares the
// last two words of the trie key's slot.
void emit_set_test(Gen& g, calc::SetId id, int addr_off, bool named_port, Target& target,
                   bool jump_if_member) {
  static_assert(std::endian::native == std::endian::little,
                "the IP set key words are laid out for a little-endian host");
  static_assert(offsetof(weir_ipset_key, set_id) == 4 && offsetof(weir_ipset_key, addr) == 12 &&
                offsetof(weir_ipset_key, port) == 16 && offsetof(weir_ipset_key, proto) == 19);
  static_assert(offsetof(weir_ipset_exact_key, addr) == 8 && offsetof(weir_ipset_exact_key, port) == 12 &&
                offsetof(weir_ipset_exact_key, proto) == 15);
  Target& hit = jump_if_member ? target : g.target("set_hit");
  uint8_t bytes[16] = {};  // prefixlen, set_id (big-endian), addr (filled at run time)
  const uint32_t prefixlen = WEIR_IPSET_PREFIX_FULL;
  std::memcpy(bytes, &prefixlen, 4);
  for (int i = 0; i < 8; i++) bytes[4 + i] = static_cast<uint8_t>(id >> (56 - 8 * i));
  uint64_t word0 = 0;
  uint64_t id_word = 0;
  uint32_t id_low = 0;
  std::memcpy(&word0, bytes, 8);
  std::memcpy(&id_word, bytes + 4, 8);
  std::memcpy(&id_low, bytes + 8, 4);

  // Exact key, word 0: set_id. Word 1: addr, port, pad, proto.
  g.ld_imm64(R1, id_word);
  g.stx(Size::U64, R10, kStIpsetExactKey, R1);
  if (named_port) {
    g.ldx(Size::U16, R1, kState, kOffDport);
    g.be16(R1);
    g.lsh(R1, 32);
    g.ldx(Size::U8, R2, kState, kOffProto);
    g.lsh(R2, 56);
    g.or_(R1, R2);
    g.ldx(Size::U32, R2, kState, addr_off);
    g.or_(R1, R2);
    g.stx(Size::U64, R10, kStIpsetExactKey + 8, R1);
    stack_ptr(g, R2, kStIpsetExactKey);
    g.ld_map_fd(R1, kMapIpsetExact);
    g.hash_lookup_inlined();
    g.call(BPF_FUNC_map_lookup_elem);
    g.jmp(Cond::Ne, R0, 0, hit);
  }
  g.ldx(Size::U32, R1, kState, addr_off);  // port 0, proto 0
  g.stx(Size::U64, R10, kStIpsetExactKey + 8, R1);
  stack_ptr(g, R2, kStIpsetExactKey);
  g.ld_map_fd(R1, kMapIpsetExact);
  g.hash_lookup_inlined();
  g.call(BPF_FUNC_map_lookup_elem);
  g.jmp(Cond::Ne, R0, 0, hit);

  // Trie key, word 0: prefixlen, set_id[0..3].
  g.ld_imm64(R1, word0);
  g.stx(Size::U64, R10, kStIpsetKey, R1);
  // Word 1: set_id[4..7], addr.
  g.ldx(Size::U32, R1, kState, addr_off);
  g.lsh(R1, 32);
  g.mov32(R2, id_low);
  g.or_(R1, R2);
  g.stx(Size::U64, R10, kStIpsetKey + 8, R1);
  // Word 2: port, pad, proto (and 4 bytes past the key).
  if (named_port) {
    g.ldx(Size::U16, R1, kState, kOffDport);
    g.be16(R1);
    g.ldx(Size::U8, R2, kState, kOffProto);
    g.lsh(R2, 24);
    g.or_(R1, R2);
    g.stx(Size::U64, R10, kStIpsetKey + 16, R1);
  } else {
    g.st(Size::U64, R10, kStIpsetKey + 16, 0);
  }
  stack_ptr(g, R2, kStIpsetKey);
  g.ld_map_fd(R1, kMapIpsets);
  g.call(BPF_FUNC_map_lookup_elem);
  if (jump_if_member) {
    g.jmp(Cond::Ne, R0, 0, target);
  } else {
    g.jmp(Cond::Eq, R0, 0, target);
    g.bind(hit);
  }
}

// Bumps weir_rule_cnt1[r1] (per-CPU: plain increments are exact). Clobbers r0-r5.
void emit_count_rule(Gen& g) {
  Target& insert = g.target("cnt_insert");
  Target& done = g.target("cnt_done");
  if (g.trace) {
    // A trace's packet (weir/policy.h WEIR_PSTATE_F_TRACE) is counted nowhere.
    g.ldx(Size::U16, R2, kState, kOffPflags);
    g.jmp(Cond::Set, R2, static_cast<int32_t>(WEIR_PSTATE_F_TRACE), done);
  }
  g.stx(Size::U64, R10, kStRuleKey, R1);
  stack_ptr(g, R2, kStRuleKey);
  g.ld_map_fd(R1, kMapRuleCnt);
  g.call(BPF_FUNC_map_lookup_elem);
  g.jmp(Cond::Eq, R0, 0, insert);
  g.ldx(Size::U64, R1, R0, 0);
  g.add(R1, 1);
  g.stx(Size::U64, R0, 0, R1);
  g.ja(done);
  g.bind(insert);
  // First hit on this rule: insert 1. EEXIST (another CPU inserted first): look up again.
  g.st(Size::U64, R10, kStRuleVal, 1);
  g.ld_map_fd(R1, kMapRuleCnt);
  stack_ptr(g, R2, kStRuleKey);
  stack_ptr(g, R3, kStRuleVal);
  g.mov(R4, BPF_NOEXIST);
  g.call(BPF_FUNC_map_update_elem);
  g.jmp(Cond::Eq, R0, 0, done);
  g.ld_map_fd(R1, kMapRuleCnt);
  stack_ptr(g, R2, kStRuleKey);
  g.call(BPF_FUNC_map_lookup_elem);
  g.jmp(Cond::Eq, R0, 0, done);
  g.ldx(Size::U64, R1, R0, 0);
  g.add(R1, 1);
  g.stx(Size::U64, R0, 0, R1);
  g.bind(done);
}

// Tail call into `slot` of weir_jump1; falls through when it fails.
void emit_tail_call(Gen& g, uint32_t slot) {
  g.mov(R1, kCtx);
  g.ld_map_fd(R2, kMapJump);
  g.mov32(R3, slot);
  g.call(BPF_FUNC_tail_call);
}

// The tail call into the policy continuation `slot`; falls through when it fails. A trace's
// packet goes to the trace build's continuation (weir_trjmp1) when compiled with the capability.
void emit_continuation(Gen& g, uint32_t slot) {
  if (!g.trace) {
    emit_tail_call(g, slot);
    return;
  }
  Target& traced = g.target("cont_trace");
  Target& failed = g.target("cont_failed");
  g.ldx(Size::U16, R2, kState, kOffPflags);
  g.jmp(Cond::Set, R2, static_cast<int32_t>(WEIR_PSTATE_F_TRACE), traced);
  emit_tail_call(g, slot);
  g.ja(failed);
  g.bind(traced);
  g.mov(R1, kCtx);
  g.ld_map_fd(R2, kMapTraceJump);
  g.mov32(R3, slot);
  g.call(BPF_FUNC_tail_call);
  g.bind(failed);
}

// Missed tail call: count DROP_TAIL_CALL + TOTAL for (ifindex, hook), drop (a trace's packet:
// drop only).
void emit_tail_fail(Gen& g) {
  Target& drop = g.target("tail_fail_drop");
  if (g.trace) {
    g.ldx(Size::U16, R1, kState, kOffPflags);
    g.jmp(Cond::Set, R1, static_cast<int32_t>(WEIR_PSTATE_F_TRACE), drop);
  }
  g.ldx(Size::U32, R1, kState, kOffIfindex);
  g.stx(Size::U32, R10, kStCntKey + static_cast<int>(offsetof(weir_counters_key, ifindex)), R1);
  g.ldx(Size::U8, R1, kState, kOffHook);
  g.stx(Size::U32, R10, kStCntKey + static_cast<int>(offsetof(weir_counters_key, hook)), R1);
  if (g.live) emit_count_outcome(g.a, MapRef{kMapCounters}, kStCntKey, kStCntVal, WEIR_CNT_DROP_TAIL_CALL);
  g.bind(drop);
  g.mov(R0, TC_ACT_SHOT);
  g.exit();
}

// Jump to `t` when the u16 in `r` is in the range.
void emit_in_range(Gen& g, Reg r, PortRange pr, Target& t) {
  if (pr.first == pr.last) {
    g.jmp32(Cond::Eq, r, pr.first, t);
  } else if (pr.first == 0 && pr.last == 0xffff) {
    g.ja(t);
  } else if (pr.first == 0) {
    g.jmp32(Cond::Le, r, pr.last, t);
  } else if (pr.last == 0xffff) {
    g.jmp32(Cond::Ge, r, pr.first, t);
  } else {
    Target& skip = g.target("range_skip");
    g.jmp32(Cond::Lt, r, pr.first, skip);
    g.jmp32(Cond::Le, r, pr.last, t);
    g.bind(skip);
  }
}

// Protocol `proto` (TCP or UDP) and destination port in any of `ranges`; jumps to `next` when
// not. Three instructions and one branch per range: r1 = ((proto << 16) | dport) - lo; unsigned
// r1 > hi - lo means outside.
void emit_proto_ports(Gen& g, uint8_t proto, const std::vector<PortRange>& ranges, Target& next) {
  const uint32_t base = static_cast<uint32_t>(proto) << 16;
  Target& in = g.target("proto_port_in");
  for (size_t i = 0; i < ranges.size(); i++) {
    const uint32_t lo = base | ranges[i].first, span = static_cast<uint32_t>(ranges[i].last - ranges[i].first);
    g.ldx(Size::U32, R1, kState, kOffProtoPort);
    g.add32(R1, static_cast<uint32_t>(0u - lo));
    if (i + 1 == ranges.size()) {
      g.jmp32(Cond::Gt, R1, span, next);
    } else {
      g.jmp32(Cond::Le, R1, span, in);
    }
  }
  g.bind(in);
}

// Jump to `t` when the host-order address in `r` is in `n` (clobbers r2).
void emit_in_net(Gen& g, Reg r, model::Cidr n, Target& t) {
  if (n.prefix_len == 0) {
    g.ja(t);
    return;
  }
  const uint32_t mask = n.mask();
  if (mask == 0xffffffffu) {
    g.jmp32(Cond::Eq, r, n.addr.value, t);
    return;
  }
  g.mov32(R2, r);
  g.and32(R2, mask);
  g.jmp32(Cond::Eq, R2, n.addr.value & mask, t);
}

bool has_ports(uint8_t p) { return p == WEIR_IPPROTO_TCP || p == WEIR_IPPROTO_UDP; }

void emit_nets(Gen& g, int addr_h_off, const std::vector<model::Cidr>& nets,
               const std::vector<model::Cidr>& not_nets, Target& next) {
  bool any_all = std::any_of(nets.begin(), nets.end(), [](model::Cidr n) { return n.prefix_len == 0; });
  if ((nets.empty() || any_all) && not_nets.empty()) return;
  g.ldx(Size::U32, R1, kState, addr_h_off);
  for (const model::Cidr& n : not_nets) emit_in_net(g, R1, n, next);
  if (nets.empty() || any_all) return;
  if (nets.size() == 1) {
    // The common case: mask r1 in place and compare once (r1 is not needed afterwards).
    const uint32_t mask = nets[0].mask();
    if (mask != 0xffffffffu) g.and32(R1, mask);
    g.jmp32(Cond::Ne, R1, nets[0].addr.value & mask, next);
    return;
  }
  Target& in = g.target("net_in");
  for (const model::Cidr& n : nets) emit_in_net(g, R1, n, in);
  g.ja(next);
  g.bind(in);
}

std::string hex_set(calc::SetId id) { return fmt::format("0x{:016x}", id); }

std::string ipsets_comment(const Match& m) {
  std::string s;
  auto add = [&](const char* field, const std::vector<calc::SetId>& ids) {
    for (calc::SetId id : ids) s += fmt::format(" {}:<{}>", field, hex_set(id));
  };
  add("src_ip_set_ids", m.src_sets);
  add("not_src_ip_set_ids", m.src_not_sets);
  add("dst_ip_set_ids", m.dst_sets);
  add("not_dst_ip_set_ids", m.dst_not_sets);
  add("dst_named_port_ip_set_ids", m.dst_named_port_sets);
  return s.empty() ? s : "IPSets" + s;
}

std::string rule_description(const Rule& r) {
  if (!r.description.empty()) return r.description;
  return fmt::format(R"(action:"{}" rule_id:"{}")", calc::pol::to_string(r.action),
                     calc::pol::format_rule_id(r.id));
}

// One rule: checks (cheap ones first, map lookups last; all are side-effect free so their
// order does not change the result), then the action. Falls through to the next rule.
void emit_rule(Gen& g, const Rule& r, Target& decided, Target& pass) {
  const Match& m = r.match;
  Target& next = g.target("next_rule");
  g.comment("Start of rule " + rule_description(r));
  if (std::string ips = ipsets_comment(m); !ips.empty()) g.comment(ips);

  const bool named = !m.dst_named_port_sets.empty();
  // "protocol TCP/UDP and destination port in ranges": fused on kProtoPort.
  const bool fused = m.protocol && has_ports(*m.protocol) && !m.dst_ports.empty() && !named;
  if (fused) emit_proto_ports(g, *m.protocol, m.dst_ports, next);
  if (m.protocol && !fused) {
    g.ldx(Size::U8, R1, kState, kOffProto);
    g.jmp32(Cond::Ne, R1, *m.protocol, next);
  }
  if (m.not_protocol) {
    g.ldx(Size::U8, R1, kState, kOffProto);
    g.jmp32(Cond::Eq, R1, *m.not_protocol, next);
  }
  const bool ports = !m.src_ports.empty() || !m.dst_ports.empty() || named || !m.dst_not_ports.empty();
  if (ports && !(m.protocol && has_ports(*m.protocol))) {
    Target& tcp_udp = g.target("tcp_udp");
    g.ldx(Size::U8, R1, kState, kOffProto);
    g.jmp32(Cond::Eq, R1, WEIR_IPPROTO_TCP, tcp_udp);
    g.jmp32(Cond::Ne, R1, WEIR_IPPROTO_UDP, next);
    g.bind(tcp_udp);
  }
  if (m.icmp_type) {
    if (m.protocol != WEIR_IPPROTO_ICMP) {
      g.ldx(Size::U8, R1, kState, kOffProto);
      g.jmp32(Cond::Ne, R1, WEIR_IPPROTO_ICMP, next);
    }
    g.ldx(Size::U8, R1, kState, kOffIcmpType);
    g.jmp32(Cond::Ne, R1, *m.icmp_type, next);
    if (m.icmp_code) {
      g.ldx(Size::U8, R1, kState, kOffIcmpCode);
      g.jmp32(Cond::Ne, R1, *m.icmp_code, next);
    }
  }
  if (!m.src_ports.empty()) {
    Target& in = g.target("sport_in");
    g.ldx(Size::U16, R1, kState, kOffSport);
    for (PortRange pr : m.src_ports) emit_in_range(g, R1, pr, in);
    g.ja(next);
    g.bind(in);
  }
  if (!m.dst_ports.empty() && !named && !fused) {
    Target& in = g.target("dport_in");
    g.ldx(Size::U16, R1, kState, kOffDport);
    for (PortRange pr : m.dst_ports) emit_in_range(g, R1, pr, in);
    g.ja(next);
    g.bind(in);
  }
  if (!m.dst_not_ports.empty()) {
    g.ldx(Size::U16, R1, kState, kOffDport);
    for (PortRange pr : m.dst_not_ports) emit_in_range(g, R1, pr, next);
  }
  emit_nets(g, kOffSaddrH, m.src_nets, m.src_not_nets, next);
  emit_nets(g, kOffDaddrH, m.dst_nets, m.dst_not_nets, next);

  for (calc::SetId id : m.src_sets) emit_set_test(g, id, kOffSaddr, false, next, false);
  for (calc::SetId id : m.src_not_sets) emit_set_test(g, id, kOffSaddr, false, next, true);
  for (calc::SetId id : m.dst_sets) emit_set_test(g, id, kOffDaddr, false, next, false);
  for (calc::SetId id : m.dst_not_sets) emit_set_test(g, id, kOffDaddr, false, next, true);
  if (named) {
    // Destination port in dst_ports OR (daddr, proto, dport) in a named-port set.
    Target& in = g.target("dport_in");
    if (!m.dst_ports.empty()) {
      g.ldx(Size::U16, R1, kState, kOffDport);
      for (PortRange pr : m.dst_ports) emit_in_range(g, R1, pr, in);
    }
    for (calc::SetId id : m.dst_named_port_sets) {
      emit_set_test(g, id, kOffDaddr, true, in, true);
    }
    g.ja(next);
    g.bind(in);
  }

  switch (r.action) {
    case Action::Allow:
    case Action::Deny:
      g.st(Size::U32, kState, kOffVerdict, r.action == Action::Allow ? WEIR_POL_ALLOW : WEIR_POL_DENY);
      g.ld_imm64(R1, r.id);
      g.stx(Size::U64, kState, kOffRuleId, R1);
      g.ja(decided);
      break;
    case Action::Pass:
      g.ja(pass);
      break;
    case Action::Log:
      g.ld_imm64(R1, r.id);
      emit_count_rule(g);
      break;
  }
  g.bind(next);
  g.comment("End of rule " + calc::pol::format_rule_id(r.id));
}

// Sets the verdict with rule id `rule` (a 32-bit immediate the store sign-extends: 0, or a tier
// default's -1 - index, see WEIR_RULE_ID_TIER_DEFAULT) and jumps to `finish`.
void emit_verdict(Gen& g, uint32_t verdict, Target& finish, int32_t rule = 0) {
  g.st(Size::U32, kState, kOffVerdict, verdict);
  g.st(Size::U64, kState, kOffRuleId, rule);
  g.ja(finish);
}

// ---------------------------------------------------------------- steps and chunks
enum class StepKind { TierBegin, PolicyBegin, Rule, PolicyEnd, TierEnd, End };

struct Step {
  StepKind kind;
  size_t tier = 0;
  size_t policy = 0;
  size_t rule = 0;
};

// Resume point of a step (state.resume): 1 + step index, so 0 never resumes anywhere.
uint32_t resume_id(size_t step) { return static_cast<uint32_t>(step + 1); }

const char* default_name(Action a) {
  switch (a) {
    case Action::Allow: return "allow";
    case Action::Pass: return "pass";
    default: return "deny";  // Deny, and Log as a default (which the IR evaluates as deny)
  }
}

class Compiler {
 public:
  Compiler(const EndpointPolicy& p, const CompileOptions& o) : pol_(p), opts_(o) {}

  Result<CompiledPolicy> run() {
    WEIR_TRY(validate());
    flatten();
    WEIR_TRY(partition());
    CompiledPolicy out;
    out.direction = pol_.direction;
    out.rule_count = pol_.rule_count();
    slots_.assign(chunk_begin_.size(), 0);
    if (chunk_begin_.size() > 1) {
      if (!opts_.slot_of_chunk)
        return make_error("policy ({} rules) needs {} chunks but CompileOptions::slot_of_chunk is not set",
                          out.rule_count, chunk_begin_.size());
      for (size_t i = 1; i < chunk_begin_.size(); i++) slots_[i] = opts_.slot_of_chunk(i);
    }
    for (size_t k = 0; k < chunk_begin_.size(); k++) {
      auto prog = gen_chunk(k);
      if (!prog.ok()) return prog.error();
      if (prog->insns.size() > limit_)
        return make_error("internal error: chunk {} has {} instructions, more than the limit {}", k,
                          prog->insns.size(), limit_);
      out.chunks.push_back(std::move(*prog));
    }
    out.chunk_slots = slots_;
    return out;
  }

 private:
  Status validate() const {
    for (const auto& tier : pol_.tiers) {
      for (size_t p = 0; p < tier.policies.size(); p++) {
        const auto& policy = tier.policies[p];
        for (size_t r = 0; r < policy.rules.size(); r++) {
          const Rule& rule = policy.rules[r];
          auto where = [&] {
            return fmt::format("tier '{}' policy '{}' rule {}", tier.name, policy.name, r);
          };
          if (rule.id == 0) return make_error("{}: rule id 0 (rule ids must be non-zero)", where());
          const Match& m = rule.match;
          for (const auto* v : {&m.src_ports, &m.dst_ports, &m.dst_not_ports})
            for (PortRange pr : *v)
              if (pr.first > pr.last)
                return make_error("{}: port range {}-{} has first > last", where(), pr.first, pr.last);
          for (const auto* v : {&m.src_nets, &m.src_not_nets, &m.dst_nets, &m.dst_not_nets})
            for (model::Cidr n : *v)
              if (n.prefix_len > 32)
                return make_error("{}: CIDR prefix length {} > 32", where(), n.prefix_len);
        }
      }
    }
    return {};
  }

  void flatten() {
    for (size_t t = 0; t < pol_.tiers.size(); t++) {
      steps_.push_back({StepKind::TierBegin, t});
      for (size_t p = 0; p < pol_.tiers[t].policies.size(); p++) {
        steps_.push_back({StepKind::PolicyBegin, t, p});
        for (size_t r = 0; r < pol_.tiers[t].policies[p].rules.size(); r++)
          steps_.push_back({StepKind::Rule, t, p, r});
        steps_.push_back({StepKind::PolicyEnd, t, p});
      }
      steps_.push_back({StepKind::TierEnd, t});
    }
    steps_.push_back({StepKind::End, pol_.tiers.size()});
  }

  const Rule& rule_of(const Step& s) const { return pol_.tiers[s.tier].policies[s.policy].rules[s.rule]; }

  // Upper bound of a step's instructions (measured by emitting it, so it cannot drift).
  size_t step_cost(const Step& s) const {
    switch (s.kind) {
      case StepKind::Rule: {
        Gen g("measure");
        g.trace = opts_.trace;
        Target& decided = g.target("d");
        Target& pass = g.target("p");
        emit_rule(g, rule_of(s), decided, pass);
        return g.pos() + g.inline_extra;
      }
      case StepKind::TierEnd:
      case StepKind::End:
        return 3;  // emit_verdict
      default:
        return 0;
    }
  }

  // Instructions of a chunk besides its steps, with every optional block present.
  size_t fixed_overhead() const {
    Gen g("measure");
    g.trace = opts_.trace;
    Target& finish = g.target("finish");
    Target& fail = g.target("fail");
    Target& first = g.target("first");
    emit_prologue(g, 1, {{0, &first}}, finish);
    g.bind(first);
    g.st(Size::U32, kState, kOffResume, 0);  // continuation
    emit_tail_call(g, 0);
    g.ja(fail);
    g.live = true;
    emit_verdict(g, WEIR_POL_ALLOW, finish);  // end_allow
    g.live = true;
    g.ld_imm64(R1, 0);  // decided
    emit_count_rule(g);
    g.bind(finish);
    emit_continuation(g, 0);
    g.bind(fail);
    emit_tail_fail(g);
    return g.pos();
  }
  static constexpr size_t kPerTierExtra = 1 /* dispatcher entry */ + 7 /* Pass stub */;

  Status partition() {
    const size_t overhead = fixed_overhead();
    // Each step's size, emitted once (a rule's code is generated again for its chunk only).
    std::vector<size_t> cost(steps_.size());
    for (size_t i = 0; i < steps_.size(); i++) cost[i] = step_cost(steps_[i]);
    if (opts_.max_insns_per_chunk == 0) {
      // Automatic: small chunks, unless that would take too many of them.
      size_t total = 0;
      std::set<size_t> seen;
      for (size_t i = 0; i < steps_.size(); i++) {
        total += cost[i];
        if (seen.insert(steps_[i].tier).second) total += kPerTierExtra;
      }
      size_t per_chunk = (total + kAutoMaxChunks - 1) / kAutoMaxChunks + overhead;
      limit_ = std::min(std::max(kAutoChunkInsns, per_chunk), kMaxChunkInsns);
    } else {
      limit_ = std::min(opts_.max_insns_per_chunk, kMaxChunkInsns);
    }
    if (limit_ <= overhead + 16)
      return make_error("max_insns_per_chunk {} is too small: a chunk needs {} instructions of its own",
                        opts_.max_insns_per_chunk, overhead);
    const size_t budget = limit_ - overhead;
    chunk_begin_.push_back(0);
    size_t used = 0;
    std::set<size_t> tiers;
    for (size_t i = 0; i < steps_.size(); i++) {
      const Step& s = steps_[i];
      const size_t c = cost[i];
      size_t extra = tiers.contains(s.tier) ? 0 : kPerTierExtra;
      if (used + c + extra > budget && i != chunk_begin_.back()) {
        chunk_begin_.push_back(i);
        used = 0;
        tiers.clear();
        extra = kPerTierExtra;
      }
      if (c + extra > budget) {
        const Rule& r = rule_of(s);
        return make_error("rule {} ({}) needs {} instructions, more than fit in a chunk of {}",
                          calc::pol::format_rule_id(r.id), rule_description(r), c, limit_);
      }
      used += c + extra;
      tiers.insert(s.tier);
    }
    if (chunk_begin_.size() > kMaxChunks)
      return make_error(
          "policy with {} rules needs {} chunks of at most {} instructions: more than {} (the tail "
          "call limit)",
          pol_.rule_count(), chunk_begin_.size(), limit_, kMaxChunks);
    chunk_of_step_.assign(steps_.size(), 0);
    for (size_t k = 0; k < chunk_begin_.size(); k++) {
      size_t end = k + 1 < chunk_begin_.size() ? chunk_begin_[k + 1] : steps_.size();
      for (size_t i = chunk_begin_[k]; i < end; i++) chunk_of_step_[i] = k;
    }
    for (size_t i = 0; i < steps_.size(); i++)
      if (steps_[i].kind == StepKind::TierBegin) tier_begin_step_[steps_[i].tier] = i;
    return {};
  }

  // r6 = ctx, r7 = state; chunk 0 initialises the outputs, later chunks dispatch on resume.
  static void emit_prologue(Gen& g, size_t chunk, const std::vector<std::pair<uint32_t, Target*>>& entries,
                            Target& finish) {
    Target& have = g.target("have_state");
    g.mov(kCtx, R1);
    g.st(Size::U32, R10, kStRuleKey, 0);
    stack_ptr(g, R2, kStRuleKey);
    g.ld_map_fd(R1, kMapState);
    g.call(BPF_FUNC_map_lookup_elem);
    g.jmp(Cond::Ne, R0, 0, have);
    g.mov(R0, TC_ACT_SHOT);
    g.exit();
    g.bind(have);
    g.mov(kState, R0);
    g.ldx(Size::U8, R1, kState, kOffProto);
    g.lsh32(R1, 16);
    g.ldx(Size::U16, R2, kState, kOffDport);
    g.or32(R1, R2);
    g.stx(Size::U32, kState, kOffProtoPort, R1);
    if (chunk == 0) {
      g.st(Size::U32, kState, kOffVerdict, WEIR_POL_NONE);
      g.st(Size::U32, kState, kOffResume, 0);
      g.st(Size::U64, kState, kOffRuleId, 0);
      return;
    }
    g.ldx(Size::U32, R1, kState, kOffResume);
    for (auto [id, t] : entries) g.jmp32(Cond::Eq, R1, id, *t);
    // Unknown resume point: fail closed (the continuation treats NONE as deny).
    emit_verdict(g, WEIR_POL_NONE, finish);
  }

  Result<Program> gen_chunk(size_t k) {
    const size_t begin = chunk_begin_[k];
    const size_t end = k + 1 < chunk_begin_.size() ? chunk_begin_[k + 1] : steps_.size();
    const std::string dir(calc::pol::to_string(pol_.direction));
    Gen g(fmt::format("{} policy chunk {}", dir, k));
    g.trace = opts_.trace;
    Target& finish = g.target("finish");
    Target& decided = g.target("decided");
    Target& fail = g.target("tail_fail");
    Target& end_allow = g.target("end_allow");
    std::map<size_t, Target*> tier_start;  // tiers that begin in this chunk
    std::map<size_t, Target*> stubs;       // tiers that begin in a later chunk, targets of Pass

    std::vector<std::pair<uint32_t, Target*>> entries;
    Target& first = g.target("chunk_start");
    if (k > 0) {
      entries.emplace_back(resume_id(begin), &first);
      g.comment(fmt::format("Chunk {} (jump slot {}): resumes at step {}", k, slots_[k], begin));
    }
    for (size_t i = begin; i < end; i++) {
      if (steps_[i].kind != StepKind::TierBegin) continue;
      Target& t = g.target(fmt::format("tier_{}", steps_[i].tier));
      tier_start[steps_[i].tier] = &t;
      if (k > 0 && i != begin) entries.emplace_back(resume_id(i), &t);
    }
    emit_prologue(g, k, entries, finish);
    g.bind(first);

    auto pass_target = [&](size_t tier) -> Target& {
      size_t next = tier + 1;
      if (next >= pol_.tiers.size()) return end_allow;
      if (auto it = tier_start.find(next); it != tier_start.end()) return *it->second;
      auto [it, inserted] = stubs.try_emplace(next, nullptr);
      if (inserted) it->second = &g.target(fmt::format("pass_to_tier_{}", next));
      return *it->second;
    };

    for (size_t i = begin; i < end; i++) {
      const Step& s = steps_[i];
      switch (s.kind) {
        case StepKind::TierBegin:
          if (Target* t = tier_start[s.tier]) g.bind(*t);
          g.comment("Start of tier " + pol_.tiers[s.tier].name);
          break;
        case StepKind::PolicyBegin:
          g.comment("Start of policy " + pol_.tiers[s.tier].policies[s.policy].name);
          break;
        case StepKind::Rule:
          emit_rule(g, rule_of(s), decided, pass_target(s.tier));
          break;
        case StepKind::PolicyEnd:
          g.comment("End of policy " + pol_.tiers[s.tier].policies[s.policy].name);
          break;
        case StepKind::TierEnd: {
          Action d = pol_.tiers[s.tier].default_action;
          g.comment(fmt::format("End of tier {}: {}", pol_.tiers[s.tier].name, default_name(d)));
          // The tier's default decides: its rule id names the tier (weir/policy.h).
          const auto tier_rule = static_cast<int32_t>(-1 - static_cast<int64_t>(s.tier));
          if (d == Action::Allow) emit_verdict(g, WEIR_POL_ALLOW, finish, tier_rule);
          else if (d != Action::Pass) emit_verdict(g, WEIR_POL_DENY, finish, tier_rule);
          break;
        }
        case StepKind::End:
          g.comment("End of tiers: allow");
          g.bind(end_allow);
          emit_verdict(g, WEIR_POL_ALLOW, finish);
          break;
      }
    }
    // Epilogue, in dependency order (every jump is forward).
    if (end < steps_.size()) {
      g.comment(fmt::format("Continue in chunk {}", k + 1));
      g.st(Size::U32, kState, kOffResume, resume_id(end));
      emit_tail_call(g, slots_[k + 1]);
      g.ja(fail);
    }
    if (!end_allow.bound) {
      g.bind(end_allow);
      emit_verdict(g, WEIR_POL_ALLOW, finish);
    }
    for (auto [tier, t] : stubs) {
      g.bind(*t);
      size_t step = tier_begin_step_.at(tier);
      g.st(Size::U32, kState, kOffResume, resume_id(step));
      emit_tail_call(g, slots_[chunk_of_step_[step]]);
      g.ja(fail);
    }
    g.bind(decided);
    g.ldx(Size::U64, R1, kState, kOffRuleId);
    emit_count_rule(g);
    g.bind(finish);
    emit_continuation(g, pol_.direction == Direction::Egress ? WEIR_JUMP_FROM_WL_POLICY_DONE
                                                             : WEIR_JUMP_TO_WL_POLICY_DONE);
    g.bind(fail);
    emit_tail_fail(g);
    return g.a.assemble();
  }

  const EndpointPolicy& pol_;
  const CompileOptions& opts_;
  std::vector<Step> steps_;
  std::vector<size_t> chunk_begin_;
  std::vector<size_t> chunk_of_step_;
  std::map<size_t, size_t> tier_begin_step_;
  std::vector<uint32_t> slots_;
  size_t limit_ = 0;
};

bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

}  // namespace

Result<Fd> load_sched_cls(const Program& prog, const std::string& name, const std::string& what) {
  WEIR_TRY(check_relocated(prog));
  bpf_prog_load_opts opts{};
  opts.sz = sizeof(opts);
  int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name.c_str(), "GPL", as_bpf_insns(prog.insns.data()),
                         prog.insns.size(), &opts);
  if (fd >= 0) return Fd(fd);
  int err = errno;
  // Load again with the verifier log for the error message.
  std::string log(16u << 20, '\0');
  opts.log_buf = log.data();
  opts.log_size = static_cast<uint32_t>(log.size());
  opts.log_level = 1;
  int fd2 = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name.c_str(), "GPL", as_bpf_insns(prog.insns.data()),
                          prog.insns.size(), &opts);
  if (fd2 >= 0) ::close(fd2);
  log.resize(std::min(log.find('\0'), log.size()));
  if (log.size() > 6000) log = "..." + log.substr(log.size() - 6000);
  std::string listing = disassemble(prog);
  if (listing.size() > 20000) listing = listing.substr(0, 20000) + "\n...";
  return Error{err, fmt::format("loading {} {} ({} instructions): verifier log:\n{}\nprogram:\n{}", what,
                                name, prog.insns.size(), log, listing)};
}

Result<CompiledPolicy> compile(const EndpointPolicy& policy, const CompileOptions& opts) {
  Compiler c(policy, opts);
  auto r = c.run();
  if (!r.ok()) return r.error().wrap(fmt::format("compiling {} policy", calc::pol::to_string(policy.direction)));
  return r;
}

std::string chunk_program_name(const std::string& pattern, size_t chunk) {
  constexpr size_t kMax = 15;  // BPF_OBJ_NAME_LEN - 1
  const std::string idx = std::to_string(chunk);
  const size_t at = pattern.find("{}");
  if (at == std::string::npos) return pattern.substr(0, kMax - std::min(kMax, idx.size())) + idx;
  std::string head = pattern.substr(0, at) + idx;
  std::string tail = pattern.substr(at + 2);
  if (head.size() >= kMax) return head.substr(0, kMax);
  const size_t room = kMax - head.size();
  if (tail.size() > room) {
    tail = tail.substr(tail.size() - room);
    tail[0] = '.';
  }
  return head + tail;
}

Result<LoadedPolicy> load(const CompiledPolicy& compiled, const PolicyMapFds& fds,
                          const std::string& name_pattern) {
  std::map<MapRef, int> refs;
  for (auto [name, fd] : {std::pair{kMapState, fds.state}, std::pair{kMapIpsets, fds.ipsets},
                          std::pair{kMapIpsetExact, fds.ipset_exact},
                          std::pair{kMapRuleCnt, fds.rule_cnt}, std::pair{kMapJump, fds.jump},
                          std::pair{kMapCounters, fds.counters}, std::pair{kMapTraceJump, fds.trace_jump}})
    if (fd >= 0) refs[MapRef{name}] = fd;
  const std::string probe = chunk_program_name(name_pattern, 0);
  for (char c : probe)
    if (!valid_name_char(c))
      return make_error("program name '{}' (from '{}'): only [A-Za-z0-9_.] allowed", probe,
                        name_pattern);
  LoadedPolicy out;
  out.chunk_slots = compiled.chunk_slots;
  for (size_t i = 0; i < compiled.chunks.size(); i++) {
    Program p = compiled.chunks[i];
    const std::string name = chunk_program_name(name_pattern, i);
    if (auto st = relocate(p, refs); !st.ok()) return st.error().wrap("relocating " + name);
    auto fd = load_sched_cls(p, name, "policy program");
    if (!fd.ok()) return fd.error();
    out.chunks.push_back(std::move(*fd));
  }
  return out;
}

Status install_chunks(const LoadedPolicy& loaded, int jump_fd) {
  for (size_t i = loaded.chunks.size(); i-- > 1;) {
    uint32_t slot = loaded.chunk_slots.at(i);
    int fd = loaded.chunks[i].get();
    if (bpf_map_update_elem(jump_fd, &slot, &fd, BPF_ANY) != 0)
      return errno_error(fmt::format("writing policy chunk {} into jump slot {}", i, slot));
  }
  return {};
}

std::string disassemble(const CompiledPolicy& compiled) {
  std::string out;
  for (size_t i = 0; i < compiled.chunks.size(); i++) {
    if (compiled.chunks.size() > 1)
      out += i == 0 ? fmt::format("// ---- chunk 0 of {} (entry)\n", compiled.chunks.size())
                    : fmt::format("// ---- chunk {} of {} (jump slot {})\n", i, compiled.chunks.size(),
                                  compiled.chunk_slots.at(i));
    out += disassemble(compiled.chunks[i]);
  }
  return out;
}

std::string describe(const CompiledPolicy& compiled) {
  std::string out;
  for (const Program& p : compiled.chunks)
    for (const auto& [idx, lines] : p.comments)
      for (const std::string& l : lines)
        if (l.rfind("Chunk ", 0) != 0 && l.rfind("Continue in chunk", 0) != 0) out += "// " + l + "\n";
  return out;
}

}  // namespace weir::polprog
