#include "calc/doctor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <sstream>

namespace weir::calc::doctor {

std::string to_string(Level l) {
  switch (l) {
    case Level::Ok: return "OK";
    case Level::Warn: return "WARN";
    case Level::Fail: return "FAIL";
  }
  return "?";
}

namespace {

Check ok(std::string name, std::string found) { return {std::move(name), Level::Ok, std::move(found), ""}; }
Check warn(std::string name, std::string found, std::string fix) {
  return {std::move(name), Level::Warn, std::move(found), std::move(fix)};
}
Check fail(std::string name, std::string found, std::string fix) {
  return {std::move(name), Level::Fail, std::move(found), std::move(fix)};
}

Check bpffs(const Facts& f) {
  if (f.bpffs_mounted) return ok("bpffs", fmt::format("bpffs mounted at {}", f.bpffs_path));
  return fail("bpffs", fmt::format("no bpffs at {}: pinned maps and links cannot survive an agent restart", f.bpffs_path),
              fmt::format("mount -t bpf bpf {} (the agent mounts it when it starts)", f.bpffs_path));
}

Check kernel(const Facts& f) {
  if (!f.missing_features.empty())
    return fail("kernel", fmt::format("the kernel lacks {}", fmt::join(f.missing_features, ", ")),
                "run weir on a kernel with BPF, BTF and these features (docs/kernels.md: 6.1 or later)");
  return ok("kernel", fmt::format("every required BPF feature present; TC attach by {}",
                                  f.kernel_has_tcx ? "tcx" : "clsact (no tcx: kernel before 6.6)"));
}

Check agent(const Facts& f) {
  if (!f.agent) return fail("agent", "no agent status file: the agent never ran with this pin root",
                            "start `weir agent` (with the same --pin-root)");
  const AgentStatus& a = *f.agent;
  if (!a.alive)
    return fail("agent", fmt::format("agent pid {} is not running (last status {:.0f} s ago)", a.pid, a.heartbeat_age_s),
                "restart the agent; programs and maps stayed in place, it adopts them");
  if (a.heartbeat_age_s > 3 * a.heartbeat_period_s + 5)
    return fail("agent", fmt::format("agent pid {} runs but wrote no status for {:.0f} s (every {:.0f} s expected): stuck",
                                     a.pid, a.heartbeat_age_s, a.heartbeat_period_s),
                "look at the agent's log; restart it");
  if (a.last_success_age_s < 0)
    return fail("agent", fmt::format("agent pid {} runs but never applied the datastore (last sync: {})", a.pid,
                                     a.last_sync_result.empty() ? "none" : a.last_sync_result),
                "fix the resources its log names as invalid");
  if (a.last_sync_result == "rejected")
    return warn("agent", fmt::format("agent pid {} runs; its last sync was rejected (invalid input), the state of "
                                     "{:.0f} s ago stays applied", a.pid, a.last_success_age_s),
                "fix the resources its log names as invalid");
  return ok("agent", fmt::format("agent pid {} running, last sync {} ({:.0f} s ago)", a.pid, a.last_sync_result,
                                 a.last_success_age_s));
}

// Every interface weir manages carries exactly one weir program per hook, the current agent's,
// and nothing else (the stale-filter incident: two generations of a CNI's program on a hook).
std::vector<Check> programs(const Facts& f) {
  std::vector<std::string> stale, foreign, missing, gone, mode;
  for (const auto& itf : f.interfaces) {
    if (!itf.exists) {
      gone.push_back(itf.name);
      continue;
    }
    // The hooks weir attaches to on this interface: both on a workload's, ingress only on the
    // underlay (weir_from_ul).
    std::vector<std::string> hooks;
    for (const auto& [hook, id] : itf.expected_ids) hooks.push_back(hook);
    if (hooks.empty()) hooks = {"ingress", "egress"};
    for (const std::string& hook : hooks) {
      auto it = itf.hooks.find(hook);
      std::vector<HookProgram> progs = it == itf.hooks.end() ? std::vector<HookProgram>{} : it->second;
      size_t weirs = 0;
      for (const auto& p : progs) {
        if (!p.weir) {
          foreign.push_back(fmt::format("{} {}: {} (id {}, {})", itf.name, hook, p.name, p.id, p.mode));
          continue;
        }
        weirs++;
        auto want = itf.expected_ids.find(hook);
        if (want != itf.expected_ids.end() && want->second != 0 && want->second != p.id)
          stale.push_back(fmt::format("{} {}: {} id {} (the agent's is id {})", itf.name, hook, p.name, p.id, want->second));
        if (f.agent && !f.agent->tc_mode.empty() && p.mode != f.agent->tc_mode)
          mode.push_back(fmt::format("{} {}: {} by {} (the agent attaches by {})", itf.name, hook, p.name, p.mode,
                                     f.agent->tc_mode));
      }
      if (weirs == 0) missing.push_back(fmt::format("{} {}", itf.name, hook));
      if (weirs > 1) stale.push_back(fmt::format("{} {}: {} weir programs", itf.name, hook, weirs));
    }
  }
  std::vector<Check> out;
  size_t n = f.interfaces.size() - gone.size();
  if (!stale.empty() || !missing.empty()) {
    std::string found;
    if (!stale.empty()) found += fmt::format("stale generation: {}", fmt::join(stale, "; "));
    if (!missing.empty()) found += fmt::format("{}no weir program: {}", found.empty() ? "" : "; ", fmt::join(missing, "; "));
    out.push_back(fail("programs", found,
                       "restart the agent (it re-attaches its programs and removes other weir programs); "
                       "`weir bpf cleanup` removes every weir program of a pin root"));
  } else {
    out.push_back(ok("programs", fmt::format("{} interfaces, one current weir program on each hook", n)));
  }
  if (!foreign.empty()) {
    out.push_back(warn("foreign", fmt::format("programs weir did not attach: {}", fmt::join(foreign, "; ")),
                       "find their owner (`bpftool net show`); on tcx they run in chain order with weir's, "
                       "on clsact at their own priority, and may drop or redirect before weir sees the packet"));
  } else {
    out.push_back(ok("foreign", "nothing else on the hooks of weir's interfaces"));
  }
  if (!mode.empty()) {
    out.push_back(fail("attach-mode", fmt::format("mixed attach modes: {}", fmt::join(mode, "; ")),
                       "`weir bpf cleanup`, then restart the agent: it attaches every interface one way"));
  } else {
    out.push_back(ok("attach-mode", fmt::format("every hook attached by {}",
                                                f.agent && !f.agent->tc_mode.empty() ? f.agent->tc_mode : "the same mode")));
  }
  if (!gone.empty())
    out.push_back(warn("interfaces", fmt::format("ifstate names interfaces that are gone: {}", fmt::join(gone, ", ")),
                       "the agent removes them at its next sync; if it runs, check that their WorkloadEndpoints were deleted"));
  return out;
}

Check xdp(const Facts& f) {
  std::vector<std::string> generic;
  for (const auto& itf : f.interfaces)
    if (itf.xdp_mode == "generic") generic.push_back(itf.name);
  if (!generic.empty())
    return warn("xdp", fmt::format("XDP in generic (skb) mode on {}: it runs after the skb is built, most of XDP's "
                                   "speed is lost", fmt::join(generic, ", ")),
                "attach in native mode (a driver with XDP support), or detach it");
  return ok("xdp", "no XDP program in generic mode on weir's interfaces");
}

Check kube_proxy(const Facts& f) {
  if (f.kube_proxy_chains.empty() && f.ipvs_services == 0) return ok("kube-proxy", "no KUBE-* chains, no IPVS services");
  std::string found;
  if (!f.kube_proxy_chains.empty())
    found = fmt::format("kube-proxy chains: {}", fmt::join(f.kube_proxy_chains, ", "));
  if (f.ipvs_services)
    found += fmt::format("{}{} IPVS virtual services", found.empty() ? "" : "; ", f.ipvs_services);
  return fail("kube-proxy", found + ": kube-proxy's rules NAT service traffic before or after weir does",
              "stop kube-proxy and remove its rules (`kube-proxy --cleanup`, or delete the KUBE-* chains; "
              "`ipvsadm --clear`)");
}

Check tunnel(const Facts& f) {
  if (!f.agent) return ok("tunnel", "no agent status: nothing to compare");
  const AgentStatus& a = *f.agent;
  const bool map_on = f.tunnel_map_enabled.value_or(false);
  if (a.vxlan_enabled && !map_on)
    return fail("tunnel", "vxlanEnabled is set but weir's programs do not encapsulate (weir_tunnel1 is off)",
                "look at the agent's log for the tunnel (an underlay interface it could not find?)");
  if (!a.vxlan_enabled && map_on)
    return fail("tunnel", "vxlanEnabled is off but weir's programs still encapsulate (weir_tunnel1 is on)",
                "restart the agent (it switches the tunnel off at its first sync)");
  if (a.vxlan_enabled) {
    for (const auto& itf : f.interfaces) {
      if (itf.name != a.underlay) continue;
      auto it = itf.hooks.find("ingress");
      bool found = false;
      if (it != itf.hooks.end())
        for (const auto& p : it->second) found = found || p.name == "weir_from_ul";
      if (!found)
        return fail("tunnel", fmt::format("vxlanEnabled, but no weir_from_ul on {}'s ingress: VXLAN from other nodes "
                                          "is not decapsulated", a.underlay),
                    "restart the agent");
    }
    return ok("tunnel", fmt::format("VXLAN on, encapsulating, weir_from_ul on {}", a.underlay));
  }
  return ok("tunnel", "routed mode (vxlanEnabled off), no encapsulation");
}

Check conntrack(const Facts& f) {
  if (f.ct_capacity == 0) return warn("conntrack", "the conntrack map could not be read", "check the pin root");
  const uint32_t warn_at = f.agent ? f.agent->conntrack_warn_percent : 90;
  const double pct = 100.0 * static_cast<double>(f.ct_entries) / static_cast<double>(f.ct_capacity);
  std::string found = fmt::format("{} of {} entries ({:.1f}%)", f.ct_entries, f.ct_capacity, pct);
  if (pct >= warn_at)
    return warn("conntrack", found + fmt::format(", at or above the warning level {}%: new flows may evict idle ones", warn_at),
                "raise DataplaneConfig mapSizes.conntrack (takes effect after `weir bpf cleanup` and a restart), "
                "or find the flood (`weir bpf conntrack dump`)");
  return ok("conntrack", found);
}

Check map_sizes(const Facts& f) {
  std::vector<std::string> diff;
  for (const auto& m : f.map_sizes)
    if (m.pinned != m.configured) diff.push_back(fmt::format("{} pinned {} configured {}", m.name, m.pinned, m.configured));
  if (!diff.empty())
    return warn("map-sizes", fmt::format("pinned maps keep their old size: {}", fmt::join(diff, "; ")),
                "`weir bpf cleanup` then restart the agent to recreate them at the configured size (drops tracked flows)");
  return ok("map-sizes", fmt::format("{} pinned maps at their configured size", f.map_sizes.size()));
}

Check vxlan_port(const Facts& f) {
  if (!f.vxlan_probe) return ok("vxlan-port", "VXLAN off on this node: no port to probe");
  const VxlanProbe& p = *f.vxlan_probe;
  if (!p.error.empty())
    return fail("vxlan-port", fmt::format("the probe of UDP {} could not run: {}", p.port, p.error),
                "run `weir doctor` in the node's network namespace, where its underlay address is");
  if (p.peers.empty()) return ok("vxlan-port", "no other node to probe (weir_vteps1 is empty)");
  std::vector<std::string> silent;
  double slowest = 0;
  for (const auto& peer : p.peers) {
    if (!peer.answered)
      silent.push_back(peer.addr);
    else
      slowest = std::max(slowest, peer.rtt_ms);
  }
  if (!silent.empty())
    return fail("vxlan-port",
                fmt::format("no answer on UDP {} from {} of {} other nodes within {:.0f} ms: {}", p.port, silent.size(),
                            p.peers.size(), p.timeout_ms, fmt::join(silent, ", ")),
                fmt::format("open UDP {} between the nodes (firewalls, security groups); on each node named, check that "
                            "weir's agent runs with weir_from_ul on its underlay (`weir doctor` there) and the same "
                            "vxlanPort and vxlanVNI",
                            p.port));
  return ok("vxlan-port", fmt::format("UDP {}: the {} other nodes answered (slowest {:.1f} ms)", p.port,
                                      p.peers.size(), slowest));
}

Check verifier(const Facts& f) {
  if (f.agent_log.empty()) return ok("verifier", "no agent log given (--agent-log): not checked");
  if (!f.verifier_failures.empty())
    return fail("verifier",
                fmt::format("the kernel refused a program in the agent's last run ({}): {}", f.agent_log,
                            fmt::join(f.verifier_failures, " | ")),
                "the verifier's log in the agent's log says why; an agent without CAP_BPF, CAP_NET_ADMIN and "
                "CAP_PERFMON (or CAP_SYS_ADMIN) is refused: give them; otherwise check the kernel "
                "(docs/kernels.md) and report it");
  return ok("verifier", fmt::format("no program refused in the agent's last run ({})", f.agent_log));
}

}  // namespace

std::vector<Check> evaluate(const Facts& f) {
  std::vector<Check> out{bpffs(f), kernel(f), agent(f)};
  for (auto& c : programs(f)) out.push_back(std::move(c));
  out.push_back(xdp(f));
  out.push_back(kube_proxy(f));
  out.push_back(tunnel(f));
  out.push_back(vxlan_port(f));
  out.push_back(conntrack(f));
  out.push_back(map_sizes(f));
  out.push_back(verifier(f));
  return out;
}

Level worst(const std::vector<Check>& checks) {
  Level w = Level::Ok;
  for (const auto& c : checks) w = std::max(w, c.level);
  return w;
}

std::vector<std::string> verifier_failures_in(const std::string& log, size_t max) {
  static const char* const kMarks[] = {"BPF program load failed", "loading policy program", "loading log filter program",
                                       "loading BPF programs:"};
  std::vector<std::string> out;
  size_t start = log.rfind(kAgentStartMark);
  start = start == std::string::npos ? 0 : log.rfind('\n', start) + 1;  // npos + 1 == 0
  std::istringstream in(log.substr(start));
  std::string line;
  while (std::getline(in, line) && out.size() < max)
    for (const char* m : kMarks)
      if (line.find(m) != std::string::npos) {
        out.push_back(line.size() > 200 ? line.substr(0, 200) + "..." : line);
        break;
      }
  return out;
}

}  // namespace weir::calc::doctor
