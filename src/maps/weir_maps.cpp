#include "maps/weir_maps.h"

#include <sys/stat.h>

#include <cerrno>

namespace weir::maps {

const std::vector<std::string>& all_map_names() {
  static const std::vector<std::string> names = {
      WEIR_MAP_NAT_FE, WEIR_MAP_NAT_BE, WEIR_MAP_CT,     WEIR_MAP_ROUTES,   WEIR_MAP_IFSTATE,
      WEIR_MAP_COUNTERS, WEIR_MAP_JUMP, WEIR_MAP_PSTATE, WEIR_MAP_IPSETS, WEIR_MAP_IPSET_X,
      WEIR_MAP_RULE_CNT, WEIR_MAP_CT_STATS, WEIR_MAP_FRAGS,
  };
  return names;
}

const std::vector<std::string>& retired_map_names() {
  static const std::vector<std::string> names = WEIR_MAPS_RETIRED;
  return names;
}

namespace {

Error no_state(const PinLayout& layout, const std::string& name) {
  return Error{ENOENT, fmt::format("no weir state under {} (maps/{} not found): the agent may not be "
                                   "running or has never run on this node; see `weir --pin-root`",
                                   layout.root, name)};
}

template <typename M>
Status open_one(const PinLayout& layout, const std::string& name, M& out) {
  auto fd = bpf::MapFd::open_pinned(layout.map_path(name));
  if (!fd) {
    if (fd.error().err == ENOENT) return no_state(layout, name);
    return fd.error();
  }
  auto m = M::create(std::move(*fd));
  if (!m) return m.error().wrap(layout.map_path(name));
  out = std::move(*m);
  return {};
}

template <typename M>
Status from_one(int fd, const std::string& name, M& out) {
  auto m = bpf::MapFd::dup_of(fd);
  if (!m) return m.error().wrap("map " + name);
  auto v = M::create(std::move(*m));
  if (!v) return v.error();
  out = std::move(*v);
  return {};
}

}  // namespace

Result<WeirMaps> WeirMaps::open_pinned(const PinLayout& layout) {
  WeirMaps w;
  WEIR_TRY(open_one(layout, WEIR_MAP_NAT_FE, w.nat_fe));
  WEIR_TRY(open_one(layout, WEIR_MAP_NAT_BE, w.nat_be));
  WEIR_TRY(open_one(layout, WEIR_MAP_CT, w.ct));
  WEIR_TRY(open_one(layout, WEIR_MAP_ROUTES, w.routes));
  WEIR_TRY(open_one(layout, WEIR_MAP_IFSTATE, w.ifstate));
  WEIR_TRY(open_one(layout, WEIR_MAP_COUNTERS, w.counters));
  WEIR_TRY(open_one(layout, WEIR_MAP_CT_STATS, w.ct_stats));
  return w;
}

Result<WeirMaps> WeirMaps::from_fds(const MapFds& fds) {
  WeirMaps w;
  WEIR_TRY(from_one(fds.nat_fe, WEIR_MAP_NAT_FE, w.nat_fe));
  WEIR_TRY(from_one(fds.nat_be, WEIR_MAP_NAT_BE, w.nat_be));
  WEIR_TRY(from_one(fds.ct, WEIR_MAP_CT, w.ct));
  WEIR_TRY(from_one(fds.routes, WEIR_MAP_ROUTES, w.routes));
  WEIR_TRY(from_one(fds.ifstate, WEIR_MAP_IFSTATE, w.ifstate));
  WEIR_TRY(from_one(fds.counters, WEIR_MAP_COUNTERS, w.counters));
  WEIR_TRY(from_one(fds.ct_stats, WEIR_MAP_CT_STATS, w.ct_stats));
  return w;
}

Result<PolicyMaps> PolicyMaps::open_pinned(const PinLayout& layout) {
  PolicyMaps p;
  WEIR_TRY(open_one(layout, WEIR_MAP_JUMP, p.jump));
  WEIR_TRY(open_one(layout, WEIR_MAP_PSTATE, p.pstate));
  WEIR_TRY(open_one(layout, WEIR_MAP_IPSETS, p.ipsets));
  WEIR_TRY(open_one(layout, WEIR_MAP_IPSET_X, p.ipset_exact));
  WEIR_TRY(open_one(layout, WEIR_MAP_RULE_CNT, p.rule_cnt));
  return p;
}

Result<PolicyMaps> PolicyMaps::from_fds(const PolicyMapFds& fds) {
  PolicyMaps p;
  WEIR_TRY(from_one(fds.jump, WEIR_MAP_JUMP, p.jump));
  WEIR_TRY(from_one(fds.pstate, WEIR_MAP_PSTATE, p.pstate));
  WEIR_TRY(from_one(fds.ipsets, WEIR_MAP_IPSETS, p.ipsets));
  WEIR_TRY(from_one(fds.ipset_exact, WEIR_MAP_IPSET_X, p.ipset_exact));
  WEIR_TRY(from_one(fds.rule_cnt, WEIR_MAP_RULE_CNT, p.rule_cnt));
  return p;
}

}  // namespace weir::maps
