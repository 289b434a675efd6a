#include "dataplane/log_filters.h"

#include <cerrno>
#include <set>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "polprog/compiler.h"
#include "polprog/log_filter.h"
#include "weir/maps.h"

namespace weir::dataplane {

LogFilters::LogFilters(TcPrograms& progs, std::function<uint32_t(const std::string&)> resolve)
    : progs_(progs), resolve_(std::move(resolve)) {}

std::map<std::string, uint32_t> LogFilters::slots() const {
  std::map<std::string, uint32_t> out;
  for (const auto& [expr, l] : loaded_) out[expr] = l.slot;
  return out;
}

Status LogFilters::clean_start() {
  maps::LogMaps& m = progs_.log_maps();
  for (uint32_t slot = WEIR_LOGJMP_FIRST_FILTER; slot < WEIR_MAP_LOG_JMP_SIZE; slot++) {
    auto r = m.logjmp.remove(slot);
    if (!r) return r.error().wrap(fmt::format("emptying {} slot {}", WEIR_MAP_LOG_JMP, slot));
  }
  auto entries = m.logif.dump();
  if (!entries) return entries.error().wrap(fmt::format("reading {}", WEIR_MAP_LOG_IF));
  for (const auto& [ifindex, v] : *entries) {
    auto r = m.logif.remove(ifindex);
    if (!r) return r.error().wrap(fmt::format("removing ifindex {} from {}", ifindex, WEIR_MAP_LOG_IF));
  }
  started_ = true;
  return {};
}

Status LogFilters::apply(const LogSettings& s) {
  maps::LogMaps& m = progs_.log_maps();
  const bool on = s.level != WEIR_LOG_OFF;

  // 1. The filters that are new: compiled and loaded before anything is written.
  std::set<uint32_t> used;
  for (const auto& [expr, l] : loaded_) used.insert(l.slot);
  std::map<std::string, Loaded> fresh;
  if (on) {
    for (const auto& [iface, expr] : s.filters) {
      if (loaded_.contains(expr) || fresh.contains(expr)) continue;
      const std::string what = fmt::format("bpfLogFilters[{}]", iface);
      auto prog = polprog::log_filter_program(expr);
      if (!prog) return prog.error().wrap(what);
      uint32_t slot = WEIR_LOGJMP_FIRST_FILTER;
      while (slot < WEIR_MAP_LOG_JMP_SIZE && used.contains(slot)) slot++;
      if (slot >= WEIR_MAP_LOG_JMP_SIZE) {
        return Error{ENOSPC, fmt::format("{}: more distinct filter expressions than the {} slots of {}", what,
                                         WEIR_MAP_LOG_JMP_SIZE - WEIR_LOGJMP_FIRST_FILTER, WEIR_MAP_LOG_JMP)};
      }
      used.insert(slot);
      const maps::MapFds& fds = progs_.map_fds();
      WEIR_TRY(polprog::relocate(*prog, {{polprog::MapRef{polprog::kLogFilterMapState}, fds[maps::MapId::LOG_ST]},
                                         {polprog::MapRef{polprog::kLogFilterMapJump}, fds[maps::MapId::LOG_JMP]},
                                         {polprog::MapRef{polprog::kLogFilterMapCounters}, fds[maps::MapId::COUNTERS]}}));
      auto fd = polprog::load_sched_cls(*prog, fmt::format("weir_logf{}", slot), "log filter program");
      if (!fd) return fd.error().wrap(what);
      fresh.emplace(expr, Loaded{slot, std::move(*fd)});
    }
  }
  if (!started_) WEIR_TRY(clean_start());

  // 2. Their slots.
  for (auto& [expr, l] : fresh) {
    auto st = m.logjmp.update(l.slot, static_cast<__u32>(l.prog.get()));
    if (!st) return st.error().wrap(fmt::format("writing the filter \"{}\" into {} slot {}", expr, WEIR_MAP_LOG_JMP, l.slot));
    loaded_.emplace(expr, std::move(l));
  }

  // 3. The interfaces' entries.
  std::map<uint32_t, weir_log_if_val> want;
  const auto all = s.filters.find(kLogFilterAll);
  want[0] = weir_log_if_val{s.level, on && all != s.filters.end() ? loaded_.at(all->second).slot : WEIR_LOG_FILTER_ALL};
  if (on) {
    for (const auto& [iface, expr] : s.filters) {
      if (iface == kLogFilterAll) continue;
      if (uint32_t ifindex = resolve_(iface)) want[ifindex] = weir_log_if_val{s.level, loaded_.at(expr).slot};
    }
  }
  for (const auto& [ifindex, v] : want) {
    auto w = written_.find(ifindex);
    if (w != written_.end() && w->second.level == v.level && w->second.filter == v.filter) continue;
    auto st = m.logif.update(ifindex, v);
    if (!st) return st.error().wrap(fmt::format("writing ifindex {} into {}", ifindex, WEIR_MAP_LOG_IF));
    written_[ifindex] = v;
  }
  for (auto it = written_.begin(); it != written_.end();) {
    if (want.contains(it->first)) {
      ++it;
      continue;
    }
    auto r = m.logif.remove(it->first);
    if (!r) return r.error().wrap(fmt::format("removing ifindex {} from {}", it->first, WEIR_MAP_LOG_IF));
    it = written_.erase(it);
  }

  // 4. The filters no interface names any more. A packet that read its interface's entry just
  // before may still tail-call the emptied slot: it is then not logged, and goes on.
  std::set<std::string> named;
  if (on)
    for (const auto& [iface, expr] : s.filters) named.insert(expr);
  for (auto it = loaded_.begin(); it != loaded_.end();) {
    if (named.contains(it->first)) {
      ++it;
      continue;
    }
    auto r = m.logjmp.remove(it->second.slot);
    if (!r) return r.error().wrap(fmt::format("emptying {} slot {}", WEIR_MAP_LOG_JMP, it->second.slot));
    it = loaded_.erase(it);
  }
  return {};
}

}  // namespace weir::dataplane
