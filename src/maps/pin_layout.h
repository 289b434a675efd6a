// Where weir pins its state under a pin root (default /sys/fs/bpf/weir):
//   <root>/maps/<map name>                       every map (names from bpf/include/weir/maps.h)
//   <root>/links/<sanitized ifname>_<ingress|egress>   tcx links
#pragma once

#include <string>
#include <string_view>

#include "bpf/attach.h"

namespace weir::maps {

struct PinLayout {
  std::string root = "/sys/fs/bpf/weir";

  std::string maps_dir() const;                        // <root>/maps
  std::string map_path(std::string_view name) const;   // <root>/maps/<name>
  std::string links_dir() const;                       // <root>/links
  // <root>/links/<sanitize_pin_name(ifname)>_<ingress|egress>
  std::string link_path(const std::string& ifname, bpf::TcDir dir) const;
};

}  // namespace weir::maps
