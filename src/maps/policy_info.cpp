#include "maps/policy_info.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace weir::maps {

namespace fs = std::filesystem;

std::string PolicyInfo::hook() const { return direction == "ingress" ? "tc egress" : "tc ingress"; }

PolicyInfo policy_info_from(const calc::pol::EndpointPolicy& p, const std::string& iface,
                            uint32_t ifindex) {
  PolicyInfo info;
  info.iface = iface;
  info.ifindex = ifindex;
  info.direction = std::string(calc::pol::to_string(p.direction));
  for (const auto& t : p.tiers) {
    PolicyInfoTier tier{t.name, std::string(calc::pol::to_string(t.default_action)), {}};
    for (const auto& pol : t.policies) {
      PolicyInfoPolicy pi{pol.name, {}};
      for (const auto& r : pol.rules) {
        pi.rules.push_back({r.id, std::string(calc::pol::to_string(r.action)), r.description,
                            r.match.src_sets, r.match.dst_sets, r.match.dst_named_port_sets});
        auto& back = pi.rules.back();
        back.src_sets.insert(back.src_sets.end(), r.match.src_not_sets.begin(),
                             r.match.src_not_sets.end());
        back.dst_sets.insert(back.dst_sets.end(), r.match.dst_not_sets.begin(),
                             r.match.dst_not_sets.end());
      }
      tier.policies.push_back(std::move(pi));
    }
    info.tiers.push_back(std::move(tier));
  }
  return info;
}

nlohmann::json to_json(const PolicyInfo& info) {
  using nlohmann::json;
  json tiers = json::array();
  for (const auto& t : info.tiers) {
    json pols = json::array();
    for (const auto& p : t.policies) {
      json rules = json::array();
      for (const auto& r : p.rules) {
        rules.push_back({{"id", r.id},
                         {"action", r.action},
                         {"description", r.description},
                         {"src_sets", r.src_sets},
                         {"dst_sets", r.dst_sets},
                         {"dst_named_port_sets", r.dst_named_port_sets}});
      }
      pols.push_back({{"name", p.name}, {"rules", std::move(rules)}});
    }
    tiers.push_back(
        {{"name", t.name}, {"default_action", t.default_action}, {"policies", std::move(pols)}});
  }
  nlohmann::json j = {{"iface", info.iface},
          {"ifindex", info.ifindex},
          {"direction", info.direction},
          {"entry_slot", info.entry_slot},
          {"entry_prog_id", info.entry_prog_id},
          {"chunk_slots", info.chunk_slots},
          {"tiers", std::move(tiers)},
          {"asm", info.asm_text}};
  if (!info.install_error.empty()) j["install_error"] = info.install_error;
  return j;
}

Result<PolicyInfo> policy_info_from_json(const nlohmann::json& j) {
  try {
    PolicyInfo info;
    info.iface = j.at("iface").get<std::string>();
    info.ifindex = j.at("ifindex").get<uint32_t>();
    info.direction = j.at("direction").get<std::string>();
    info.entry_slot = j.at("entry_slot").get<uint32_t>();
    info.entry_prog_id = j.at("entry_prog_id").get<uint32_t>();
    info.chunk_slots = j.at("chunk_slots").get<std::vector<uint32_t>>();
    info.asm_text = j.value("asm", "");
    info.install_error = j.value("install_error", "");
    for (const auto& t : j.at("tiers")) {
      PolicyInfoTier tier{t.at("name").get<std::string>(),
                          t.at("default_action").get<std::string>(),
                          {}};
      for (const auto& p : t.at("policies")) {
        PolicyInfoPolicy pol{p.at("name").get<std::string>(), {}};
        for (const auto& r : p.at("rules")) {
          pol.rules.push_back({r.at("id").get<uint64_t>(), r.at("action").get<std::string>(),
                               r.at("description").get<std::string>(),
                               r.at("src_sets").get<std::vector<uint64_t>>(),
                               r.at("dst_sets").get<std::vector<uint64_t>>(),
                               r.at("dst_named_port_sets").get<std::vector<uint64_t>>()});
        }
        tier.policies.push_back(std::move(pol));
      }
      info.tiers.push_back(std::move(tier));
    }
    if (info.direction != "ingress" && info.direction != "egress") {
      return Error{EINVAL, fmt::format("direction \"{}\" (want ingress or egress)", info.direction)};
    }
    return info;
  } catch (const nlohmann::json::exception& e) {
    return Error{EINVAL, e.what()};
  }
}

std::string policy_info_dir(const std::string& state_dir) { return state_dir + "/policy"; }

std::string policy_info_path(const std::string& state_dir, const std::string& iface,
                             const std::string& direction) {
  return fmt::format("{}/{}_{}.json", policy_info_dir(state_dir), iface, direction);
}

Status write_policy_info(const std::string& state_dir, const PolicyInfo& info) {
  std::error_code ec;
  fs::create_directories(policy_info_dir(state_dir), ec);
  if (ec) return Error{ec.value(), fmt::format("creating {}", policy_info_dir(state_dir))};
  std::string path = policy_info_path(state_dir, info.iface, info.direction);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << to_json(info).dump(1) << "\n";
    out.flush();
    if (!out) return errno_error(fmt::format("writing {}", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return errno_error(fmt::format("renaming {} to {}", tmp, path));
  }
  return {};
}

Result<PolicyInfo> read_policy_info(const std::string& state_dir, const std::string& iface,
                                    const std::string& direction) {
  std::string path = policy_info_path(state_dir, iface, direction);
  std::ifstream in(path);
  if (!in) return errno_error(fmt::format("reading {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return Error{EINVAL, fmt::format("{}: not valid JSON", path)};
  auto info = policy_info_from_json(j);
  if (!info) return info.error().wrap(path);
  return info;
}

Status remove_policy_info(const std::string& state_dir, const std::string& iface,
                          const std::string& direction) {
  std::string path = policy_info_path(state_dir, iface, direction);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return errno_error(fmt::format("removing {}", path));
  }
  return {};
}

}  // namespace weir::maps
