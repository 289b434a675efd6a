// `weir bpf policy dump <iface> <ingress|egress|all> [--asm] [--json]`: the policy programs an
// interface runs, as tiers, policies and rules with per-rule packet counts (seed format). The
// structure comes from the agent's info files (dataplane/policy_info.h), the counts from
// weir_rule_cnt1, and which program is live from ifstate and weir_jump1: a disagreement (the
// agent died between installing and recording, or the file is stale) is shown on the Error line.
#include <bpf/bpf.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bpf/map.h"
#include "cli/commands.h"
#include "cli/policy_format.h"
#include "maps/decode.h"
#include "maps/pin_layout.h"
#include "dataplane/policy_info.h"
#include "weir/ifstate.h"
#include "weir/maps.h"
#include "weir/policy.h"

namespace weir::cli {

namespace {

Result<uint32_t> ifindex_of(bpf::Map<__u32, weir_ifstate_val>& ifstate, const std::string& iface) {
  auto all = ifstate.dump();
  if (!all) return all.error();
  for (const auto& [idx, v] : *all) {
    if (maps::ifstate_name(v) == iface) return idx;
  }
  unsigned idx = if_nametoindex(iface.c_str());
  if (idx == 0) {
    return Error{ENODEV, fmt::format("interface \"{}\": no such interface in this network "
                                     "namespace, and weir's ifstate does not know it",
                                     iface)};
  }
  return Error{ENOENT, fmt::format("interface \"{}\" (ifindex {}) is not managed by weir (no "
                                   "ifstate entry)",
                                   iface, idx)};
}

Result<std::map<uint64_t, uint64_t>> rule_counts(const maps::PinLayout& layout) {
  auto m = bpf::PerCpuMap<uint64_t, uint64_t>::open_pinned(layout.map_path(WEIR_MAP_RULE_CNT));
  if (!m) return m.error();
  auto all = m->dump();
  if (!all) return all.error();
  std::map<uint64_t, uint64_t> out;
  for (const auto& [id, per_cpu] : *all) {
    uint64_t sum = 0;
    for (uint64_t v : per_cpu) sum += v;
    out[id] = sum;
  }
  return out;
}

int dump(const GlobalOptions& g, const std::string& iface, const std::string& which, bool with_asm,
         bool json) {
  maps::PinLayout layout{g.pin_root};
  auto ifstate = bpf::Map<__u32, weir_ifstate_val>::open_pinned(layout.map_path(WEIR_MAP_IFSTATE));
  if (!ifstate) {
    std::cerr << fmt::format("weir bpf policy dump: no weir state under {} ({}): the agent may "
                             "not be running or has never run on this node; see `weir "
                             "--pin-root`\n",
                             g.pin_root, ifstate.error().str());
    return 1;
  }
  auto idx = ifindex_of(*ifstate, iface);
  if (!idx) {
    std::cerr << "weir bpf policy dump: " << idx.error().str() << "\n";
    return 1;
  }
  auto st = ifstate->lookup(*idx);
  if (!st || !*st) {
    std::cerr << fmt::format("weir bpf policy dump: interface \"{}\" has no ifstate entry\n", iface);
    return 1;
  }
  auto counts = rule_counts(layout);
  if (!counts) {
    std::cerr << "weir bpf policy dump: rule counters: " << counts.error().str() << "\n";
    return 1;
  }
  auto jump = bpf::MapFd::open_pinned(layout.map_path(WEIR_MAP_JUMP));
  if (!jump) {
    std::cerr << "weir bpf policy dump: jump map: " << jump.error().str() << "\n";
    return 1;
  }

  std::vector<std::string> dirs;
  if (which == "ingress" || which == "all") dirs.emplace_back("ingress");
  if (which == "egress" || which == "all") dirs.emplace_back("egress");
  nlohmann::json out = nlohmann::json::array();
  int rc = 0;
  for (const auto& dir : dirs) {
    uint32_t slot = dir == "ingress" ? (*st)->ingress_slot : (*st)->egress_slot;
    uint32_t live_id = 0;
    std::string jump_error;  // the slot could not be read (not: it is empty)
    if (slot != WEIR_NO_POLICY_SLOT) {
      uint32_t id = 0;
      if (bpf_map_lookup_elem(jump->fd(), &slot, &id) == 0) {
        live_id = id;
      } else if (errno != ENOENT) {
        jump_error = fmt::format("reading jump slot {}: {}", slot, std::strerror(errno));
      }
    }
    auto info = dataplane::read_policy_info(g.effective_state_dir(), iface, dir);
    if (slot == WEIR_NO_POLICY_SLOT) {
      std::string error;
      if (info) error = "an info file exists but the interface runs no policy (stale file)";
      if (json) {
        out.push_back({{"iface", iface}, {"direction", dir},
                       {"hook", dir == "ingress" ? "tc egress" : "tc ingress"},
                       {"policy", nullptr}, {"error", error}});
      } else {
        std::cout << format_no_policy(iface, dir, error);
      }
      continue;
    }
    if (!info) {
      std::string error = fmt::format(
          "jump slot {} (program id {}) runs, but its description is missing: {}", slot, live_id,
          info.error().str());
      if (json) {
        out.push_back({{"iface", iface}, {"direction", dir}, {"error", error}});
      } else {
        std::cout << fmt::format("IfaceName: {}\nHook: {}\nError: {}\nPolicy Info:\n", iface,
                                 dir == "ingress" ? "tc egress" : "tc ingress", error);
      }
      rc = 1;
      continue;
    }
    const std::string error = policy_dump_error(slot, live_id, jump_error, *info);
    if (json) {
      out.push_back(policy_dump_json(*info, *counts, with_asm, error));
    } else {
      std::cout << format_policy_dump(*info, *counts, with_asm, error);
    }
  }
  if (json) std::cout << out.dump(2) << "\n";
  return rc;
}

}  // namespace

void add_policy_commands(CLI::App* bpf, GlobalOptions& g, int& rc) {
  CLI::App* pol = bpf->add_subcommand("policy", "Dump policy attached to interface");
  pol->require_subcommand(1);
  CLI::App* d = pol->add_subcommand("dump", "dump the policy programs of an interface");
  auto iface = std::make_shared<std::string>();
  auto which = std::make_shared<std::string>();
  auto with_asm = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  d->add_option("interface", *iface, "interface name, e.g. the host side of a pod's veth")
      ->required();
  d->add_option("type", *which, "ingress, egress or all")
      ->required()
      ->check(CLI::IsMember({"ingress", "egress", "all"}));
  d->add_flag("--asm", *with_asm, "also print the eBPF instructions");
  d->add_flag("--json", *json, "print JSON");
  d->callback([&g, &rc, iface, which, with_asm, json] {
    rc = dump(g, *iface, *which, *with_asm, *json);
  });
}

}  // namespace weir::cli
