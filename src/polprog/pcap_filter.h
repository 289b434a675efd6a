// tcpdump/pcap filter expressions in eBPF: libpcap compiles the expression to classic BPF
// (cbpf.h), and emit_cbpf translates that program, instruction by instruction, into eBPF with
// the runtime assembler, for a TC (SCHED_CLS) program whose packet starts with its Ethernet
// header at skb->data (DataplaneConfig's bpfLogFilters: which packets are logged).
//
//   std::string expr = "host 10.65.0.2 and tcp port 80";
//   auto cbpf = compile_pcap(expr);                                 // Result<vector<CbpfInsn>>
//   Assembler a("log");
//   Label log = a.new_label("log"), skip = a.new_label("skip");
//   WEIR_TRY(emit_cbpf(a, *cbpf, CbpfRegs{}, log, skip, expr));      // r1 = the __sk_buff
//   a.bind(log); ...                                                // r1 still the __sk_buff
//
// Semantics are libpcap's bpf_filter (and the kernel's classic BPF): the program matches when
// it returns non-zero; a load beyond the end of the packet, or a division or modulo by X == 0,
// ends it with no match; A and X start at 0; shifts by X >= 32 give 0. "The packet" is the
// linear part of the skb, [skb->data, skb->data_end): bytes past it read as past the end (as
// past the snapshot length of a capture; a caller that wants them pulls them in first with
// bpf_skb_pull_data). `len` is skb->len. The verifier tracks packet offsets up to 65535: a load
// reaching past that ([k] or [x + k] with k + size > 65535) never matches.
//
// Supported: every instruction libpcap emits for DLT_EN10MB: ld/ldh/ldb [k] and [x + k],
// ld/ldx #k, M[k] and #pktlen, ldxb 4*([k]&0xf), st/stx, the ALU operations (add sub mul div mod
// or and xor lsh rsh with K or X, neg), ja, jeq/jgt/jge/jset with K or X, ret #k / ret a, tax,
// txa. Refused with an Error naming the expression and the instruction: loads at the negative
// offsets of the kernel's extensions (ancillary data at SKF_AD_OFF, which libpcap emits for
// `inbound`, `outbound`, `ifindex N`; SKF_NET_OFF, SKF_LL_OFF), any other opcode, M[k] with
// k >= 16, division by a constant 0, shifts by a constant >= 32, jumps past the end, a program
// not ending with ret. `vlan` translates: compile_pcap's handle is not a live Linux capture, so
// libpcap looks for the tag in the packet bytes, not in the vlan_tci ancillary data (at TC the
// kernel has often moved the tag out of the frame into skb->vlan_tci: such packets show none).
//
// Register and stack convention (CbpfRegs, defaults in brackets): on entry `ctx` [r1] holds the
// __sk_buff; it is read (data, data_end, len) and preserved. The emitted code owns and clobbers
// `data` [r2], `data_end` [r3], `a` [r4] (cBPF's accumulator), `x` [r5] (cBPF's index register)
// and `tmp` [r0]; every other register (r6-r9 by default) is left alone. cBPF's scratch memory
// M[0..15] lives on the stack at r10 + mem_off + 4 * i [fp-64 .. fp-1]; the slots the program may
// read before writing them are zeroed first (the verifier rejects reads of uninitialised stack).
// The code never falls through: it always ends in a jump to `match` or `no_match`, and jumps to
// each at least once in the control-flow graph (a filter with a constant outcome gets a jump the
// verifier can prove is never taken), so code bound at either label is never unreachable.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "polprog/asm.h"
#include "polprog/cbpf.h"
#include "polprog/insn.h"
#include "util/result.h"

namespace weir::polprog {

struct CbpfRegs {
  Reg ctx = R1;       // in: the __sk_buff, preserved
  Reg data = R2;      // skb->data
  Reg data_end = R3;  // skb->data_end
  Reg a = R4;         // A (zero-extended 32 bits)
  Reg x = R5;         // X (zero-extended 32 bits)
  Reg tmp = R0;       // scratch
  // Offset from r10 of M[0]: a multiple of 4 in [-512, -64] (M takes 64 bytes).
  int mem_off = -64;
};

// Emits eBPF that evaluates `prog` on the packet of the __sk_buff in regs.ctx and jumps to
// `match` (the program returned non-zero) or `no_match` (it returned 0 or failed). `expr` names
// the filter in errors, e.g. `pcap filter "inbound": instruction 0 (ldh [type] / code 0x28 k
// 0xfffff004) is not supported: ancillary data`. On error nothing is emitted.
Status emit_cbpf(Assembler& a, const std::vector<CbpfInsn>& prog, const CbpfRegs& regs,
                 Label match, Label no_match, const std::string& expr);

// A standalone SCHED_CLS program (r1 = the __sk_buff) returning 1 when the packet matches
// `expr` and 0 otherwise: the tests run it, and weir checks that a filter loads with it.
Result<Program> pcap_filter_program(const std::string& expr);
// The same for an already compiled program.
Result<Program> cbpf_filter_program(const std::vector<CbpfInsn>& prog, const std::string& expr);

// One cBPF instruction in tcpdump -d's syntax: "ldh [12]", "ldb [x + 26]", "ld [vlan_tci]",
// "ldxb 4*([14]&0xf)", "jeq #0x800 jt 2 jf 11" (absolute targets, given its index `pc`).
std::string describe(const CbpfInsn& insn, size_t pc);
// The whole program, one "(003) jeq #0x800 jt 4 jf 9" line per instruction.
std::string cbpf_listing(const std::vector<CbpfInsn>& prog);

}  // namespace weir::polprog
