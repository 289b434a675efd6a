#include "agent/status.h"

#include <fmt/format.h>

#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/file.h"

namespace weir::agent {

std::string status_path(const std::string& state_dir) { return state_dir + "/" + kStatusName; }

namespace {

nlohmann::json sizes_json(const model::MapSizes& m) {
  return {{"nat_frontend", m.nat_frontend}, {"nat_backend", m.nat_backend}, {"conntrack", m.conntrack},
          {"routes", m.routes},             {"ifstate", m.ifstate},         {"counters", m.counters},
          {"ipsets", m.ipsets},             {"rule_counters", m.rule_counters}};
}

model::MapSizes sizes_from(const nlohmann::json& j) {
  model::MapSizes m;
  m.nat_frontend = j.at("nat_frontend").get<uint32_t>();
  m.nat_backend = j.at("nat_backend").get<uint32_t>();
  m.conntrack = j.at("conntrack").get<uint32_t>();
  m.routes = j.at("routes").get<uint32_t>();
  m.ifstate = j.at("ifstate").get<uint32_t>();
  m.counters = j.at("counters").get<uint32_t>();
  m.ipsets = j.at("ipsets").get<uint32_t>();
  m.rule_counters = j.at("rule_counters").get<uint32_t>();
  return m;
}

}  // namespace

Status write_status(const std::string& state_dir, const StatusFile& s) {
  nlohmann::json j = {{"pid", s.pid},
                      {"written_unix", s.written_unix},
                      {"heartbeat_period_s", s.heartbeat_period_s},
                      {"last_sync_result", s.last_sync_result},
                      {"last_success_unix", s.last_success_unix},
                      {"tc_mode", s.tc_mode},
                      {"vxlan_enabled", s.vxlan_enabled},
                      {"underlay", s.underlay},
                      {"conntrack_warn_percent", s.conntrack_warn_percent},
                      {"map_sizes", sizes_json(s.map_sizes)},
                      {"prog_ids", s.prog_ids}};
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return Error{ec.value(), fmt::format("creating {}", state_dir)};
  return write_file_atomic(state_dir, kStatusName, j.dump(2) + "\n");
}

Result<StatusFile> read_status(const std::string& state_dir) {
  const std::string path = status_path(state_dir);
  auto text = read_file(path);
  if (!text) return text.error();
  try {
    auto j = nlohmann::json::parse(*text);
    StatusFile s;
    s.pid = j.at("pid").get<int>();
    s.written_unix = j.at("written_unix").get<double>();
    s.heartbeat_period_s = j.at("heartbeat_period_s").get<double>();
    s.last_sync_result = j.at("last_sync_result").get<std::string>();
    s.last_success_unix = j.at("last_success_unix").get<double>();
    s.tc_mode = j.at("tc_mode").get<std::string>();
    s.vxlan_enabled = j.at("vxlan_enabled").get<bool>();
    s.underlay = j.at("underlay").get<std::string>();
    s.conntrack_warn_percent = j.at("conntrack_warn_percent").get<uint32_t>();
    s.map_sizes = sizes_from(j.at("map_sizes"));
    s.prog_ids = j.at("prog_ids").get<std::map<std::string, uint32_t>>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    return Error{EINVAL, fmt::format("{}: {}", path, e.what())};
  }
}

}  // namespace weir::agent
