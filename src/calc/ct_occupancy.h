// The agent's conntrack occupancy warning as a pure state machine: no clock, no logging, no
// syscalls. The agent feeds it the table's occupancy after each conntrack scan and logs what it
// answers:
//   Raised   once, when occupancy reaches the threshold (entries * 100 >= threshold * capacity);
//   Cleared  once, when it has fallen below the clear level afterwards;
//   None     otherwise (still high, still low, or in between).
// The clear level sits min(5, threshold / 2) points below the threshold (85% for the default
// 90%), so a table hovering around the threshold does not log at every scan (hysteresis).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace weir::calc {

class CtOccupancyAlarm {
 public:
  enum class Event { None, Raised, Cleared };

  // threshold_percent: 1..100 (DataplaneConfig conntrackWarnThresholdPercent); values outside
  // are clamped into it.
  explicit CtOccupancyAlarm(uint32_t threshold_percent = 90) { set_threshold(threshold_percent); }

  // A new threshold (configuration change) applies from the next update(); a raised alarm
  // stays raised until occupancy falls below the new clear level.
  void set_threshold(uint32_t percent);
  Event update(uint64_t entries, uint64_t capacity);

  bool raised() const { return raised_; }
  uint32_t threshold_percent() const { return threshold_; }
  uint32_t clear_percent() const { return threshold_ - band(); }

 private:
  uint32_t band() const { return threshold_ / 2 < 5 ? threshold_ / 2 : 5; }
  uint32_t threshold_ = 90;
  bool raised_ = false;
};

// Occupancy in whole percent, rounded down (0 when capacity is 0).
uint64_t ct_occupancy_percent(uint64_t entries, uint64_t capacity);

// The WARNING line for Event::Raised: occupancy, capacity, threshold and what to do.
std::string ct_occupancy_warning(std::string_view map_name, uint64_t entries, uint64_t capacity,
                                 uint32_t threshold_percent);
// The INFO line for Event::Cleared.
std::string ct_occupancy_recovered(std::string_view map_name, uint64_t entries, uint64_t capacity,
                                   uint32_t clear_percent);

}  // namespace weir::calc
