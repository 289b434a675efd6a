// pcap filters translated to eBPF (src/polprog/pcap_filter.h) in the kernel: every expression of
// tests/common/pcap_corpus.h loads as a SCHED_CLS program (the verifier accepts the translation:
// its bounds checks, its stack use, no unreachable code) and, under BPF_PROG_TEST_RUN, agrees
// with libpcap's interpreter on random packets. tests/unit/pcap_filter_test.cpp runs the same
// corpus through an eBPF interpreter, without root. Needs root (CAP_BPF, CAP_NET_ADMIN): a
// missing privilege fails the loads, and the tests with them.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/filter.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "../common/pcap_corpus.h"
#include "polprog/asm.h"
#include "prog_load.h"
#include "polprog/cbpf.h"
#include "polprog/disasm.h"
#include "polprog/pcap_filter.h"
#include "util/fd.h"
#include "util/result.h"

namespace weir::polprog {
namespace {

constexpr int kPacketsPerExpression = 500;

// Loads `prog` as a TC classifier (test::load_sched_cls); the error names `what`.
Result<Fd> load(const Program& prog, const std::string& what) { return test::load_sched_cls(prog, "weir_t_pcap", what); }

// r0 of one run of `prog` on `pkt` (the kernel builds the __sk_buff: len = the packet's size).
Result<uint32_t> run(const Fd& prog, const std::vector<uint8_t>& pkt) { return test::run_once(prog, pkt); }

// Runs `count` random packets (>= 14 bytes: BPF_PROG_TEST_RUN wants an Ethernet header; whole:
// the kernel's len is the packet's size) through the kernel and libpcap.
void compare(const std::string& expr, const std::vector<CbpfInsn>& cbpf, const Program& prog,
             uint32_t seed, int count, int& matched, int& missed) {
  auto fd = load(prog, expr);
  ASSERT_TRUE(fd.ok()) << fd.error().str();
  pcap_corpus::PacketGen gen(seed, 14, false);
  for (int n = 0; n < count; n++) {
    pcap_corpus::Packet pkt = gen.next();
    bool want = pcap_bpf_filter(cbpf, pkt.bytes, pkt.wirelen) != 0;
    auto got = run(*fd, pkt.bytes);
    ASSERT_TRUE(got.ok()) << got.error().str() << " packet of " << pkt.bytes.size() << " bytes:\n"
                          << pcap_corpus::hex(pkt.bytes);
    ASSERT_EQ(*got, want ? 1u : 0u)
        << "filter \"" << expr << "\", packet of " << pkt.bytes.size() << " bytes:\n"
        << pcap_corpus::hex(pkt.bytes) << "\ncBPF:\n" << cbpf_listing(cbpf) << "eBPF:\n"
        << disassemble(prog);
    (want ? matched : missed)++;
  }
}

// One test for the whole corpus (each ctest test of this binary is a process of its own).
TEST(PcapFilterKernel, CorpusLoadsAndAgreesWithLibpcap) {
  const auto& exprs = pcap_corpus::expressions();
  for (size_t i = 0; i < exprs.size(); i++) {
    SCOPED_TRACE(exprs[i]);
    auto cbpf = compile_pcap(exprs[i]);
    ASSERT_TRUE(cbpf.ok()) << cbpf.error().str();
    auto prog = cbpf_filter_program(*cbpf, exprs[i]);
    ASSERT_TRUE(prog.ok()) << prog.error().str();
    int matched = 0, missed = 0;
    compare(exprs[i], *cbpf, *prog, 2000 + static_cast<uint32_t>(i), kPacketsPerExpression,
            matched, missed);
    if (HasFatalFailure()) return;  // the first failing expression says enough (without root: all)
    EXPECT_GT(matched, 0) << "no packet matched";
    EXPECT_GT(missed, 0) << "every packet matched";
  }
}

// Registers and stack other than the defaults: loads, and leaves alone what it promises to
// (else the program returns pcap_corpus::kConventionBroken, which agrees with no verdict).
TEST(PcapFilterKernel, RegisterAndStackConvention) {
  for (const auto& expr : pcap_corpus::convention_expressions()) {
    SCOPED_TRACE(expr);
    auto cbpf = compile_pcap(expr);
    ASSERT_TRUE(cbpf.ok()) << cbpf.error().str();
    auto prog = pcap_corpus::convention_program(*cbpf, expr);
    ASSERT_TRUE(prog.ok()) << prog.error().str();
    int matched = 0, missed = 0;
    compare(expr, *cbpf, *prog, 7, kPacketsPerExpression, matched, missed);
  }
}

// A filter with a constant outcome leaves one exit to a jump the verifier proves never taken;
// loads beyond the offsets the verifier tracks always fail; loads up to its limit (65535) load.
TEST(PcapFilterKernel, ConstantFiltersAndEdgeOffsetsLoad) {
  auto always = compile_pcap("");
  ASSERT_TRUE(always.ok()) << always.error().str();
  const std::vector<std::pair<std::string, std::vector<CbpfInsn>>> cases = {
      {"empty expression", *always},
      {"ret #0", {BPF_STMT(BPF_RET | BPF_K, 0)}},
      {"ldb [70000]", {BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 70000), BPF_STMT(BPF_RET | BPF_K, 1)}},
      {"ld [65531]", {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 65531), BPF_STMT(BPF_RET | BPF_K, 1)}},
      {"ldb [x + 65534]",
       {BPF_STMT(BPF_LD | BPF_B | BPF_IND, 65534), BPF_STMT(BPF_RET | BPF_K, 1)}},
  };
  for (const auto& [name, cbpf] : cases) {
    SCOPED_TRACE(name);
    auto prog = cbpf_filter_program(cbpf, name);
    ASSERT_TRUE(prog.ok()) << prog.error().str();
    int matched = 0, missed = 0;
    compare(name, cbpf, *prog, 5, 20, matched, missed);
  }
}

}  // namespace
}  // namespace weir::polprog
