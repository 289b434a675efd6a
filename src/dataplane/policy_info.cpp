#include "dataplane/policy_info.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace weir::dataplane {

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
          {"program_names", info.program_names},
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
    // Absent from what an agent before program_names wrote.
    info.program_names = j.value("program_names", std::vector<std::string>{});
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

std::string observe_socket_path(const std::string& state_dir) {
  return (fs::path(state_dir) / kObserveSocketName).string();
}

std::string default_state_dir(const std::string& pin_root) {
  std::string root = pin_root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  auto slash = root.rfind('/');
  return "/run/weir/" + (slash == std::string::npos ? root : root.substr(slash + 1));
}

namespace {

// Regular files named *.json or *.json.tmp directly under `dir`: what write_policy_info writes.
std::vector<fs::path> policy_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code sec;
    if (it->symlink_status(sec).type() != fs::file_type::regular) continue;
    if (name.ends_with(".json") || name.ends_with(".json.tmp")) out.push_back(it->path());
  }
  return out;
}

bool is_empty_dir(const fs::path& d) {
  std::error_code ec;
  if (fs::symlink_status(d, ec).type() != fs::file_type::directory) return false;
  bool empty = fs::is_empty(d, ec);
  return !ec && empty;
}

}  // namespace

std::vector<std::string> remove_state_files(const std::string& state_dir) {
  std::vector<std::string> removed;
  if (state_dir.empty()) return removed;
  fs::path state = fs::path(state_dir).lexically_normal();
  if (state.filename().empty()) state = state.parent_path();  // "a/b/" -> "a/b"
  const fs::path pol(policy_info_dir(state.string()));
  size_t files = 0;
  std::error_code ec;
  for (const auto& f : policy_files(pol))
    if (fs::remove(f, ec)) ++files;
  if (files)
    removed.push_back(fmt::format("removed {} policy info file(s) under {}", files, pol.string()));
  // The agent's status file (agent/status.h), which `weir doctor` reads, and a temporary one a
  // crash left (util/file.h names it .agent.json.tmp-<pid>).
  std::vector<fs::path> status_files;
  for (fs::directory_iterator it(state, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name == "agent.json" || name.rfind(".agent.json.tmp-", 0) == 0) status_files.push_back(it->path());
    // The `weir observe` socket an agent that did not exit cleanly left (agent/observe_server.h).
    if (name == kObserveSocketName && it->is_socket(ec)) status_files.push_back(it->path());
  }
  for (const auto& f : status_files)
    if (fs::remove(f, ec)) removed.push_back(fmt::format("removed {}", f.string()));
  ec.clear();
  // The directories when that left them empty: policy/, the state dir, and /run/weir (only that
  // parent: a user-given state dir's parent is not weir's).
  for (const fs::path& d : {pol, state, state.parent_path()}) {
    if (d == state.parent_path() && d != fs::path("/run/weir")) continue;
    if (d == d.root_path() || !is_empty_dir(d)) continue;
    if (fs::remove(d, ec))
      removed.push_back(fmt::format("removed empty directory {}", d.string()));
  }
  return removed;
}

}  // namespace weir::dataplane
