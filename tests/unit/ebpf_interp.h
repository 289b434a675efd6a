// A small eBPF interpreter for the unit tests of generated TC programs (first user: the pcap
// filter translation, tests/unit/pcap_filter_test.cpp): it runs a program on a fake __sk_buff
// whose data, data_end and len it models, and checks at run time what the verifier would
// check statically, so that a test fails loudly instead of computing something plausible:
//
//   - every register holds a scalar or a pointer (the context, into the packet, the packet's
//     end, the stack); reading a register or stack byte never written is an error;
//   - a packet read outside [data, data_end), a context read other than data/data_end/len as
//     u32, a stack access outside [r10 - 512, r10), a store anywhere but the stack;
//   - pointer arithmetic other than pointer +/- scalar (64-bit), comparing pointers of
//     different kinds, 32-bit operations on pointers, returning a pointer;
//   - any opcode it does not know (calls, atomics, ld_imm64, ...), a jump out of the program,
//     falling off its end, more than max_steps instructions;
//   - and, stricter than eBPF (which defines or leaves them to the CPU), a shift by the
//     operand's width or more and a division or modulo by a zero register: a translation of
//     cBPF must have ruled both out before.
#pragma once

#include <linux/bpf.h>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "polprog/disasm.h"
#include "polprog/insn.h"
#include "util/result.h"

namespace weir::ebpf_interp {

static_assert(std::endian::native == std::endian::little, "the interpreter loads little endian");

struct SkbInput {
  std::span<const uint8_t> packet;  // [skb->data, skb->data_end)
  uint32_t len = 0;                 // skb->len (>= packet.size() for a non-linear skb)
};

class Machine {
 public:
  Machine(std::span<const polprog::Insn> insns, const SkbInput& in) : insns_(insns), in_(in) {
    regs_[1] = {Kind::Ctx, 0};
    regs_[10] = {Kind::Stack, 0};
  }

  // r0 at exit.
  Result<uint64_t> run(size_t max_steps = 100000) {
    for (size_t step = 0; step < max_steps; step++) {
      if (pc_ >= insns_.size()) return fail("fell off the end of the program");
      bool done = false;
      if (auto s = exec(insns_[pc_], done); !s.ok()) return s.error();
      if (done) return regs_[0].v;
    }
    return fail(fmt::format("still running after {} instructions", max_steps));
  }

 private:
  enum class Kind : uint8_t { Unset, Scalar, Ctx, Packet, PacketEnd, Stack };
  // Pointers hold their offset from their base (data, data_end, r10; two's complement).
  struct Value {
    Kind kind = Kind::Unset;
    uint64_t v = 0;
  };
  static constexpr int kStack = 512;

  static bool is_pointer(const Value& v) { return v.kind != Kind::Scalar; }
  static Value scalar(uint64_t v) { return {Kind::Scalar, v}; }

  Error fail(const std::string& why) const {
    return make_error("eBPF insn {} ({}): {}", pc_, polprog::disassemble_at(insns_, pc_), why);
  }

  Result<Value> reg(uint8_t r) const {
    if (r > 10) return fail(fmt::format("no register r{}", r));
    if (regs_[r].kind == Kind::Unset) return fail(fmt::format("r{} read before it was set", r));
    return regs_[r];
  }
  Status set(uint8_t r, Value v) {
    if (r >= 10) return fail(fmt::format("write to r{}", r));
    regs_[r] = v;
    return {};
  }

  Status exec(const polprog::Insn& i, bool& done) {
    namespace op = polprog::op;
    switch (op::cls(i.code)) {
      case op::kClassAlu:
      case op::kClassAlu64: return next(alu(i));
      case op::kClassJmp:
      case op::kClassJmp32: return jump(i, done);
      case op::kClassLdx: return next(load(i));
      case op::kClassSt:
      case op::kClassStx: return next(store(i));
      default: return fail("unknown instruction class");
    }
  }
  Status next(Status s) {
    if (s.ok()) pc_++;
    return s;
  }

  // ---------------------------------------------------------------- ALU
  Status alu(const polprog::Insn& i) {
    namespace op = polprog::op;
    bool is64 = op::cls(i.code) == op::kClassAlu64;
    uint8_t operation = op::operation(i.code);
    if (operation == op::kAluEnd) return endian(i, is64);
    Value src = scalar(is64 ? uint64_t(int64_t{i.imm}) : uint32_t(i.imm));
    if (op::src(i.code) == op::kSrcX) {
      auto r = reg(i.src_reg);
      if (!r.ok()) return r.error();
      src = *r;
    }
    if (operation == uint8_t(polprog::AluOp::Mov)) {
      if (!is64 && is_pointer(src)) return fail("32-bit move of a pointer");
      return set(i.dst_reg, is64 ? src : scalar(uint32_t(src.v)));
    }
    auto dst = reg(i.dst_reg);
    if (!dst.ok()) return dst.error();
    if (is_pointer(*dst) || is_pointer(src)) return pointer_arith(i, operation, is64, *dst, src);
    auto v = arith(operation, dst->v, src.v, is64);
    if (!v.ok()) return v.error();
    return set(i.dst_reg, scalar(*v));
  }

  Result<uint64_t> arith(uint8_t operation, uint64_t a, uint64_t b, bool is64) const {
    using polprog::AluOp;
    uint64_t mask = is64 ? ~uint64_t{0} : 0xffffffffu;
    a &= mask;
    b &= mask;
    unsigned bits = is64 ? 64 : 32;
    auto op = static_cast<AluOp>(operation);
    if ((op == AluOp::Lsh || op == AluOp::Rsh || op == AluOp::Arsh) && b >= bits)
      return fail(fmt::format("shift by {} (undefined: the translation must rule it out)", b));
    if ((op == AluOp::Div || op == AluOp::Mod) && b == 0)
      return fail("division by zero (the translation must rule it out)");
    switch (operation) {
      case uint8_t(AluOp::Add): return (a + b) & mask;
      case uint8_t(AluOp::Sub): return (a - b) & mask;
      case uint8_t(AluOp::Mul): return (a * b) & mask;
      case uint8_t(AluOp::Div): return a / b;
      case uint8_t(AluOp::Mod): return a % b;
      case uint8_t(AluOp::Or): return a | b;
      case uint8_t(AluOp::And): return a & b;
      case uint8_t(AluOp::Xor): return a ^ b;
      case uint8_t(AluOp::Lsh): return (a << b) & mask;
      case uint8_t(AluOp::Rsh): return a >> b;
      case uint8_t(AluOp::Arsh):
        return is64 ? uint64_t(int64_t(a) >> b) : uint32_t(int32_t(uint32_t(a)) >> b);
      case polprog::op::kAluNeg: return (0 - a) & mask;
      default: return fail("unknown ALU operation");
    }
  }

  // pointer + scalar, scalar + pointer, pointer - scalar (64-bit), into the packet or the stack.
  Status pointer_arith(const polprog::Insn& i, uint8_t operation, bool is64, Value dst, Value src) {
    bool add = operation == uint8_t(polprog::AluOp::Add);
    bool sub = operation == uint8_t(polprog::AluOp::Sub);
    if (!is64 || !(add || sub) || (is_pointer(dst) && is_pointer(src)) || (sub && is_pointer(src)))
      return fail("pointer arithmetic other than pointer +/- scalar");
    Value ptr = is_pointer(dst) ? dst : src;
    uint64_t delta = is_pointer(dst) ? src.v : dst.v;
    if (ptr.kind != Kind::Packet && ptr.kind != Kind::Stack)
      return fail("arithmetic on a context or packet end pointer");
    ptr.v = add ? ptr.v + delta : ptr.v - delta;
    return set(i.dst_reg, ptr);
  }

  Status endian(const polprog::Insn& i, bool is64) {
    if (is64) return fail("64-bit byte swap class (cpu v4) not modelled");
    auto dst = reg(i.dst_reg);
    if (!dst.ok()) return dst.error();
    if (is_pointer(*dst)) return fail("byte swap of a pointer");
    bool to_be = polprog::op::src(i.code) == polprog::op::kToBe;
    uint64_t v = dst->v;
    switch (i.imm) {
      case 16: v = to_be ? __builtin_bswap16(uint16_t(v)) : uint16_t(v); break;
      case 32: v = to_be ? __builtin_bswap32(uint32_t(v)) : uint32_t(v); break;
      case 64: v = to_be ? __builtin_bswap64(v) : v; break;
      default: return fail("byte swap width");
    }
    return set(i.dst_reg, scalar(v));
  }

  // ---------------------------------------------------------------- jumps
  Status jump(const polprog::Insn& i, bool& done) {
    namespace op = polprog::op;
    bool is32 = op::cls(i.code) == op::kClassJmp32;
    uint8_t operation = op::operation(i.code);
    if (!is32 && operation == op::kJmpExit) {
      auto r0 = reg(0);
      if (!r0.ok()) return r0.error();
      if (is_pointer(*r0)) return fail("returns a pointer");
      done = true;
      return {};
    }
    if (!is32 && operation == op::kJmpJa) return go(i.off);
    if (operation == op::kJmpCall || operation == op::kJmpExit || operation == op::kJmpJa)
      return fail("unknown jump");
    auto taken = condition(i, is32);
    if (!taken.ok()) return taken.error();
    return go(*taken ? i.off : 0);
  }

  Status go(int off) {
    int64_t target = int64_t(pc_) + 1 + off;
    if (target < 0 || target >= int64_t(insns_.size())) return fail("jump out of the program");
    pc_ = size_t(target);
    return {};
  }

  Result<bool> condition(const polprog::Insn& i, bool is32) const {
    auto dst = reg(i.dst_reg);
    if (!dst.ok()) return dst.error();
    Value src = scalar(is32 ? uint32_t(i.imm) : uint64_t(int64_t{i.imm}));
    if (polprog::op::src(i.code) == polprog::op::kSrcX) {
      auto r = reg(i.src_reg);
      if (!r.ok()) return r.error();
      src = *r;
    }
    if (is_pointer(*dst) || is_pointer(src)) {
      // Only packet pointers against each other or the packet's end (the bounds checks).
      auto in_packet = [](const Value& v) {
        return v.kind == Kind::Packet || v.kind == Kind::PacketEnd;
      };
      if (is32 || !in_packet(*dst) || !in_packet(src))
        return fail("comparison of a pointer with something else than a packet pointer");
    }
    uint64_t a = is32 ? uint32_t(dst->v) : dst->v, b = is32 ? uint32_t(src.v) : src.v;
    int64_t sa = is32 ? int32_t(uint32_t(a)) : int64_t(a), sb = is32 ? int32_t(uint32_t(b)) : int64_t(b);
    return compare(static_cast<polprog::Cond>(polprog::op::operation(i.code)), a, b, sa, sb);
  }

  Result<bool> compare(polprog::Cond c, uint64_t a, uint64_t b, int64_t sa, int64_t sb) const {
    using polprog::Cond;
    switch (c) {
      case Cond::Eq: return a == b;
      case Cond::Ne: return a != b;
      case Cond::Gt: return a > b;
      case Cond::Ge: return a >= b;
      case Cond::Lt: return a < b;
      case Cond::Le: return a <= b;
      case Cond::Set: return (a & b) != 0;
      case Cond::SGt: return sa > sb;
      case Cond::SGe: return sa >= sb;
      case Cond::SLt: return sa < sb;
      case Cond::SLe: return sa <= sb;
    }
    return fail("unknown jump condition");
  }

  // ---------------------------------------------------------------- memory
  static int access_bytes(uint8_t code) {
    switch (polprog::op::size(code)) {
      case polprog::op::kSizeB: return 1;
      case polprog::op::kSizeH: return 2;
      case polprog::op::kSizeW: return 4;
      default: return 8;
    }
  }

  Status load(const polprog::Insn& i) {
    if (polprog::op::mode(i.code) != polprog::op::kModeMem) return fail("unknown load mode");
    auto base = reg(i.src_reg);
    if (!base.ok()) return base.error();
    int size = access_bytes(i.code);
    int64_t at = int64_t(base->v) + i.off;
    Result<Value> v = base->kind == Kind::Ctx      ? ctx_load(at, size)
                      : base->kind == Kind::Packet ? packet_load(at, size)
                      : base->kind == Kind::Stack  ? stack_load(at, size)
                                                   : Result<Value>(fail("load through a non-pointer"));
    if (!v.ok()) return v.error();
    return set(i.dst_reg, *v);
  }

  Result<Value> ctx_load(int64_t at, int size) const {
    if (size != 4) return fail("context read other than u32");
    if (at == int64_t{offsetof(__sk_buff, data)}) return Value{Kind::Packet, 0};
    if (at == int64_t{offsetof(__sk_buff, data_end)})
      return Value{Kind::PacketEnd, in_.packet.size()};
    if (at == int64_t{offsetof(__sk_buff, len)}) return scalar(in_.len);
    return fail(fmt::format("context read at offset {} (only data, data_end, len)", at));
  }

  Result<Value> packet_load(int64_t at, int size) const {
    if (at < 0 || at + size > int64_t(in_.packet.size()))
      return fail(fmt::format("packet read of {} bytes at offset {}: outside [data, data_end) "
                              "of {} bytes",
                              size, at, in_.packet.size()));
    uint64_t v = 0;
    std::memcpy(&v, in_.packet.data() + at, size_t(size));
    return scalar(v);
  }

  Result<Value> stack_load(int64_t at, int size) const {
    if (at < -kStack || at + size > 0) return fail(fmt::format("stack read at r10{:+}", at));
    uint64_t v = 0;
    for (int b = 0; b < size; b++) {
      size_t idx = size_t(kStack + at + b);
      if (!stack_set_[idx]) return fail(fmt::format("stack byte r10{:+} read before written", at + b));
      v |= uint64_t{stack_[idx]} << (8 * b);
    }
    return scalar(v);
  }

  Status store(const polprog::Insn& i) {
    namespace op = polprog::op;
    if (op::mode(i.code) != op::kModeMem) return fail("unknown store mode");
    auto base = reg(i.dst_reg);
    if (!base.ok()) return base.error();
    if (base->kind != Kind::Stack) return fail("store outside the stack");
    Value v = scalar(uint64_t(int64_t{i.imm}));
    if (op::cls(i.code) == op::kClassStx) {
      auto r = reg(i.src_reg);
      if (!r.ok()) return r.error();
      if (is_pointer(*r)) return fail("spilling a pointer (not modelled)");
      v = *r;
    }
    int size = access_bytes(i.code);
    int64_t at = int64_t(base->v) + i.off;
    if (at < -kStack || at + size > 0) return fail(fmt::format("stack write at r10{:+}", at));
    for (int b = 0; b < size; b++) {
      stack_[size_t(kStack + at + b)] = uint8_t(v.v >> (8 * b));
      stack_set_[size_t(kStack + at + b)] = true;
    }
    return {};
  }

  std::span<const polprog::Insn> insns_;
  SkbInput in_;
  std::array<Value, polprog::kNumRegs> regs_{};
  std::array<uint8_t, kStack> stack_{};
  std::array<bool, kStack> stack_set_{};
  size_t pc_ = 0;
};

// The instructions no path from the first one reaches: the kernel's verifier refuses a program
// with any ("unreachable insn").
inline std::vector<size_t> unreachable(std::span<const polprog::Insn> insns) {
  namespace op = polprog::op;
  std::vector<bool> seen(insns.size());
  std::vector<int64_t> todo{0};
  while (!todo.empty()) {
    int64_t pc = todo.back();
    todo.pop_back();
    if (pc < 0 || pc >= int64_t(insns.size()) || seen[size_t(pc)]) continue;
    seen[size_t(pc)] = true;
    const polprog::Insn& i = insns[size_t(pc)];
    if (polprog::is_ld_imm64(i)) {
      if (size_t(pc) + 1 < insns.size()) seen[size_t(pc) + 1] = true;
      todo.push_back(pc + 2);
      continue;
    }
    uint8_t cls = op::cls(i.code), operation = op::operation(i.code);
    bool jump = cls == op::kClassJmp || cls == op::kClassJmp32;
    if (jump && operation == op::kJmpExit) continue;
    if (jump && operation != op::kJmpCall) todo.push_back(pc + 1 + i.off);
    if (!(jump && cls == op::kClassJmp && operation == op::kJmpJa)) todo.push_back(pc + 1);
  }
  std::vector<size_t> out;
  for (size_t pc = 0; pc < insns.size(); pc++)
    if (!seen[pc]) out.push_back(pc);
  return out;
}

// Runs `insns` on the fake __sk_buff `in` (r1 = its context): r0 at exit, or an error naming
// the instruction and what it did wrong.
inline Result<uint64_t> run(std::span<const polprog::Insn> insns, const SkbInput& in,
                            size_t max_steps = 100000) {
  return Machine(insns, in).run(max_steps);
}

}  // namespace weir::ebpf_interp
