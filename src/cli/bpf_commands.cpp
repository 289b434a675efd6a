// `weir bpf ...`: inspection and repair of weir's kernel state, read straight from the pinned
// maps, so every command works while the agent is down. Formatting lives in format.cpp.
#include <net/if.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "bpf/attach.h"
#include "bpf/bpffs.h"
#include "bpf/netlink.h"
#include "bpf/tracefs.h"
#include "calc/tracelog.h"
#include "cli/bpf_ops.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/version.h"
#include "maps/decode.h"
#include "maps/weir_maps.h"

namespace weir::cli {

// ------------------------------------------------------------------ operations (bpf_ops.h)

uint64_t monotonic_now_ns() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Result<std::vector<NatFrontend>> read_nat(maps::WeirMaps& m) {
  auto fes = m.nat_fe.dump();
  if (!fes) return fes.error();
  auto bes = m.nat_be.dump();
  if (!bes) return bes.error();
  std::map<uint32_t, std::vector<NatBackend>> by_svc;
  for (const auto& [k, v] : *bes) by_svc[k.svc_id].push_back({k.ordinal, v.addr, v.port});
  std::vector<NatFrontend> out;
  for (const auto& [k, v] : *fes) {
    NatFrontend fe;
    fe.key = k;
    fe.val = v;
    auto it = by_svc.find(v.svc_id);
    if (it != by_svc.end()) fe.backends = it->second;
    out.push_back(std::move(fe));
  }
  return out;
}

Result<std::vector<CtEntry>> read_conntrack(maps::WeirMaps& m) {
  auto d = m.ct.dump();
  if (!d) return d.error();
  std::vector<CtEntry> out;
  out.reserve(d->size());
  for (const auto& [k, v] : *d) out.push_back({k, v});
  return out;
}

Result<CtStatsReport> read_ct_stats(maps::WeirMaps& m) {
  CtStatsReport r;
  r.map_name = m.ct.name();
  r.max_entries = m.ct.info().max_entries;
  // Count first, then read the statistics: `created` then covers every entry counted.
  auto n = m.ct.count();
  if (!n) return n.error().wrap("counting conntrack entries");
  r.entries = *n;
  for (__u32 idx : {__u32{WEIR_CT_STATS_DATAPATH}, __u32{WEIR_CT_STATS_AGENT}}) {
    auto v = m.ct_stats.lookup(idx);
    if (!v) return v.error();
    if (!*v) return make_error("map {}: index {} missing", m.ct_stats.name(), idx);
    (idx == WEIR_CT_STATS_DATAPATH ? r.datapath : r.agent) = maps::sum_ct_stats(**v);
  }
  auto cs = m.counters.dump();
  if (!cs) return cs.error();
  for (const auto& [k, per_cpu] : *cs)
    for (const auto& v : per_cpu) r.dropped_ct_create += v.c[WEIR_CNT_DROP_CT_CREATE];
  return r;
}

namespace {
std::string ifname_for(uint32_t ifindex, const std::map<uint32_t, weir_ifstate_val>& ifstate) {
  auto it = ifstate.find(ifindex);
  if (it != ifstate.end()) return maps::ifstate_name(it->second);
  auto l = bpf::link_by_index(static_cast<int>(ifindex));
  if (l) return l->name;
  return fmt::format("ifindex{}", ifindex);
}
}  // namespace

Result<std::vector<IfaceCounters>> read_counters(maps::WeirMaps& m, const std::string& iface) {
  auto ifs = m.ifstate.dump();
  if (!ifs) return ifs.error();
  std::map<uint32_t, weir_ifstate_val> ifstate(ifs->begin(), ifs->end());
  auto cs = m.counters.dump();
  if (!cs) return cs.error();

  std::optional<uint32_t> only;
  if (!iface.empty()) {
    for (const auto& [idx, v] : ifstate)
      if (maps::ifstate_name(v) == iface) only = idx;
    if (!only) {
      auto l = bpf::link_by_name(iface);
      if (!l)
        return Error{ENODEV, fmt::format("--iface={}: no such interface in weir's ifstate map nor in this "
                                         "network namespace",
                                         iface)};
      only = static_cast<uint32_t>(l->ifindex);
    }
  }

  std::map<uint32_t, IfaceCounters> by_if;
  auto entry = [&](uint32_t idx) -> IfaceCounters& {
    auto& c = by_if[idx];
    c.ifindex = idx;
    return c;
  };
  for (const auto& [k, per_cpu] : *cs) {
    if (only && k.ifindex != *only) continue;
    if (k.hook >= WEIR_HOOK__MAX) continue;
    entry(k.ifindex).hooks[k.hook] = bpf::sum_percpu_u64(per_cpu);
  }
  // A weir-managed interface has TC programs at both hooks even before its first packet.
  for (const auto& [idx, v] : ifstate) {
    if (only && idx != *only) continue;
    auto& c = entry(idx);
    for (uint32_t h : {WEIR_HOOK_INGRESS, WEIR_HOOK_EGRESS})
      if (!c.hooks[h]) c.hooks[h] = weir_counters_val{};
  }
  if (only && by_if.empty())
    return Error{ENOENT, fmt::format("--iface={} (ifindex {}): no weir counters for this interface (weir "
                                     "does not manage it)",
                                     iface, *only)};
  std::vector<IfaceCounters> out;
  for (auto& [idx, c] : by_if) {
    c.ifname = ifname_for(idx, ifstate);
    out.push_back(std::move(c));
  }
  return out;
}

Result<size_t> flush_counters(maps::WeirMaps& m, const std::string& iface) {
  std::optional<uint32_t> only;
  if (!iface.empty()) {
    auto c = read_counters(m, iface);  // resolves the name, same errors as dump
    if (!c) return c.error();
    only = c->empty() ? 0 : c->front().ifindex;
  }
  auto keys = m.counters.dump();
  if (!keys) return keys.error();
  size_t n = 0;
  for (const auto& [k, v] : *keys) {
    if (only && k.ifindex != *only) continue;
    auto st = m.counters.update_all(k, weir_counters_val{}, BPF_ANY);
    if (!st) return st.error();
    n++;
  }
  return n;
}

Result<std::vector<RouteEntry>> read_routes(maps::WeirMaps& m) {
  auto d = m.routes.dump();
  if (!d) return d.error();
  std::vector<RouteEntry> out;
  for (const auto& [k, v] : *d) out.push_back({k, v});
  return out;
}

Result<std::vector<ArpEntry>> read_arp(maps::WeirMaps& m) {
  auto routes = read_routes(m);
  if (!routes) return routes.error();
  std::map<uint32_t, std::vector<std::string>> hops;  // next hop -> routes
  for (const auto& r : *routes)
    if ((r.val.flags & WEIR_RT_F_REMOTE) && r.val.next_hop != 0)
      hops[r.val.next_hop].push_back(
          fmt::format("{}/{}", maps::format_ip(r.key.addr), r.key.prefixlen));
  auto neigh = bpf::list_neighbours_v4();
  if (!neigh) return neigh.error().wrap("reading the kernel's neighbour table");
  std::vector<ArpEntry> out;
  for (auto& [hop, via] : hops) {
    ArpEntry e;
    e.next_hop = hop;
    std::sort(via.begin(), via.end());
    e.routes = via;
    for (const auto& n : *neigh) {
      if (n.addr != hop) continue;
      auto link = bpf::link_by_index(n.ifindex);
      e.present = true;
      e.dev = link ? link->name : fmt::format("ifindex {}", n.ifindex);
      if (link) e.src_mac = link->mac;
      e.dst_mac = n.lladdr;
      e.resolved = n.has_lladdr;
      e.state = bpf::neigh_state_name(n.state);
      break;
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<IfstateEntry>> read_ifstate(maps::WeirMaps& m) {
  auto d = m.ifstate.dump();
  if (!d) return d.error();
  std::vector<IfstateEntry> out;
  for (const auto& [k, v] : *d) out.push_back({k, v});
  return out;
}

Result<std::vector<weir_ipset_key>> read_ipsets(maps::PolicyMaps& m) {
  auto d = m.ipsets.dump();
  if (!d) return d.error();
  auto x = m.ipset_exact.dump();
  if (!x) return x.error();
  std::vector<weir_ipset_key> out;
  out.reserve(d->size() + x->size());
  for (const auto& [k, v] : *d) out.push_back(k);
  for (const auto& [k, v] : *x) out.push_back(ipset_key_of(k));
  return out;
}

Result<VersionInfo> version_info() {
  VersionInfo v;
  v.weir = WEIR_VERSION;
  v.maps_layout = WEIR_MAPS_VERSION;
  v.libbpf = libbpf_version_string();
  struct utsname u {};
  if (uname(&u) == 0) v.kernel = u.release;
  auto mode = bpf::probe_tc_mode();
  if (mode) {
    v.attach_mode = std::string(bpf::to_string(*mode));
  } else {
    v.attach_mode = "unknown (" + mode.error().str() + ")";
  }
  return v;
}

// ------------------------------------------------------------------ CLI wiring

namespace {

struct BpfCliState {
  bool json = false;
  std::string iface;
};

int fail(const std::string& what, const Error& e) {
  std::cerr << "weir bpf " << what << ": " << e.str() << "\n";
  return 1;
}

Result<maps::WeirMaps> open_maps(const GlobalOptions& g) { return maps::WeirMaps::open_pinned(maps::PinLayout{g.pin_root}); }

const std::vector<std::pair<std::string, std::string>>& command_list() {
  static const std::vector<std::pair<std::string, std::string>> cmds = {
      {"arp", "Manipulates arp"},
      {"cleanup", "Removes all weir programs, filters, links and pinned maps"},
      {"conntrack", "Manipulates connection tracking"},
      {"counters", "Show and reset counters"},
      {"help", "Help about any command"},
      {"ifstate", "Manipulates ifstate"},
      {"ipsets", "Manipulates IP sets"},
      {"nat", "Manipulates network address translation (nat)"},
      {"policy", "Dump policy attached to interface"},
      {"profiling", "Show and reset the programs' runtime profile (bpfProfiling)"},
      {"routes", "Manipulates routes"},
      {"trace", "Runs a packet through weir's programs, without side effects, and prints its path"},
      {"tracelog", "Prints the BPF debug log (bpfLogLevel) from the kernel trace buffer"},
      {"version", "Prints the version and exits"},
  };
  return cmds;
}

std::string describe(const std::string& name) {
  for (const auto& [n, d] : command_list())
    if (n == name) return d;
  return "";
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

// The body of every dump: the maps `m` opened (else the error), read, printed as JSON or as
// text. `what` names the command in errors ("nat dump"). Returns the exit code.
template <class Maps, class Read, class ToJson, class ToText>
int dump(const char* what, Result<Maps> m, bool json, Read read, ToJson to_json, ToText to_text) {
  if (!m) return fail(what, m.error());
  auto r = read(*m);
  if (!r) return fail(what, r.error());
  if (json)
    print_json(to_json(*r));
  else
    std::cout << to_text(*r);
  return 0;
}

// A `<name>` subcommand (described by command_list()) that needs a subcommand.
CLI::App* add_group(CLI::App* bpf, const std::string& name) {
  CLI::App* group = bpf->add_subcommand(name, describe(name));
  group->require_subcommand(1);
  return group;
}

void add_nat(CLI::App* bpf, GlobalOptions& g, int& rc, const std::shared_ptr<BpfCliState>& st) {
  CLI::App* nat_dump = add_group(bpf, "nat")->add_subcommand("dump", "dump the NAT frontends and their backends");
  nat_dump->add_flag("--json", st->json, "JSON output");
  nat_dump->callback([&g, &rc, st] {
    rc = dump("nat dump", open_maps(g), st->json, read_nat, nat_dump_json, format_nat_dump);
  });
}

void add_conntrack(CLI::App* bpf, GlobalOptions& g, int& rc, const std::shared_ptr<BpfCliState>& st) {
  CLI::App* ct = add_group(bpf, "conntrack");
  CLI::App* ct_dump = ct->add_subcommand("dump", "dump the conntrack table (a NAT flow's two entries as one line)");
  ct_dump->add_flag("--json", st->json, "JSON output");
  ct_dump->callback([&g, &rc, st] {
    uint64_t now = monotonic_now_ns();
    rc = dump("conntrack dump", open_maps(g), st->json, read_conntrack,
              [now](const auto& e) { return ct_dump_json(e, now); },
              [now](const auto& e) { return format_ct_dump(e, now); });
  });
  CLI::App* ct_stats = ct->add_subcommand(
      "stats", "conntrack occupancy vs capacity, creations, failures, deletions, estimated evictions");
  ct_stats->add_flag("--json", st->json, "JSON output");
  ct_stats->callback([&g, &rc, st] {
    rc = dump("conntrack stats", open_maps(g), st->json, read_ct_stats, ct_stats_json, format_ct_stats);
  });
}

void add_counters(CLI::App* bpf, GlobalOptions& g, int& rc, const std::shared_ptr<BpfCliState>& st) {
  CLI::App* counters = add_group(bpf, "counters");
  CLI::App* c_dump = counters->add_subcommand("dump", "dump per-interface packet counters");
  c_dump->add_option("--iface", st->iface, "only this interface");
  c_dump->add_flag("--json", st->json, "JSON output");
  c_dump->callback([&g, &rc, st] {
    rc = dump("counters dump", open_maps(g), st->json,
              [st](maps::WeirMaps& m) { return read_counters(m, st->iface); }, counters_json,
              [st](const auto& c) { return format_counters_dump(c, st->iface.empty()); });
  });
  CLI::App* c_flush = counters->add_subcommand("flush", "zero the counters");
  c_flush->add_option("--iface", st->iface, "only this interface");
  c_flush->callback([&g, &rc, st] {
    auto m = open_maps(g);
    if (!m) { rc = fail("counters flush", m.error()); return; }
    auto n = flush_counters(*m, st->iface);
    if (!n) { rc = fail("counters flush", n.error()); return; }
    std::cout << fmt::format("zeroed {} counter set(s)\n", *n);
    rc = 0;
  });
}

// routes, ifstate and ipsets: one dump each.
void add_table_dumps(CLI::App* bpf, GlobalOptions& g, int& rc, const std::shared_ptr<BpfCliState>& st) {
  CLI::App* r_dump = add_group(bpf, "routes")->add_subcommand("dump", "dump the routes map");
  r_dump->add_flag("--json", st->json, "JSON output");
  r_dump->callback([&g, &rc, st] {
    rc = dump("routes dump", open_maps(g), st->json, read_routes, routes_json, format_routes_dump);
  });
  CLI::App* a_dump = add_group(bpf, "arp")->add_subcommand(
      "dump", "dump the neighbour entries of the remote routes' next hops");
  a_dump->add_flag("--json", st->json, "JSON output");
  a_dump->callback([&g, &rc, st] {
    rc = dump("arp dump", open_maps(g), st->json, read_arp, arp_json, format_arp_dump);
  });
  CLI::App* i_dump = add_group(bpf, "ifstate")->add_subcommand("dump", "dump the interface state map");
  i_dump->add_flag("--json", st->json, "JSON output");
  i_dump->callback([&g, &rc, st] {
    rc = dump("ifstate dump", open_maps(g), st->json, read_ifstate, ifstate_json, format_ifstate_dump);
  });
  CLI::App* ips_dump = add_group(bpf, "ipsets")->add_subcommand("dump", "dump the IP sets policy rules refer to");
  ips_dump->add_flag("--json", st->json, "JSON output");
  ips_dump->callback([&g, &rc, st] {
    rc = dump("ipsets dump", maps::PolicyMaps::open_pinned(maps::PinLayout{g.pin_root}), st->json,
              read_ipsets, ipsets_json, format_ipsets_dump);
  });
}

void add_version(CLI::App* bpf, int& rc, const std::shared_ptr<BpfCliState>& st) {
  CLI::App* version = bpf->add_subcommand("version", describe("version"));
  version->add_flag("--json", st->json, "JSON output");
  version->callback([&rc, st] {
    auto v = version_info();
    if (!v) { rc = fail("version", v.error()); return; }
    if (st->json) print_json(version_json(*v));
    else std::cout << format_version(*v);
    rc = 0;
  });
}

// The lines of the trace buffer that come from weir's log variant (docs/bpf-log.md), as
// `bpftool prog tracelog` prints them; --iface keeps one interface's, --json prints each as a
// JSON object (one per line). Without --follow the buffer is read as it is (nothing consumed);
// with it, trace_pipe is streamed until interrupted (what it shows, no other reader sees).
struct TracelogOptions {
  bool follow = false, json = false;
  std::string iface;
};

bool print_trace_line(const std::string& line, const TracelogOptions& o) {
  auto t = calc::parse_trace_line(line);
  if (!t || (!o.iface.empty() && t->iface != o.iface)) return true;
  if (o.json) {
    nlohmann::json j = {{"task", t->task}, {"cpu", t->cpu},         {"time", t->time},
                        {"iface", t->iface}, {"dir", std::string(1, t->dir)}, {"message", t->message}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << line << "\n";
  }
  std::cout.flush();
  return static_cast<bool>(std::cout);
}

// `weir bpf profiling e2e`: weir_prof1 summed over CPUs, one row per interface (named from
// weir_ifstate1, else this network namespace, else "if<N>"), then the entries printed are
// deleted (the seed's command resets the data after dumping it).
Result<std::vector<IfaceProfile>> read_and_reset_profiling(const GlobalOptions& g) {
  const maps::PinLayout layout{g.pin_root};
  auto prof = maps::MapView<maps::MapId::PROF>::open_pinned(layout.map_path(WEIR_MAP_PROF));
  if (!prof) {
    return prof.error().wrap(fmt::format("no weir profile under {} (written by the agent's programs when "
                                         "DataplaneConfig bpfProfiling is Enabled)",
                                         g.pin_root));
  }
  auto entries = prof->dump();
  if (!entries) return entries.error().wrap(WEIR_MAP_PROF);
  std::map<uint32_t, std::string> names;
  if (auto m = open_maps(g)) {
    if (auto ifs = m->ifstate.dump())
      for (const auto& [idx, v] : *ifs) names[idx] = maps::ifstate_name(v);
  }
  std::map<uint32_t, IfaceProfile> by_if;
  for (const auto& [k, per_cpu] : *entries) {
    if (k.hook > WEIR_HOOK_EGRESS || k.kind >= WEIR_PROF__MAX) continue;
    IfaceProfile& p = by_if[k.ifindex];
    p.ifindex = k.ifindex;
    for (const weir_prof_val& v : per_cpu) {
      p.v[k.hook][k.kind].runs += v.runs;
      p.v[k.hook][k.kind].total_ns += v.total_ns;
    }
  }
  std::vector<IfaceProfile> out;
  for (auto& [idx, p] : by_if) {
    if (auto n = names.find(idx); n != names.end()) {
      p.ifname = n->second;
    } else {
      char buf[IF_NAMESIZE] = {};
      p.ifname = ::if_indextoname(idx, buf) != nullptr ? std::string(buf) : fmt::format("if{}", idx);
    }
    out.push_back(std::move(p));
  }
  for (const auto& [k, per_cpu] : *entries) {
    auto r = prof->remove(k);
    if (!r) return r.error().wrap(fmt::format("resetting {}", WEIR_MAP_PROF));
  }
  return out;
}

void add_profiling(CLI::App* bpf, GlobalOptions& g, int& rc, const std::shared_ptr<BpfCliState>& st) {
  CLI::App* e2e = add_group(bpf, "profiling")
                      ->add_subcommand("e2e", "average run time and runs per interface, hook and new/established "
                                              "packet, then reset");
  e2e->add_flag("--json", st->json, "JSON output");
  e2e->callback([&g, &rc, st] {
    auto rows = read_and_reset_profiling(g);
    if (!rows) {
      rc = fail("profiling e2e", rows.error());
      return;
    }
    if (st->json)
      print_json(profiling_json(*rows));
    else
      std::cout << format_profiling(*rows);
    rc = 0;
  });
}

void add_tracelog(CLI::App* bpf, int& rc) {
  auto o = std::make_shared<TracelogOptions>();
  CLI::App* cmd = bpf->add_subcommand("tracelog", describe("tracelog"));
  cmd->add_flag("-f,--follow", o->follow, "stream the log as the programs write it (reads trace_pipe)");
  cmd->add_option("--iface", o->iface, "only the lines of this interface");
  cmd->add_flag("--json", o->json, "one JSON object per line: task, cpu, time, iface, dir, message");
  cmd->callback([&rc, o] {
    if (o->follow) {
      auto st = bpf::follow_trace([&o](const std::string& line) { return print_trace_line(line, *o); });
      rc = st ? 0 : fail("tracelog", st.error());
      return;
    }
    auto text = bpf::read_trace();
    if (!text) { rc = fail("tracelog", text.error()); return; }
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) print_trace_line(line, *o);
    rc = 0;
  });
}

void add_cleanup(CLI::App* bpf, GlobalOptions& g, int& rc) {
  CLI::App* clean = bpf->add_subcommand("cleanup", describe("cleanup"));
  clean->callback([&g, &rc] {
    auto r = cleanup(maps::PinLayout{g.pin_root}, g.effective_state_dir());
    if (!r) { rc = fail("cleanup", r.error()); return; }
    if (r->removed.empty() && r->left.empty()) std::cout << "nothing to clean\n";
    for (const auto& l : r->removed) std::cout << l << "\n";
    for (const auto& l : r->left) std::cout << l << "\n";
    rc = 0;
  });
}

}  // namespace

void add_bpf_commands(CLI::App& app, GlobalOptions& g, int& rc) {
  auto st = std::make_shared<BpfCliState>();
  CLI::App* bpf = app.add_subcommand("bpf", "inspect and repair weir's kernel state (works while the agent is down)");
  bpf->require_subcommand(1);
  add_nat(bpf, g, rc, st);
  add_conntrack(bpf, g, rc, st);
  add_counters(bpf, g, rc, st);
  add_table_dumps(bpf, g, rc, st);
  add_version(bpf, rc, st);
  add_cleanup(bpf, g, rc);
  add_tracelog(bpf, rc);
  add_profiling(bpf, g, rc, st);
  add_trace_command(bpf, g, rc);
  add_policy_commands(bpf, g, rc);
  CLI::App* help = bpf->add_subcommand("help", describe("help"));
  help->callback([&rc] {
    std::cout << format_help(command_list());
    rc = 0;
  });
}

}  // namespace weir::cli
