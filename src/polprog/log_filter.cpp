// The log filter program (log_filter.h). Registers: r6 the __sk_buff, r7 this CPU's
// weir_log_state; emit_cbpf owns r0-r5 and M[] at fp-64..fp-1.
#include "polprog/log_filter.h"

#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <cstddef>

#include "polprog/count_emit.h"
#include "polprog/pcap_filter.h"
#include "weir/common.h"
#include "weir/counters.h"
#include "weir/log.h"

namespace weir::polprog {
namespace {

constexpr Reg kCtx = R6;
constexpr Reg kState = R7;
// Stack: M[] at [-64, 0) (CbpfRegs::mem_off), the state map's key below it, then the counters'
// key and the zeroes of a first count.
constexpr int kMemOff = -64;
constexpr int kStStateKey = -72;
constexpr int kStCntKey = -80;
constexpr int kStCntVal = kStCntKey - static_cast<int>(sizeof(weir_counters_val));
static_assert(kStCntVal >= -512);
constexpr int kOffFilter = offsetof(weir_log_state, filter);
constexpr int kOffEntry = offsetof(weir_log_state, entry);
constexpr int kOffIfindex = offsetof(weir_log_state, ifindex);

}  // namespace

Result<Program> log_filter_program(const std::vector<CbpfInsn>& cbpf, const std::string& expr) {
  Assembler a("log filter " + pcap_filter_context(expr));
  const Label have_state = a.new_label("have_state"), pull = a.new_label("pull");
  const Label match = a.new_label("match"), no_match = a.new_label("no_match");
  const Label back = a.new_label("back"), hook_set = a.new_label("hook_set");

  a.mov(kCtx, R1);
  a.st(Size::U32, R10, kStStateKey, 0);
  a.mov(R2, R10);
  a.add(R2, kStStateKey);
  a.ld_map_fd(R1, MapRef{kLogFilterMapState});
  a.call(BPF_FUNC_map_lookup_elem);
  a.jne(R0, 0, have_state);
  a.mov(R0, TC_ACT_SHOT);  // unreachable: a one-entry array
  a.exit();
  a.bind(have_state);
  a.mov(kState, R0);

  // Headers split across pages read as past the end in cBPF terms: pull them in first.
  a.ldx(Size::U32, R2, kCtx, offsetof(__sk_buff, len));
  a.jmp(Cond::Le, R2, kLogFilterPull, pull);
  a.mov(R2, kLogFilterPull);
  a.bind(pull);
  a.mov(R1, kCtx);
  a.call(BPF_FUNC_skb_pull_data);

  CbpfRegs regs;
  regs.ctx = kCtx;
  regs.mem_off = kMemOff;
  WEIR_TRY(emit_cbpf(a, cbpf, regs, match, no_match, expr));
  a.bind(match);
  a.st(Size::U8, kState, kOffFilter, WEIR_LOG_F_MATCH);
  a.ja(back);
  a.bind(no_match);
  a.st(Size::U8, kState, kOffFilter, WEIR_LOG_F_NO_MATCH);

  // Back into the main program that called: weir_logjmp1[state.entry].
  a.bind(back);
  a.mov(R1, kCtx);
  a.ld_map_fd(R2, MapRef{kLogFilterMapJump});
  a.ldx(Size::U8, R3, kState, kOffEntry);
  a.call(BPF_FUNC_tail_call);

  // The main program's slot was empty: drop, counted at the packet's interface and hook.
  a.ldx(Size::U32, R1, kState, kOffIfindex);
  a.stx(Size::U32, R10, kStCntKey + static_cast<int>(offsetof(weir_counters_key, ifindex)), R1);
  a.ldx(Size::U8, R1, kState, kOffEntry);
  a.mov32(R2, WEIR_HOOK_INGRESS);
  a.jmp32(Cond::Ne, R1, WEIR_LOGJMP_TO_WL, hook_set);
  a.mov32(R2, WEIR_HOOK_EGRESS);
  a.bind(hook_set);
  a.stx(Size::U32, R10, kStCntKey + static_cast<int>(offsetof(weir_counters_key, hook)), R2);
  emit_count_outcome(a, MapRef{kLogFilterMapCounters}, kStCntKey, kStCntVal, WEIR_CNT_DROP_TAIL_CALL);
  a.mov(R0, TC_ACT_SHOT);
  a.exit();
  return a.assemble();
}

Result<Program> log_filter_program(const std::string& expr) {
  auto cbpf = compile_pcap(expr);
  if (!cbpf) return cbpf.error();
  return log_filter_program(*cbpf, expr);
}

}  // namespace weir::polprog
