// The conntrack occupancy warning's state machine (src/calc/ct_occupancy.h). No root needed.
#include <gtest/gtest.h>

#include "calc/ct_occupancy.h"

namespace weir::calc {
namespace {

using Event = CtOccupancyAlarm::Event;

TEST(CtOccupancyAlarm, RaisedOnceWhenTheThresholdIsReached) {
  CtOccupancyAlarm a;  // 90%
  EXPECT_EQ(a.update(0, 1000), Event::None);
  EXPECT_EQ(a.update(899, 1000), Event::None);
  EXPECT_FALSE(a.raised());
  EXPECT_EQ(a.update(900, 1000), Event::Raised) << "exactly the threshold counts";
  EXPECT_TRUE(a.raised());
  EXPECT_EQ(a.update(1000, 1000), Event::None) << "logged once, not at every scan";
  EXPECT_EQ(a.update(950, 1000), Event::None);
}

TEST(CtOccupancyAlarm, ClearsOnlyBelowTheClearLevelThenCanBeRaisedAgain) {
  CtOccupancyAlarm a(90);
  EXPECT_EQ(a.clear_percent(), 85u);
  ASSERT_EQ(a.update(4096, 4096), Event::Raised);
  // Hovering between 85% and 90%: nothing logged either way.
  EXPECT_EQ(a.update(3600, 4096), Event::None);  // 87.9%
  EXPECT_EQ(a.update(3686, 4096), Event::None);  // 89.99%
  EXPECT_EQ(a.update(3482, 4096), Event::None);  // 85.01%: not below 85%
  EXPECT_EQ(a.update(3481, 4096), Event::Cleared);  // 84.99%
  EXPECT_FALSE(a.raised());
  EXPECT_EQ(a.update(100, 4096), Event::None);
  EXPECT_EQ(a.update(3686, 4096), Event::None) << "between the levels, not raised again";
  EXPECT_EQ(a.update(3687, 4096), Event::Raised);  // 90.01%
}

TEST(CtOccupancyAlarm, ThresholdBoundsAndSmallBands) {
  CtOccupancyAlarm full(100);
  EXPECT_EQ(full.clear_percent(), 95u);
  EXPECT_EQ(full.update(4095, 4096), Event::None);
  EXPECT_EQ(full.update(4096, 4096), Event::Raised);
  CtOccupancyAlarm one(1);
  EXPECT_EQ(one.clear_percent(), 1u) << "band of threshold / 2 = 0 points";
  EXPECT_EQ(one.update(0, 100), Event::None);
  EXPECT_EQ(one.update(1, 100), Event::Raised);
  EXPECT_EQ(one.update(0, 100), Event::Cleared);
  CtOccupancyAlarm eight(8);
  EXPECT_EQ(eight.clear_percent(), 4u);
  CtOccupancyAlarm clamped(0);
  EXPECT_EQ(clamped.threshold_percent(), 1u);
  clamped.set_threshold(250);
  EXPECT_EQ(clamped.threshold_percent(), 100u);
  EXPECT_EQ(CtOccupancyAlarm(90).update(10, 0), Event::None) << "no capacity, no division";
}

TEST(CtOccupancyAlarm, ThresholdChangeKeepsTheRaisedStateUntilBelowTheNewClearLevel) {
  CtOccupancyAlarm a(90);
  ASSERT_EQ(a.update(95, 100), Event::Raised);
  a.set_threshold(99);  // 95% is now under the threshold but above the clear level (94%)
  EXPECT_EQ(a.update(95, 100), Event::None);
  EXPECT_EQ(a.update(93, 100), Event::Cleared);
  a.set_threshold(50);
  EXPECT_EQ(a.update(93, 100), Event::Raised);
}

TEST(CtOccupancyAlarm, LargeTablesDoNotOverflow) {
  CtOccupancyAlarm a(90);
  const uint64_t cap = 16u * 1024 * 1024;
  EXPECT_EQ(a.update(cap * 9 / 10 - 1, cap), Event::None);
  EXPECT_EQ(a.update(cap, cap), Event::Raised);
}

TEST(CtOccupancyMessages, SayOccupancyCapacityAndWhatToDo) {
  auto w = ct_occupancy_warning("weir_ct1", 3891, 4096, 90);
  EXPECT_NE(w.find("conntrack table weir_ct1 is 94% full (3891 of 4096 entries, warning threshold 90%)"),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("raise DataplaneConfig spec.mapSizes.conntrack"), std::string::npos) << w;
  EXPECT_NE(w.find("weir bpf conntrack stats"), std::string::npos) << w;
  auto i = ct_occupancy_recovered("weir_ct1", 2048, 4096, 85);
  EXPECT_EQ(i, "conntrack table weir_ct1 is back to 50% full (2048 of 4096 entries, below 85%): "
               "occupancy warning cleared");
  EXPECT_EQ(ct_occupancy_percent(4095, 4096), 99u);
  EXPECT_EQ(ct_occupancy_percent(1, 0), 0u);
}

}  // namespace
}  // namespace weir::calc
