#include "maps/pin_layout.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>

#include "bpf/bpffs.h"
#include "bpf/map.h"
#include "weir/common.h"

namespace weir::maps {

namespace {
std::string trimmed_root(const std::string& root) {
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return r;
}
}  // namespace

std::string PinLayout::maps_dir() const { return trimmed_root(root) + "/maps"; }

std::string PinLayout::map_path(std::string_view name) const {
  return maps_dir() + "/" + std::string(name);
}

std::string PinLayout::links_dir() const { return trimmed_root(root) + "/links"; }

std::string PinLayout::link_path(const std::string& ifname, bpf::TcDir dir) const {
  return links_dir() + "/" + bpf::sanitize_pin_name(ifname) + "_" + std::string(bpf::to_string(dir));
}

std::string PinLayout::marker_path() const {
  return trimmed_root(root) + "/" + std::string(kPinMarkerName);
}

namespace {
// A new marker map holding our value, frozen.
Result<bpf::MapFd> make_marker() {
  auto m = bpf::MapFd::create(BPF_MAP_TYPE_ARRAY, std::string(kPinMarkerName), sizeof(uint32_t),
                              sizeof(PinMarkerValue), 1, BPF_F_RDONLY_PROG);
  if (!m) return m.error().wrap("creating the pin root marker");
  PinMarkerValue v;
  v.layout_version = WEIR_MAPS_VERSION;
  uint32_t key = 0;
  WEIR_TRY(bpf::detail::raw_update(*m, &key, &v, BPF_ANY));
  if (bpf_map_freeze(m->fd()) != 0) return errno_error("freezing the pin root marker");
  return m;
}
}  // namespace

Status write_pin_marker(const PinLayout& layout) {
  WEIR_TRY(bpf::mkdirs(trimmed_root(layout.root)));
  const std::string path = layout.marker_path();
  auto have = is_pin_marker(path);
  if (!have) return have.error();
  if (*have) return {};
  auto m = make_marker();
  if (!m) return m.error();
  auto st = m->pin(path);
  if (st) return {};
  // Lost a race with another writer: fine when what is there now is a marker too.
  auto now = is_pin_marker(path);
  if (now && *now) return {};
  return Error{st.error().err, fmt::format("{} exists and is not weir's pin root marker: {}", path,
                                           st.error().msg)};
}

Result<bool> is_pin_marker(const std::string& path) {
  auto o = bpf::inspect_pin(path);
  if (!o) return o.error().err == ENOENT ? Result<bool>(false) : Result<bool>(o.error());
  if (o->kind != bpf::PinKind::Map || o->name != kPinMarkerName || o->type != BPF_MAP_TYPE_ARRAY)
    return false;
  auto m = bpf::MapFd::open_pinned(path);
  if (!m) return m.error();
  const auto& i = m->info();
  if (i.key_size != sizeof(uint32_t) || i.value_size != sizeof(PinMarkerValue) || i.max_entries != 1)
    return false;
  uint32_t key = 0;
  PinMarkerValue v{};
  auto found = bpf::detail::raw_lookup(*m, &key, &v);
  if (!found) return found.error();
  return *found && v.magic == kPinMarkerMagic;
}

}  // namespace weir::maps
