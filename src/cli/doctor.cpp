// `weir doctor`: gathers the facts of calc/doctor.h from the live node (this network namespace,
// the pin root, the state dir) and prints one line per check: OK / WARN / FAIL, what was found
// and the fix. Exit code 1 when any check fails. Read-only: it changes nothing.
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/if_link.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "agent/status.h"
#include "bpf/attach.h"
#include "bpf/bpffs.h"
#include "bpf/features.h"
#include "bpf/map.h"
#include "bpf/netlink.h"
#include "calc/doctor.h"
#include "cli/commands.h"
#include "dataplane/programs.h"
#include "dataplane/vxlan_probe.h"
#include "lab/process.h"
#include "maps/decode.h"
#include "maps/map_table.h"
#include "maps/pin_layout.h"
#include "maps/weir_maps.h"
#include "weir/tunnel.h"

namespace weir::cli {

namespace {

namespace doc = calc::doctor;

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::optional<doc::AgentStatus> agent_facts(const std::string& state_dir,
                                            std::optional<agent::StatusFile>& file) {
  auto st = agent::read_status(state_dir);
  if (!st) return std::nullopt;
  file = *st;
  doc::AgentStatus a;
  a.pid = st->pid;
  a.alive = st->pid > 0 && (::kill(st->pid, 0) == 0 || errno == EPERM);
  a.heartbeat_age_s = now_unix() - st->written_unix;
  a.heartbeat_period_s = st->heartbeat_period_s;
  a.last_sync_result = st->last_sync_result;
  a.last_success_age_s = st->last_success_unix > 0 ? now_unix() - st->last_success_unix : -1;
  a.tc_mode = st->tc_mode;
  a.vxlan_enabled = st->vxlan_enabled;
  a.underlay = st->underlay;
  a.conntrack_warn_percent = st->conntrack_warn_percent;
  return a;
}

std::string xdp_mode(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (bpf_xdp_query(ifindex, 0, &q) != 0) return "";
  switch (q.attach_mode) {
    case XDP_ATTACHED_SKB: return "generic";
    case XDP_ATTACHED_DRV: return "native";
    case XDP_ATTACHED_HW: return "offload";
    case XDP_ATTACHED_MULTI: return "multi";
    default: return "";
  }
}

doc::InterfaceFacts interface_facts(const std::string& name, int ifindex,
                                    const std::map<std::string, uint32_t>& expected) {
  doc::InterfaceFacts itf;
  itf.name = name;
  itf.expected_ids = expected;
  if (ifindex <= 0 || !bpf::link_by_index(ifindex)) {
    itf.exists = false;
    return itf;
  }
  for (bpf::TcDir d : {bpf::TcDir::Ingress, bpf::TcDir::Egress}) {
    auto progs = bpf::tc_list(ifindex, d);
    auto& out = itf.hooks[std::string(bpf::to_string(d))];
    if (!progs) continue;
    for (const auto& p : *progs)
      out.push_back({p.prog_id, p.prog_name, std::string(bpf::to_string(p.mode)), p.is_weir()});
  }
  itf.xdp_mode = xdp_mode(ifindex);
  return itf;
}

// KUBE-* chains in iptables (legacy or nft) and nftables, this namespace's.
std::vector<std::string> kube_proxy_chains() {
  std::set<std::string> chains;
  // A line that starts (after indentation) with `mark` declares a chain, named next:
  // ":KUBE-SERVICES - [0:0]" (iptables-save), "chain KUBE-SERVICES {" (nft).
  auto scan = [&](const std::vector<std::string>& argv, const std::string& mark) {
    auto r = lab::run_process(argv);
    if (!r || !r->status.success()) return;
    std::istringstream in(r->out);
    for (std::string line; std::getline(in, line);) {
      const auto start = line.find_first_not_of(" \t");
      if (start == std::string::npos || line.compare(start, mark.size(), mark) != 0) continue;
      std::string name = line.substr(start + mark.size());
      name = name.substr(0, name.find_first_of(" {\t"));
      if (name.rfind("KUBE-", 0) == 0) chains.insert(name);
    }
  };
  scan({"iptables-save"}, ":");
  scan({"nft", "list", "ruleset"}, "chain ");
  return {chains.begin(), chains.end()};
}

uint64_t ipvs_services() {
  std::ifstream in("/proc/net/ip_vs");
  uint64_t n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("TCP ", 0) == 0 || line.rfind("UDP ", 0) == 0 || line.rfind("SCTP ", 0) == 0) n++;
  return n;
}

// The vxlan-port check's facts: a probe to every node in weir_vteps1, from this node's underlay
// address, answered by their weir_from_ul within a second.
doc::VxlanProbe probe_vxlan(const weir_tunnel_val& tun, maps::VtepsMap& vteps) {
  constexpr std::chrono::milliseconds kTimeout{1000};
  doc::VxlanProbe p;
  p.port = ntohs(tun.port);
  p.timeout_ms = static_cast<double>(kTimeout.count());
  auto nodes = vteps.dump();
  if (!nodes) {
    p.error = nodes.error().wrap(WEIR_MAP_VTEPS).str();
    return p;
  }
  dataplane::VxlanProbeTarget target{tun.underlay_addr, tun.port, tun.vni, {}};
  for (const auto& [addr, flags] : *nodes)
    if ((flags & WEIR_VTEP_F_NODE) != 0) target.peers.push_back(addr);
  auto r = dataplane::probe_vxlan_peers(target, kTimeout);
  if (!r) {
    p.error = r.error().str();
    return p;
  }
  for (const auto& res : *r) {
    char a[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &res.peer, a, sizeof(a));
    p.peers.push_back(doc::VxlanPeer{a, res.answered, res.rtt_ms});
  }
  return p;
}

doc::Facts gather(const GlobalOptions& g, const std::string& bpffs, const std::string& agent_log) {
  doc::Facts f;
  f.bpffs_path = bpffs;
  f.bpffs_mounted = bpf::is_on_bpffs(bpffs);
  bpf::KernelFeatureProbe probe;
  if (auto feats = probe.probe()) {
    f.missing_features = feats->missing();
    f.kernel_has_tcx = feats->tcx;
  } else {
    f.missing_features = {"(probe failed: " + feats.error().str() + ")"};
  }
  std::optional<agent::StatusFile> status;
  f.agent = agent_facts(g.effective_state_dir(), status);
  const maps::PinLayout layout{g.pin_root};
  auto id_of = [&](const char* prog) -> uint32_t {
    if (!status) return 0;
    auto it = status->prog_ids.find(prog);
    return it == status->prog_ids.end() ? 0 : it->second;
  };
  if (auto m = maps::WeirMaps::open_pinned(layout)) {
    if (auto ifs = m->ifstate.dump()) {
      for (const auto& [idx, v] : *ifs)
        f.interfaces.push_back(interface_facts(
            maps::ifstate_name(v), static_cast<int>(idx),
            {{"ingress", id_of("weir_from_wl")}, {"egress", id_of("weir_to_wl")}}));
    }
    if (auto n = m->ct.count()) f.ct_entries = *n;
    f.ct_capacity = m->ct.info().max_entries;
  }
  if (status && !status->underlay.empty()) {
    auto l = bpf::link_by_name(status->underlay);
    f.interfaces.push_back(interface_facts(status->underlay, l ? l->ifindex : 0, {{"ingress", id_of("weir_from_ul")}}));
  }
  if (auto t = maps::TunnelMaps::open_pinned(layout)) {
    if (auto v = t->tunnel.lookup(0); v && *v) {
      const weir_tunnel_val& tun = **v;
      f.tunnel_map_enabled = (tun.flags & WEIR_TUNNEL_F_VXLAN) != 0;
      if (*f.tunnel_map_enabled) f.vxlan_probe = probe_vxlan(tun, t->vteps);
    }
  }
  if (status) {
    for (const auto& spec : maps::kMapSpecs) {
      if (spec.size_field == "fixed") continue;
      auto m = bpf::MapFd::open_pinned(layout.map_path(spec.name));
      if (!m) continue;
      f.map_sizes.push_back({std::string(spec.name), m->info().max_entries,
                             dataplane::configured_size(spec, status->map_sizes)});
    }
  }
  f.kube_proxy_chains = kube_proxy_chains();
  f.ipvs_services = ipvs_services();
  if (!agent_log.empty()) {
    f.agent_log = agent_log;
    std::ifstream in(agent_log);
    if (!in) {
      f.verifier_failures = {"cannot read " + agent_log};
    } else {
      std::stringstream text;
      text << in.rdbuf();
      f.verifier_failures = doc::verifier_failures_in(text.str());
    }
  }
  return f;
}

}  // namespace

void add_doctor_command(CLI::App& app, GlobalOptions& g, int& rc) {
  auto* cmd = app.add_subcommand("doctor", "check this node: bpffs, kernel, agent, programs on every hook, "
                                           "kube-proxy leftovers, tunnel, VXLAN port between nodes, conntrack, map sizes, verifier failures");
  struct Opts {
    bool json = false;
    std::string agent_log;
    std::string bpffs = "/sys/fs/bpf";
  };
  auto o = std::make_shared<Opts>();
  cmd->add_flag("--json", o->json, "one JSON object per check, in an array");
  cmd->add_option("--agent-log", o->agent_log, "the agent's log, searched for verifier failures");
  cmd->add_option("--bpffs", o->bpffs, "the bpffs mount point")->capture_default_str();
  cmd->callback([&g, &rc, o] {
    const auto checks = doc::evaluate(gather(g, o->bpffs, o->agent_log));
    if (o->json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& c : checks)
        j.push_back({{"check", c.name}, {"level", doc::to_string(c.level)}, {"found", c.found}, {"fix", c.fix}});
      std::cout << j.dump(2) << "\n";
    } else {
      for (const auto& c : checks) {
        std::cout << fmt::format("{:<4} {:<12} {}\n", doc::to_string(c.level), c.name, c.found);
        if (!c.fix.empty()) std::cout << fmt::format("{:<17} fix: {}\n", "", c.fix);
      }
    }
    rc = doc::worst(checks) == doc::Level::Fail ? 1 : 0;
  });
}

}  // namespace weir::cli
