#include "maps/pin_layout.h"

#include "bpf/bpffs.h"

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

}  // namespace weir::maps
