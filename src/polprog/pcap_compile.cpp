// The libpcap side of pcap filters (cbpf.h): compiling expressions, running libpcap's
// interpreter. The only file of weir that includes <pcap/pcap.h> (see cbpf.h for why).
#include <pcap/pcap.h>

#include <memory>
#include <string>
#include <vector>

#include "polprog/cbpf.h"
#include "util/result.h"

namespace weir::polprog {

static_assert(kPcapLinkType == DLT_EN10MB);
static_assert(sizeof(CbpfInsn) == sizeof(struct bpf_insn));

namespace {

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};
struct ProgramFreer {
  void operator()(bpf_program* p) const { pcap_freecode(p); }
};

}  // namespace

Result<std::vector<CbpfInsn>> compile_pcap(const std::string& expr) {
  std::unique_ptr<pcap_t, PcapCloser> pcap(pcap_open_dead(kPcapLinkType, kPcapSnapLen));
  if (!pcap) return make_error("{}: pcap_open_dead failed", pcap_filter_context(expr));
  bpf_program code{};
  if (pcap_compile(pcap.get(), &code, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
    return make_error("{}: {}", pcap_filter_context(expr), pcap_geterr(pcap.get()));
  std::unique_ptr<bpf_program, ProgramFreer> owned(&code);
  std::vector<CbpfInsn> out;
  out.reserve(code.bf_len);
  for (const bpf_insn& i : std::span(code.bf_insns, code.bf_len))
    out.push_back(CbpfInsn{i.code, i.jt, i.jf, i.k});
  return out;
}

uint32_t pcap_bpf_filter(const std::vector<CbpfInsn>& prog, std::span<const uint8_t> pkt,
                         uint32_t wirelen) {
  std::vector<bpf_insn> insns;
  insns.reserve(prog.size());
  for (const CbpfInsn& i : prog) insns.push_back(bpf_insn{i.code, i.jt, i.jf, i.k});
  return bpf_filter(insns.data(), pkt.data(), wirelen, static_cast<u_int>(pkt.size()));
}

}  // namespace weir::polprog
