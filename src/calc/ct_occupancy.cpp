#include "calc/ct_occupancy.h"

#include <algorithm>

#include <fmt/format.h>

namespace weir::calc {

void CtOccupancyAlarm::set_threshold(uint32_t percent) {
  threshold_ = std::clamp<uint32_t>(percent, 1, 100);
}

CtOccupancyAlarm::Event CtOccupancyAlarm::update(uint64_t entries, uint64_t capacity) {
  if (capacity == 0) return Event::None;
  // Integer comparisons: no rounding at the boundary.
  const bool high = entries * 100 >= uint64_t{threshold_} * capacity;
  const bool low = entries * 100 < uint64_t{clear_percent()} * capacity;
  if (!raised_ && high) {
    raised_ = true;
    return Event::Raised;
  }
  if (raised_ && low) {
    raised_ = false;
    return Event::Cleared;
  }
  return Event::None;
}

uint64_t ct_occupancy_percent(uint64_t entries, uint64_t capacity) {
  return capacity == 0 ? 0 : entries * 100 / capacity;
}

std::string ct_occupancy_warning(std::string_view map_name, uint64_t entries, uint64_t capacity,
                                 uint32_t threshold_percent) {
  return fmt::format(
      "conntrack table {} is {}% full ({} of {} entries, warning threshold {}%): when it is full, "
      "new flows evict the least recently used entries and idle connections lose their state; "
      "raise DataplaneConfig spec.mapSizes.conntrack (it takes effect when the map is created: "
      "`weir bpf cleanup` and an agent restart) and find where the new flows come from "
      "(`weir bpf conntrack stats`, `weir bpf conntrack dump`)",
      map_name, ct_occupancy_percent(entries, capacity), entries, capacity, threshold_percent);
}

std::string ct_occupancy_recovered(std::string_view map_name, uint64_t entries, uint64_t capacity,
                                   uint32_t clear_percent) {
  return fmt::format("conntrack table {} is back to {}% full ({} of {} entries, below {}%): "
                     "occupancy warning cleared",
                     map_name, ct_occupancy_percent(entries, capacity), entries, capacity,
                     clear_percent);
}

}  // namespace weir::calc
