// The C++ side of the map table (bpf/include/weir/maps.h, WEIR_MAPS): an id per map, its spec
// (name, version, type, sizes, flags, the DataplaneConfig field that sizes it), its key and
// value types, and the typed view (bpf::Map or bpf::PerCpuMap) that opens it. Everything is
// derived from the table: adding a map is one row there plus its types.
#pragma once

#include <linux/bpf.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "bpf/map.h"
#include "weir/maps.h"

namespace weir::maps {

enum class MapId : uint8_t {
#define WEIR_MAP_ID(ID, ...) ID,
  WEIR_MAPS(WEIR_MAP_ID)
#undef WEIR_MAP_ID
};

struct MapSpec {
  MapId id;
  std::string_view name;        // weir_<base><version>: BPF object name and pin name
  std::string_view base;        // the name without prefix and version
  uint32_t version = 0;         // layout version of this map
  uint32_t type = 0;            // enum bpf_map_type
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;     // default size
  uint32_t flags = 0;           // map_flags
  std::string_view size_field;  // model::MapSizes member (spec.mapSizes) or "fixed"
};

inline constexpr MapSpec kMapSpecs[] = {
// A ring buffer has no key and no value (its row's value type is the record it carries).
#define WEIR_MAP_SPEC(ID, base, ver, mtype, K, V, size, mflags, cfg)                             \
  MapSpec{MapId::ID,                                                                            \
          WEIR_MAP_NAME(base, ver),                                                             \
          #base,                                                                                \
          ver,                                                                                  \
          mtype,                                                                                \
          (mtype) == BPF_MAP_TYPE_RINGBUF ? 0u : uint32_t(sizeof(K)),                          \
          (mtype) == BPF_MAP_TYPE_RINGBUF ? 0u : uint32_t(sizeof(V)),                          \
          size,                                                                                 \
          mflags,                                                                               \
          #cfg},
    WEIR_MAPS(WEIR_MAP_SPEC)
#undef WEIR_MAP_SPEC
};
inline constexpr size_t kMapCount = std::size(kMapSpecs);

constexpr const MapSpec& spec(MapId id) { return kMapSpecs[static_cast<size_t>(id)]; }
constexpr std::string_view name(MapId id) { return spec(id).name; }

// Names of the retired maps (WEIR_MAPS_RETIRED), as pinned by an older weir.
inline constexpr std::string_view kRetiredMapNames[] = {
#define WEIR_MAP_RETIRED_NAME(base, ver) WEIR_MAP_NAME(base, ver),
    WEIR_MAPS_RETIRED(WEIR_MAP_RETIRED_NAME)
#undef WEIR_MAP_RETIRED_NAME
};

// Key and value types of map `id`.
template <MapId id>
struct MapTypes;
#define WEIR_MAP_TYPES(ID, base, ver, type, K, V, ...) \
  template <>                                          \
  struct MapTypes<MapId::ID> {                         \
    using Key = K;                                     \
    using Value = V;                                   \
  };
WEIR_MAPS(WEIR_MAP_TYPES)
#undef WEIR_MAP_TYPES

// The typed view of map `id`: bpf::PerCpuMap for per-CPU maps, else bpf::Map.
template <MapId id>
using MapView = std::conditional_t<bpf::is_percpu_map_type(spec(id).type),
                                   bpf::PerCpuMap<typename MapTypes<id>::Key, typename MapTypes<id>::Value>,
                                   bpf::Map<typename MapTypes<id>::Key, typename MapTypes<id>::Value>>;

// One borrowed fd per map, indexed by MapId (-1 = none).
struct MapFds {
  std::array<int, kMapCount> fd;
  MapFds() { fd.fill(-1); }
  int& operator[](MapId id) { return fd[static_cast<size_t>(id)]; }
  int operator[](MapId id) const { return fd[static_cast<size_t>(id)]; }
};

}  // namespace weir::maps
