// The map table (bpf/include/weir/maps.h, src/maps/map_table.h) is consistent with itself, with
// the configuration's defaults and with what the embedded BPF object declares. No root needed:
// the object is opened, never loaded.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "dataplane/programs.h"
#include "maps/map_table.h"
#include "maps/weir_maps.h"
#include "model/resources.h"

namespace weir::maps {
namespace {

TEST(MapTable, IdsIndexTheTable) {
  for (size_t i = 0; i < kMapCount; i++) EXPECT_EQ(static_cast<size_t>(kMapSpecs[i].id), i);
  EXPECT_EQ(all_map_names().size(), kMapCount);
}

TEST(MapTable, NamesAreUniqueVersionedAndValidPinNames) {
  std::set<std::string_view> names, bases;
  for (const MapSpec& m : kMapSpecs) {
    EXPECT_TRUE(names.insert(m.name).second) << m.name << " twice";
    EXPECT_TRUE(bases.insert(m.base).second) << m.base << " twice";
    EXPECT_GE(m.version, 1u) << m.name;
    EXPECT_EQ(m.name, "weir_" + std::string(m.base) + std::to_string(m.version));
    EXPECT_LE(m.name.size(), 15u) << m.name << " is longer than BPF_OBJ_NAME_LEN - 1";
    EXPECT_EQ(m.name.find('.'), std::string::npos) << m.name << ": bpffs names may not contain dots";
    EXPECT_FALSE(m.base.back() >= '0' && m.base.back() <= '9') << m.base << ": ends in a digit, "
                                                              "the version would be ambiguous";
  }
}

TEST(MapTable, RetiredNamesAreOlderVersionsOfCurrentMaps) {
  std::map<std::string, uint32_t> current;
  for (const MapSpec& m : kMapSpecs) current["weir_" + std::string(m.base)] = m.version;
  for (std::string_view r : kRetiredMapNames) {
    std::string s(r);
    size_t digits = s.find_last_not_of("0123456789") + 1;
    ASSERT_LT(digits, s.size()) << s << " has no version";
    auto it = current.find(s.substr(0, digits));
    ASSERT_NE(it, current.end()) << s << " retires no current map";
    EXPECT_LT(std::stoul(s.substr(digits)), it->second) << s << " is not older than the current map";
  }
}

TEST(MapTable, DefaultSizesEqualTheConfigurationDefaults) {
  const model::MapSizes defaults;
  for (const MapSpec& m : kMapSpecs) {
    EXPECT_GT(m.max_entries, 0u) << m.name;
    EXPECT_EQ(dataplane::configured_size(m, defaults), m.max_entries) << m.name << " (" << m.size_field << ")";
  }
}

TEST(MapTable, SizeFieldsSizeTheirMaps) {
  // Every configurable field set to a distinct value: each map gets its field's.
  model::MapSizes s;
  s.nat_frontend = 11, s.nat_backend = 12, s.conntrack = 13, s.routes = 14, s.ifstate = 15;
  s.counters = 16, s.ipsets = 17, s.rule_counters = 18;
  const std::map<std::string_view, uint32_t> want = {
      {"nat_frontend", 11}, {"nat_backend", 12}, {"conntrack", 13}, {"routes", 14},
      {"ifstate", 15},      {"counters", 16},    {"ipsets", 17},    {"rule_counters", 18}};
  for (const MapSpec& m : kMapSpecs) {
    if (m.size_field == "fixed") {
      EXPECT_EQ(dataplane::configured_size(m, s), m.max_entries) << m.name;
      continue;
    }
    ASSERT_TRUE(want.count(m.size_field)) << m.name << ": unknown size field " << m.size_field;
    EXPECT_EQ(dataplane::configured_size(m, s), want.at(m.size_field)) << m.name;
  }
}

TEST(MapTable, TheBpfObjectDeclaresExactlyTheTable) {
  auto declared = dataplane::TcPrograms::declared_maps();
  ASSERT_TRUE(declared.ok()) << declared.error().str();
  std::map<std::string, dataplane::ObjectMap> by_name;
  for (const auto& o : *declared) by_name[o.name] = o;
  EXPECT_EQ(by_name.size(), kMapCount);
  for (const MapSpec& m : kMapSpecs) {
    auto it = by_name.find(std::string(m.name));
    ASSERT_NE(it, by_name.end()) << m.name << " is in the table, not in the BPF object";
    const auto& o = it->second;
    EXPECT_EQ(o.type, m.type) << m.name;
    EXPECT_EQ(o.key_size, m.key_size) << m.name;
    EXPECT_EQ(o.value_size, m.value_size) << m.name;
    EXPECT_EQ(o.max_entries, m.max_entries) << m.name;
    EXPECT_EQ(o.flags, m.flags) << m.name;
  }
}

}  // namespace
}  // namespace weir::maps
