#include "bpf/features.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/fd.h"

namespace weir::bpf {

namespace {
constexpr int kBpfFuncRedirectPeer = 155;  // BPF_FUNC_redirect_peer

struct Named {
  const char* name;
  bool KernelFeatures::*field;
  bool required;
};
constexpr Named kFeatures[] = {
    {"bpf_syscall", &KernelFeatures::bpf_syscall, true},
    {"btf", &KernelFeatures::btf, true},
    {"lru_hash", &KernelFeatures::lru_hash, true},
    {"lpm_trie", &KernelFeatures::lpm_trie, true},
    {"percpu_hash", &KernelFeatures::percpu_hash, true},
    {"prog_array", &KernelFeatures::prog_array, true},
    {"sched_cls", &KernelFeatures::sched_cls, true},
    {"test_run", &KernelFeatures::test_run, true},
    {"redirect_peer_helper", &KernelFeatures::redirect_peer_helper, true},
    {"tcx", &KernelFeatures::tcx, false},
};

bool probe_map(enum bpf_map_type t) { return libbpf_probe_bpf_map_type(t, nullptr) == 1; }
}  // namespace

std::vector<std::string> KernelFeatures::missing() const {
  std::vector<std::string> out;
  for (const auto& f : kFeatures)
    if (f.required && !(this->*f.field)) out.emplace_back(f.name);
  return out;
}

std::string KernelFeatures::describe() const {
  std::string s;
  for (const auto& f : kFeatures)
    s += fmt::format("{}: {}{}\n", f.name, (this->*f.field) ? "yes" : "no",
                     f.required ? "" : " (optional)");
  return s;
}

Result<KernelFeatures> KernelFeatureProbe::probe() {
  KernelFeatures f;
  // bpf(2) usable: a trivial program load (also the sched_cls probe below).
  struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  int pfd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weir_feat", "GPL", insns, 2, nullptr);
  if (pfd < 0 && (errno == EPERM || errno == ENOSYS)) {
    spdlog::warn("bpf(2) not usable ({}): weir needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON", std::strerror(errno));
    std::ifstream btf("/sys/kernel/btf/vmlinux");
    f.btf = btf.good();
    return f;
  }
  Fd prog(pfd);
  f.bpf_syscall = true;
  f.sched_cls = pfd >= 0 || libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SCHED_CLS, nullptr) == 1;
  {
    std::ifstream btf("/sys/kernel/btf/vmlinux", std::ios::binary);
    char c;
    f.btf = btf.good() && static_cast<bool>(btf.read(&c, 1));
  }
  f.lru_hash = probe_map(BPF_MAP_TYPE_LRU_HASH);
  f.lpm_trie = probe_map(BPF_MAP_TYPE_LPM_TRIE);
  f.percpu_hash = probe_map(BPF_MAP_TYPE_PERCPU_HASH);
  f.prog_array = probe_map(BPF_MAP_TYPE_PROG_ARRAY);
  f.redirect_peer_helper =
      libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, static_cast<enum bpf_func_id>(kBpfFuncRedirectPeer), nullptr) == 1;
  if (prog.valid()) {
    unsigned char pkt[64] = {};
    LIBBPF_OPTS(bpf_test_run_opts, topts);
    topts.data_in = pkt;
    topts.data_size_in = sizeof(pkt);
    topts.repeat = 1;
    f.test_run = bpf_prog_test_run_opts(prog.get(), &topts) == 0;
  }
  auto mode = probe_tc_mode();
  if (!mode) return mode.error().wrap("probing kernel features");
  f.tcx = *mode == TcMode::Tcx;
  return f;
}

}  // namespace weir::bpf
