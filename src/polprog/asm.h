// A runtime eBPF assembler for generated programs (policy programs: one per endpoint and
// direction, tail-called from the main TC program). Pure: no syscalls; the output is a Program
// that a loader relocates (map fds) and hands to bpf_prog_load.
//
//   Assembler a;
//   Label deny = a.new_label("deny");
//   a.comment("Start of rule allow-tcp");
//   a.ldx(Size::U8, R2, R1, kProtoOffset);   // r2 = *(u8 *)(r1 + kProtoOffset)
//   a.jne(R2, 6, deny);                      // if r2 != 0x6 goto deny
//   a.mov(R0, TC_ACT_OK);
//   a.exit();
//   a.bind(deny);
//   a.mov(R0, TC_ACT_SHOT);
//   a.exit();
//   Result<Program> prog = a.assemble();     // resolves labels, reports every error
//
// Emitting never fails on the spot: mistakes (a register out of range, an offset that does not
// fit 16 bits, a label bound twice, a jump to a label never bound, ...) are collected and
// assemble() returns them all in one Error naming the instruction index and the label.
//
// Immediates: the CPU sign-extends the 32-bit immediate of a 64-bit operation (mov, add, jeq,
// ...) to 64 bits. So 64-bit forms take an `Imm`, which only converts implicitly from integer
// types whose every value survives that (signed up to 32 bits, unsigned up to 16 bits):
// `a.jeq(R1, 0xc0a80001u, l)` does not compile, because it would compare r1 with
// 0xffffffffc0a80001. Use the 32-bit form (`jeq32`, whose Imm32 takes any 32-bit integer) or
// ld_imm64 into a register. Memory offsets are `int` and are range-checked into s16.
#pragma once

#include <linux/bpf.h>

#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "polprog/insn.h"
#include "util/result.h"

namespace weir::polprog {

// Immediate operand of a 64-bit instruction (sign-extended by the CPU). Implicit from int8..int32,
// uint8, uint16 and unscoped enums; anything else needs an explicit static_cast<int32_t>.
class Imm {
 public:
  template <std::integral T>
  requires(!std::same_as<T, bool> &&
           (std::is_signed_v<T> ? sizeof(T) <= 4 : sizeof(T) < 4)) constexpr Imm(T v)
      : v_(static_cast<int32_t>(v)) {}  // NOLINT(google-explicit-constructor)
  template <typename E>
  requires(std::is_enum_v<E>&& std::is_convertible_v<E, int32_t>) constexpr Imm(E v)
      : v_(static_cast<int32_t>(v)) {}  // NOLINT(google-explicit-constructor)

  constexpr int32_t value() const { return v_; }

 private:
  int32_t v_;
};

// Immediate operand of a 32-bit instruction or of a store: any integer type of at most 32 bits,
// signed or unsigned (the bit pattern is kept: 0xc0a80001u and int32_t(0xc0a80001) are the
// same immediate).
class Imm32 {
 public:
  template <std::integral T>
  requires(!std::same_as<T, bool> && sizeof(T) <= 4) constexpr Imm32(T v)
      : v_(static_cast<int64_t>(v)) {}  // NOLINT(google-explicit-constructor)
  template <typename E>
  requires(std::is_enum_v<E>&& std::is_convertible_v<E, int64_t>) constexpr Imm32(E v)
      : v_(static_cast<int64_t>(v)) {}       // NOLINT(google-explicit-constructor)
  constexpr Imm32(Imm i) : v_(i.value()) {}  // NOLINT(google-explicit-constructor)

  // The 32 bits as stored in the instruction.
  constexpr int32_t bits() const { return static_cast<int32_t>(static_cast<uint32_t>(v_)); }
  // The value as written by the caller (uint32_t values stay positive).
  constexpr int64_t value() const { return v_; }

 private:
  int64_t v_;
};

// A jump target. Created by Assembler::new_label, bound to a position once with
// Assembler::bind, usable by jumps before (forward) and after (backward) binding. A Label is a
// cheap copyable handle, valid only with the Assembler that created it.
class Label {
 public:
  Label() = default;  // invalid: jumping to it is an assembly error
  bool valid() const { return id_ != kInvalid; }
  friend bool operator==(const Label&, const Label&) = default;

 private:
  friend class Assembler;
  static constexpr uint32_t kInvalid = UINT32_MAX;
  explicit Label(uint32_t id) : id_(id) {}
  uint32_t id_ = kInvalid;
};

// A symbolic map: a ld_map_fd instruction names the map, the loader binds the name to a file
// descriptor with relocate(). The name also appears in the disassembly ("map[ipsets]").
struct MapRef {
  std::string name;
  friend auto operator<=>(const MapRef&, const MapRef&) = default;
};

// One ld_imm64 (BPF_PSEUDO_MAP_FD) waiting for a map fd.
struct MapRelocation {
  size_t insn = 0;  // index of the first ld_imm64 slot
  MapRef map;
  int fd = -1;  // set by relocate(); -1 while not relocated
};

// An assembled program.
struct Program {
  std::vector<Insn> insns;  // ld_imm64 takes two slots: indices are kernel instruction indices
  // Comments by the index of the instruction they precede; index insns.size() holds comments
  // after the last instruction.
  std::map<size_t, std::vector<std::string>> comments;
  std::vector<MapRelocation> relocations;  // in instruction order
};

// Writes the fd of each relocation's map into its ld_imm64. Every map the program uses must be
// in `fds` (extra entries are ignored); on error nothing is written and the message names each
// missing map and the instruction using it. May be called again (e.g. after maps were
// recreated).
Status relocate(Program& prog, const std::map<MapRef, int>& fds);

// OK when every relocation of `prog` has been given an fd; otherwise an error naming the map and
// the instruction index. A loader calls this before bpf_prog_load.
Status check_relocated(const Program& prog);

// The condition that is true exactly when `c` is false, e.g. Eq -> Ne, Lt -> Ge, SGt -> SLe.
// Set has no inverse among jump conditions: nullopt.
std::optional<Cond> invert(Cond c);

class Assembler {
 public:
  // `name` prefixes error messages ("assembling <name>: ...").
  explicit Assembler(std::string name = "program");

  // ---------------------------------------------------------------- positions and labels
  // Index of the next instruction slot (= number of slots emitted so far).
  size_t pos() const { return insns_.size(); }
  // A new unbound label; `name` appears in error messages (default "L<n>").
  Label new_label(std::string name = {});
  // Binds `label` to the next instruction. Binding twice is an error.
  void bind(Label label);
  bool is_bound(Label label) const;
  // Attaches a comment line to the next instruction (kept in Program::comments, printed by the
  // disassembler as "// text"). Several comments at one position keep their order.
  void comment(std::string text);

  // ---------------------------------------------------------------- ALU
  // dst = dst <op> src / imm. 64-bit forms operate on the whole register; 32-bit forms
  // ("w" registers in the disassembly) operate on the low halves and zero the upper half.
  void alu64(AluOp op, Reg dst, Reg src);
  void alu64(AluOp op, Reg dst, Imm imm);
  void alu32(AluOp op, Reg dst, Reg src);
  void alu32(AluOp op, Reg dst, Imm32 imm);

  void mov(Reg dst, Reg src) { alu64(AluOp::Mov, dst, src); }
  void mov(Reg dst, Imm imm) { alu64(AluOp::Mov, dst, imm); }
  void mov32(Reg dst, Reg src) { alu32(AluOp::Mov, dst, src); }
  void mov32(Reg dst, Imm32 imm) { alu32(AluOp::Mov, dst, imm); }
  void add(Reg dst, Reg src) { alu64(AluOp::Add, dst, src); }
  void add(Reg dst, Imm imm) { alu64(AluOp::Add, dst, imm); }
  void add32(Reg dst, Reg src) { alu32(AluOp::Add, dst, src); }
  void add32(Reg dst, Imm32 imm) { alu32(AluOp::Add, dst, imm); }
  void sub(Reg dst, Reg src) { alu64(AluOp::Sub, dst, src); }
  void sub(Reg dst, Imm imm) { alu64(AluOp::Sub, dst, imm); }
  void sub32(Reg dst, Reg src) { alu32(AluOp::Sub, dst, src); }
  void sub32(Reg dst, Imm32 imm) { alu32(AluOp::Sub, dst, imm); }
  void mul(Reg dst, Reg src) { alu64(AluOp::Mul, dst, src); }
  void mul(Reg dst, Imm imm) { alu64(AluOp::Mul, dst, imm); }
  void mul32(Reg dst, Reg src) { alu32(AluOp::Mul, dst, src); }
  void mul32(Reg dst, Imm32 imm) { alu32(AluOp::Mul, dst, imm); }
  void div(Reg dst, Reg src) { alu64(AluOp::Div, dst, src); }
  void div(Reg dst, Imm imm) { alu64(AluOp::Div, dst, imm); }
  void div32(Reg dst, Reg src) { alu32(AluOp::Div, dst, src); }
  void div32(Reg dst, Imm32 imm) { alu32(AluOp::Div, dst, imm); }
  void mod(Reg dst, Reg src) { alu64(AluOp::Mod, dst, src); }
  void mod(Reg dst, Imm imm) { alu64(AluOp::Mod, dst, imm); }
  void mod32(Reg dst, Reg src) { alu32(AluOp::Mod, dst, src); }
  void mod32(Reg dst, Imm32 imm) { alu32(AluOp::Mod, dst, imm); }
  // or/and/xor are C++ alternative tokens, hence the trailing underscore.
  void or_(Reg dst, Reg src) { alu64(AluOp::Or, dst, src); }
  void or_(Reg dst, Imm imm) { alu64(AluOp::Or, dst, imm); }
  void or32(Reg dst, Reg src) { alu32(AluOp::Or, dst, src); }
  void or32(Reg dst, Imm32 imm) { alu32(AluOp::Or, dst, imm); }
  void and_(Reg dst, Reg src) { alu64(AluOp::And, dst, src); }
  void and_(Reg dst, Imm imm) { alu64(AluOp::And, dst, imm); }
  void and32(Reg dst, Reg src) { alu32(AluOp::And, dst, src); }
  void and32(Reg dst, Imm32 imm) { alu32(AluOp::And, dst, imm); }
  void xor_(Reg dst, Reg src) { alu64(AluOp::Xor, dst, src); }
  void xor_(Reg dst, Imm imm) { alu64(AluOp::Xor, dst, imm); }
  void xor32(Reg dst, Reg src) { alu32(AluOp::Xor, dst, src); }
  void xor32(Reg dst, Imm32 imm) { alu32(AluOp::Xor, dst, imm); }
  // Shift counts by immediate must be < 64 (64-bit) / < 32 (32-bit).
  void lsh(Reg dst, Reg src) { alu64(AluOp::Lsh, dst, src); }
  void lsh(Reg dst, Imm imm) { alu64(AluOp::Lsh, dst, imm); }
  void lsh32(Reg dst, Reg src) { alu32(AluOp::Lsh, dst, src); }
  void lsh32(Reg dst, Imm32 imm) { alu32(AluOp::Lsh, dst, imm); }
  void rsh(Reg dst, Reg src) { alu64(AluOp::Rsh, dst, src); }
  void rsh(Reg dst, Imm imm) { alu64(AluOp::Rsh, dst, imm); }
  void rsh32(Reg dst, Reg src) { alu32(AluOp::Rsh, dst, src); }
  void rsh32(Reg dst, Imm32 imm) { alu32(AluOp::Rsh, dst, imm); }
  void arsh(Reg dst, Reg src) { alu64(AluOp::Arsh, dst, src); }
  void arsh(Reg dst, Imm imm) { alu64(AluOp::Arsh, dst, imm); }
  void arsh32(Reg dst, Reg src) { alu32(AluOp::Arsh, dst, src); }
  void arsh32(Reg dst, Imm32 imm) { alu32(AluOp::Arsh, dst, imm); }
  // dst = -dst
  void neg(Reg dst);
  void neg32(Reg dst);

  // Byte order conversion of the low 16/32/64 bits of dst, zero-extending the result:
  // be* converts host order to/from big endian (network order), le* to/from little endian.
  void be16(Reg dst) { endian(op::kToBe, dst, 16); }
  void be32(Reg dst) { endian(op::kToBe, dst, 32); }
  void be64(Reg dst) { endian(op::kToBe, dst, 64); }
  void le16(Reg dst) { endian(op::kToLe, dst, 16); }
  void le32(Reg dst) { endian(op::kToLe, dst, 32); }
  void le64(Reg dst) { endian(op::kToLe, dst, 64); }

  // ---------------------------------------------------------------- memory
  // dst = *(size *)(src + off)   (zero-extending)
  void ldx(Size size, Reg dst, Reg src, int off);
  // *(size *)(dst + off) = src
  void stx(Size size, Reg dst, int off, Reg src);
  // *(size *)(dst + off) = imm. For Size::U64 the immediate is sign-extended: a value that does
  // not fit int32 (e.g. 0x80000000u) is an error.
  void st(Size size, Reg dst, int off, Imm32 imm);
  // lock *(size *)(dst + off) += src   (size U32 or U64)
  void atomic_add(Size size, Reg dst, int off, Reg src);
  // dst = imm (two slots)
  void ld_imm64(Reg dst, uint64_t imm);
  // dst = pointer to `map` (two slots; the fd is written by relocate()).
  void ld_map_fd(Reg dst, MapRef map);

  // ---------------------------------------------------------------- control flow
  // Calls a kernel helper, e.g. call(BPF_FUNC_map_lookup_elem). Arguments in R1-R5, result in
  // R0; R1-R5 are clobbered.
  void call(bpf_func_id helper);
  // Returns R0.
  void exit();
  // goto target
  void ja(Label target);
  // if (dst <cond> src/imm) goto target; 64-bit comparison.
  void jmp(Cond cond, Reg dst, Imm imm, Label target);
  void jmp(Cond cond, Reg dst, Reg src, Label target);
  // if (dst <cond> src/imm) goto target; comparing the low 32 bits (JMP32 class).
  void jmp32(Cond cond, Reg dst, Imm32 imm, Label target);
  void jmp32(Cond cond, Reg dst, Reg src, Label target);

  void jeq(Reg dst, Imm imm, Label t) { jmp(Cond::Eq, dst, imm, t); }
  void jeq(Reg dst, Reg src, Label t) { jmp(Cond::Eq, dst, src, t); }
  void jeq32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::Eq, dst, imm, t); }
  void jeq32(Reg dst, Reg src, Label t) { jmp32(Cond::Eq, dst, src, t); }
  void jne(Reg dst, Imm imm, Label t) { jmp(Cond::Ne, dst, imm, t); }
  void jne(Reg dst, Reg src, Label t) { jmp(Cond::Ne, dst, src, t); }
  void jne32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::Ne, dst, imm, t); }
  void jne32(Reg dst, Reg src, Label t) { jmp32(Cond::Ne, dst, src, t); }
  void jgt(Reg dst, Imm imm, Label t) { jmp(Cond::Gt, dst, imm, t); }
  void jgt(Reg dst, Reg src, Label t) { jmp(Cond::Gt, dst, src, t); }
  void jgt32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::Gt, dst, imm, t); }
  void jgt32(Reg dst, Reg src, Label t) { jmp32(Cond::Gt, dst, src, t); }
  void jge(Reg dst, Imm imm, Label t) { jmp(Cond::Ge, dst, imm, t); }
  void jge(Reg dst, Reg src, Label t) { jmp(Cond::Ge, dst, src, t); }
  void jge32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::Ge, dst, imm, t); }
  void jge32(Reg dst, Reg src, Label t) { jmp32(Cond::Ge, dst, src, t); }
  void jlt(Reg dst, Imm imm, Label t) { jmp(Cond::Lt, dst, imm, t); }
  void jlt(Reg dst, Reg src, Label t) { jmp(Cond::Lt, dst, src, t); }
  void jlt32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::Lt, dst, imm, t); }
  void jlt32(Reg dst, Reg src, Label t) { jmp32(Cond::Lt, dst, src, t); }
  void jle(Reg dst, Imm imm, Label t) { jmp(Cond::Le, dst, imm, t); }
  void jle(Reg dst, Reg src, Label t) { jmp(Cond::Le, dst, src, t); }
  void jle32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::Le, dst, imm, t); }
  void jle32(Reg dst, Reg src, Label t) { jmp32(Cond::Le, dst, src, t); }
  void jsgt(Reg dst, Imm imm, Label t) { jmp(Cond::SGt, dst, imm, t); }
  void jsgt(Reg dst, Reg src, Label t) { jmp(Cond::SGt, dst, src, t); }
  void jsgt32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::SGt, dst, imm, t); }
  void jsgt32(Reg dst, Reg src, Label t) { jmp32(Cond::SGt, dst, src, t); }
  void jsge(Reg dst, Imm imm, Label t) { jmp(Cond::SGe, dst, imm, t); }
  void jsge(Reg dst, Reg src, Label t) { jmp(Cond::SGe, dst, src, t); }
  void jsge32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::SGe, dst, imm, t); }
  void jsge32(Reg dst, Reg src, Label t) { jmp32(Cond::SGe, dst, src, t); }
  void jslt(Reg dst, Imm imm, Label t) { jmp(Cond::SLt, dst, imm, t); }
  void jslt(Reg dst, Reg src, Label t) { jmp(Cond::SLt, dst, src, t); }
  void jslt32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::SLt, dst, imm, t); }
  void jslt32(Reg dst, Reg src, Label t) { jmp32(Cond::SLt, dst, src, t); }
  void jsle(Reg dst, Imm imm, Label t) { jmp(Cond::SLe, dst, imm, t); }
  void jsle(Reg dst, Reg src, Label t) { jmp(Cond::SLe, dst, src, t); }
  void jsle32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::SLe, dst, imm, t); }
  void jsle32(Reg dst, Reg src, Label t) { jmp32(Cond::SLe, dst, src, t); }
  void jset(Reg dst, Imm imm, Label t) { jmp(Cond::Set, dst, imm, t); }
  void jset(Reg dst, Reg src, Label t) { jmp(Cond::Set, dst, src, t); }
  void jset32(Reg dst, Imm32 imm, Label t) { jmp32(Cond::Set, dst, imm, t); }
  void jset32(Reg dst, Reg src, Label t) { jmp32(Cond::Set, dst, src, t); }

  // ---------------------------------------------------------------- output
  // The program, with every jump offset resolved. Errors: anything recorded while emitting,
  // an empty program, a jump to a label never bound or bound after the last instruction, a jump
  // offset outside the s16 range. The message lists every error (up to 20) with instruction
  // indices and label names. Does not consume the assembler: it may be called again.
  Result<Program> assemble() const;

 private:
  struct LabelInfo {
    std::string name;
    size_t pos = SIZE_MAX;  // SIZE_MAX while unbound
  };
  struct Fixup {
    size_t insn;
    uint32_t label;
  };

  void emit(Insn i) { insns_.push_back(i); }
  void endian(uint8_t order, Reg dst, int bits);
  void jump(uint8_t code, Reg dst, Reg src, int32_t imm, Label target);
  bool check_reg(Reg r, const char* what);
  int16_t check_off(int off, const char* what);
  std::string label_name(uint32_t id) const;
  void error(std::string msg);

  std::string name_;
  std::vector<Insn> insns_;
  std::map<size_t, std::vector<std::string>> comments_;
  std::vector<LabelInfo> labels_;
  std::vector<Fixup> fixups_;
  std::vector<MapRelocation> relocations_;
  std::vector<std::string> errors_;
};

}  // namespace weir::polprog
