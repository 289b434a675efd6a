// `weir agent`: registration of the subcommand.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>

#include "agent/agent.h"
#include "cli/commands.h"
#include "dataplane/policy_info.h"
#include "cli/version.h"

namespace weir::cli {

void add_agent_command(CLI::App& app, GlobalOptions& g, int& rc) {
  auto* cmd = app.add_subcommand("agent", "run the node agent (until SIGTERM)");
  auto opts = std::make_shared<agent::AgentOptions>();
  cmd->add_option("--datastore", opts->datastore,
                  "where desired state is read: dir:PATH, or etcd:http://HOST:PORT[,http://...] "
                  "(the members of an etcd v3 cluster)")
      ->required();
  cmd->add_option("--etcd-prefix", opts->etcd_prefix,
                  "the key prefix of the resources in etcd")
      ->capture_default_str();
  cmd->add_option("--node", opts->node, "this node's name (default: the hostname)");
  cmd->add_option("--bpffs", opts->bpffs, "bpffs mount point (mounted when absent)")
      ->capture_default_str();
  cmd->add_option("--tc-mode", opts->tc_mode,
                  "TC attach mode: auto (tcx when the kernel has it, else clsact + cls_bpf), tcx "
                  "or clsact")
      ->check(CLI::IsMember({"auto", "tcx", "clsact"}))
      ->capture_default_str();
  cmd->add_option("--metrics-listen", opts->metrics_listen,
                  "serve Prometheus metrics at http://HOST:PORT/metrics (IPv4, e.g. "
                  "127.0.0.1:9091; docs/metrics.md)");
  cmd->add_option("--flow-records", opts->flow_records,
                  "flow records kept for `weir observe` (docs/observe.md); 0: no flow events at all")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  cmd->add_option("--flow-rate", opts->flow_rate,
                  "flow events (new flows, drops) each CPU may send per second; more are counted "
                  "(weir_flow_events_lost_total{reason=\"rate_limited\"}) and not sent")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  cmd->add_option("--observe-socket", opts->observe_socket,
                  "where `weir observe` reads flow records (default: <state dir>/observe.sock)");
  cmd->callback([&g, &rc, opts] {
    opts->pin_root = g.pin_root;
    opts->state_dir = g.effective_state_dir();
    if (opts->observe_socket.empty()) opts->observe_socket = dataplane::observe_socket_path(opts->state_dir);
    opts->version = WEIR_VERSION;
    if (opts->node.empty()) {
      char host[HOST_NAME_MAX + 1] = {};
      gethostname(host, sizeof(host) - 1);
      opts->node = host;
    }
    bpf::KernelFeatureProbe probe;
    rc = agent::run_agent(*opts, probe);
  });
}

}  // namespace weir::cli
