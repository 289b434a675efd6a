// The loader (dataplane::TcPrograms::load) against maps already pinned under its pin root: a
// compatible map is reused with its state; a map of another shape is refused with an error that
// names the map, the pinned and the expected shape and what to do; a pin of another layout
// version of one of our maps is reported. Each test on a private bpffs (tests/common).
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "../common/private_bpffs.h"
#include "dataplane/programs.h"
#include "maps/map_table.h"

namespace weir {
namespace {

using privns::PrivateBpffs;

// Captures what spdlog's default logger writes while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

// Pins a map named `name` of the given shape at layout.map_path(name).
void pin_map(const maps::PinLayout& layout, const std::string& name, uint32_t type, uint32_t k,
             uint32_t v, uint32_t n, uint32_t flags = 0) {
  ASSERT_TRUE(bpf::mkdirs(layout.maps_dir()).ok());
  auto m = bpf::MapFd::create(type, name, k, v, n, flags);
  ASSERT_TRUE(m.ok()) << m.error().str();
  ASSERT_TRUE(m->pin(layout.map_path(name)).ok());
}

TEST(PinnedMaps, AnotherValueSizeIsRefusedWithTheMapAndWhatToDoNamed) {
  PrivateBpffs p("pinned-value");
  p.run([&] {
    const maps::PinLayout layout{p.mnt() + "/weir"};
    const maps::MapSpec& ct = maps::spec(maps::MapId::CT);
    pin_map(layout, WEIR_MAP_CT, ct.type, ct.key_size, ct.value_size - 8, 64);
    auto progs = dataplane::TcPrograms::load(layout, privns::small_map_sizes());
    ASSERT_FALSE(progs.ok());
    const std::string msg = progs.error().str();
    EXPECT_NE(msg.find("map weir_ct2 (layout version 2) pinned at " + layout.map_path(WEIR_MAP_CT)),
              std::string::npos) << msg;
    EXPECT_NE(msg.find(fmt::format("value {} B", ct.value_size - 8)), std::string::npos) << msg;
    EXPECT_NE(msg.find(fmt::format("expects weir_ct2 (lru_hash, key {} B, value {} B", ct.key_size,
                                   ct.value_size)), std::string::npos) << msg;
    EXPECT_NE(msg.find("`weir bpf cleanup`"), std::string::npos) << msg;
  });
}

TEST(PinnedMaps, AnotherTypeIsRefused) {
  PrivateBpffs p("pinned-type");
  p.run([&] {
    const maps::PinLayout layout{p.mnt() + "/weir"};
    const maps::MapSpec& fe = maps::spec(maps::MapId::NAT_FE);
    pin_map(layout, WEIR_MAP_NAT_FE, BPF_MAP_TYPE_LRU_HASH, fe.key_size, fe.value_size, 64);
    auto progs = dataplane::TcPrograms::load(layout, privns::small_map_sizes());
    ASSERT_FALSE(progs.ok());
    const std::string msg = progs.error().str();
    EXPECT_NE(msg.find("named weir_nat_fe1 (lru_hash,"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expects weir_nat_fe1 (hash,"), std::string::npos) << msg;
    EXPECT_NE(msg.find("`weir bpf cleanup`"), std::string::npos) << msg;
  });
}

TEST(PinnedMaps, AnotherSizeIsKeptWithAWarningAndTheStateReused) {
  PrivateBpffs p("pinned-size");
  p.run([&] {
    const maps::PinLayout layout{p.mnt() + "/weir"};
    const maps::MapSpec& ct = maps::spec(maps::MapId::CT);
    pin_map(layout, WEIR_MAP_CT, ct.type, ct.key_size, ct.value_size, 64);
    {
      auto m = maps::ConntrackMap::open_pinned(layout.map_path(WEIR_MAP_CT));
      ASSERT_TRUE(m.ok()) << m.error().str();
      ASSERT_TRUE(m->update(weir_ct_key{1, 2, 3, 4, 6, {}}, weir_ct_val{}).ok());
    }
    LogCapture log;
    auto progs = dataplane::TcPrograms::load(layout, privns::small_map_sizes());
    ASSERT_TRUE(progs.ok()) << progs.error().str();
    EXPECT_EQ(progs->maps().ct.info().max_entries, 64u);
    EXPECT_EQ(progs->maps().ct.count().value(), 1u) << "the pinned map (and its flow) is reused";
    EXPECT_NE(log.text().find("map weir_ct2 is pinned with 64 entries, configuration asks for 1024"),
              std::string::npos) << log.text();
  });
}

TEST(PinnedMaps, AnotherLayoutVersionOfAMapIsReported) {
  PrivateBpffs p("pinned-version");
  p.run([&] {
    const maps::PinLayout layout{p.mnt() + "/weir"};
    const maps::MapSpec& ct = maps::spec(maps::MapId::CT);
    const std::string newer = "weir_ct" + std::to_string(ct.version + 1);
    pin_map(layout, newer, ct.type, ct.key_size, ct.value_size + 8, 64);
    LogCapture log;
    auto progs = dataplane::TcPrograms::load(layout, privns::small_map_sizes());
    ASSERT_TRUE(progs.ok()) << progs.error().str();
    EXPECT_NE(log.text().find(fmt::format("found {}: layout version {} of map ct, this weir uses "
                                          "weir_ct2 (version 2)",
                                          layout.map_path(newer), ct.version + 1)),
              std::string::npos) << log.text();
    EXPECT_NE(log.text().find("`weir bpf cleanup`"), std::string::npos);
    EXPECT_TRUE(privns::exists(layout.map_path(newer))) << "another version's map is left alone";
  });
}

}  // namespace
}  // namespace weir
