#include "cli/policy_format.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "calc/policy_ir.h"
#include "model/selector.h"

namespace weir::cli {

namespace {

std::string set_list(const std::vector<uint64_t>& ids) {
  std::string s;
  for (uint64_t id : ids) s += (s.empty() ? "" : ",") + model::format_set_id(id);
  return s;
}

uint64_t count_of(const std::map<uint64_t, uint64_t>& counts, uint64_t id) {
  auto it = counts.find(id);
  return it == counts.end() ? 0 : it->second;
}

}  // namespace

std::string format_policy_dump(const dataplane::PolicyInfo& info,
                               const std::map<uint64_t, uint64_t>& counts, bool with_asm,
                               const std::string& error) {
  std::string out = fmt::format("IfaceName: {}\nHook: {}\nError: {}\n", info.iface, info.hook(), error);
  // The kernel names of the programs (bpftool prog show, bpftool net show), entry first.
  if (!info.program_names.empty()) {
    std::vector<std::string> progs;
    for (size_t i = 0; i < info.program_names.size(); i++)
      progs.push_back(i < info.chunk_slots.size()
                          ? fmt::format("{} (slot {})", info.program_names[i], info.chunk_slots[i])
                          : info.program_names[i]);
    out += fmt::format("Programs: {}\n", fmt::join(progs, ", "));
  }
  out += "Policy Info:\n";
  for (const auto& t : info.tiers) {
    out += fmt::format("// Start of tier {}\n", t.name);
    for (const auto& p : t.policies) {
      out += fmt::format("// Start of policy {}\n", p.name);
      for (const auto& r : p.rules) {
        std::string id = calc::pol::format_rule_id(r.id);
        out += fmt::format("// Start of rule {} rule_id:\"{}\"\n", r.description, id);
        std::string sets;
        if (!r.src_sets.empty()) sets += fmt::format(" src_ip_set_ids:<{}>", set_list(r.src_sets));
        if (!r.dst_sets.empty()) sets += fmt::format(" dst_ip_set_ids:<{}>", set_list(r.dst_sets));
        if (!r.dst_named_port_sets.empty()) {
          sets += fmt::format(" dst_named_port_ip_set_ids:<{}>", set_list(r.dst_named_port_sets));
        }
        if (!sets.empty()) out += fmt::format("// IPSets{}\n", sets);
        out += fmt::format("// count = {}\n", count_of(counts, r.id));
        out += fmt::format("// End of rule {}\n", id);
      }
      out += fmt::format("// End of policy {}\n", p.name);
    }
    out += fmt::format("// End of tier {}: {}\n", t.name, t.default_action);
  }
  if (info.tiers.empty()) out += "// No tiers: every new flow is allowed\n";
  if (with_asm) {
    out += fmt::format("Program (entry slot {}, slots {}):\n", info.entry_slot,
                       fmt::join(info.chunk_slots, ","));
    out += info.asm_text;
    if (!info.asm_text.empty() && info.asm_text.back() != '\n') out += "\n";
  }
  return out;
}

std::string format_no_policy(const std::string& iface, const std::string& direction,
                             const std::string& error) {
  return fmt::format(
      "IfaceName: {}\nHook: {}\nError: {}\nPolicy Info:\n// No policy applies: every new flow is "
      "allowed (no program runs)\n",
      iface, direction == "ingress" ? "tc egress" : "tc ingress", error);
}

std::string policy_dump_error(uint32_t slot, uint32_t live_id, const std::string& jump_error,
                              const dataplane::PolicyInfo& info) {
  if (!jump_error.empty()) return jump_error;
  if (info.entry_slot != slot || (live_id != 0 && info.entry_prog_id != live_id)) {
    return fmt::format("the description is stale: ifstate names slot {} (program id {}), the "
                       "description slot {} (program id {})",
                       slot, live_id, info.entry_slot, info.entry_prog_id);
  }
  if (live_id == 0) {
    return fmt::format("jump slot {} is empty: new flows are dropped (missed tail call)", slot);
  }
  return info.install_error;
}

nlohmann::json policy_dump_json(const dataplane::PolicyInfo& info,
                                const std::map<uint64_t, uint64_t>& counts, bool with_asm,
                                const std::string& error) {
  nlohmann::json j = dataplane::to_json(info);
  j["hook"] = info.hook();
  j["error"] = error;
  for (auto& t : j["tiers"])
    for (auto& p : t["policies"])
      for (auto& r : p["rules"]) {
        uint64_t id = r["id"].get<uint64_t>();
        r["rule_id"] = calc::pol::format_rule_id(id);
        r["count"] = count_of(counts, id);
      }
  if (!with_asm) j.erase("asm");
  return j;
}

}  // namespace weir::cli
