// Classic BPF (cBPF) programs as libpcap compiles them from tcpdump filter expressions, and
// libpcap's own interpreter to run them: the libpcap half of src/polprog/pcap_filter.h.
//
// This header stays free of kernel and libpcap headers on purpose: <pcap/bpf.h> and
// <linux/bpf.h> both define `struct bpf_insn` (cBPF's and eBPF's), so no translation unit can
// include both. pcap_compile.cpp talks to libpcap; pcap_filter.cpp (the translation to eBPF)
// includes the kernel's headers; CbpfInsn is the type they share.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"

namespace weir::polprog {

// One cBPF instruction, laid out as libpcap's `struct bpf_insn` and the kernel's
// `struct sock_filter`: opcode, jump offsets if true / if false (relative to the next
// instruction), and the 32-bit constant.
struct CbpfInsn {
  uint16_t code = 0;
  uint8_t jt = 0;
  uint8_t jf = 0;
  uint32_t k = 0;

  friend bool operator==(const CbpfInsn&, const CbpfInsn&) = default;
};

// The prefix of every error about a filter expression: `pcap filter "<expr>"`.
inline std::string pcap_filter_context(const std::string& expr) {
  return "pcap filter \"" + expr + "\"";
}

// The link type filter expressions are compiled for (DLT_EN10MB: the packet starts with its
// Ethernet header) and the snapshot length the compiled programs return on a match.
inline constexpr int kPcapLinkType = 1;  // DLT_EN10MB (static_assert in pcap_compile.cpp)
inline constexpr int kPcapSnapLen = 65535;

// Compiles a tcpdump/pcap filter expression as tcpdump would for an Ethernet interface:
// pcap_open_dead(DLT_EN10MB, 65535) + pcap_compile(optimize=1, PCAP_NETMASK_UNKNOWN). The error
// names the expression and carries libpcap's message, e.g.
// `pcap filter "tcp prot 80": can't parse filter expression: syntax error`.
Result<std::vector<CbpfInsn>> compile_pcap(const std::string& expr);

// Runs `prog` with libpcap's interpreter (bpf_filter) on the first `pkt.size()` bytes of a
// packet that was `wirelen` bytes long (`len` in filters): its return value, 0 for no match.
// The reference the tests compare the eBPF translation with.
uint32_t pcap_bpf_filter(const std::vector<CbpfInsn>& prog, std::span<const uint8_t> pkt,
                         uint32_t wirelen);

}  // namespace weir::polprog
