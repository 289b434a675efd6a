#include "dataplane/programs.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bpf/map.h"
#include "bpf/skeleton.h"
#include "tc.skel.h"
#include "weir/maps.h"
#include "weir/policy.h"

namespace weir::dataplane {

struct TcPrograms::Impl {
  bpf::Skeleton<weir_tc> skel;
};

TcPrograms::TcPrograms(std::unique_ptr<Impl> impl, std::unique_ptr<maps::WeirMaps> m,
                       std::unique_ptr<maps::PolicyMaps> p)
    : impl_(std::move(impl)), maps_(std::move(m)), policy_(std::move(p)) {}
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

Result<TcPrograms> TcPrograms::load(const maps::PinLayout& layout, const model::MapSizes& sizes) {
  WEIR_TRY(maps::write_pin_marker(layout));
  auto impl = std::make_unique<Impl>();
  auto skel = bpf::Skeleton<weir_tc>::open("tc");
  if (!skel) return skel.error();
  impl->skel = std::move(*skel);

  const std::pair<const char*, uint32_t> wanted[] = {
      {WEIR_MAP_NAT_FE, sizes.nat_frontend}, {WEIR_MAP_NAT_BE, sizes.nat_backend},
      {WEIR_MAP_CT, sizes.conntrack},        {WEIR_MAP_ROUTES, sizes.routes},
      {WEIR_MAP_IFSTATE, sizes.ifstate},     {WEIR_MAP_COUNTERS, sizes.counters},
      {WEIR_MAP_JUMP, WEIR_MAP_JUMP_SIZE},   {WEIR_MAP_PSTATE, 1},
      {WEIR_MAP_IPSETS, sizes.ipsets},       {WEIR_MAP_IPSET_X, sizes.ipsets},
      {WEIR_MAP_RULE_CNT, sizes.rule_counters}, {WEIR_MAP_CT_STATS, WEIR_CT_STATS__MAX},
      {WEIR_MAP_FRAGS, WEIR_MAP_FRAGS_SIZE},
  };
  for (const auto& [name, size] : wanted) {
    WEIR_TRY(impl->skel.set_max_entries(name, effective_size(layout, name, size)));
    WEIR_TRY(impl->skel.set_pin_path(name, layout.map_path(name)));
  }
  WEIR_TRY(impl->skel.load());
  remove_retired_pins(layout);

  auto* s = impl->skel.get();
  maps::MapFds fds;
  fds.nat_fe = bpf_map__fd(s->maps.weir_nat_fe1);
  fds.nat_be = bpf_map__fd(s->maps.weir_nat_be1);
  fds.ct = bpf_map__fd(s->maps.weir_ct1);
  fds.routes = bpf_map__fd(s->maps.weir_routes1);
  fds.ifstate = bpf_map__fd(s->maps.weir_ifstate1);
  fds.counters = bpf_map__fd(s->maps.weir_counters2);
  fds.ct_stats = bpf_map__fd(s->maps.weir_ct_stats1);
  auto m = maps::WeirMaps::from_fds(fds);
  if (!m) return m.error();
  maps::PolicyMapFds pfds;
  pfds.jump = bpf_map__fd(s->maps.weir_jump1);
  pfds.pstate = bpf_map__fd(s->maps.weir_pstate1);
  pfds.ipsets = bpf_map__fd(s->maps.weir_ipsets1);
  pfds.ipset_exact = bpf_map__fd(s->maps.weir_ipsetx1);
  pfds.rule_cnt = bpf_map__fd(s->maps.weir_rule_cnt1);
  auto p = maps::PolicyMaps::from_fds(pfds);
  if (!p) return p.error();
  TcPrograms progs(std::move(impl), std::make_unique<maps::WeirMaps>(std::move(*m)),
                   std::make_unique<maps::PolicyMaps>(std::move(*p)));
  WEIR_TRY(progs.install_continuations());
  return progs;
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
  for (const auto& [slot, fd] : slots) {
    // PROG_ARRAY value = program fd; the kernel swaps the slot's program atomically.
    auto st = policy_->jump.update(slot, static_cast<__u32>(fd));
    if (!st) return st.error().wrap(fmt::format("writing the policy continuation into jump slot {}", slot));
  }
  return {};
}

polprog::PolicyMapFds TcPrograms::policy_map_fds() const {
  polprog::PolicyMapFds f;
  f.state = policy_->pstate.fd().fd();
  f.ipsets = policy_->ipsets.fd().fd();
  f.ipset_exact = policy_->ipset_exact.fd().fd();
  f.rule_cnt = policy_->rule_cnt.fd().fd();
  f.jump = policy_->jump.fd().fd();
  f.counters = maps_->counters.fd().fd();
  return f;
}

int TcPrograms::from_wl_fd() const { return bpf_program__fd(impl_->skel->progs.weir_from_wl); }
int TcPrograms::to_wl_fd() const { return bpf_program__fd(impl_->skel->progs.weir_to_wl); }
int TcPrograms::from_wl_pol_fd() const {
  return bpf_program__fd(impl_->skel->progs.weir_from_wl_pol);
}
int TcPrograms::to_wl_pol_fd() const { return bpf_program__fd(impl_->skel->progs.weir_to_wl_pol); }

}  // namespace weir::dataplane
