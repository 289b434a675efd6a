#include "dataplane/programs.h"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <variant>
#include <cerrno>
#include <cstring>

#include "bpf/bpffs.h"
#include "bpf/map.h"
#include "bpf/skeleton.h"
#include "tc.skel.h"
#include "tc_log.skel.h"
#include "tc_log_prof.skel.h"
#include "tc_prof.skel.h"
#include "tc_trace.skel.h"
#include "weir/maps.h"
#include "weir/policy.h"
#include "weir/tunnel.h"

namespace weir::dataplane {

struct TcPrograms::Impl {
  // The loaded object: one of the four builds (the same programs and maps).
  std::variant<bpf::Skeleton<weir_tc>, bpf::Skeleton<weir_tc_log>, bpf::Skeleton<weir_tc_prof>,
               bpf::Skeleton<weir_tc_log_prof>, bpf::Skeleton<weir_tc_trace>>
      skel;
  Variant variant = Variant::Production;
  maps::MapFds fds;  // borrowed from skel
  // Borrowed from skel: weir_from_wl, weir_to_wl, weir_from_wl_pol, weir_to_wl_pol,
  // weir_vxlan_encap, weir_from_ul.
  int from_wl = -1, to_wl = -1, from_wl_pol = -1, to_wl_pol = -1, vxlan_encap = -1, from_ul = -1;
};

TcPrograms::TcPrograms(std::unique_ptr<Impl> impl, std::unique_ptr<maps::WeirMaps> m,
                       std::unique_ptr<maps::PolicyMaps> p, std::unique_ptr<maps::TunnelMaps> t,
                       std::unique_ptr<maps::LogMaps> l)
    : impl_(std::move(impl)),
      maps_(std::move(m)),
      policy_(std::move(p)),
      tunnel_(std::move(t)),
      log_(std::move(l)) {}
TcPrograms::TcPrograms(TcPrograms&&) noexcept = default;
TcPrograms& TcPrograms::operator=(TcPrograms&&) noexcept = default;
TcPrograms::~TcPrograms() = default;

namespace {

// "lru_hash, key 16 B, value 64 B, flags 0x0" (what decides whether a pinned map can be reused).
std::string shape(uint32_t type, uint32_t key_size, uint32_t value_size, uint32_t flags) {
  return fmt::format("{}, key {} B, value {} B, flags {:#x}", bpf::map_type_name(type), key_size,
                     value_size, flags);
}

// The size map `m` will have: the pinned map's when a compatible one is pinned (its state is
// kept; a size other than `want` is a warning), else `want`. A map pinned there with another
// name, type, key or value size or flags cannot be reused: an Error saying so and what to do
// (libbpf would only say "couldn't reuse pinned map ... parameter mismatch").
Result<uint32_t> pinned_size(const maps::PinLayout& layout, const maps::MapSpec& m, uint32_t want) {
  const std::string path = layout.map_path(m.name);
  auto pinned = bpf::MapFd::open_pinned(path);
  if (!pinned) return want;
  const bpf::MapInfo& i = pinned->info();
  if (i.name != m.name || i.type != m.type || i.key_size != m.key_size ||
      i.value_size != m.value_size || i.map_flags != m.flags) {
    return Error{EINVAL, fmt::format(
        "map {} (layout version {}) pinned at {} does not match this weir: the pinned map is "
        "named {} ({}), this weir expects {} ({}); it was left by another weir build or by "
        "something else. Run `weir bpf cleanup` (it removes weir's pins, and with them the "
        "tracked flows) and start the agent again",
        m.name, m.version, path, i.name, shape(i.type, i.key_size, i.value_size, i.map_flags),
        m.name, shape(m.type, m.key_size, m.value_size, m.flags))};
  }
  if (i.max_entries != want) {
    spdlog::warn(
        "map {} is pinned with {} entries, configuration asks for {}: keeping the pinned map "
        "and its state; the new size takes effect after `weir bpf cleanup` and a restart",
        m.name, i.max_entries, want);
  }
  return i.max_entries;
}

// Pins under maps/ of another layout version of one of our maps (weir_<base><n>, n not ours and
// not retired): another weir build pinned them. They are left alone, and said so.
void warn_other_versions(const maps::PinLayout& layout) {
  auto entries = bpf::list_dir(layout.maps_dir());
  if (!entries) return;
  const auto& retired = maps::retired_map_names();
  for (const auto& e : *entries) {
    const size_t digits = e.name.find_last_not_of("0123456789") + 1;
    if (digits == e.name.size() || digits == 0) continue;
    const std::string base = e.name.substr(0, digits);
    for (const maps::MapSpec& m : maps::kMapSpecs) {
      if (base != "weir_" + std::string(m.base) || e.name == m.name) continue;
      if (std::find(retired.begin(), retired.end(), e.name) != retired.end()) continue;
      spdlog::warn(
          "found {}: layout version {} of map {}, this weir uses {} (version {}); it was pinned "
          "by another weir version, which this agent does not use nor remove. Run `weir bpf "
          "cleanup` once no other weir version runs on this node",
          layout.map_path(e.name), e.name.substr(digits), m.base, m.name, m.version);
    }
  }
}

// Pins of maps whose layout changed (WEIR_MAPS_RETIRED): their successors are pinned now, and
// nothing reads the old ones any more.
void remove_retired_pins(const maps::PinLayout& layout) {
  for (const std::string& name : maps::retired_map_names()) {
    const std::string path = layout.map_path(name);
    if (::unlink(path.c_str()) == 0) {
      spdlog::info("removed the pin of retired map {} (its layout changed; its successor is pinned)", path);
    } else if (errno != ENOENT) {
      spdlog::warn("could not remove the pin of retired map {}: {}", path, std::strerror(errno));
    }
  }
}

}  // namespace

namespace {
// model::MapSizes plus `fixed`, the size field of the maps whose size is not configurable: the
// table's last column (WEIR_MAPS) names a member of it.
struct SizeFields : model::MapSizes {
  uint32_t fixed = 0;
};

}  // namespace

uint32_t configured_size(const maps::MapSpec& m, const model::MapSizes& sizes) {
  static const std::pair<maps::MapId, uint32_t SizeFields::*> fields[] = {
#define WEIR_MAP_SIZE_FIELD(ID, base, ver, type, K, V, size, flags, cfg) {maps::MapId::ID, &SizeFields::cfg},
      WEIR_MAPS(WEIR_MAP_SIZE_FIELD)
#undef WEIR_MAP_SIZE_FIELD
  };
  const auto field = fields[static_cast<size_t>(m.id)].second;
  if (field == &SizeFields::fixed) return m.max_entries;
  const SizeFields all{sizes, 0};
  return all.*field;
}

namespace {

// Opens skeleton S (weir_tc, weir_tc_log, weir_tc_prof or weir_tc_log_prof), sizes and pins its maps and loads it into `impl`.
template <typename S>
Status load_skeleton(TcPrograms::Impl& impl, const maps::PinLayout& layout, const model::MapSizes& sizes,
                     const char* name, bool pinned_only = false) {
  auto opened = bpf::Skeleton<S>::open(name);
  if (!opened) return opened.error();
  auto& skel = impl.skel.template emplace<bpf::Skeleton<S>>(std::move(*opened));
  if (!pinned_only) warn_other_versions(layout);
  for (const maps::MapSpec& m : maps::kMapSpecs) {
    const std::string map_name(m.name);
    uint32_t want = configured_size(m, sizes);
    if (pinned_only) {
      // Every map must be the agent's (libbpf would create and pin a missing one).
      auto pinned = bpf::MapFd::open_pinned(layout.map_path(map_name));
      if (!pinned) {
        return Error{ENOENT, fmt::format("no weir state under {} ({} not found): the agent may not be running, or an "
                                         "older weir pinned these maps; see `weir --pin-root`",
                                         layout.root, layout.map_path(map_name))};
      }
      want = pinned->info().max_entries;
    }
    auto size = pinned_size(layout, m, want);
    if (!size) return size.error();
    WEIR_TRY(skel.set_max_entries(map_name, *size));
    WEIR_TRY(skel.set_pin_path(map_name, layout.map_path(map_name)));
  }
  WEIR_TRY(skel.load());
  for (const maps::MapSpec& m : maps::kMapSpecs)
    impl.fds[m.id] = bpf_object__find_map_fd_by_name(skel.object(), std::string(m.name).c_str());
  const auto& p = skel->progs;
  impl.from_wl = bpf_program__fd(p.weir_from_wl);
  impl.to_wl = bpf_program__fd(p.weir_to_wl);
  impl.from_wl_pol = bpf_program__fd(p.weir_from_wl_pol);
  impl.to_wl_pol = bpf_program__fd(p.weir_to_wl_pol);
  impl.vxlan_encap = bpf_program__fd(p.weir_vxlan_encap);
  impl.from_ul = bpf_program__fd(p.weir_from_ul);
  return {};
}

}  // namespace

Result<TcPrograms> TcPrograms::load(const maps::PinLayout& layout, const model::MapSizes& sizes,
                                    Variant variant) {
  WEIR_TRY(maps::write_pin_marker(layout));
  auto impl = std::make_unique<Impl>();
  impl->variant = variant;
  switch (variant) {
    case Variant::Log: WEIR_TRY(load_skeleton<weir_tc_log>(*impl, layout, sizes, "tc_log")); break;
    case Variant::Profile: WEIR_TRY(load_skeleton<weir_tc_prof>(*impl, layout, sizes, "tc_prof")); break;
    case Variant::LogProfile: WEIR_TRY(load_skeleton<weir_tc_log_prof>(*impl, layout, sizes, "tc_log_prof")); break;
    case Variant::Trace: WEIR_TRY(load_skeleton<weir_tc_trace>(*impl, layout, sizes, "tc_trace")); break;
    case Variant::Production: WEIR_TRY(load_skeleton<weir_tc>(*impl, layout, sizes, "tc")); break;
  }
  remove_retired_pins(layout);

  return with_maps(std::move(impl));
}

Result<TcPrograms> TcPrograms::load_trace(const maps::PinLayout& layout) {
  auto impl = std::make_unique<Impl>();
  impl->variant = Variant::Trace;
  WEIR_TRY(load_skeleton<weir_tc_trace>(*impl, layout, model::MapSizes{}, "tc_trace", true));
  return with_maps(std::move(impl));  // its continuations: into weir_trjmp1 only
}

Result<TcPrograms> TcPrograms::with_maps(std::unique_ptr<Impl> impl) {
  const maps::MapFds& fds = impl->fds;
  auto m = maps::WeirMaps::from_fds(fds);
  if (!m) return m.error();
  auto p = maps::PolicyMaps::from_fds(fds);
  if (!p) return p.error();
  auto t = maps::TunnelMaps::from_fds(fds);
  if (!t) return t.error();
  auto l = maps::LogMaps::from_fds(fds);
  if (!l) return l.error();
  TcPrograms progs(std::move(impl), std::make_unique<maps::WeirMaps>(std::move(*m)),
                   std::make_unique<maps::PolicyMaps>(std::move(*p)),
                   std::make_unique<maps::TunnelMaps>(std::move(*t)),
                   std::make_unique<maps::LogMaps>(std::move(*l)));
  WEIR_TRY(progs.install_continuations());
  return progs;
}

Result<std::vector<uint8_t>> TcPrograms::object_bytes(Variant variant) {
  size_t size = 0;
  const void* data = nullptr;
  switch (variant) {
    case Variant::Log: data = weir_tc_log__elf_bytes(&size); break;
    case Variant::Profile: data = weir_tc_prof__elf_bytes(&size); break;
    case Variant::LogProfile: data = weir_tc_log_prof__elf_bytes(&size); break;
    case Variant::Trace: data = weir_tc_trace__elf_bytes(&size); break;
    case Variant::Production: data = weir_tc__elf_bytes(&size); break;
  }
  if (data == nullptr || size == 0) return make_error("the embedded TC object ({}) is empty", to_string(variant));
  const auto* bytes = static_cast<const uint8_t*>(data);
  return std::vector<uint8_t>(bytes, bytes + size);
}

const char* to_string(TcPrograms::Variant v) {
  switch (v) {
    case TcPrograms::Variant::Log: return "log";
    case TcPrograms::Variant::Profile: return "profiling";
    case TcPrograms::Variant::LogProfile: return "log and profiling";
    case TcPrograms::Variant::Trace: return "trace";
    case TcPrograms::Variant::Production: break;
  }
  return "production";
}

bool logs(TcPrograms::Variant v) { return v == TcPrograms::Variant::Log || v == TcPrograms::Variant::LogProfile; }
bool profiles(TcPrograms::Variant v) {
  return v == TcPrograms::Variant::Profile || v == TcPrograms::Variant::LogProfile;
}
TcPrograms::Variant variant_of(bool log, bool profile) {
  using V = TcPrograms::Variant;
  return log ? (profile ? V::LogProfile : V::Log) : (profile ? V::Profile : V::Production);
}

TcPrograms::Variant TcPrograms::variant() const { return impl_->variant; }

Result<std::vector<ObjectMap>> TcPrograms::declared_maps() {
  auto skel = bpf::Skeleton<weir_tc>::open("tc");
  if (!skel) return skel.error();
  std::vector<ObjectMap> out;
  struct bpf_map* m = nullptr;
  bpf_object__for_each_map(m, skel->get()->obj) {
    if (bpf_map__is_internal(m)) continue;  // .rodata and friends: not weir maps
    out.push_back(ObjectMap{bpf_map__name(m), bpf_map__type(m), bpf_map__key_size(m),
                            bpf_map__value_size(m), bpf_map__max_entries(m), bpf_map__map_flags(m)});
  }
  return out;
}

Result<std::map<std::string, uint32_t>> TcPrograms::map_types() {
  auto skel = bpf::Skeleton<weir_tc>::open("tc");
  if (!skel) return skel.error();
  std::map<std::string, uint32_t> out;
  struct bpf_map* m = nullptr;
  bpf_object__for_each_map(m, skel->get()->obj) out[bpf_map__name(m)] = bpf_map__type(m);
  return out;
}

Status TcPrograms::install_continuations() {
  const std::pair<__u32, int> slots[] = {
      {WEIR_JUMP_FROM_WL_POLICY_DONE, from_wl_pol_fd()},
      {WEIR_JUMP_TO_WL_POLICY_DONE, to_wl_pol_fd()},
  };
  if (variant() == Variant::Trace) {
    // The trace build's continuations go where trace-capable policy programs look for them;
    // the live slots (weir_jump1, weir_tun_jump1, weir_logjmp1) are not the trace's to touch.
    for (const auto& [slot, fd] : slots) {
      const int map = impl_->fds[maps::MapId::TRACE_JMP];
      const __u32 k = slot;
      const auto v = static_cast<__u32>(fd);
      if (bpf_map_update_elem(map, &k, &v, BPF_ANY) != 0)
        return errno_error(fmt::format("writing the trace build's continuation into {} slot {}", WEIR_MAP_TRACE_JMP, slot));
    }
    return {};
  }
  for (const auto& [slot, fd] : slots) {
    // PROG_ARRAY value = program fd; the kernel swaps the slot's program atomically.
    auto st = policy_->jump.update(slot, static_cast<__u32>(fd));
    if (!st) return st.error().wrap(fmt::format("writing the policy continuation into jump slot {}", slot));
  }
  auto st = tunnel_->tun_jump.update(WEIR_TUN_JUMP_VXLAN_ENCAP, static_cast<__u32>(vxlan_encap_fd()));
  if (!st) {
    return st.error().wrap(fmt::format("writing the VXLAN encapsulation into {} slot {}",
                                       WEIR_MAP_TUN_JUMP, WEIR_TUN_JUMP_VXLAN_ENCAP));
  }
  if (!logs(variant())) return {};
  // The log variant's main programs, where its pcap filters return (weir/log.h). The
  // production build leaves the slots alone: a packet still in the log variant's chain may
  // need them until every hook has the production build (clear_log_entries()).
  const std::pair<__u32, int> entries[] = {
      {WEIR_LOGJMP_FROM_WL, from_wl_fd()}, {WEIR_LOGJMP_TO_WL, to_wl_fd()}, {WEIR_LOGJMP_FROM_UL, from_ul_fd()}};
  for (const auto& [slot, fd] : entries) {
    auto e = log_->logjmp.update(slot, static_cast<__u32>(fd));
    if (!e) return e.error().wrap(fmt::format("writing the log variant's entry into {} slot {}", WEIR_MAP_LOG_JMP, slot));
  }
  return {};
}

Status TcPrograms::clear_log_entries() {
  for (__u32 slot : {WEIR_LOGJMP_FROM_WL, WEIR_LOGJMP_TO_WL, WEIR_LOGJMP_FROM_UL}) {
    auto r = log_->logjmp.remove(slot);
    if (!r) return r.error().wrap(fmt::format("emptying {} slot {}", WEIR_MAP_LOG_JMP, slot));
  }
  return {};
}

Status TcPrograms::set_tunnel(const TunnelConfig& c) {
  maps::KernelTable<__u32, weir_tunnel_val> t(tunnel_->tunnel);
  return dataplane::set_tunnel(t, c);
}

Status TcPrograms::set_vteps(const std::vector<model::Ipv4>& nodes) {
  maps::KernelTable<__u32, __u32> t(tunnel_->vteps);
  return dataplane::set_vteps(t, nodes);
}

polprog::PolicyMapFds TcPrograms::policy_map_fds() const {
  polprog::PolicyMapFds f;
  f.state = policy_->pstate.fd().fd();
  f.ipsets = policy_->ipsets.fd().fd();
  f.ipset_exact = policy_->ipset_exact.fd().fd();
  f.rule_cnt = policy_->rule_cnt.fd().fd();
  f.jump = policy_->jump.fd().fd();
  f.trace_jump = impl_->fds[maps::MapId::TRACE_JMP];
  f.counters = maps_->counters.fd().fd();
  return f;
}

const maps::MapFds& TcPrograms::map_fds() const { return impl_->fds; }

int TcPrograms::from_wl_fd() const { return impl_->from_wl; }
int TcPrograms::to_wl_fd() const { return impl_->to_wl; }
int TcPrograms::from_wl_pol_fd() const { return impl_->from_wl_pol; }
int TcPrograms::to_wl_pol_fd() const { return impl_->to_wl_pol; }
int TcPrograms::vxlan_encap_fd() const { return impl_->vxlan_encap; }
int TcPrograms::from_ul_fd() const { return impl_->from_ul; }

}  // namespace weir::dataplane
