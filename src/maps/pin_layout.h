// Where weir pins its state under a pin root (default /sys/fs/bpf/weir):
//   <root>/weir_marker                           weir's marker: this directory is a weir pin root
//   <root>/maps/<map name>                       every map (names from bpf/include/weir/maps.h)
//   <root>/links/<sanitized ifname>_<ingress|egress>   tcx links
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bpf/attach.h"
#include "util/result.h"

namespace weir::maps {

struct PinLayout {
  std::string root = "/sys/fs/bpf/weir";

  std::string maps_dir() const;                        // <root>/maps
  std::string map_path(std::string_view name) const;   // <root>/maps/<name>
  std::string links_dir() const;                       // <root>/links
  // <root>/links/<sanitize_pin_name(ifname)>_<ingress|egress>
  std::string link_path(const std::string& ifname, bpf::TcDir dir) const;
  std::string marker_path() const;                     // <root>/weir_marker
};

// The marker: a one-entry BPF array map named "weir_marker" pinned at <root>/weir_marker,
// frozen (read-only from user space once written) and holding this value. bpffs holds only
// BPF objects, so the marker is one; `weir bpf cleanup` cleans a pin root that holds it.
inline constexpr std::string_view kPinMarkerName = "weir_marker";
inline constexpr uint64_t kPinMarkerMagic = 0x31524b4d52494557ull;  // "WEIRMKR1" little-endian
struct PinMarkerValue {
  uint64_t magic = kPinMarkerMagic;
  uint32_t layout_version = 0;  // WEIR_MAPS_VERSION of the weir that created the pin root
  uint32_t reserved = 0;
};
static_assert(sizeof(PinMarkerValue) == 16);

// Create the pin root (mkdir -p) and pin the marker in it unless it is there already
// (idempotent, safe against a concurrent writer). Something else pinned at the marker's path is
// an Error naming it. The loader (dataplane::TcPrograms::load) calls it before pinning maps.
Status write_pin_marker(const PinLayout& layout);

// True when the object pinned at `path` is weir's marker (name, type, sizes and magic).
// A missing pin is false; an unreadable one is an Error.
Result<bool> is_pin_marker(const std::string& path);

}  // namespace weir::maps
