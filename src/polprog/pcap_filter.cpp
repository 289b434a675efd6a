// Classic BPF -> eBPF (pcap_filter.h). cBPF's opcodes and the kernel's extension offsets come
// from <linux/filter.h> (the same values as libpcap's <pcap/bpf.h>, which cannot be included
// next to <linux/bpf.h>: see cbpf.h).
#include "polprog/pcap_filter.h"

#include <linux/bpf.h>
#include <linux/filter.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "polprog/asm.h"
#include "polprog/cbpf.h"
#include "polprog/insn.h"
#include "util/result.h"

namespace weir::polprog {
namespace {

// The verifier follows a packet pointer only up to MAX_PACKET_OFF bytes past skb->data: a
// bounds check further out proves nothing to it.
constexpr uint32_t kMaxPacketOff = 0xffff;
constexpr uint32_t kMemWords = BPF_MEMWORDS;
constexpr const char* kUnknownOpcode = "unknown opcode";

// ---------------------------------------------------------------- opcodes

// The opcodes this translation knows: every classic BPF instruction except the kernel's
// extensions, which are loads at special offsets of opcodes listed here.
bool known(uint16_t code) {
  switch (code) {
    case BPF_LD | BPF_W | BPF_ABS: case BPF_LD | BPF_H | BPF_ABS: case BPF_LD | BPF_B | BPF_ABS:
    case BPF_LD | BPF_W | BPF_IND: case BPF_LD | BPF_H | BPF_IND: case BPF_LD | BPF_B | BPF_IND:
    case BPF_LD | BPF_W | BPF_IMM: case BPF_LD | BPF_W | BPF_MEM: case BPF_LD | BPF_W | BPF_LEN:
    case BPF_LDX | BPF_W | BPF_IMM: case BPF_LDX | BPF_W | BPF_MEM: case BPF_LDX | BPF_W | BPF_LEN:
    case BPF_LDX | BPF_B | BPF_MSH:
    case BPF_ST: case BPF_STX:
    case BPF_ALU | BPF_ADD | BPF_K: case BPF_ALU | BPF_SUB | BPF_K: case BPF_ALU | BPF_MUL | BPF_K:
    case BPF_ALU | BPF_DIV | BPF_K: case BPF_ALU | BPF_MOD | BPF_K: case BPF_ALU | BPF_OR | BPF_K:
    case BPF_ALU | BPF_AND | BPF_K: case BPF_ALU | BPF_XOR | BPF_K: case BPF_ALU | BPF_LSH | BPF_K:
    case BPF_ALU | BPF_RSH | BPF_K:
    case BPF_ALU | BPF_ADD | BPF_X: case BPF_ALU | BPF_SUB | BPF_X: case BPF_ALU | BPF_MUL | BPF_X:
    case BPF_ALU | BPF_DIV | BPF_X: case BPF_ALU | BPF_MOD | BPF_X: case BPF_ALU | BPF_OR | BPF_X:
    case BPF_ALU | BPF_AND | BPF_X: case BPF_ALU | BPF_XOR | BPF_X: case BPF_ALU | BPF_LSH | BPF_X:
    case BPF_ALU | BPF_RSH | BPF_X:
    case BPF_ALU | BPF_NEG:
    case BPF_JMP | BPF_JA:
    case BPF_JMP | BPF_JEQ | BPF_K: case BPF_JMP | BPF_JGT | BPF_K: case BPF_JMP | BPF_JGE | BPF_K:
    case BPF_JMP | BPF_JSET | BPF_K:
    case BPF_JMP | BPF_JEQ | BPF_X: case BPF_JMP | BPF_JGT | BPF_X: case BPF_JMP | BPF_JGE | BPF_X:
    case BPF_JMP | BPF_JSET | BPF_X:
    case BPF_RET | BPF_K: case BPF_RET | BPF_A:
    case BPF_MISC | BPF_TAX: case BPF_MISC | BPF_TXA:
      return true;
    default:
      return false;
  }
}

// Bytes a packet load reads (ld/ldh/ldb [k] and [x + k], ldxb 4*([k]&0xf)); 0 for any other
// instruction.
uint32_t packet_bytes(uint16_t code) {
  if (code == (BPF_LDX | BPF_B | BPF_MSH)) return 1;
  if (BPF_CLASS(code) != BPF_LD || (BPF_MODE(code) != BPF_ABS && BPF_MODE(code) != BPF_IND))
    return 0;
  switch (BPF_SIZE(code)) {
    case BPF_W: return 4;
    case BPF_H: return 2;
    case BPF_B: return 1;
    default: return 0;
  }
}

// A packet load whose offset is past what the verifier tracks: it can never be proven in
// bounds, and no linear skb is that long, so it always fails (no match).
bool beyond_tracked_range(const CbpfInsn& i) {
  uint32_t n = packet_bytes(i.code);
  return n != 0 && i.k > kMaxPacketOff - n;
}

bool reads_mem(uint16_t code) {
  return code == (BPF_LD | BPF_W | BPF_MEM) || code == (BPF_LDX | BPF_W | BPF_MEM);
}
bool writes_mem(uint16_t code) { return code == BPF_ST || code == BPF_STX; }

// The eBPF operation of a (known) binary cBPF ALU opcode.
AluOp alu_op(uint16_t code) {
  switch (BPF_OP(code)) {
    case BPF_ADD: return AluOp::Add;
    case BPF_SUB: return AluOp::Sub;
    case BPF_MUL: return AluOp::Mul;
    case BPF_DIV: return AluOp::Div;
    case BPF_MOD: return AluOp::Mod;
    case BPF_OR: return AluOp::Or;
    case BPF_AND: return AluOp::And;
    case BPF_XOR: return AluOp::Xor;
    case BPF_LSH: return AluOp::Lsh;
    default: return AluOp::Rsh;
  }
}

// The condition of a (known) conditional cBPF jump.
Cond jump_cond(uint16_t code) {
  switch (BPF_OP(code)) {
    case BPF_JEQ: return Cond::Eq;
    case BPF_JGT: return Cond::Gt;
    case BPF_JGE: return Cond::Ge;
    default: return Cond::Set;
  }
}

// ---------------------------------------------------------------- describing instructions

// Names of the kernel's ancillary data (SKF_AD_OFF + SKF_AD_*), as tcpdump -d and bpf_dbg print
// them; nullptr for an offset the kernel does not define.
const char* ancillary_name(uint32_t off) {
  switch (off) {
    case SKF_AD_PROTOCOL: return "proto";
    case SKF_AD_PKTTYPE: return "type";
    case SKF_AD_IFINDEX: return "ifidx";
    case SKF_AD_NLATTR: return "nla";
    case SKF_AD_NLATTR_NEST: return "nlan";
    case SKF_AD_MARK: return "mark";
    case SKF_AD_QUEUE: return "queue";
    case SKF_AD_HATYPE: return "hatype";
    case SKF_AD_RXHASH: return "rxhash";
    case SKF_AD_CPU: return "cpu";
    case SKF_AD_ALU_XOR_X: return "xor_x";
    case SKF_AD_VLAN_TAG: return "vlan_tci";
    case SKF_AD_VLAN_TAG_PRESENT: return "vlanp";
    case SKF_AD_PAY_OFFSET: return "poff";
    case SKF_AD_RANDOM: return "rand";
    case SKF_AD_VLAN_TPID: return "vlan_tpid";
    default: return nullptr;
  }
}

constexpr auto kAdOff = static_cast<uint32_t>(SKF_AD_OFF);
constexpr auto kNetOff = static_cast<uint32_t>(SKF_NET_OFF);
constexpr auto kLlOff = static_cast<uint32_t>(SKF_LL_OFF);

// The operand of a load at constant offset k: "[12]", "[vlan_tci]", "[net + 12]".
std::string abs_operand(uint32_t k) {
  if (k >= kAdOff) {
    const char* name = ancillary_name(k - kAdOff);
    return name ? fmt::format("[{}]", name) : fmt::format("[ancillary + {}]", k - kAdOff);
  }
  if (k >= kNetOff) return fmt::format("[net + {}]", k - kNetOff);
  if (k >= kLlOff) return fmt::format("[ll + {}]", k - kLlOff);
  return fmt::format("[{}]", static_cast<int32_t>(k));
}

const char* size_suffix(uint16_t code) {
  switch (BPF_SIZE(code)) {
    case BPF_H: return "h";
    case BPF_B: return "b";
    default: return "";
  }
}

std::string describe_ld(const CbpfInsn& i) {
  switch (BPF_MODE(i.code)) {
    case BPF_ABS: return fmt::format("ld{} {}", size_suffix(i.code), abs_operand(i.k));
    case BPF_IND: return fmt::format("ld{} [x + {}]", size_suffix(i.code), i.k);
    case BPF_IMM: return fmt::format("ld #{:#x}", i.k);
    case BPF_MEM: return fmt::format("ld M[{}]", i.k);
    default: return "ld #pktlen";
  }
}

std::string describe_ldx(const CbpfInsn& i) {
  switch (BPF_MODE(i.code)) {
    case BPF_MSH: return fmt::format("ldxb 4*({}&0xf)", abs_operand(i.k));
    case BPF_IMM: return fmt::format("ldx #{:#x}", i.k);
    case BPF_MEM: return fmt::format("ldx M[{}]", i.k);
    default: return "ldx #pktlen";
  }
}

std::string describe_alu(const CbpfInsn& i) {
  static constexpr std::array<const char*, 11> kNames = {
      "add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "neg", "mod", "xor"};
  const char* name = kNames.at(BPF_OP(i.code) >> 4);
  uint16_t op = BPF_OP(i.code);
  if (op == BPF_NEG) return name;
  if (BPF_SRC(i.code) == BPF_X) return fmt::format("{} x", name);
  if (op == BPF_AND || op == BPF_OR || op == BPF_XOR) return fmt::format("{} #{:#x}", name, i.k);
  return fmt::format("{} #{}", name, i.k);
}

std::string describe_jmp(const CbpfInsn& i, size_t pc) {
  if (BPF_OP(i.code) == BPF_JA) return fmt::format("ja {}", pc + 1 + i.k);
  static constexpr std::array<const char*, 5> kNames = {"", "jeq", "jgt", "jge", "jset"};
  std::string operand = BPF_SRC(i.code) == BPF_X ? "x" : fmt::format("#{:#x}", i.k);
  return fmt::format("{} {} jt {} jf {}", kNames.at(BPF_OP(i.code) >> 4), operand,
                     pc + 1 + i.jt, pc + 1 + i.jf);
}

// ---------------------------------------------------------------- checking programs

// Why a load at constant offset k cannot be translated, or nullptr.
const char* abs_offset_problem(uint32_t k) {
  if (k >= kAdOff) return "ancillary data";
  if (k >= kNetOff) return "offset relative to the network header (SKF_NET_OFF)";
  if (k >= kLlOff) return "offset relative to the link-layer header (SKF_LL_OFF)";
  if (k > INT32_MAX) return "negative offset";
  return nullptr;
}

bool jump_in_range(size_t pc, uint32_t off, size_t n) { return pc + 1 + uint64_t{off} < n; }

// Why instruction pc of an n-instruction program cannot be translated, or nullptr.
const char* unsupported(const CbpfInsn& i, size_t pc, size_t n) {
  if (!known(i.code)) return kUnknownOpcode;
  if (packet_bytes(i.code) != 0 && BPF_MODE(i.code) != BPF_IND) return abs_offset_problem(i.k);
  if (packet_bytes(i.code) != 0 && i.k > INT32_MAX) return "negative offset";
  if ((reads_mem(i.code) || writes_mem(i.code)) && i.k >= kMemWords)
    return "scratch memory index beyond M[15]";
  if (i.code == (BPF_ALU | BPF_DIV | BPF_K) || i.code == (BPF_ALU | BPF_MOD | BPF_K))
    if (i.k == 0) return "division by zero";
  if (i.code == (BPF_ALU | BPF_LSH | BPF_K) || i.code == (BPF_ALU | BPF_RSH | BPF_K))
    if (i.k >= 32) return "shift by 32 bits or more";
  if (i.code == (BPF_JMP | BPF_JA) && !jump_in_range(pc, i.k, n)) return "jump past the end";
  if (BPF_CLASS(i.code) == BPF_JMP && BPF_OP(i.code) != BPF_JA &&
      (!jump_in_range(pc, i.jt, n) || !jump_in_range(pc, i.jf, n)))
    return "jump past the end";
  if (pc + 1 == n && BPF_CLASS(i.code) != BPF_RET) return "the program does not end with ret";
  return nullptr;
}

Status check_program(const std::vector<CbpfInsn>& prog, const std::string& ctx) {
  if (prog.empty()) return make_error("{}: empty program", ctx);
  for (size_t pc = 0; pc < prog.size(); pc++) {
    const CbpfInsn& i = prog[pc];
    if (const char* why = unsupported(i, pc, prog.size()))
      return make_error("{}: instruction {} ({} / code {:#x} k {:#x}) is not supported: {}", ctx,
                        pc, describe(i, pc), i.code, i.k, why);
  }
  return {};
}

Status check_regs(const CbpfRegs& r, const std::string& ctx) {
  const std::array regs{r.ctx, r.data, r.data_end, r.a, r.x, r.tmp};
  for (size_t i = 0; i < regs.size(); i++) {
    if (regs[i] >= R10) return make_error("{}: CbpfRegs: r{} is not writable", ctx, int(regs[i]));
    for (size_t j = i + 1; j < regs.size(); j++)
      if (regs[i] == regs[j]) return make_error("{}: CbpfRegs: r{} used twice", ctx, int(regs[i]));
  }
  if (r.mem_off % 4 != 0 || r.mem_off < -512 || r.mem_off > -int(4 * kMemWords))
    return make_error("{}: CbpfRegs: mem_off {} is not a multiple of 4 in [-512, -64]", ctx,
                      r.mem_off);
  return {};
}

// ---------------------------------------------------------------- control flow

// Where control goes after instruction pc: nowhere after a ret or a load that always fails.
std::vector<size_t> successors(const CbpfInsn& i, size_t pc) {
  if (BPF_CLASS(i.code) == BPF_RET || beyond_tracked_range(i)) return {};
  if (BPF_CLASS(i.code) != BPF_JMP) return {pc + 1};
  if (BPF_OP(i.code) == BPF_JA) return {pc + 1 + i.k};
  return {pc + 1 + i.jt, pc + 1 + i.jf};
}

struct Flow {
  std::vector<bool> reachable;  // by instruction; the verifier refuses unreachable code
  uint16_t zeroed = 0;          // bit i: some path may read M[i] before writing it
};

// One pass in program order sees every path into an instruction before the instruction itself,
// since cBPF jumps only forward.
Flow analyse(const std::vector<CbpfInsn>& prog) {
  // written[pc]: the M[] slots written on every path to pc; nullopt while no path reaches pc.
  std::vector<std::optional<uint16_t>> written(prog.size());
  written[0] = 0;
  Flow flow;
  flow.reachable.assign(prog.size(), false);
  for (size_t pc = 0; pc < prog.size(); pc++) {
    if (!written[pc]) continue;
    flow.reachable[pc] = true;
    const CbpfInsn& i = prog[pc];
    uint16_t w = *written[pc];
    auto bit = static_cast<uint16_t>(1u << (i.k % kMemWords));
    if (reads_mem(i.code) && !(w & bit)) flow.zeroed |= bit;
    if (writes_mem(i.code)) w |= bit;
    for (size_t s : successors(i, pc)) written[s] = written[s] ? (*written[s] & w) : w;
  }
  return flow;
}

// ---------------------------------------------------------------- emitting

class Emitter {
 public:
  Emitter(Assembler& a, const std::vector<CbpfInsn>& prog, const CbpfRegs& regs, Label match,
          Label no_match)
      : a_(a), prog_(prog), r_(regs), match_(match), no_match_(no_match), labels_(prog.size()) {}

  // `guard_*`: the exit is never jumped to otherwise (see prologue()).
  void run(const Flow& flow, bool guard_match, bool guard_no_match) {
    prologue(flow.zeroed, guard_match, guard_no_match);
    for (size_t pc = 0; pc < prog_.size(); pc++) {
      // Jumps to a `ret #k` go straight to its exit (at()): it needs code only when the
      // instruction before it falls through.
      bool ret_k = prog_[pc].code == (BPF_RET | BPF_K);
      if (flow.reachable[pc] && (!ret_k || falls_through_))
        insn(pc);
      else
        falls_through_ = false;
    }
  }
  bool used_match() const { return used_match_; }
  bool used_no_match() const { return used_no_match_; }

 private:
  Label to_match() {
    used_match_ = true;
    return match_;
  }
  Label to_no_match() {
    used_no_match_ = true;
    return no_match_;
  }
  // Where a jump to instruction pc goes: the exit of a `ret #k`, else the label of pc, created
  // by the first jump to it.
  Label at(size_t pc) {
    const CbpfInsn& i = prog_[pc];
    if (i.code == (BPF_RET | BPF_K)) return i.k != 0 ? to_match() : to_no_match();
    if (!labels_[pc]) labels_[pc] = a_.new_label(fmt::format("cbpf_{}", pc));
    return *labels_[pc];
  }
  int mem(uint32_t k) const { return r_.mem_off + static_cast<int>(4 * k); }

  void prologue(uint16_t zeroed, bool guard_match, bool guard_no_match) {
    a_.ldx(Size::U32, r_.data, r_.ctx, static_cast<int>(offsetof(__sk_buff, data)));
    a_.ldx(Size::U32, r_.data_end, r_.ctx, static_cast<int>(offsetof(__sk_buff, data_end)));
    a_.mov32(r_.a, 0);
    a_.mov32(r_.x, 0);
    for (uint32_t k = 0; k < kMemWords; k++)
      if (zeroed & (1u << k)) a_.st(Size::U32, R10, mem(k), 0);
    // A filter with a constant outcome (e.g. the empty expression) never jumps to one of its
    // exits, and the verifier refuses code that no jump reaches: a jump it proves never taken
    // (A is 0 here) keeps that exit in the control-flow graph.
    if (guard_match) a_.jne32(r_.a, 0, to_match());
    if (guard_no_match) a_.jne32(r_.a, 0, to_no_match());
  }

  void insn(size_t pc) {
    const CbpfInsn& i = prog_[pc];
    if (labels_[pc]) a_.bind(*labels_[pc]);
    a_.comment(fmt::format("cbpf {}: {}", pc, describe(i, pc)));
    falls_through_ = true;  // unless a jump or a ret says otherwise
    if (beyond_tracked_range(i)) {
      a_.ja(to_no_match());
      falls_through_ = false;
      return;
    }
    switch (BPF_CLASS(i.code)) {
      case BPF_LD: load(i); break;
      case BPF_LDX: load_x(i); break;
      case BPF_ST: a_.stx(Size::U32, R10, mem(i.k), r_.a); break;
      case BPF_STX: a_.stx(Size::U32, R10, mem(i.k), r_.x); break;
      case BPF_ALU: alu(i); break;
      case BPF_JMP: jump(i, pc); break;
      case BPF_RET: ret(i); break;
      default: misc(i); break;
    }
  }

  void load(const CbpfInsn& i) {
    switch (BPF_MODE(i.code)) {
      case BPF_ABS: packet_abs(r_.a, i.k, packet_bytes(i.code)); break;
      case BPF_IND: packet_ind(i.k, packet_bytes(i.code)); break;
      case BPF_IMM: a_.mov32(r_.a, i.k); break;
      case BPF_MEM: a_.ldx(Size::U32, r_.a, R10, mem(i.k)); break;
      default: a_.ldx(Size::U32, r_.a, r_.ctx, static_cast<int>(offsetof(__sk_buff, len))); break;
    }
  }

  void load_x(const CbpfInsn& i) {
    switch (BPF_MODE(i.code)) {
      case BPF_MSH:  // X = 4 * (P[k] & 0xf): the IPv4 header length
        packet_abs(r_.x, i.k, 1);
        a_.and32(r_.x, 0xf);
        a_.lsh32(r_.x, 2);
        break;
      case BPF_IMM: a_.mov32(r_.x, i.k); break;
      case BPF_MEM: a_.ldx(Size::U32, r_.x, R10, mem(i.k)); break;
      default: a_.ldx(Size::U32, r_.x, r_.ctx, static_cast<int>(offsetof(__sk_buff, len))); break;
    }
  }

  // dst = the `bytes` bytes at packet offset k (network order), or no match when the packet
  // is shorter. dst itself serves as the end pointer of the bounds check.
  void packet_abs(Reg dst, uint32_t k, uint32_t bytes) {
    a_.mov(dst, r_.data);
    a_.add(dst, static_cast<int32_t>(k + bytes));
    a_.jgt(dst, r_.data_end, to_no_match());
    read_back(dst, bytes);
  }

  // A = the `bytes` bytes at packet offset X + k (network order), or no match.
  void packet_ind(uint32_t k, uint32_t bytes) {
    a_.mov(r_.tmp, r_.x);
    if (k != 0) a_.add(r_.tmp, static_cast<int32_t>(k));
    // The verifier follows a variable offset into the packet only once it is bounded.
    a_.jgt(r_.tmp, static_cast<int32_t>(kMaxPacketOff - bytes), to_no_match());
    a_.mov(r_.a, r_.data);
    a_.add(r_.a, r_.tmp);
    a_.add(r_.a, static_cast<int32_t>(bytes));
    a_.jgt(r_.a, r_.data_end, to_no_match());
    read_back(r_.a, bytes);
  }

  // reg = the `bytes` bytes ending at the packet pointer in reg, converted to host order.
  void read_back(Reg reg, uint32_t bytes) {
    Size size = bytes == 4 ? Size::U32 : bytes == 2 ? Size::U16 : Size::U8;
    a_.ldx(size, reg, reg, -static_cast<int>(bytes));
    if (bytes == 4) a_.be32(reg);
    if (bytes == 2) a_.be16(reg);
  }

  void alu(const CbpfInsn& i) {
    if (BPF_OP(i.code) == BPF_NEG) {
      a_.neg32(r_.a);
      return;
    }
    AluOp op = alu_op(i.code);
    if (BPF_SRC(i.code) == BPF_K) {
      a_.alu32(op, r_.a, i.k);
      return;
    }
    // cBPF ends the program (returns 0) on a division by zero; eBPF would carry on with 0.
    if (op == AluOp::Div || op == AluOp::Mod) a_.jeq32(r_.x, 0, to_no_match());
    if (op == AluOp::Lsh || op == AluOp::Rsh) {
      shift_x(op);
      return;
    }
    a_.alu32(op, r_.a, r_.x);
  }

  // libpcap shifts by X >= 32 to 0; eBPF leaves that undefined (CPUs mask the count).
  void shift_x(AluOp op) {
    Label in_range = a_.new_label(), done = a_.new_label();
    a_.jlt32(r_.x, 32, in_range);
    a_.mov32(r_.a, 0);
    a_.ja(done);
    a_.bind(in_range);
    a_.alu32(op, r_.a, r_.x);
    a_.bind(done);
  }

  void jump(const CbpfInsn& i, size_t pc) {
    if (BPF_OP(i.code) == BPF_JA) {
      go(pc, pc + 1 + i.k);
      return;
    }
    size_t t = pc + 1 + i.jt, f = pc + 1 + i.jf;
    if (t == f) {
      go(pc, t);
      return;
    }
    Cond c = jump_cond(i.code);
    std::optional<Cond> inverse = invert(c);
    if (t == pc + 1 && inverse) {  // one jump: to the false branch, falling through to the true
      cond(*inverse, i, at(f));
      return;
    }
    cond(c, i, at(t));
    go(pc, f);
  }

  // if (A <c> K/X) goto target, unsigned 32-bit as in cBPF.
  void cond(Cond c, const CbpfInsn& i, Label target) {
    if (BPF_SRC(i.code) == BPF_X)
      a_.jmp32(c, r_.a, r_.x, target);
    else
      a_.jmp32(c, r_.a, i.k, target);
  }

  // Control goes from pc to target: a jump unless target is the next instruction.
  void go(size_t pc, size_t target) {
    falls_through_ = target == pc + 1;
    if (!falls_through_) a_.ja(at(target));
  }

  void ret(const CbpfInsn& i) {
    falls_through_ = false;
    if (i.code == (BPF_RET | BPF_K)) {
      a_.ja(i.k != 0 ? to_match() : to_no_match());
      return;
    }
    a_.jne32(r_.a, 0, to_match());
    a_.ja(to_no_match());
  }

  void misc(const CbpfInsn& i) {
    if (BPF_MISCOP(i.code) == BPF_TAX)
      a_.mov32(r_.x, r_.a);
    else
      a_.mov32(r_.a, r_.x);
  }

  Assembler& a_;
  const std::vector<CbpfInsn>& prog_;
  const CbpfRegs& r_;
  Label match_, no_match_;
  std::vector<std::optional<Label>> labels_;
  bool used_match_ = false, used_no_match_ = false;
  bool falls_through_ = true;  // control may go from the code emitted last to what comes next
};

}  // namespace

std::string describe(const CbpfInsn& i, size_t pc) {
  if (!known(i.code)) return "unknown";
  switch (BPF_CLASS(i.code)) {
    case BPF_LD: return describe_ld(i);
    case BPF_LDX: return describe_ldx(i);
    case BPF_ST: return fmt::format("st M[{}]", i.k);
    case BPF_STX: return fmt::format("stx M[{}]", i.k);
    case BPF_ALU: return describe_alu(i);
    case BPF_JMP: return describe_jmp(i, pc);
    case BPF_RET: return BPF_RVAL(i.code) == BPF_A ? "ret a" : fmt::format("ret #{}", i.k);
    default: return BPF_MISCOP(i.code) == BPF_TAX ? "tax" : "txa";
  }
}

std::string cbpf_listing(const std::vector<CbpfInsn>& prog) {
  std::string out;
  for (size_t pc = 0; pc < prog.size(); pc++)
    out += fmt::format("({:03}) {}\n", pc, describe(prog[pc], pc));
  return out;
}

Status emit_cbpf(Assembler& a, const std::vector<CbpfInsn>& prog, const CbpfRegs& regs,
                 Label match, Label no_match, const std::string& expr) {
  std::string ctx = pcap_filter_context(expr);
  WEIR_TRY(check_regs(regs, ctx));
  WEIR_TRY(check_program(prog, ctx));
  Flow flow = analyse(prog);
  // A dry run learns which exits the translation jumps to: a filter with a constant outcome
  // needs a guard for the other one (Emitter::prologue).
  Assembler scratch;
  Emitter dry(scratch, prog, regs, scratch.new_label(), scratch.new_label());
  dry.run(flow, false, false);
  a.comment(ctx);
  Emitter(a, prog, regs, match, no_match).run(flow, !dry.used_match(), !dry.used_no_match());
  return {};
}

Result<Program> cbpf_filter_program(const std::vector<CbpfInsn>& prog, const std::string& expr) {
  Assembler a(pcap_filter_context(expr));
  Label match = a.new_label("match"), no_match = a.new_label("no_match");
  WEIR_TRY(emit_cbpf(a, prog, CbpfRegs{}, match, no_match, expr));
  a.bind(match);
  a.mov(R0, 1);
  a.exit();
  a.bind(no_match);
  a.mov(R0, 0);
  a.exit();
  return a.assemble();
}

Result<Program> pcap_filter_program(const std::string& expr) {
  auto prog = compile_pcap(expr);
  if (!prog.ok()) return prog.error();
  return cbpf_filter_program(*prog, expr);
}

}  // namespace weir::polprog
