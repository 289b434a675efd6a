// `weir bpf cleanup` (bpf_ops.h): removes what weir created, and nothing else.
//
// Everything under the pin root is classified before anything is changed: weir's marker, weir's
// maps under maps/ (a known name, a map of that kernel name and of the type the embedded object
// declares), tcx links under links/ that hold a weir_* program. A pin root that is not a
// directory, not on a bpffs, the mount point of a bpffs, or that holds neither the marker nor a
// weir map is refused before any change, in the namespace or on disk. Anything else under a weir
// pin root is foreign: it stays, and the report says so.
#include <bpf/bpf.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include <spdlog/spdlog.h>

#include "bpf/attach.h"
#include "bpf/bpffs.h"
#include "bpf/map.h"
#include "bpf/netlink.h"
#include "cli/bpf_ops.h"
#include "dataplane/policy_info.h"
#include "dataplane/programs.h"
#include "maps/weir_maps.h"
#include "util/fd.h"

namespace weir::cli {

namespace {

namespace fs = std::filesystem;
using MapTypes = std::map<std::string, uint32_t>;

void note(CleanupReport& r, std::string line) { r.removed.push_back(std::move(line)); }

// What cleanup removes under a pin root, decided before anything is changed.
struct PinRootPlan {
  std::string given;                 // the pin root as the user named it (for messages)
  std::string root;                  // its canonical path
  std::vector<std::string> links;    // weir's tcx link pins: detached, then unpinned
  std::vector<std::string> maps;     // weir's map pins
  std::string marker;                // weir's marker ("" when absent); unpinned last
  std::vector<std::string> dirs;     // weir's directories, removed when left empty (deepest first)
  std::vector<std::string> foreign;  // one report line per thing left in place
};

Error refuse(const std::string& given, const std::string& root, const std::string& why) {
  std::string name = given == root ? given : fmt::format("{} ({})", given, root);
  return Error{0, fmt::format("refusing to clean pin root {}: {}; nothing was removed", name, why)};
}

// The pin root with symlinks, "." and ".." resolved; nullopt when it does not exist.
Result<std::optional<std::string>> resolve_root(const std::string& root) {
  char buf[PATH_MAX];
  if (::realpath(root.c_str(), buf) == nullptr) {
    if (errno == ENOENT) return std::optional<std::string>{};
    return errno_error("resolving pin root " + root);
  }
  return std::optional<std::string>{std::string(buf)};
}

// A directory on a bpffs that is not the bpffs itself.
Status check_root(const std::string& given, const std::string& root) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return errno_error("stat " + root);
  if (!S_ISDIR(st.st_mode)) return refuse(given, root, "it is not a directory");
  if (!bpf::is_on_bpffs(root)) return refuse(given, root, "it is not on a bpffs");
  auto mount = bpf::is_mount_point(root);
  if (!mount) return mount.error();
  if (*mount)
    return refuse(given, root, "it is the mount point of a bpffs, not a pin root weir created in one");
  return {};
}

void leave(PinRootPlan& p, const std::string& path, const std::string& why) {
  p.foreign.push_back(fmt::format("left {}: not created by weir ({})", path, why));
}

// Why the pin `name` under maps/ is not one of weir's maps; "" when it is.
std::string not_weir_map(const std::string& path, const std::string& name, const MapTypes& types) {
  const auto& names = maps::all_map_names();
  const auto& retired = maps::retired_map_names();
  const bool is_retired = std::find(retired.begin(), retired.end(), name) != retired.end();
  if (!is_retired && std::find(names.begin(), names.end(), name) == names.end()) return "not a weir map name";
  auto o = bpf::inspect_pin(path);
  if (!o) return o.error().str();
  if (o->kind != bpf::PinKind::Map) return fmt::format("a {}", bpf::to_string(o->kind));
  if (o->name != name) return fmt::format("a map named {}", o->name);
  if (is_retired) return "";  // an older agent's map (WEIR_MAPS_RETIRED): its name is all there is to check
  auto t = types.find(name);
  if (t == types.end() || t->second != o->type)
    return fmt::format("a {} map, weir's is not", bpf::map_type_name(o->type));
  return "";
}

// Why the pin `name` under links/ is not one of weir's tcx links; "" when it is.
std::string not_weir_link(const std::string& path, const std::string& name) {
  if (!name.ends_with("_ingress") && !name.ends_with("_egress")) return "not a weir link name";
  auto o = bpf::inspect_pin(path);
  if (!o) return o.error().str();
  if (o->kind != bpf::PinKind::Link) return fmt::format("a {}", bpf::to_string(o->kind));
  if (o->type != bpf::kBpfLinkTypeTcx) return fmt::format("a link of type {}, not tcx", o->type);
  if (o->prog_name.rfind(bpf::kWeirProgPrefix, 0) != 0)
    return fmt::format("a tcx link holding program {}", o->prog_name.empty() ? "(unknown)" : o->prog_name);
  return "";
}

// Sort the entries of maps/ or links/ into weir's (`mine`) and foreign ones.
template <typename Why>
Status classify_dir(const std::string& dir, PinRootPlan& p, std::vector<std::string>& mine, Why why) {
  auto entries = bpf::list_dir(dir);
  if (!entries) return entries.error();
  for (const auto& e : *entries) {
    std::string path = dir + "/" + e.name;
    std::string reason = e.is_dir ? "a directory" : e.is_regular ? why(path, e.name) : "not a pin";
    if (reason.empty()) mine.push_back(path);
    else leave(p, path, reason);
  }
  p.dirs.push_back(dir);
  return {};
}

Status classify_root(const MapTypes& types, PinRootPlan& p) {
  auto entries = bpf::list_dir(p.root);
  if (!entries) return entries.error();
  for (const auto& e : *entries) {
    std::string path = p.root + "/" + e.name;
    if (e.is_dir && e.name == "maps") {
      WEIR_TRY(classify_dir(path, p, p.maps, [&](const std::string& f, const std::string& n) {
        return not_weir_map(f, n, types);
      }));
    } else if (e.is_dir && e.name == "links") {
      WEIR_TRY(classify_dir(path, p, p.links, not_weir_link));
    } else if (e.is_regular && e.name == maps::kPinMarkerName) {
      auto m = maps::is_pin_marker(path);
      if (!m) return m.error();
      if (*m) p.marker = path;
      else leave(p, path, "not weir's marker");
    } else {
      leave(p, path, e.is_dir ? "a directory" : "not a weir pin");
    }
  }
  p.dirs.push_back(p.root);
  return {};
}

// Decide, changing nothing; nullopt when the pin root does not exist.
Result<std::optional<PinRootPlan>> plan_pin_root(const maps::PinLayout& layout) {
  auto canon = resolve_root(layout.root);
  if (!canon) return canon.error();
  if (!canon->has_value()) return std::optional<PinRootPlan>{};
  PinRootPlan p;
  p.given = layout.root;
  p.root = **canon;
  WEIR_TRY(check_root(p.given, p.root));
  auto types = dataplane::TcPrograms::map_types();
  if (!types) return types.error().wrap("reading the map types of weir's BPF object");
  WEIR_TRY(classify_root(*types, p));
  if (p.marker.empty() && p.maps.empty())
    return refuse(p.given, p.root, fmt::format("it holds no weir state (no {} pin, no weir map under maps/)",
                                               maps::kPinMarkerName));
  return std::optional<PinRootPlan>{std::move(p)};
}

// Detach weir's tcx links pinned under the pin root (wherever they are attached) before their
// pins go.
Status detach_weir_links(const PinRootPlan& p, CleanupReport& r) {
  for (const auto& path : p.links) {
    Fd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid()) continue;  // gone meanwhile
    auto info = bpf::tcx_link_info(fd.get());
    if (!info || !info->has_value()) continue;
    const bpf::TcxLinkInfo& t = **info;
    if (t.ifindex == 0) continue;  // already detached (interface gone): only the pin is left
    std::string where = fmt::format("ifindex {}", t.ifindex);
    if (auto l = bpf::link_by_index(t.ifindex); l) where = l->name;
    WEIR_TRY(bpf::link_detach(fd.get()));
    note(r, fmt::format("detached tcx link {} from {} {} (link id {}, prog id {})", path, where,
                        bpf::to_string(t.dir), t.link_id, t.prog_id));
  }
  return {};
}

void note_removed(const bpf::TcProgInfo& p, const bpf::LinkInfo& l, bpf::TcDir dir, CleanupReport& r) {
  if (p.mode == bpf::TcMode::Tcx) {
    note(r, fmt::format("removed tcx program {} (id {}, link {}) from {} {}", p.prog_name, p.prog_id,
                        p.link_id, l.name, bpf::to_string(dir)));
  } else {
    note(r, fmt::format("removed tc filter {} (id {}, pref {}, handle {:#x}) from {} {}", p.prog_name,
                        p.prog_id, p.priority, p.handle, l.name, bpf::to_string(dir)));
  }
}

// Every weir_* program on both TC hooks of every interface of this network namespace (programs
// of others stay), and the clsact qdiscs that left empty.
Status detach_from_interfaces(CleanupReport& r) {
  auto links = bpf::list_links();
  if (!links) return links.error();
  for (const auto& l : *links) {
    bool had_clsact = false;
    if (auto h = bpf::has_clsact(l.ifindex); h) had_clsact = *h;
    for (bpf::TcDir dir : {bpf::TcDir::Ingress, bpf::TcDir::Egress}) {
      auto removed = bpf::tc_detach_all_weir(l.ifindex, dir);
      if (!removed) return removed.error().wrap(fmt::format("cleaning {} {}", l.name, bpf::to_string(dir)));
      for (const auto& p : *removed) note_removed(p, l, dir, r);
    }
    if (had_clsact) {
      if (auto h = bpf::has_clsact(l.ifindex); h && !*h) note(r, fmt::format("removed empty clsact qdisc of {}", l.name));
    }
  }
  return {};
}

// Unpin what the plan found to be weir's (the marker last, so that an interrupted run leaves a
// pin root cleanup still recognises), then weir's directories that this left empty.
Status remove_weir_pins(const PinRootPlan& p, CleanupReport& r) {
  for (const auto* list : {&p.links, &p.maps})
    for (const auto& path : *list) WEIR_TRY(bpf::remove_pin(path));
  if (!p.marker.empty()) WEIR_TRY(bpf::remove_pin(p.marker));
  bool root_gone = false;
  for (const auto& d : p.dirs) {
    auto rm = bpf::remove_dir_if_empty(d);
    if (!rm) return rm.error();
    root_gone = d == p.root && *rm;
  }
  if (root_gone) {
    note(r, fmt::format("removed pin root {}", p.given));
    return {};
  }
  size_t n = p.links.size() + p.maps.size() + (p.marker.empty() ? 0 : 1);
  note(r, fmt::format("removed {} weir pin(s) under {}", n, p.root));
  r.left.insert(r.left.end(), p.foreign.begin(), p.foreign.end());
  r.left.push_back(fmt::format("left pin root {}: it still holds what weir did not create", p.root));
  return {};
}

}  // namespace

void cleanup_state_files(const std::string& state_dir, CleanupReport& r) {
  for (auto& line : dataplane::remove_state_files(state_dir)) note(r, std::move(line));
}

Result<CleanupReport> cleanup(const maps::PinLayout& layout, const std::string& state_dir) {
  CleanupReport r;
  auto plan = plan_pin_root(layout);  // refusals happen here, before any change
  if (!plan) return plan.error();
  if (plan->has_value()) WEIR_TRY(detach_weir_links(**plan, r));
  WEIR_TRY(detach_from_interfaces(r));
  if (plan->has_value()) WEIR_TRY(remove_weir_pins(**plan, r));
  cleanup_state_files(state_dir, r);
  return r;
}

}  // namespace weir::cli
