// Kernel feature probing, behind an interface that tests can replace.
#pragma once

#include <string>
#include <vector>

#include "bpf/attach.h"
#include "util/result.h"

namespace weir::bpf {

struct KernelFeatures {
  bool bpf_syscall = false;          // bpf(2) usable (root / CAP_BPF)
  bool btf = false;                  // /sys/kernel/btf/vmlinux readable
  bool lru_hash = false;             // BPF_MAP_TYPE_LRU_HASH
  bool lpm_trie = false;             // BPF_MAP_TYPE_LPM_TRIE
  bool percpu_hash = false;          // BPF_MAP_TYPE_PERCPU_HASH
  bool prog_array = false;           // BPF_MAP_TYPE_PROG_ARRAY
  bool sched_cls = false;            // BPF_PROG_TYPE_SCHED_CLS
  bool test_run = false;             // BPF_PROG_TEST_RUN on a SCHED_CLS program
  bool redirect_peer_helper = false; // bpf_redirect_peer (helper 155) in SCHED_CLS
  bool tcx = false;                  // tcx attach (6.6+); absent -> clsact fallback, not fatal

  // Names of the REQUIRED features that are missing (everything above except tcx), e.g.
  // {"lru_hash", "btf"}. Empty = this kernel can run weir.
  std::vector<std::string> missing() const;
  // The TC attach mode these features imply.
  TcMode tc_mode() const { return tcx ? TcMode::Tcx : TcMode::Clsact; }
  // One line per feature, "name: yes|no", for logs and `weir bpf version`.
  std::string describe() const;
};

class FeatureProbe {
 public:
  virtual ~FeatureProbe() = default;
  // Probe the kernel. An Error only when probing itself is impossible (e.g. no bpf(2) at
  // all would rather be reported as bpf_syscall=false).
  virtual Result<KernelFeatures> probe() = 0;
};

// The real kernel: libbpf_probe_bpf_map_type / _prog_type / _helper, a test run of a trivial
// program, probe_tc_mode(). Attaches nothing.
class KernelFeatureProbe : public FeatureProbe {
 public:
  Result<KernelFeatures> probe() override;
};

// A canned answer, for tests of code that depends on features.
class FixedFeatureProbe : public FeatureProbe {
 public:
  explicit FixedFeatureProbe(KernelFeatures f) : f_(f) {}
  Result<KernelFeatures> probe() override { return f_; }

 private:
  KernelFeatures f_;
};

}  // namespace weir::bpf
