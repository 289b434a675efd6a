// The node agent: reads desired state from a datastore, programs the BPF maps, attaches the
// TC programs, keeps them in sync and expires conntrack.
#pragma once

#include <memory>
#include <string>

#include "bpf/features.h"

namespace weir::agent {

struct AgentOptions {
  std::string pin_root = "/sys/fs/bpf/weir";
  std::string datastore;         // "dir:PATH" or "etcd:http://HOST:PORT[,...]"
  std::string etcd_prefix = "/weir/";  // the key prefix of an etcd datastore
  std::string node;              // this node's name (WorkloadEndpoint spec.node)
  std::string bpffs = "/sys/fs/bpf";
  std::string state_dir = "/run/weir/weir";  // files beside the pins (policy dump info)
  // TC attach mode: "auto" (tcx when the kernel has it, else clsact), "tcx" or "clsact".
  // "clsact" on a tcx kernel runs the path Debian 12's 6.1 kernel takes.
  std::string tc_mode = "auto";
  // "HOST:PORT" (IPv4) to serve Prometheus metrics at /metrics (agent/metrics.h); "" = none.
  std::string metrics_listen;
  std::string version;  // weir_build_info's label (the CLI's version)
  // Flow records (docs/observe.md): how many the agent keeps (0: none, and no flow events from
  // the programs), the events each CPU may send per second, and the socket `weir observe` reads.
  size_t flow_records = 4096;
  uint32_t flow_rate = 1000;
  std::string observe_socket;  // "" : <state_dir>/observe.sock
};

// Runs until SIGTERM or SIGINT; returns the process exit code. Programs and maps stay in the
// kernel when it returns, so the node keeps forwarding (a restart adopts them).
// `probe` is the kernel feature probe (tests may pass a fake one).
int run_agent(const AgentOptions& opts, bpf::FeatureProbe& probe);

}  // namespace weir::agent
