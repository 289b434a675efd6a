#include "dataplane/programs.h"

#include <spdlog/spdlog.h>

#include "bpf/map.h"
#include "bpf/skeleton.h"
#include "tc.skel.h"
#include "weir/maps.h"

namespace weir::dataplane {

struct TcPrograms::Impl {
  bpf::Skeleton<weir_tc> skel;
};

TcPrograms::TcPrograms(std::unique_ptr<Impl> impl, std::unique_ptr<maps::WeirMaps> m)
    : impl_(std::move(impl)), maps_(std::move(m)) {}
TcPrograms::TcPrograms(TcPrograms&&) noexcept = default;
TcPrograms& TcPrograms::operator=(TcPrograms&&) noexcept = default;
TcPrograms::~TcPrograms() = default;

namespace {

// The size a map will have: the pinned map's when one exists (its state is kept), else `want`.
uint32_t effective_size(const maps::PinLayout& layout, const char* name, uint32_t want) {
  auto pinned = bpf::MapFd::open_pinned(layout.map_path(name));
  if (!pinned) return want;
  uint32_t have = pinned->info().max_entries;
  if (have != want) {
    spdlog::warn(
        "map {} is pinned with {} entries, configuration asks for {}: keeping the pinned map "
        "and its state; the new size takes effect after `weir bpf cleanup` and a restart",
        name, have, want);
  }
  return have;
}

}  // namespace

Result<TcPrograms> TcPrograms::load(const maps::PinLayout& layout, const model::MapSizes& sizes) {
  auto impl = std::make_unique<Impl>();
  auto skel = bpf::Skeleton<weir_tc>::open("tc");
  if (!skel) return skel.error();
  impl->skel = std::move(*skel);

  const std::pair<const char*, uint32_t> wanted[] = {
      {WEIR_MAP_NAT_FE, sizes.nat_frontend}, {WEIR_MAP_NAT_BE, sizes.nat_backend},
      {WEIR_MAP_CT, sizes.conntrack},        {WEIR_MAP_ROUTES, sizes.routes},
      {WEIR_MAP_IFSTATE, sizes.ifstate},     {WEIR_MAP_COUNTERS, sizes.counters},
  };
  for (const auto& [name, size] : wanted) {
    WEIR_TRY(impl->skel.set_max_entries(name, effective_size(layout, name, size)));
    WEIR_TRY(impl->skel.set_pin_path(name, layout.map_path(name)));
  }
  WEIR_TRY(impl->skel.load());

  auto* s = impl->skel.get();
  maps::MapFds fds;
  fds.nat_fe = bpf_map__fd(s->maps.weir_nat_fe1);
  fds.nat_be = bpf_map__fd(s->maps.weir_nat_be1);
  fds.ct = bpf_map__fd(s->maps.weir_ct1);
  fds.routes = bpf_map__fd(s->maps.weir_routes1);
  fds.ifstate = bpf_map__fd(s->maps.weir_ifstate1);
  fds.counters = bpf_map__fd(s->maps.weir_counters1);
  auto m = maps::WeirMaps::from_fds(fds);
  if (!m) return m.error();
  return TcPrograms(std::move(impl), std::make_unique<maps::WeirMaps>(std::move(*m)));
}

int TcPrograms::from_wl_fd() const { return bpf_program__fd(impl_->skel->progs.weir_from_wl); }
int TcPrograms::to_wl_fd() const { return bpf_program__fd(impl_->skel->progs.weir_to_wl); }

}  // namespace weir::dataplane
