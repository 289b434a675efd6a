// The agent's status file, <state dir>/agent.json: written after each sync and each conntrack
// scan (its heartbeat), read by `weir doctor` (src/cli/doctor.cpp). Removed by `weir bpf
// cleanup` with the other state files (dataplane::remove_state_files).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "model/resources.h"
#include "util/result.h"

namespace weir::agent {

struct StatusFile {
  int pid = 0;
  double written_unix = 0;        // when this was written (the heartbeat)
  double heartbeat_period_s = 10;  // the conntrack scan period: the longest gap between writes
  std::string last_sync_result;   // full, incremental, unchanged, rejected ("" before the first)
  double last_success_unix = 0;   // 0: never
  std::string tc_mode;            // tcx or clsact
  bool vxlan_enabled = false;
  std::string underlay;           // where weir_from_ul is attached ("" when not)
  uint32_t conntrack_warn_percent = 90;
  model::MapSizes map_sizes;      // the configured sizes
  std::map<std::string, uint32_t> prog_ids;  // weir_from_wl, weir_to_wl, weir_from_ul -> kernel id
};

inline constexpr const char* kStatusName = "agent.json";
std::string status_path(const std::string& state_dir);  // <state_dir>/agent.json
Status write_status(const std::string& state_dir, const StatusFile& s);  // util/file.h: atomic
Result<StatusFile> read_status(const std::string& state_dir);            // ENOENT when absent

}  // namespace weir::agent
