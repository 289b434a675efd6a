// The eBPF assembler and disassembler (src/polprog): encodings checked byte for byte against
// values computed by hand from the ISA (Documentation/bpf/standardization/instruction-set.rst):
//
//   byte 0 = opcode: class | source/size | operation/mode
//            classes LD 0x00 LDX 0x01 ST 0x02 STX 0x03 ALU 0x04 JMP 0x05 JMP32 0x06 ALU64 0x07
//            source K 0x00 X 0x08; sizes W 0x00 H 0x08 B 0x10 DW 0x18; modes IMM 0x00 MEM 0x60
//            ATOMIC 0xc0
//   byte 1 = src_reg << 4 | dst_reg
//   bytes 2-3 = off (little endian s16), bytes 4-7 = imm (little endian s32)
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cpu_time.h"
#include "polprog/asm.h"
#include "polprog/disasm.h"
#include "polprog/insn.h"

namespace weir::polprog {
namespace {

// "b7 00 00 00 01 00 00 00" -> the 8 bytes.
std::vector<uint8_t> hex(const std::string& s) {
  std::vector<uint8_t> out;
  std::istringstream in(s);
  std::string byte;
  while (in >> byte) out.push_back(static_cast<uint8_t>(std::stoul(byte, nullptr, 16)));
  return out;
}

std::vector<uint8_t> bytes(const std::vector<Insn>& insns) {
  std::vector<uint8_t> out(insns.size() * sizeof(Insn));
  std::memcpy(out.data(), insns.data(), out.size());
  return out;
}

std::string hexstr(const std::vector<uint8_t>& b) {
  std::string s;
  for (size_t i = 0; i < b.size(); i++) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", b[i]);
    if (i) s += ' ';
    s += buf;
  }
  return s;
}

Program must_assemble(const Assembler& a) {
  auto r = a.assemble();
  EXPECT_TRUE(r.ok()) << r.error().str();
  return r.ok() ? *r : Program{};
}

std::string assemble_error(const Assembler& a) {
  auto r = a.assemble();
  EXPECT_FALSE(r.ok()) << "assembly unexpectedly succeeded";
  return r.ok() ? std::string() : r.error().str();
}

// ---------------------------------------------------------------- compile-time guarantees

// The 64-bit forms refuse immediates that the CPU would sign-extend into something else.
template <typename T>
concept JeqAccepts = requires(Assembler& a, T v, Label l) {
  a.jeq(R1, v, l);
};
template <typename T>
concept Jeq32Accepts = requires(Assembler& a, T v, Label l) {
  a.jeq32(R1, v, l);
};
template <typename T>
concept MovAccepts = requires(Assembler& a, T v) {
  a.mov(R1, v);
};
static_assert(JeqAccepts<int32_t> && JeqAccepts<int16_t> && JeqAccepts<uint16_t> &&
              JeqAccepts<uint8_t> && JeqAccepts<int>);
static_assert(!JeqAccepts<uint32_t> && !JeqAccepts<int64_t> && !JeqAccepts<uint64_t> &&
              !JeqAccepts<size_t> && !JeqAccepts<bool>);
static_assert(Jeq32Accepts<uint32_t> && Jeq32Accepts<int32_t> && !Jeq32Accepts<uint64_t>);
static_assert(!MovAccepts<uint32_t> && MovAccepts<Reg> && MovAccepts<int>);

// ---------------------------------------------------------------- layout

TEST(PolprogInsn, LayoutMatchesStructBpfInsn) {
  Insn i = make_insn(0xbf, R1, R2, -2, 0x11223344);
  struct bpf_insn k {};
  k.code = 0xbf;
  k.dst_reg = 1;
  k.src_reg = 2;
  k.off = -2;
  k.imm = 0x11223344;
  EXPECT_EQ(std::memcmp(&i, &k, sizeof i), 0);
  EXPECT_EQ(hexstr(bytes({i})), "bf 21 fe ff 44 33 22 11");
  EXPECT_EQ(as_bpf_insns(&i)->src_reg, 2);
}

// ---------------------------------------------------------------- single-slot encodings

struct EncCase {
  const char* name;
  std::function<void(Assembler&)> emit;
  const char* bytes;  // hand-computed
  const char* text;   // expected disassembly (kernel verifier syntax)
};

TEST(PolprogAsm, EncodesEveryNonJumpInstruction) {
  const std::vector<EncCase> cases = {
      // 64-bit ALU, immediate (class 0x07 | K) and register (0x07 | X) forms.
      {"mov imm", [](Assembler& a) { a.mov(R0, 1); }, "b7 00 00 00 01 00 00 00", "r0 = 1"},
      {"mov reg", [](Assembler& a) { a.mov(R1, R2); }, "bf 21 00 00 00 00 00 00", "r1 = r2"},
      {"mov -1", [](Assembler& a) { a.mov(R9, -1); }, "b7 09 00 00 ff ff ff ff", "r9 = -1"},
      {"add imm", [](Assembler& a) { a.add(R1, 8); }, "07 01 00 00 08 00 00 00", "r1 += 8"},
      {"add reg", [](Assembler& a) { a.add(R1, R2); }, "0f 21 00 00 00 00 00 00", "r1 += r2"},
      {"sub imm", [](Assembler& a) { a.sub(R3, 3); }, "17 03 00 00 03 00 00 00", "r3 -= 3"},
      {"sub reg", [](Assembler& a) { a.sub(R3, R4); }, "1f 43 00 00 00 00 00 00", "r3 -= r4"},
      {"mul imm", [](Assembler& a) { a.mul(R1, 10); }, "27 01 00 00 0a 00 00 00", "r1 *= 10"},
      {"mul reg", [](Assembler& a) { a.mul(R1, R5); }, "2f 51 00 00 00 00 00 00", "r1 *= r5"},
      {"div imm", [](Assembler& a) { a.div(R1, 7); }, "37 01 00 00 07 00 00 00", "r1 /= 7"},
      {"div reg", [](Assembler& a) { a.div(R1, R6); }, "3f 61 00 00 00 00 00 00", "r1 /= r6"},
      {"or imm", [](Assembler& a) { a.or_(R2, 0x100); }, "47 02 00 00 00 01 00 00", "r2 |= 256"},
      {"or reg", [](Assembler& a) { a.or_(R2, R7); }, "4f 72 00 00 00 00 00 00", "r2 |= r7"},
      {"and imm", [](Assembler& a) { a.and_(R2, 0xff); }, "57 02 00 00 ff 00 00 00", "r2 &= 255"},
      {"and reg", [](Assembler& a) { a.and_(R2, R8); }, "5f 82 00 00 00 00 00 00", "r2 &= r8"},
      {"lsh imm", [](Assembler& a) { a.lsh(R4, 32); }, "67 04 00 00 20 00 00 00", "r4 <<= 32"},
      {"lsh reg", [](Assembler& a) { a.lsh(R4, R1); }, "6f 14 00 00 00 00 00 00", "r4 <<= r1"},
      {"rsh imm", [](Assembler& a) { a.rsh(R4, 63); }, "77 04 00 00 3f 00 00 00", "r4 >>= 63"},
      {"rsh reg", [](Assembler& a) { a.rsh(R4, R9); }, "7f 94 00 00 00 00 00 00", "r4 >>= r9"},
      {"neg", [](Assembler& a) { a.neg(R5); }, "87 05 00 00 00 00 00 00", "r5 = -r5"},
      {"mod imm", [](Assembler& a) { a.mod(R6, 3); }, "97 06 00 00 03 00 00 00", "r6 %= 3"},
      {"mod reg", [](Assembler& a) { a.mod(R6, R0); }, "9f 06 00 00 00 00 00 00", "r6 %= r0"},
      {"xor imm", [](Assembler& a) { a.xor_(R7, -2); }, "a7 07 00 00 fe ff ff ff", "r7 ^= -2"},
      {"xor reg", [](Assembler& a) { a.xor_(R7, R7); }, "af 77 00 00 00 00 00 00", "r7 ^= r7"},
      {"arsh imm", [](Assembler& a) { a.arsh(R8, 1); }, "c7 08 00 00 01 00 00 00", "r8 s>>= 1"},
      {"arsh reg", [](Assembler& a) { a.arsh(R8, R2); }, "cf 28 00 00 00 00 00 00", "r8 s>>= r2"},
      // 32-bit ALU (class 0x04).
      {"mov32 imm u32", [](Assembler& a) { a.mov32(R3, 0xc0a80001u); }, "b4 03 00 00 01 00 a8 c0",
       "w3 = -1062731775"},
      {"mov32 reg", [](Assembler& a) { a.mov32(R3, R4); }, "bc 43 00 00 00 00 00 00", "w3 = w4"},
      {"add32 imm", [](Assembler& a) { a.add32(R1, -1); }, "04 01 00 00 ff ff ff ff", "w1 += -1"},
      {"add32 reg", [](Assembler& a) { a.add32(R1, R2); }, "0c 21 00 00 00 00 00 00", "w1 += w2"},
      {"sub32 imm", [](Assembler& a) { a.sub32(R1, 2); }, "14 01 00 00 02 00 00 00", "w1 -= 2"},
      {"sub32 reg", [](Assembler& a) { a.sub32(R1, R2); }, "1c 21 00 00 00 00 00 00", "w1 -= w2"},
      {"mul32 imm", [](Assembler& a) { a.mul32(R1, 3); }, "24 01 00 00 03 00 00 00", "w1 *= 3"},
      {"mul32 reg", [](Assembler& a) { a.mul32(R1, R2); }, "2c 21 00 00 00 00 00 00", "w1 *= w2"},
      {"div32 imm", [](Assembler& a) { a.div32(R1, 4); }, "34 01 00 00 04 00 00 00", "w1 /= 4"},
      {"div32 reg", [](Assembler& a) { a.div32(R1, R2); }, "3c 21 00 00 00 00 00 00", "w1 /= w2"},
      {"or32 imm", [](Assembler& a) { a.or32(R1, 1); }, "44 01 00 00 01 00 00 00", "w1 |= 1"},
      {"or32 reg", [](Assembler& a) { a.or32(R1, R2); }, "4c 21 00 00 00 00 00 00", "w1 |= w2"},
      {"and32 imm", [](Assembler& a) { a.and32(R1, 0xffff0000u); }, "54 01 00 00 00 00 ff ff",
       "w1 &= -65536"},
      {"and32 reg", [](Assembler& a) { a.and32(R1, R2); }, "5c 21 00 00 00 00 00 00", "w1 &= w2"},
      {"lsh32 imm", [](Assembler& a) { a.lsh32(R1, 31); }, "64 01 00 00 1f 00 00 00", "w1 <<= 31"},
      {"lsh32 reg", [](Assembler& a) { a.lsh32(R1, R2); }, "6c 21 00 00 00 00 00 00", "w1 <<= w2"},
      {"rsh32 imm", [](Assembler& a) { a.rsh32(R1, 8); }, "74 01 00 00 08 00 00 00", "w1 >>= 8"},
      {"rsh32 reg", [](Assembler& a) { a.rsh32(R1, R2); }, "7c 21 00 00 00 00 00 00", "w1 >>= w2"},
      {"neg32", [](Assembler& a) { a.neg32(R1); }, "84 01 00 00 00 00 00 00", "w1 = -w1"},
      {"mod32 imm", [](Assembler& a) { a.mod32(R1, 5); }, "94 01 00 00 05 00 00 00", "w1 %= 5"},
      {"mod32 reg", [](Assembler& a) { a.mod32(R1, R2); }, "9c 21 00 00 00 00 00 00", "w1 %= w2"},
      {"xor32 imm", [](Assembler& a) { a.xor32(R1, 6); }, "a4 01 00 00 06 00 00 00", "w1 ^= 6"},
      {"xor32 reg", [](Assembler& a) { a.xor32(R1, R2); }, "ac 21 00 00 00 00 00 00", "w1 ^= w2"},
      {"arsh32 imm", [](Assembler& a) { a.arsh32(R1, 4); }, "c4 01 00 00 04 00 00 00", "w1 s>>= 4"},
      {"arsh32 reg", [](Assembler& a) { a.arsh32(R1, R2); }, "cc 21 00 00 00 00 00 00",
       "w1 s>>= w2"},
      // Generic forms encode like the named ones.
      {"alu64 generic", [](Assembler& a) { a.alu64(AluOp::Xor, R2, 9); }, "a7 02 00 00 09 00 00 00",
       "r2 ^= 9"},
      {"alu32 generic", [](Assembler& a) { a.alu32(AluOp::Lsh, R2, R3); },
       "6c 32 00 00 00 00 00 00", "w2 <<= w3"},
      // Byte swaps: ALU | END (0xd0) | TO_BE (0x08) or TO_LE (0x00), imm = width.
      {"be16", [](Assembler& a) { a.be16(R1); }, "dc 01 00 00 10 00 00 00", "r1 = be16 r1"},
      {"be32", [](Assembler& a) { a.be32(R2); }, "dc 02 00 00 20 00 00 00", "r2 = be32 r2"},
      {"be64", [](Assembler& a) { a.be64(R3); }, "dc 03 00 00 40 00 00 00", "r3 = be64 r3"},
      {"le16", [](Assembler& a) { a.le16(R1); }, "d4 01 00 00 10 00 00 00", "r1 = le16 r1"},
      {"le32", [](Assembler& a) { a.le32(R1); }, "d4 01 00 00 20 00 00 00", "r1 = le32 r1"},
      {"le64", [](Assembler& a) { a.le64(R1); }, "d4 01 00 00 40 00 00 00", "r1 = le64 r1"},
      // Loads: LDX (0x01) | MEM (0x60) | size.
      {"ldx u8", [](Assembler& a) { a.ldx(Size::U8, R2, R1, 23); }, "71 12 17 00 00 00 00 00",
       "r2 = *(u8 *)(r1 +23)"},
      {"ldx u16", [](Assembler& a) { a.ldx(Size::U16, R2, R1, 12); }, "69 12 0c 00 00 00 00 00",
       "r2 = *(u16 *)(r1 +12)"},
      {"ldx u32", [](Assembler& a) { a.ldx(Size::U32, R0, R1, 0); }, "61 10 00 00 00 00 00 00",
       "r0 = *(u32 *)(r1 +0)"},
      {"ldx u64", [](Assembler& a) { a.ldx(Size::U64, R3, R10, -16); }, "79 a3 f0 ff 00 00 00 00",
       "r3 = *(u64 *)(r10 -16)"},
      // Stores from a register: STX (0x03) | MEM | size.
      {"stx u8", [](Assembler& a) { a.stx(Size::U8, R10, -1, R1); }, "73 1a ff ff 00 00 00 00",
       "*(u8 *)(r10 -1) = r1"},
      {"stx u16", [](Assembler& a) { a.stx(Size::U16, R10, -2, R1); }, "6b 1a fe ff 00 00 00 00",
       "*(u16 *)(r10 -2) = r1"},
      {"stx u32", [](Assembler& a) { a.stx(Size::U32, R10, -4, R1); }, "63 1a fc ff 00 00 00 00",
       "*(u32 *)(r10 -4) = r1"},
      {"stx u64", [](Assembler& a) { a.stx(Size::U64, R6, 8, R0); }, "7b 06 08 00 00 00 00 00",
       "*(u64 *)(r6 +8) = r0"},
      // Stores of an immediate: ST (0x02) | MEM | size.
      {"st u8", [](Assembler& a) { a.st(Size::U8, R10, -1, 0x7f); }, "72 0a ff ff 7f 00 00 00",
       "*(u8 *)(r10 -1) = 127"},
      {"st u16", [](Assembler& a) { a.st(Size::U16, R10, -2, 443); }, "6a 0a fe ff bb 01 00 00",
       "*(u16 *)(r10 -2) = 443"},
      {"st u32", [](Assembler& a) { a.st(Size::U32, R10, -8, 0x11223344); },
       "62 0a f8 ff 44 33 22 11", "*(u32 *)(r10 -8) = 287454020"},
      {"st u32 unsigned", [](Assembler& a) { a.st(Size::U32, R10, -8, 0xc0a80001u); },
       "62 0a f8 ff 01 00 a8 c0", "*(u32 *)(r10 -8) = -1062731775"},
      {"st u64", [](Assembler& a) { a.st(Size::U64, R10, -16, -1); }, "7a 0a f0 ff ff ff ff ff",
       "*(u64 *)(r10 -16) = -1"},
      // Atomic add: STX | ATOMIC (0xc0) | size, imm = BPF_ADD (0).
      {"atomic add u64", [](Assembler& a) { a.atomic_add(Size::U64, R1, 0, R2); },
       "db 21 00 00 00 00 00 00", "lock *(u64 *)(r1 +0) += r2"},
      {"atomic add u32", [](Assembler& a) { a.atomic_add(Size::U32, R1, 4, R2); },
       "c3 21 04 00 00 00 00 00", "lock *(u32 *)(r1 +4) += r2"},
      // Calls and exit: JMP (0x05) | CALL (0x80) / EXIT (0x90).
      {"call lookup", [](Assembler& a) { a.call(BPF_FUNC_map_lookup_elem); },
       "85 00 00 00 01 00 00 00", "call bpf_map_lookup_elem#1"},
      {"call tail_call", [](Assembler& a) { a.call(BPF_FUNC_tail_call); },
       "85 00 00 00 0c 00 00 00", "call bpf_tail_call#12"},
      {"exit", [](Assembler& a) { a.exit(); }, "95 00 00 00 00 00 00 00", "exit"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Assembler a;
    c.emit(a);
    Program p = must_assemble(a);
    ASSERT_EQ(p.insns.size(), 1u);
    EXPECT_EQ(hexstr(bytes(p.insns)), hexstr(hex(c.bytes)));
    EXPECT_EQ(disassemble(p.insns[0]), c.text);
  }
}

TEST(PolprogAsm, EncodesLdImm64InTwoSlots) {
  Assembler a;
  a.ld_imm64(R1, 0x1122334455667788ULL);
  Program p = must_assemble(a);
  ASSERT_EQ(p.insns.size(), 2u);
  // LD (0x00) | IMM (0x00) | DW (0x18); low half in slot 0, high half in slot 1 (opcode 0).
  EXPECT_EQ(hexstr(bytes(p.insns)), "18 01 00 00 88 77 66 55 00 00 00 00 44 33 22 11");
  EXPECT_EQ(disassemble_at(p.insns, 0), "r1 = 0x1122334455667788");
  EXPECT_EQ(disassemble(p.insns[0]), "r1 = 0x55667788 (low 32 bits of ld_imm64)");
}

TEST(PolprogAsm, EncodesMapLoadAndRelocates) {
  Assembler a;
  a.ld_map_fd(R1, MapRef{"ipsets"});
  a.ld_map_fd(R2, MapRef{"counters"});
  a.ld_map_fd(R3, MapRef{"ipsets"});
  a.exit();
  Program p = must_assemble(a);
  ASSERT_EQ(p.insns.size(), 7u);
  // src_reg = BPF_PSEUDO_MAP_FD (1), imm = 0 until relocated.
  EXPECT_EQ(hexstr(bytes({p.insns[0], p.insns[1]})),
            "18 11 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
  ASSERT_EQ(p.relocations.size(), 3u);
  EXPECT_EQ(p.relocations[0].insn, 0u);
  EXPECT_EQ(p.relocations[1].insn, 2u);
  EXPECT_EQ(p.relocations[2].insn, 4u);
  EXPECT_EQ(p.relocations[1].map.name, "counters");

  auto st = check_relocated(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().str().find("map 'ipsets' (ld_imm64 at insn 0) not relocated"),
            std::string::npos)
      << st.error().str();

  auto r = relocate(p, {{MapRef{"ipsets"}, 7}, {MapRef{"counters"}, 300}, {MapRef{"unused"}, 9}});
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_TRUE(check_relocated(p).ok());
  EXPECT_EQ(hexstr(bytes({p.insns[0], p.insns[1]})),
            "18 11 00 00 07 00 00 00 00 00 00 00 00 00 00 00");
  EXPECT_EQ(hexstr(bytes({p.insns[2], p.insns[3]})),
            "18 12 00 00 2c 01 00 00 00 00 00 00 00 00 00 00");
  EXPECT_EQ(p.insns[4].imm, 7);
  EXPECT_EQ(p.relocations[1].fd, 300);
  // Relocating again (maps recreated) overwrites.
  ASSERT_TRUE(relocate(p, {{MapRef{"ipsets"}, 11}, {MapRef{"counters"}, 12}}).ok());
  EXPECT_EQ(p.insns[0].imm, 11);
  EXPECT_EQ(p.insns[2].imm, 12);
  EXPECT_EQ(p.insns[4].imm, 11);
  EXPECT_EQ(disassemble(p.insns[0]), "r1 = map[fd:11]");
}

TEST(PolprogAsm, RelocateNamesEveryMissingMapAndWritesNothing) {
  Assembler a;
  a.ld_map_fd(R1, MapRef{"ipsets"});
  a.ld_map_fd(R2, MapRef{"counters"});
  a.exit();
  Program p = must_assemble(a);
  auto r = relocate(p, {{MapRef{"ipsets"}, 5}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().str().find("map 'counters' (ld_imm64 at insn 2) has no fd"),
            std::string::npos)
      << r.error().str();
  EXPECT_EQ(p.insns[0].imm, 0) << "a failed relocation must not write";
  EXPECT_EQ(p.relocations[0].fd, -1);

  auto neg = relocate(p, {{MapRef{"ipsets"}, -1}, {MapRef{"counters"}, 3}});
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.error().str().find("map 'ipsets' (ld_imm64 at insn 0): invalid fd -1"),
            std::string::npos)
      << neg.error().str();

  // A relocation that does not point at a map load (hand-edited Program) is refused.
  Program bad = p;
  bad.relocations[0].insn = 4;
  auto b = relocate(bad, {{MapRef{"ipsets"}, 5}, {MapRef{"counters"}, 6}});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().str().find("points at insn 4, which is not a map ld_imm64"),
            std::string::npos)
      << b.error().str();
}

// ---------------------------------------------------------------- jumps

struct JmpCase {
  Cond cond;
  const char* op;    // disassembly operator
  uint8_t code_imm;  // JMP | K | op, hand-computed
  uint8_t code_reg;  // JMP | X | op
};

TEST(PolprogAsm, EncodesEveryConditionalJump) {
  const JmpCase cases[] = {
      {Cond::Eq, "==", 0x15, 0x1d},   {Cond::Gt, ">", 0x25, 0x2d},    {Cond::Ge, ">=", 0x35, 0x3d},
      {Cond::Set, "&", 0x45, 0x4d},   {Cond::Ne, "!=", 0x55, 0x5d},   {Cond::SGt, "s>", 0x65, 0x6d},
      {Cond::SGe, "s>=", 0x75, 0x7d}, {Cond::Lt, "<", 0xa5, 0xad},    {Cond::Le, "<=", 0xb5, 0xbd},
      {Cond::SLt, "s<", 0xc5, 0xcd},  {Cond::SLe, "s<=", 0xd5, 0xdd},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.op);
    Assembler a;
    Label l = a.new_label("t");
    a.jmp(c.cond, R1, 6, l);              // 0 -> 4: off +3
    a.jmp(c.cond, R1, R2, l);             // 1 -> 4: off +2
    a.jmp32(c.cond, R3, 0xfffffffeu, l);  // 2 -> 4: off +1
    a.jmp32(c.cond, R3, R4, l);           // 3 -> 4: off +0
    a.bind(l);
    a.exit();
    Program p = must_assemble(a);
    ASSERT_EQ(p.insns.size(), 5u);
    // JMP32 is class 0x06 where JMP is 0x05: the same opcode plus one.
    auto b = [](uint8_t code, uint8_t regs, uint8_t off, const char* imm) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%02x %02x %02x 00 %s", code, regs, off, imm);
      return std::string(buf);
    };
    EXPECT_EQ(hexstr(bytes({p.insns[0]})), b(c.code_imm, 0x01, 3, "06 00 00 00"));
    EXPECT_EQ(hexstr(bytes({p.insns[1]})), b(c.code_reg, 0x21, 2, "00 00 00 00"));
    EXPECT_EQ(hexstr(bytes({p.insns[2]})), b(c.code_imm + 1, 0x03, 1, "fe ff ff ff"));
    EXPECT_EQ(hexstr(bytes({p.insns[3]})), b(c.code_reg + 1, 0x43, 0, "00 00 00 00"));
    EXPECT_EQ(disassemble_at(p.insns, 0), fmt::format("if r1 {} 0x6 goto 4", c.op));
    EXPECT_EQ(disassemble_at(p.insns, 1), fmt::format("if r1 {} r2 goto 4", c.op));
    EXPECT_EQ(disassemble_at(p.insns, 2), fmt::format("if w3 {} 0xfffffffe goto 4", c.op));
    EXPECT_EQ(disassemble_at(p.insns, 3), fmt::format("if w3 {} w4 goto 4", c.op));
    EXPECT_EQ(disassemble(p.insns[0]), fmt::format("if r1 {} 0x6 goto pc+3", c.op));
  }
}

TEST(PolprogAsm, NamedJumpsEncodeLikeTheGenericForm) {
  using Emit = void (Assembler::*)(Reg, Imm, Label);
  using Emit32 = void (Assembler::*)(Reg, Reg, Label);
  const std::pair<Emit, uint8_t> imm64[] = {
      {&Assembler::jeq, 0x15},  {&Assembler::jne, 0x55},  {&Assembler::jgt, 0x25},
      {&Assembler::jge, 0x35},  {&Assembler::jlt, 0xa5},  {&Assembler::jle, 0xb5},
      {&Assembler::jsgt, 0x65}, {&Assembler::jsge, 0x75}, {&Assembler::jslt, 0xc5},
      {&Assembler::jsle, 0xd5}, {&Assembler::jset, 0x45}};
  const std::pair<Emit32, uint8_t> reg32[] = {
      {&Assembler::jeq32, 0x1e},  {&Assembler::jne32, 0x5e},  {&Assembler::jgt32, 0x2e},
      {&Assembler::jge32, 0x3e},  {&Assembler::jlt32, 0xae},  {&Assembler::jle32, 0xbe},
      {&Assembler::jsgt32, 0x6e}, {&Assembler::jsge32, 0x7e}, {&Assembler::jslt32, 0xce},
      {&Assembler::jsle32, 0xde}, {&Assembler::jset32, 0x4e}};
  for (auto [fn, code] : imm64) {
    Assembler a;
    Label l = a.new_label();
    (a.*fn)(R1, 1, l);
    a.bind(l);
    a.exit();
    Program p = must_assemble(a);
    EXPECT_EQ(p.insns[0].code, code);
  }
  for (auto [fn, code] : reg32) {
    Assembler a;
    Label l = a.new_label();
    (a.*fn)(R1, R2, l);
    a.bind(l);
    a.exit();
    Program p = must_assemble(a);
    EXPECT_EQ(p.insns[0].code, code);
  }
}

TEST(PolprogAsm, UnconditionalJumpForwardAndBackward) {
  Assembler a;
  Label top = a.new_label("top");
  Label end = a.new_label("end");
  a.bind(top);        // 0
  a.mov(R0, 0);       // 0
  a.ja(end);          // 1 -> 5: +3
  a.ld_imm64(R1, 1);  // 2, 3 (two slots count)
  a.ja(top);          // 4 -> 0: -5
  a.bind(end);
  a.exit();  // 5
  Program p = must_assemble(a);
  ASSERT_EQ(p.insns.size(), 6u);
  EXPECT_EQ(hexstr(bytes({p.insns[1]})), "05 00 03 00 00 00 00 00");
  EXPECT_EQ(hexstr(bytes({p.insns[4]})), "05 00 fb ff 00 00 00 00");
  EXPECT_EQ(disassemble_at(p.insns, 1), "goto 5");
  EXPECT_EQ(disassemble_at(p.insns, 4), "goto 0");
  EXPECT_EQ(disassemble(p.insns[4]), "goto pc-5");
}

TEST(PolprogAsm, LabelUsedByManyJumpsAndBoundAfterUse) {
  Assembler a;
  Label out = a.new_label("out");
  EXPECT_FALSE(a.is_bound(out));
  for (int i = 0; i < 5; i++) a.jeq(R1, i, out);  // 0..4
  a.mov(R0, 1);                                   // 5
  a.bind(out);
  EXPECT_TRUE(a.is_bound(out));
  a.exit();  // 6
  Label back = a.new_label("back");
  (void)back;  // an unbound label nobody jumps to is harmless
  Program p = must_assemble(a);
  for (int i = 0; i < 5; i++) EXPECT_EQ(p.insns[i].off, 6 - i - 1) << i;
}

TEST(PolprogAsm, JumpOffsetLimitsAreExact) {
  // Forward: jump at 0 to insn 32768 -> off 32767 (the maximum).
  {
    Assembler a;
    Label l = a.new_label("far");
    a.ja(l);
    for (int i = 0; i < 32767; i++) a.mov(R0, 0);
    a.bind(l);
    a.exit();
    Program p = must_assemble(a);
    EXPECT_EQ(p.insns[0].off, 32767);
  }
  // Backward: jump at 32767 to insn 0 -> off -32768 (the minimum).
  {
    Assembler a;
    Label l = a.new_label("back");
    a.bind(l);
    for (int i = 0; i < 32767; i++) a.mov(R0, 0);
    a.ja(l);
    a.exit();
    Program p = must_assemble(a);
    EXPECT_EQ(p.insns[32767].off, -32768);
  }
}

// ---------------------------------------------------------------- errors

TEST(PolprogAsmErrors, UnboundLabel) {
  Assembler a("policy cali12 ingress");
  Label next = a.new_label("next_rule");
  a.mov(R0, 0);
  a.jeq(R1, 1, next);
  a.exit();
  auto e = assemble_error(a);
  EXPECT_NE(e.find("assembling policy cali12 ingress: 1 error"), std::string::npos) << e;
  EXPECT_NE(e.find("insn 1: jump to label 'next_rule' which was never bound"), std::string::npos)
      << e;
}

TEST(PolprogAsmErrors, LabelBoundTwice) {
  Assembler a;
  Label l = a.new_label("dup");
  a.bind(l);
  a.mov(R0, 0);
  a.mov(R0, 1);
  a.bind(l);
  a.exit();
  auto e = assemble_error(a);
  EXPECT_NE(e.find("insn 2: label 'dup' bound twice (first at insn 0)"), std::string::npos) << e;
}

TEST(PolprogAsmErrors, ForwardJumpOutOfRange) {
  Assembler a;
  Label l = a.new_label("too_far");
  a.ja(l);
  for (int i = 0; i < 32768; i++) a.mov(R0, 0);
  a.bind(l);
  a.exit();
  auto e = assemble_error(a);
  EXPECT_NE(e.find("insn 0: jump to label 'too_far' at insn 32769: offset 32768 outside the s16 "
                   "range"),
            std::string::npos)
      << e;
}

TEST(PolprogAsmErrors, BackwardJumpOutOfRange) {
  Assembler a;
  Label l = a.new_label("too_far_back");
  a.bind(l);
  for (int i = 0; i < 32768; i++) a.mov(R0, 0);
  a.jne(R0, 0, l);
  a.exit();
  auto e = assemble_error(a);
  EXPECT_NE(e.find("insn 32768: jump to label 'too_far_back' at insn 0: offset -32769"),
            std::string::npos)
      << e;
}

TEST(PolprogAsmErrors, LabelBoundAfterLastInstruction) {
  Assembler a;
  Label l = a.new_label("end");
  a.ja(l);
  a.bind(l);
  auto e = assemble_error(a);
  EXPECT_NE(e.find("insn 0: jump to label 'end' bound at insn 1, after the last instruction"),
            std::string::npos)
      << e;
}

TEST(PolprogAsmErrors, DefaultConstructedAndForeignLabels) {
  Assembler other;
  other.new_label("x");
  other.new_label("y");
  Label foreign = other.new_label("z");  // id 2: this assembler has no such label

  Assembler a;
  Label none;
  EXPECT_FALSE(none.valid());
  a.ja(none);
  a.ja(foreign);
  a.bind(none);
  a.exit();
  auto e = assemble_error(a);
  EXPECT_NE(e.find("3 errors"), std::string::npos) << e;
  EXPECT_NE(e.find("insn 0: jump to a default-constructed Label"), std::string::npos) << e;
  EXPECT_NE(e.find("insn 1: jump to a label this assembler did not create"), std::string::npos)
      << e;
  EXPECT_NE(e.find("bind() of a default-constructed Label"), std::string::npos) << e;
}

TEST(PolprogAsmErrors, EmptyProgram) {
  Assembler a;
  EXPECT_NE(assemble_error(a).find("empty program"), std::string::npos);
}

TEST(PolprogAsmErrors, OperandChecks) {
  struct Case {
    std::function<void(Assembler&)> emit;
    const char* msg;
  };
  const Case cases[] = {
      {[](Assembler& a) { a.mov(static_cast<Reg>(11), 0); }, "insn 0 (mov): invalid register r11"},
      {[](Assembler& a) { a.ldx(Size::U32, R0, R1, 40000); },
       "insn 0 (ldx): memory offset 40000 outside the s16 range"},
      {[](Assembler& a) { a.stx(Size::U32, R10, -32769, R1); },
       "insn 0 (stx): memory offset -32769 outside the s16 range"},
      {[](Assembler& a) { a.lsh(R1, 64); }, "insn 0 (lsh): 64-bit shift by 64 (must be 0..63)"},
      {[](Assembler& a) { a.rsh32(R1, 32); }, "insn 0 (rsh32): 32-bit shift by 32 (must be 0..31)"},
      {[](Assembler& a) { a.div(R1, 0); }, "insn 0 (div): division by immediate 0"},
      {[](Assembler& a) { a.mod32(R1, 0); }, "insn 0 (mod32): division by immediate 0"},
      {[](Assembler& a) { a.st(Size::U64, R10, -8, 0x80000000u); },
       "insn 0 (st u64): immediate 0x80000000 would be sign-extended to 0xffffffff80000000"},
      {[](Assembler& a) { a.atomic_add(Size::U8, R1, 0, R2); },
       "insn 0 (atomic_add): size must be u32 or u64"},
      {[](Assembler& a) { a.ld_map_fd(R1, MapRef{}); },
       "insn 0 (ld_map_fd): MapRef with an empty name"},
      {[](Assembler& a) { a.alu64(static_cast<AluOp>(0x80), R1, R2); },
       "insn 0: invalid ALU operation 0x80"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.msg);
    Assembler a;
    c.emit(a);
    a.exit();
    auto e = assemble_error(a);
    EXPECT_NE(e.find(c.msg), std::string::npos) << e;
  }
}

TEST(PolprogAsmErrors, ReportsEveryErrorWithACap) {
  Assembler a;
  for (int i = 0; i < 25; i++) a.ja(a.new_label(fmt::format("l{}", i)));
  auto e = assemble_error(a);
  EXPECT_NE(e.find("25 errors"), std::string::npos) << e;
  EXPECT_NE(e.find("label 'l0'"), std::string::npos) << e;
  EXPECT_NE(e.find("label 'l19'"), std::string::npos) << e;
  EXPECT_EQ(e.find("label 'l20'"), std::string::npos) << e;
  EXPECT_NE(e.find("and 5 more"), std::string::npos) << e;
}

// ---------------------------------------------------------------- invert()

bool holds(Cond c, uint64_t a, uint64_t b) {
  auto sa = static_cast<int64_t>(a), sb = static_cast<int64_t>(b);
  switch (c) {
    case Cond::Eq:
      return a == b;
    case Cond::Ne:
      return a != b;
    case Cond::Gt:
      return a > b;
    case Cond::Ge:
      return a >= b;
    case Cond::Lt:
      return a < b;
    case Cond::Le:
      return a <= b;
    case Cond::SGt:
      return sa > sb;
    case Cond::SGe:
      return sa >= sb;
    case Cond::SLt:
      return sa < sb;
    case Cond::SLe:
      return sa <= sb;
    case Cond::Set:
      return (a & b) != 0;
  }
  return false;
}

TEST(PolprogAsm, InvertIsTheLogicalNegation) {
  const Cond all[] = {Cond::Eq, Cond::Ne,  Cond::Gt,  Cond::Ge,  Cond::Lt,
                      Cond::Le, Cond::SGt, Cond::SGe, Cond::SLt, Cond::SLe};
  const uint64_t vals[] = {0, 1, 2, 0x7fffffffffffffffULL, 0x8000000000000000ULL, ~0ULL};
  for (Cond c : all) {
    auto inv = invert(c);
    ASSERT_TRUE(inv.has_value());
    EXPECT_EQ(invert(*inv), c);
    for (uint64_t x : vals) {
      for (uint64_t y : vals) EXPECT_NE(holds(c, x, y), holds(*inv, x, y)) << int(c) << x << y;
    }
  }
  EXPECT_FALSE(invert(Cond::Set).has_value());
}

// ---------------------------------------------------------------- disassembler

TEST(PolprogDisasm, HelperNames) {
  EXPECT_EQ(helper_name(1), "bpf_map_lookup_elem");
  EXPECT_EQ(helper_name(2), "bpf_map_update_elem");
  EXPECT_EQ(helper_name(12), "bpf_tail_call");
  EXPECT_EQ(helper_name(BPF_FUNC_redirect), "bpf_redirect");
  EXPECT_EQ(helper_name(0), "");
  EXPECT_EQ(helper_name(100000), "");
  EXPECT_EQ(disassemble(make_insn(0x85, R0, R0, 0, 100000)), "call unknown#100000");
}

TEST(PolprogDisasm, KernelReadBackAndOddInstructions) {
  // A map load read back from the kernel holds a map id.
  std::vector<Insn> insns = {make_insn(0x18, R1, static_cast<Reg>(1), 0, 42),
                             make_insn(0, R0, R0, 0, 0),
                             make_insn(0x18, R2, static_cast<Reg>(2), 0, 43),
                             make_insn(0, R0, R0, 0, 16),
                             make_insn(0x30, R0, R0, 0, 12),  // legacy ld_abs u8
                             make_insn(0xff, R0, R0, 0, 0)};  // not an instruction
  DisasmOptions o;
  o.map_imm_is_id = true;
  EXPECT_EQ(disassemble(insns, o),
            "   0: (18) r1 = map[id:42]\n"
            "   2: (18) r2 = map[id:43][0]+16\n"
            "   4: (30) r0 = *(u8 *)skb[12]\n"
            "   5: (ff) unknown opcode 0xff\n");
  o.map_names[42] = "cali_ipsets";
  o.show_opcode = false;
  EXPECT_EQ(disassemble_at(insns, 0, o), "r1 = map[cali_ipsets]");
  EXPECT_EQ(disassemble_at(insns, 9, o), "<no instruction 9>");
  EXPECT_EQ(disassemble(insns, o).substr(0, 27), "   0: r1 = map[cali_ipsets]");
}

// Round trip: a policy-like program, assembled, then disassembled with comments and map names.
TEST(PolprogDisasm, RoundTripSampleProgram) {
  Assembler a("sample");
  Label deny = a.new_label("deny");
  Label allow = a.new_label("allow");
  a.comment("Start of tier default");
  a.comment("Start of rule action:\"allow\" protocol:{name:\"tcp\"} dst_ports:{first:80 last:80}");
  a.mov(R6, R1);                      // 0
  a.ldx(Size::U8, R2, R6, 23);        // 1
  a.jne(R2, 6, deny);                 // 2
  a.ldx(Size::U16, R2, R6, 36);       // 3
  a.be16(R2);                         // 4
  a.jne32(R2, 80, deny);              // 5
  a.mov32(R2, 0xc0a80105u);           // 6
  a.stx(Size::U32, R10, -4, R2);      // 7
  a.mov(R2, R10);                     // 8
  a.add(R2, -4);                      // 9
  a.ld_map_fd(R1, MapRef{"ipsets"});  // 10, 11
  a.call(BPF_FUNC_map_lookup_elem);   // 12
  a.jeq(R0, 0, deny);                 // 13
  a.comment("count = 9");
  a.mov(R1, 1);                        // 14
  a.atomic_add(Size::U64, R0, 0, R1);  // 15
  a.ja(allow);                         // 16
  a.bind(deny);
  a.comment("End of rule 29vMYcPWr7reSxxN\nEnd of tier default: deny");
  a.mov(R0, 2);  // 17
  a.exit();      // 18
  a.bind(allow);
  a.st(Size::U32, R10, -8, -1);    // 19
  a.ld_imm64(R0, 0x100000000ULL);  // 20, 21
  a.rsh(R0, 32);                   // 22
  a.exit();                        // 23
  a.comment("end of program");
  Program p = must_assemble(a);
  ASSERT_EQ(p.insns.size(), 24u);
  ASSERT_TRUE(relocate(p, {{MapRef{"ipsets"}, 5}}).ok());

  const std::string expected =
      "// Start of tier default\n"
      "// Start of rule action:\"allow\" protocol:{name:\"tcp\"} dst_ports:{first:80 last:80}\n"
      "   0: (bf) r6 = r1\n"
      "   1: (71) r2 = *(u8 *)(r6 +23)\n"
      "   2: (55) if r2 != 0x6 goto 17\n"
      "   3: (69) r2 = *(u16 *)(r6 +36)\n"
      "   4: (dc) r2 = be16 r2\n"
      "   5: (56) if w2 != 0x50 goto 17\n"
      "   6: (b4) w2 = -1062731515\n"
      "   7: (63) *(u32 *)(r10 -4) = r2\n"
      "   8: (bf) r2 = r10\n"
      "   9: (07) r2 += -4\n"
      "  10: (18) r1 = map[ipsets]\n"
      "  12: (85) call bpf_map_lookup_elem#1\n"
      "  13: (15) if r0 == 0x0 goto 17\n"
      "// count = 9\n"
      "  14: (b7) r1 = 1\n"
      "  15: (db) lock *(u64 *)(r0 +0) += r1\n"
      "  16: (05) goto 19\n"
      "// End of rule 29vMYcPWr7reSxxN\n"
      "// End of tier default: deny\n"
      "  17: (b7) r0 = 2\n"
      "  18: (95) exit\n"
      "  19: (62) *(u32 *)(r10 -8) = -1\n"
      "  20: (18) r0 = 0x100000000\n"
      "  22: (77) r0 >>= 32\n"
      "  23: (95) exit\n"
      "// end of program\n";
  EXPECT_EQ(disassemble(p), expected);

  // Without the Program (raw instructions), the relocated fd shows instead of the name.
  DisasmOptions o;
  o.show_opcode = false;
  std::string raw = disassemble(std::span<const Insn>(p.insns), o);
  EXPECT_NE(raw.find("  10: r1 = map[fd:5]\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("//"), std::string::npos) << raw;
}

// ---------------------------------------------------------------- scale

TEST(PolprogAsm, HundredThousandInstructionsAssembleFast) {
  // 100 blocks of 100 rules of 10 slots: forward jumps to the next rule and to the end of the
  // block, a backward jump to the start of each block, 10k map relocations.
  const auto start = test::thread_cpu_time();  // CPU time: see cpu_time.h
  Assembler a("scale");
  for (int b = 0; b < 100; b++) {
    Label block_start = a.new_label(fmt::format("block{}", b));
    Label block_end = a.new_label(fmt::format("block{}_end", b));
    a.bind(block_start);
    a.comment(fmt::format("Start of block {}", b));
    for (int r = 0; r < 100; r++) {
      Label next = a.new_label();
      a.ldx(Size::U8, R2, R6, 23);
      a.jne(R2, 6, next);
      a.ldx(Size::U16, R2, R6, 36);
      a.jne32(R2, r, next);
      a.ld_map_fd(R1, MapRef{"ipsets"});
      a.mov(R2, R10);
      a.add(R2, -8);
      a.jeq(R0, 0, block_end);
      a.mov(R0, r);
      a.bind(next);
    }
    a.jgt(R9, 1000, block_start);
    a.bind(block_end);
    a.mov(R0, b);
  }
  a.exit();
  auto r = a.assemble();
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(test::thread_cpu_time() - start);
  ASSERT_TRUE(r.ok()) << r.error().str();
  ASSERT_EQ(r->insns.size(), 100u * (100u * 10u + 2u) + 1u);
  EXPECT_EQ(r->relocations.size(), 10000u);
  // Spot checks: the first rule's jne (insn 1) skips the rule (to insn 10); its jeq (insn 8)
  // goes to the block end (insn 1001).
  EXPECT_EQ(r->insns[1].off, 10 - 1 - 1);
  EXPECT_EQ(r->insns[8].off, 1001 - 8 - 1);
  EXPECT_EQ(r->insns[1000].off, 0 - 1000 - 1);  // the block's backward jump
  // Generous bound (sanitizer builds); ~90 ms of CPU under ASan, a few ms without.
  EXPECT_LT(elapsed.count(), 500) << "emitting and assembling 100k instructions took "
                                  << elapsed.count() << " ms";
}

}  // namespace
}  // namespace weir::polprog
