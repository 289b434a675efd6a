// The eBPF instruction word and its opcode fields, for the runtime assembler and disassembler.
//
// An eBPF instruction is 8 bytes (struct bpf_insn):
//
//   byte 0     opcode: class (bits 0-2) | source or size (bits 3-4) | operation or mode (bits 5-7)
//   byte 1     dst_reg (low nibble) | src_reg (high nibble)
//   bytes 2-3  off, signed 16 bits: jump offset in instructions, or memory offset in bytes
//   bytes 4-7  imm, signed 32 bits
//
// ld_imm64 takes two 8-byte slots; the second slot has opcode 0 and carries the high 32 bits in
// its imm. Jump offsets count slots, relative to the instruction after the jump.
//
// The constants below are our own spelling of the ISA (kernel
// Documentation/bpf/standardization/instruction-set.rst); static_asserts tie each one to the
// BPF_* macro of <linux/bpf.h> so the two can never drift apart.
#pragma once

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>

namespace weir::polprog {

// The eleven eBPF registers. R0: return value and helper result; R1-R5: helper arguments
// (clobbered by calls); R6-R9: callee-saved; R10: read-only frame pointer (stack grows down,
// 512 bytes usable at R10-512 .. R10-1).
enum class Reg : uint8_t { R0 = 0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 };

inline constexpr Reg R0 = Reg::R0;
inline constexpr Reg R1 = Reg::R1;
inline constexpr Reg R2 = Reg::R2;
inline constexpr Reg R3 = Reg::R3;
inline constexpr Reg R4 = Reg::R4;
inline constexpr Reg R5 = Reg::R5;
inline constexpr Reg R6 = Reg::R6;
inline constexpr Reg R7 = Reg::R7;
inline constexpr Reg R8 = Reg::R8;
inline constexpr Reg R9 = Reg::R9;
inline constexpr Reg R10 = Reg::R10;
inline constexpr int kNumRegs = 11;

// Width of a memory access. The disassembler spells them u8/u16/u32/u64 as the kernel does.
enum class Size : uint8_t { U8, U16, U32, U64 };

// Width in bytes of a Size.
constexpr int size_bytes(Size s) { return 1 << static_cast<int>(s); }

// Binary ALU operations (BPF_ALU / BPF_ALU64 classes). Neg and the byte swaps are unary and have
// their own Assembler methods. The enumerator value is the operation's opcode bits.
enum class AluOp : uint8_t {
  Add = 0x00,
  Sub = 0x10,
  Mul = 0x20,
  Div = 0x30,  // unsigned; division by zero yields 0 at run time
  Or = 0x40,
  And = 0x50,
  Lsh = 0x60,
  Rsh = 0x70,  // logical
  Mod = 0x90,  // unsigned; modulo zero leaves dst unchanged at run time
  Xor = 0xa0,
  Mov = 0xb0,
  Arsh = 0xc0,  // arithmetic (sign-propagating)
};

// Conditions of conditional jumps (BPF_JMP / BPF_JMP32 classes). "S" variants compare signed.
// The enumerator value is the operation's opcode bits.
enum class Cond : uint8_t {
  Eq = 0x10,
  Gt = 0x20,
  Ge = 0x30,
  Set = 0x40,  // dst & src != 0
  Ne = 0x50,
  SGt = 0x60,
  SGe = 0x70,
  Lt = 0xa0,
  Le = 0xb0,
  SLt = 0xc0,
  SLe = 0xd0,
};

// Opcode field values.
namespace op {
// Instruction classes, bits 0-2.
inline constexpr uint8_t kClassLd = 0x00;
inline constexpr uint8_t kClassLdx = 0x01;
inline constexpr uint8_t kClassSt = 0x02;
inline constexpr uint8_t kClassStx = 0x03;
inline constexpr uint8_t kClassAlu = 0x04;  // 32-bit ALU: results are zero-extended to 64 bits
inline constexpr uint8_t kClassJmp = 0x05;
inline constexpr uint8_t kClassJmp32 = 0x06;  // conditional jumps comparing the low 32 bits
inline constexpr uint8_t kClassAlu64 = 0x07;

// Load/store sizes, bits 3-4.
inline constexpr uint8_t kSizeW = 0x00;   // 32 bits
inline constexpr uint8_t kSizeH = 0x08;   // 16 bits
inline constexpr uint8_t kSizeB = 0x10;   // 8 bits
inline constexpr uint8_t kSizeDW = 0x18;  // 64 bits

// Load/store modes, bits 5-7.
inline constexpr uint8_t kModeImm = 0x00;  // ld_imm64
inline constexpr uint8_t kModeAbs = 0x20;  // legacy packet access (decoded, never emitted)
inline constexpr uint8_t kModeInd = 0x40;  // legacy packet access (decoded, never emitted)
inline constexpr uint8_t kModeMem = 0x60;
inline constexpr uint8_t kModeAtomic = 0xc0;  // imm holds the atomic operation

// ALU/JMP source, bit 3: K = the 32-bit immediate, X = src_reg.
inline constexpr uint8_t kSrcK = 0x00;
inline constexpr uint8_t kSrcX = 0x08;

// Unary ALU operations.
inline constexpr uint8_t kAluNeg = 0x80;
inline constexpr uint8_t kAluEnd = 0xd0;  // byte swap; bit 3 selects the target byte order
inline constexpr uint8_t kToLe = 0x00;
inline constexpr uint8_t kToBe = 0x08;

// Non-conditional jump-class operations.
inline constexpr uint8_t kJmpJa = 0x00;
inline constexpr uint8_t kJmpCall = 0x80;
inline constexpr uint8_t kJmpExit = 0x90;

// src_reg values of a ld_imm64 that make it a pseudo instruction resolved by the kernel.
inline constexpr uint8_t kPseudoMapFd = 1;     // imm = map fd -> map pointer
inline constexpr uint8_t kPseudoMapValue = 2;  // imm = map fd, next imm = offset into value 0
// src_reg of a call to a BPF function (imm = relative offset) instead of a helper.
inline constexpr uint8_t kPseudoCall = 1;

// The ld_imm64 opcode (first slot).
inline constexpr uint8_t kLdImm64 = kClassLd | kModeImm | kSizeDW;

// Field accessors.
constexpr uint8_t cls(uint8_t code) { return code & 0x07; }
constexpr uint8_t size(uint8_t code) { return code & 0x18; }
constexpr uint8_t mode(uint8_t code) { return code & 0xe0; }
constexpr uint8_t src(uint8_t code) { return code & 0x08; }
constexpr uint8_t operation(uint8_t code) { return code & 0xf0; }

static_assert(kClassLd == BPF_LD && kClassLdx == BPF_LDX && kClassSt == BPF_ST &&
              kClassStx == BPF_STX && kClassAlu == BPF_ALU && kClassJmp == BPF_JMP &&
              kClassJmp32 == BPF_JMP32 && kClassAlu64 == BPF_ALU64);
static_assert(kSizeW == BPF_W && kSizeH == BPF_H && kSizeB == BPF_B && kSizeDW == BPF_DW);
static_assert(kModeImm == BPF_IMM && kModeAbs == BPF_ABS && kModeInd == BPF_IND &&
              kModeMem == BPF_MEM && kModeAtomic == BPF_ATOMIC);
static_assert(kSrcK == BPF_K && kSrcX == BPF_X);
static_assert(kAluNeg == BPF_NEG && kAluEnd == BPF_END && kToLe == BPF_TO_LE && kToBe == BPF_TO_BE);
static_assert(kJmpJa == BPF_JA && kJmpCall == BPF_CALL && kJmpExit == BPF_EXIT);
static_assert(kPseudoMapFd == BPF_PSEUDO_MAP_FD && kPseudoMapValue == BPF_PSEUDO_MAP_VALUE &&
              kPseudoCall == BPF_PSEUDO_CALL);
}  // namespace op

static_assert(uint8_t(AluOp::Add) == BPF_ADD && uint8_t(AluOp::Sub) == BPF_SUB &&
              uint8_t(AluOp::Mul) == BPF_MUL && uint8_t(AluOp::Div) == BPF_DIV &&
              uint8_t(AluOp::Or) == BPF_OR && uint8_t(AluOp::And) == BPF_AND &&
              uint8_t(AluOp::Lsh) == BPF_LSH && uint8_t(AluOp::Rsh) == BPF_RSH &&
              uint8_t(AluOp::Mod) == BPF_MOD && uint8_t(AluOp::Xor) == BPF_XOR &&
              uint8_t(AluOp::Mov) == BPF_MOV && uint8_t(AluOp::Arsh) == BPF_ARSH);
static_assert(uint8_t(Cond::Eq) == BPF_JEQ && uint8_t(Cond::Gt) == BPF_JGT &&
              uint8_t(Cond::Ge) == BPF_JGE && uint8_t(Cond::Set) == BPF_JSET &&
              uint8_t(Cond::Ne) == BPF_JNE && uint8_t(Cond::SGt) == BPF_JSGT &&
              uint8_t(Cond::SGe) == BPF_JSGE && uint8_t(Cond::Lt) == BPF_JLT &&
              uint8_t(Cond::Le) == BPF_JLE && uint8_t(Cond::SLt) == BPF_JSLT &&
              uint8_t(Cond::SLe) == BPF_JSLE);

// One instruction slot, bit-for-bit a struct bpf_insn: a std::vector<Insn> can be handed to
// bpf_prog_load as `const struct bpf_insn*` (see as_bpf_insns).
struct Insn {
  uint8_t code = 0;
  uint8_t dst_reg : 4 = 0;
  uint8_t src_reg : 4 = 0;
  int16_t off = 0;
  int32_t imm = 0;

  friend bool operator==(const Insn&, const Insn&) = default;
};

static_assert(sizeof(Insn) == sizeof(struct bpf_insn) && sizeof(Insn) == 8);
static_assert(alignof(Insn) == alignof(struct bpf_insn));
static_assert(offsetof(Insn, code) == offsetof(struct bpf_insn, code));
static_assert(offsetof(Insn, off) == offsetof(struct bpf_insn, off));
static_assert(offsetof(Insn, imm) == offsetof(struct bpf_insn, imm));
// dst_reg/src_reg are bit-fields (no offsetof): they are declared exactly as in struct bpf_insn
// (dst_reg first, 4 bits each), and the unit tests check the byte they produce.

constexpr Insn make_insn(uint8_t code, Reg dst, Reg src, int16_t off, int32_t imm) {
  Insn i;
  i.code = code;
  i.dst_reg = static_cast<uint8_t>(dst) & 0x0f;
  i.src_reg = static_cast<uint8_t>(src) & 0x0f;
  i.off = off;
  i.imm = imm;
  return i;
}

// True when `i` is the first slot of a two-slot ld_imm64.
constexpr bool is_ld_imm64(const Insn& i) { return i.code == op::kLdImm64; }

// The instructions as the kernel's type, for bpf_prog_load. The pointer aliases `insns`.
inline const struct bpf_insn* as_bpf_insns(const Insn* insns) {
  return reinterpret_cast<const struct bpf_insn*>(insns);
}

}  // namespace weir::polprog
