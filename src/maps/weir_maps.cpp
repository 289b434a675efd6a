#include "maps/weir_maps.h"

#include <sys/stat.h>

#include <cerrno>

namespace weir::maps {

const std::vector<std::string>& all_map_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const MapSpec& m : kMapSpecs) v.emplace_back(m.name);
    return v;
  }();
  return names;
}

const std::vector<std::string>& retired_map_names() {
  static const std::vector<std::string> names(std::begin(kRetiredMapNames), std::end(kRetiredMapNames));
  return names;
}

namespace {

Error no_state(const PinLayout& layout, const std::string& name) {
  return Error{ENOENT, fmt::format("no weir state under {} (maps/{} not found): the agent may not be "
                                   "running or has never run on this node; see `weir --pin-root`",
                                   layout.root, name)};
}

template <typename M>
Status open_one(const PinLayout& layout, MapId id, M& out) {
  const std::string name(maps::name(id));
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
Status from_one(const MapFds& fds, MapId id, M& out) {
  const std::string name(maps::name(id));
  const int fd = fds[id];
  auto m = bpf::MapFd::dup_of(fd);
  if (!m) return m.error().wrap("map " + name);
  auto v = M::create(std::move(*m));
  if (!v) return v.error();
  out = std::move(*v);
  return {};
}

// Every member of WeirMaps / PolicyMaps with its map id, named once: `one(id, member)` binds
// each (open the pin or dup a loader's fd), the first error stops.
template <typename Fn>
Status bind_members(WeirMaps& w, Fn&& one) {
  WEIR_TRY(one(MapId::NAT_FE, w.nat_fe));
  WEIR_TRY(one(MapId::NAT_BE, w.nat_be));
  WEIR_TRY(one(MapId::CT, w.ct));
  WEIR_TRY(one(MapId::ROUTES, w.routes));
  WEIR_TRY(one(MapId::IFSTATE, w.ifstate));
  WEIR_TRY(one(MapId::COUNTERS, w.counters));
  WEIR_TRY(one(MapId::CT_STATS, w.ct_stats));
  return {};
}

template <typename Fn>
Status bind_members(PolicyMaps& p, Fn&& one) {
  WEIR_TRY(one(MapId::JUMP, p.jump));
  WEIR_TRY(one(MapId::PSTATE, p.pstate));
  WEIR_TRY(one(MapId::IPSETS, p.ipsets));
  WEIR_TRY(one(MapId::IPSET_X, p.ipset_exact));
  WEIR_TRY(one(MapId::RULE_CNT, p.rule_cnt));
  return {};
}

template <typename Fn>
Status bind_members(TunnelMaps& t, Fn&& one) {
  WEIR_TRY(one(MapId::TUNNEL, t.tunnel));
  WEIR_TRY(one(MapId::VTEPS, t.vteps));
  WEIR_TRY(one(MapId::TUN_JUMP, t.tun_jump));
  return {};
}

template <typename Fn>
Status bind_members(LogMaps& l, Fn&& one) {
  WEIR_TRY(one(MapId::LOG_IF, l.logif));
  WEIR_TRY(one(MapId::LOG_ST, l.logst));
  WEIR_TRY(one(MapId::LOG_JMP, l.logjmp));
  return {};
}

// The binders of bind_members(): open each map's pin, or dup each of a loader's fds.
auto pinned_in(const PinLayout& layout) {
  return [&layout](MapId id, auto& out) { return open_one(layout, id, out); };
}
auto dup_of(const MapFds& fds) {
  return [&fds](MapId id, auto& out) { return from_one(fds, id, out); };
}

}  // namespace

Result<WeirMaps> WeirMaps::open_pinned(const PinLayout& layout) {
  WeirMaps w;
  WEIR_TRY(bind_members(w, pinned_in(layout)));
  return w;
}

Result<WeirMaps> WeirMaps::from_fds(const MapFds& fds) {
  WeirMaps w;
  WEIR_TRY(bind_members(w, dup_of(fds)));
  return w;
}

Result<PolicyMaps> PolicyMaps::open_pinned(const PinLayout& layout) {
  PolicyMaps p;
  WEIR_TRY(bind_members(p, pinned_in(layout)));
  return p;
}

Result<PolicyMaps> PolicyMaps::from_fds(const MapFds& fds) {
  PolicyMaps p;
  WEIR_TRY(bind_members(p, dup_of(fds)));
  return p;
}

Result<TunnelMaps> TunnelMaps::open_pinned(const PinLayout& layout) {
  TunnelMaps t;
  WEIR_TRY(bind_members(t, pinned_in(layout)));
  return t;
}

Result<TunnelMaps> TunnelMaps::from_fds(const MapFds& fds) {
  TunnelMaps t;
  WEIR_TRY(bind_members(t, dup_of(fds)));
  return t;
}

Result<LogMaps> LogMaps::open_pinned(const PinLayout& layout) {
  LogMaps l;
  WEIR_TRY(bind_members(l, pinned_in(layout)));
  return l;
}

Result<LogMaps> LogMaps::from_fds(const MapFds& fds) {
  LogMaps l;
  WEIR_TRY(bind_members(l, dup_of(fds)));
  return l;
}

}  // namespace weir::maps
