// The translation of pcap filters to eBPF (src/polprog/pcap_filter.h), differentially: libpcap's
// own interpreter (bpf_filter) and the translation, run by a checking eBPF interpreter
// (ebpf_interp.h: every packet access in bounds, nothing read before it is written), must agree
// on thousands of random packets for every expression of tests/common/pcap_corpus.h. The kernel's
// verifier and BPF_PROG_TEST_RUN run the same corpus in tests/bpf/pcap_filter_test.cpp.
#include <gtest/gtest.h>
#include <linux/filter.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "../common/pcap_corpus.h"
#include "ebpf_interp.h"
#include "polprog/asm.h"
#include "polprog/cbpf.h"
#include "polprog/disasm.h"
#include "polprog/pcap_filter.h"

namespace weir::polprog {
namespace {

using pcap_corpus::Packet;

constexpr int kPacketsPerExpression = 3000;

// Everything needed to reproduce a disagreement.
std::string context(const std::string& expr, const std::vector<CbpfInsn>& cbpf,
                    const Program& prog, const Packet& pkt) {
  return fmt::format("filter \"{}\", packet of {} bytes (len {}):\n{}\ncBPF:\n{}eBPF:\n{}", expr,
                     pkt.bytes.size(), pkt.wirelen, pcap_corpus::hex(pkt.bytes),
                     cbpf_listing(cbpf), disassemble(prog));
}

// The verdict of the translation on `pkt` (r0), or a failure of the interpreter's checks.
Result<uint64_t> run(const Program& prog, const Packet& pkt) {
  return ebpf_interp::run(prog.insns, {pkt.bytes, pkt.wirelen});
}

// Runs `count` random packets through libpcap and the translation of `cbpf` in `prog` (which
// must return 1 or 0), fails at the first disagreement, and counts matches and misses.
void compare(const std::string& expr, const std::vector<CbpfInsn>& cbpf, const Program& prog,
             uint32_t seed, int count, int& matched, int& missed) {
  ASSERT_EQ(ebpf_interp::unreachable(prog.insns), std::vector<size_t>{}) << disassemble(prog);
  pcap_corpus::PacketGen gen(seed, 0, true);
  for (int n = 0; n < count; n++) {
    Packet pkt = gen.next();
    bool want = pcap_bpf_filter(cbpf, pkt.bytes, pkt.wirelen) != 0;
    auto got = run(prog, pkt);
    ASSERT_TRUE(got.ok()) << got.error().str() << "\n" << context(expr, cbpf, prog, pkt);
    ASSERT_TRUE(*got == 0 || *got == 1) << "r0 = " << *got << "\n" << context(expr, cbpf, prog, pkt);
    ASSERT_EQ(*got == 1, want) << "libpcap says " << (want ? "match" : "no match") << "\n"
                               << context(expr, cbpf, prog, pkt);
    (want ? matched : missed)++;
  }
}

class PcapCorpus : public testing::TestWithParam<size_t> {};

TEST_P(PcapCorpus, TranslationAgreesWithLibpcap) {
  const std::string& expr = pcap_corpus::expressions().at(GetParam());
  auto cbpf = compile_pcap(expr);
  ASSERT_TRUE(cbpf.ok()) << cbpf.error().str();
  auto prog = cbpf_filter_program(*cbpf, expr);
  ASSERT_TRUE(prog.ok()) << prog.error().str();
  int matched = 0, missed = 0;
  compare(expr, *cbpf, *prog, 1000 + static_cast<uint32_t>(GetParam()), kPacketsPerExpression,
          matched, missed);
  // Both outcomes, or the comparison proves little: tune the pools of pcap_corpus.h.
  EXPECT_GT(matched, 0) << expr << ": no packet matched";
  EXPECT_GT(missed, 0) << expr << ": every packet matched";
}

// "e07_dst_port_53": gtest wants [A-Za-z0-9_].
std::string expression_name(const testing::TestParamInfo<size_t>& info) {
  std::string name = fmt::format("e{:02}_", info.param);
  for (char c : pcap_corpus::expressions().at(info.param)) {
    bool word = std::isalnum(static_cast<unsigned char>(c)) != 0;
    if (word) name += c;
    else if (name.back() != '_') name += '_';
  }
  while (name.back() == '_') name.pop_back();
  return name.substr(0, 60);
}

INSTANTIATE_TEST_SUITE_P(Expressions, PcapCorpus,
                         testing::Range<size_t>(0, pcap_corpus::expressions().size()),
                         expression_name);

TEST(PcapFilter, CorpusIsLargeAndCompiles) {
  EXPECT_GE(pcap_corpus::expressions().size(), 25u);
  for (const auto& expr : pcap_corpus::expressions()) {
    auto prog = pcap_filter_program(expr);
    EXPECT_TRUE(prog.ok()) << prog.error().str();
  }
}

// Registers and stack other than the defaults; what the convention leaves alone stays alone
// (else the program returns pcap_corpus::kConventionBroken, which fails the 0-or-1 check).
TEST(PcapFilter, RegisterAndStackConvention) {
  for (const auto& expr : pcap_corpus::convention_expressions()) {
    SCOPED_TRACE(expr);
    auto cbpf = compile_pcap(expr);
    ASSERT_TRUE(cbpf.ok()) << cbpf.error().str();
    auto prog = pcap_corpus::convention_program(*cbpf, expr);
    ASSERT_TRUE(prog.ok()) << prog.error().str();
    int matched = 0, missed = 0;
    compare(expr, *cbpf, *prog, 7, 1000, matched, missed);
    EXPECT_GT(matched, 0);
    EXPECT_GT(missed, 0);
  }
}

// Hand-written programs for what libpcap rarely emits: ldx #k / #pktlen / M[k], stx, txa, ja,
// ret a, jumps comparing with X, word and halfword loads at X + k.
TEST(PcapFilter, HandWrittenProgramsAgreeWithLibpcap) {
  const std::vector<std::vector<CbpfInsn>> programs = {
      // ret a: len - 60 (no match for 60-byte packets)
      {BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0), BPF_STMT(BPF_ALU | BPF_SUB | BPF_K, 60),
       BPF_STMT(BPF_RET | BPF_A, 0)},
      // ldx #pktlen, stx, ld M[], ld [x + 0]: the low bit of the word at len - 40
      {BPF_STMT(BPF_LDX | BPF_W | BPF_LEN, 0), BPF_STMT(BPF_STX, 3),
       BPF_STMT(BPF_LD | BPF_W | BPF_MEM, 3), BPF_STMT(BPF_ALU | BPF_SUB | BPF_K, 40),
       BPF_STMT(BPF_MISC | BPF_TAX, 0), BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0),
       BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 1), BPF_STMT(BPF_RET | BPF_A, 0)},
      // ldx #k, ldh [x + k], jeq/jgt x, ja, txa: IPv6, or an ethertype above 0x800 (A = 0x800)
      {BPF_STMT(BPF_LDX | BPF_W | BPF_IMM, 12), BPF_STMT(BPF_LD | BPF_H | BPF_IND, 0),
       BPF_STMT(BPF_LDX | BPF_W | BPF_IMM, 0x86dd), BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 3, 0),
       BPF_STMT(BPF_LDX | BPF_W | BPF_IMM, 0x0800), BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, 0, 2),
       BPF_STMT(BPF_JMP | BPF_JA, 2), BPF_STMT(BPF_RET | BPF_K, 1), BPF_STMT(BPF_RET | BPF_K, 0),
       BPF_STMT(BPF_MISC | BPF_TXA, 0), BPF_STMT(BPF_RET | BPF_A, 0)},
      // jge x, jset x; M[5] read before any write (zeroed for the verifier; the value is unused,
      // libpcap leaves M[] uninitialised)
      {BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 5), BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),
       BPF_STMT(BPF_LDX | BPF_W | BPF_IMM, 6), BPF_JUMP(BPF_JMP | BPF_JGE | BPF_X, 0, 0, 4),
       BPF_STMT(BPF_LDX | BPF_W | BPF_IMM, 0x10), BPF_JUMP(BPF_JMP | BPF_JSET | BPF_X, 0, 0, 2),
       BPF_STMT(BPF_MISC | BPF_TXA, 0), BPF_STMT(BPF_RET | BPF_A, 0), BPF_STMT(BPF_RET | BPF_K, 0)},
  };
  for (size_t n = 0; n < programs.size(); n++) {
    std::string name = fmt::format("hand-written {}", n);
    SCOPED_TRACE(name);
    auto prog = cbpf_filter_program(programs[n], name);
    ASSERT_TRUE(prog.ok()) << prog.error().str();
    int matched = 0, missed = 0;
    compare(name, programs[n], *prog, 11 + static_cast<uint32_t>(n), 2000, matched, missed);
    EXPECT_GT(matched, 0);
    EXPECT_GT(missed, 0);
  }
}

// An exit the filter never jumps to still gets a jump (one the verifier proves never taken):
// otherwise the caller's code at that label would be unreachable, which the verifier refuses.
TEST(PcapFilter, ConstantFiltersKeepBothExitsReachable) {
  struct Case {
    std::string name;
    std::vector<CbpfInsn> cbpf;
    uint64_t verdict;
  };
  auto always = compile_pcap("");  // tcpdump's empty filter: ret #65535
  ASSERT_TRUE(always.ok()) << always.error().str();
  const std::vector<Case> cases = {
      {"empty expression", *always, 1},
      {"ret #0", {BPF_STMT(BPF_RET | BPF_K, 0)}, 0},
      // A load beyond the offsets the verifier tracks never succeeds: the ret after it is dead.
      {"ldb [70000]", {BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 70000), BPF_STMT(BPF_RET | BPF_K, 1)}, 0},
      {"ld [65532]", {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 65532), BPF_STMT(BPF_RET | BPF_K, 1)}, 0},
      {"ldb [x + 65535]",
       {BPF_STMT(BPF_LD | BPF_B | BPF_IND, 65535), BPF_STMT(BPF_RET | BPF_K, 1)}, 0},
      // The last offsets the verifier tracks: real bounds checks (no packet is that long here).
      {"ld [65531]", {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 65531), BPF_STMT(BPF_RET | BPF_K, 1)}, 0},
      {"ldb [x + 65534]",
       {BPF_STMT(BPF_LD | BPF_B | BPF_IND, 65534), BPF_STMT(BPF_RET | BPF_K, 1)}, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto prog = cbpf_filter_program(c.cbpf, c.name);
    ASSERT_TRUE(prog.ok()) << prog.error().str();
    EXPECT_EQ(ebpf_interp::unreachable(prog->insns), std::vector<size_t>{}) << disassemble(*prog);
    pcap_corpus::PacketGen gen(3, 0, true);
    for (int n = 0; n < 200; n++) {
      Packet pkt = gen.next();
      auto got = run(*prog, pkt);
      ASSERT_TRUE(got.ok()) << got.error().str();
      ASSERT_EQ(*got, c.verdict);
      ASSERT_EQ(pcap_bpf_filter(c.cbpf, pkt.bytes, pkt.wirelen) != 0, c.verdict == 1);
    }
  }
}

TEST(PcapFilter, SyntaxErrorNamesTheExpression) {
  auto r = compile_pcap("tcp prot 80");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().str(), "pcap filter \"tcp prot 80\": can't parse filter expression: syntax error");
  auto p = pcap_filter_program("tcp prot 80");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().str(), r.error().str());
}

TEST(PcapFilter, LibpcapErrorsNameTheExpression) {
  auto none = compile_pcap("ip and arp");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().str(), "pcap filter \"ip and arp\": expression rejects all packets");
  auto mask = compile_pcap("ip broadcast");  // needs the netmask, unknown here
  ASSERT_FALSE(mask.ok());
  EXPECT_EQ(mask.error().str(),
            "pcap filter \"ip broadcast\": netmask not known, so 'ip broadcast' not supported");
}

// libpcap compiles these to loads of the kernel's ancillary data even for a dead handle.
TEST(PcapFilter, AncillaryDataIsRefused) {
  auto inbound = pcap_filter_program("inbound");
  ASSERT_FALSE(inbound.ok());
  EXPECT_EQ(inbound.error().str(),
            "pcap filter \"inbound\": instruction 0 (ldh [type] / code 0x28 k 0xfffff004) is not "
            "supported: ancillary data");
  auto ifindex = pcap_filter_program("ifindex 3");
  ASSERT_FALSE(ifindex.ok());
  EXPECT_EQ(ifindex.error().str(),
            "pcap filter \"ifindex 3\": instruction 0 (ld [ifidx] / code 0x20 k 0xfffff008) is "
            "not supported: ancillary data");
}

// For a dead handle (no live Linux capture) libpcap matches VLAN tags in the packet bytes, not
// with the kernel's vlan_tci ancillary data: `vlan 10` translates (and is in the corpus).
TEST(PcapFilter, VlanUsesPacketBytesOnly) {
  auto cbpf = compile_pcap("vlan 10");
  ASSERT_TRUE(cbpf.ok()) << cbpf.error().str();
  for (const CbpfInsn& i : *cbpf)
    if (BPF_CLASS(i.code) == BPF_LD && BPF_MODE(i.code) == BPF_ABS) EXPECT_LT(i.k, 0x80000000u);
  EXPECT_TRUE(pcap_filter_program("vlan 10").ok());
}

TEST(PcapFilter, UnsupportedInstructionsAreRefusedAndNothingIsEmitted) {
  const CbpfInsn ret1 = BPF_STMT(BPF_RET | BPF_K, 1);
  struct Case {
    std::vector<CbpfInsn> cbpf;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{BPF_STMT(BPF_LD | BPF_B | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_VLAN_TAG)), ret1},
       "instruction 0 (ldb [vlan_tci] / code 0x30 k 0xfffff02c) is not supported: ancillary data"},
      {{BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_NET_OFF + 12)), ret1},
       "instruction 0 (ld [net + 12] / code 0x20 k 0xfff0000c) is not supported: offset relative "
       "to the network header (SKF_NET_OFF)"},
      {{BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, static_cast<uint32_t>(SKF_LL_OFF)), ret1},
       "instruction 0 (ldxb 4*([ll + 0]&0xf) / code 0xb1 k 0xffe00000) is not supported: offset "
       "relative to the link-layer header (SKF_LL_OFF)"},
      {{BPF_STMT(BPF_LD | BPF_H | BPF_IND, 0xfffffff0), ret1},
       "instruction 0 (ldh [x + 4294967280] / code 0x48 k 0xfffffff0) is not supported: negative "
       "offset"},
      {{BPF_STMT(BPF_LD | BPF_H | BPF_IMM, 1), ret1},
       "instruction 0 (unknown / code 0x8 k 0x1) is not supported: unknown opcode"},
      {{BPF_STMT(BPF_RET | BPF_X, 0)},
       "instruction 0 (unknown / code 0xe k 0x0) is not supported: unknown opcode"},
      {{BPF_STMT(BPF_ST, 16), ret1},
       "instruction 0 (st M[16] / code 0x2 k 0x10) is not supported: scratch memory index beyond "
       "M[15]"},
      {{BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), ret1},
       "instruction 0 (div #0 / code 0x34 k 0x0) is not supported: division by zero"},
      {{BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 32), ret1},
       "instruction 0 (lsh #32 / code 0x64 k 0x20) is not supported: shift by 32 bits or more"},
      {{BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 0), ret1},
       "instruction 0 (jeq #0x1 jt 2 jf 1 / code 0x15 k 0x1) is not supported: jump past the end"},
      {{ret1, BPF_STMT(BPF_LD | BPF_W | BPF_IMM, 1)},
       "instruction 1 (ld #0x1 / code 0x0 k 0x1) is not supported: the program does not end with "
       "ret"},
      {{}, "empty program"},
  };
  for (const auto& c : cases) {
    Assembler a;
    Label match = a.new_label(), no_match = a.new_label();
    Status s = emit_cbpf(a, c.cbpf, CbpfRegs{}, match, no_match, "hand-written");
    ASSERT_FALSE(s.ok()) << c.error;
    EXPECT_EQ(s.error().str(), "pcap filter \"hand-written\": " + c.error);
    EXPECT_EQ(a.pos(), 0u) << c.error;
  }
}

TEST(PcapFilter, BadRegisterConventionIsRefused) {
  const std::vector<std::pair<CbpfRegs, std::string>> cases = {
      {CbpfRegs{.a = R2}, "CbpfRegs: r2 used twice"},
      {CbpfRegs{.tmp = R10}, "CbpfRegs: r10 is not writable"},
      {CbpfRegs{.mem_off = -62}, "CbpfRegs: mem_off -62 is not a multiple of 4 in [-512, -64]"},
      {CbpfRegs{.mem_off = -32}, "CbpfRegs: mem_off -32 is not a multiple of 4 in [-512, -64]"},
      {CbpfRegs{.mem_off = -516}, "CbpfRegs: mem_off -516 is not a multiple of 4 in [-512, -64]"},
  };
  for (const auto& [regs, error] : cases) {
    Assembler a;
    Status s = emit_cbpf(a, {BPF_STMT(BPF_RET | BPF_K, 1)}, regs, a.new_label(), a.new_label(), "x");
    ASSERT_FALSE(s.ok()) << error;
    EXPECT_EQ(s.error().str(), "pcap filter \"x\": " + error);
  }
}

TEST(PcapFilter, DescribesInstructionsLikeTcpdump) {
  EXPECT_EQ(describe(BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12), 0), "ldh [12]");
  EXPECT_EQ(describe(BPF_STMT(BPF_LD | BPF_B | BPF_IND, 26), 0), "ldb [x + 26]");
  EXPECT_EQ(describe(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_VLAN_TAG)), 0),
            "ld [vlan_tci]");
  EXPECT_EQ(describe(BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14), 0), "ldxb 4*([14]&0xf)");
  EXPECT_EQ(describe(BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0), 0), "ld #pktlen");
  EXPECT_EQ(describe(BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 3), 0), "ldx M[3]");
  EXPECT_EQ(describe(BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x1fff), 0), "and #0x1fff");
  EXPECT_EQ(describe(BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 2), 0), "rsh #2");
  EXPECT_EQ(describe(BPF_STMT(BPF_ALU | BPF_SUB | BPF_X, 0), 0), "sub x");
  EXPECT_EQ(describe(BPF_STMT(BPF_ALU | BPF_NEG, 0), 0), "neg");
  EXPECT_EQ(describe(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x800, 0, 9), 1), "jeq #0x800 jt 2 jf 11");
  EXPECT_EQ(describe(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_X, 0, 1, 0), 4), "jset x jt 6 jf 5");
  EXPECT_EQ(describe(BPF_STMT(BPF_JMP | BPF_JA, 3), 4), "ja 8");
  EXPECT_EQ(describe(BPF_STMT(BPF_RET | BPF_K, 65535), 0), "ret #65535");
  EXPECT_EQ(describe(BPF_STMT(BPF_RET | BPF_A, 0), 0), "ret a");
  EXPECT_EQ(describe(BPF_STMT(BPF_MISC | BPF_TAX, 0), 0), "tax");
  EXPECT_EQ(cbpf_listing({BPF_STMT(BPF_MISC | BPF_TXA, 0), BPF_STMT(BPF_RET | BPF_A, 0)}),
            "(000) txa\n(001) ret a\n");
}

// The interpreter's own checks catch what a broken translation would do.
TEST(PcapFilter, InterpreterRefusesOutOfBoundsReads) {
  Assembler a;
  a.ldx(Size::U32, R2, R1, offsetof(__sk_buff, data));
  a.ldx(Size::U8, R0, R2, 20);  // no bounds check
  a.exit();
  auto prog = a.assemble();
  ASSERT_TRUE(prog.ok()) << prog.error().str();
  std::vector<uint8_t> pkt(20);
  auto r = ebpf_interp::run(prog->insns, {pkt, 20});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().str().find("outside [data, data_end)"), std::string::npos) << r.error().str();
  pkt.resize(21);
  EXPECT_TRUE(ebpf_interp::run(prog->insns, {pkt, 21}).ok());
}

}  // namespace
}  // namespace weir::polprog
