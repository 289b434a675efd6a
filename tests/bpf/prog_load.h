// Loading an assembled program (polprog::Program) as a TC classifier and running it once with
// BPF_PROG_TEST_RUN: shared by the assembler's and the pcap translator's kernel tests.
#pragma once

#include <bpf/bpf.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "polprog/asm.h"
#include "polprog/disasm.h"
#include "util/fd.h"
#include "util/result.h"

namespace weir::test {

// Loads `prog` (relocated) as BPF_PROG_TYPE_SCHED_CLS named `name`; the error carries the
// verifier log's last 6,000 characters and the disassembly, and names `what`.
inline Result<Fd> load_sched_cls(const polprog::Program& prog, const std::string& name,
                                 const std::string& what) {
  WEIR_TRY(polprog::check_relocated(prog));
  std::string log(1 << 20, '\0');
  bpf_prog_load_opts opts{};
  opts.sz = sizeof(opts);
  opts.log_buf = log.data();
  opts.log_size = static_cast<uint32_t>(log.size());
  opts.log_level = 1;
  int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name.c_str(), "GPL", polprog::as_bpf_insns(prog.insns.data()),
                         prog.insns.size(), &opts);
  if (fd >= 0) return Fd(fd);
  int err = errno;
  log.resize(std::min(log.find('\0'), log.size()));
  if (log.size() > 6000) log = "..." + log.substr(log.size() - 6000);
  return Error{err, fmt::format("bpf_prog_load({}): verifier log:\n{}\nprogram:\n{}", what, log,
                                polprog::disassemble(prog))};
}

// r0 of one run of `prog` on `pkt` (no ctx: the kernel builds the __sk_buff, len = the size).
inline Result<uint32_t> run_once(const Fd& prog, const std::vector<uint8_t>& pkt) {
  std::vector<uint8_t> out(pkt.size() + 256);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = pkt.data();
  opts.data_size_in = static_cast<uint32_t>(pkt.size());
  opts.data_out = out.data();
  opts.data_size_out = static_cast<uint32_t>(out.size());
  opts.repeat = 1;
  int rc = bpf_prog_test_run_opts(prog.get(), &opts);
  if (rc < 0) return sys_error(rc, "bpf_prog_test_run_opts");
  return opts.retval;
}

}  // namespace weir::test
