// Conntrack pressure as the operator sees it: a pod floods SYNs at a ClusterIP service through a
// 4,096-entry conntrack table; `weir bpf conntrack stats` shows the table near capacity with the
// creations and estimated evictions, the agent logs its occupancy WARNING once, and, when the
// flood's entries expire, the agent's deletions and its INFO that the warning cleared.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>

#include "e2e_util.h"
#include "lab/flood.h"
#include "lab/lab.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

using lab::Lab;

constexpr const char* kVip = "10.96.0.10";
constexpr uint64_t kTableSize = 4096;
constexpr int kThreshold = 80;
constexpr int kSyns = 4000;  // 8,000 entries (NAT pairs) for 4,096 slots

// Lines of `log` that contain every one of `parts`.
int count_lines(const std::string& log, std::initializer_list<std::string_view> parts) {
  std::istringstream in(log);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    bool all = true;
    for (auto p : parts) all = all && line.find(p) != std::string::npos;
    n += all ? 1 : 0;
  }
  return n;
}

nlohmann::json ct_stats(const Lab& l) {
  auto out = l.run_weir({"bpf", "conntrack", "stats", "--json"});
  EXPECT_TRUE(out.ok()) << out.error().str();
  return out.ok() ? nlohmann::json::parse(*out) : nlohmann::json::object();
}

TEST(ConntrackPressureE2E, FloodFillsTheTableStatsShowItAgentWarnsOnceThenRecovers) {
  require_root();
  lab::LabSpec spec;
  spec.pods = 3;
  spec.weir_binary = kWeirBinary;
  spec.start_agent = false;
  auto up = Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab lab = std::move(*up);
  // A small table, a lower threshold than the default (a table whose entries are spread over
  // many CPUs' LRU free lists may stay a little below full), and flood entries that expire
  // 20 s after the flood: long enough for the warning, the stats and `weir doctor` to see them
  // even when a starved guest takes seconds per doctor run (at 10 s, one did not), short enough
  // for the test to see them go.
  ASSERT_TRUE(lab.write_resource(
                     "dataplaneconfig.yaml",
                     fmt::format("apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {{name: default}}\n"
                                 "spec:\n  minSyncPeriod: 200ms\n  conntrackScanPeriod: 1s\n"
                                 "  conntrackWarnThresholdPercent: {}\n"
                                 "  conntrackTimeouts: {{tcpSynSent: 20s, tcpReset: 10s, tcpFin: 10s}}\n"
                                 "  mapSizes: {{conntrack: {}}}\n",
                                 kThreshold, kTableSize))
                  .ok());
  ASSERT_TRUE(lab.start_agent().ok());
  ASSERT_TRUE(lab.start_server("pod3", {8080}, {}).ok());
  ASSERT_TRUE(write_web_service(lab, kVip, {"pod3"}).ok());
  ASSERT_TRUE(wait_until([&] {
    auto r = lab.in_pod("pod2", [] {
      auto c = lab::tcp_connect(kVip, 80, 500ms);
      if (!c) return Result<std::string>(c.error());
      return lab::tcp_request(c->get(), 1s);
    });
    return r.ok();
  }, 15s)) << "service not reachable\n" << tail(lab.agent_log(), 30);

  auto before = ct_stats(lab);
  ASSERT_EQ(before["max_entries"], kTableSize);
  EXPECT_LT(before["entries"].get<uint64_t>(), 100u);
  EXPECT_EQ(count_lines(lab.agent_log(), {"[WARNING]", "conntrack table"}), 0);

  // The flood: pod1 -> VIP:80, one new flow per SYN; pod3 answers each.
  lab::FloodOptions fo;
  fo.target = {kVip, 80};
  fo.count = kSyns;
  auto rep = lab.in_pod("pod1", [&] { return lab::syn_flood(fo); });
  ASSERT_TRUE(rep.ok()) << rep.error().str();
  EXPECT_EQ(rep->sent, kSyns);
  EXPECT_EQ(rep->source, lab.pod("pod1")->ip);

  // The last SYNs may still be in the veth backlog: read once creations stop growing.
  nlohmann::json full;
  uint64_t created = 0;
  wait_until([&] {
    full = ct_stats(lab);
    const uint64_t now = full.value("created", uint64_t{0});
    return std::exchange(created, now) == now;
  }, 10s, 300ms);
  const uint64_t entries = full["entries"];
  std::cerr << "after " << kSyns << " SYNs: " << entries << " of " << kTableSize << " entries, created "
            << full["created"] << ", evicted (estimated) " << full["evictions_estimated"] << "\n";
  EXPECT_GE(entries * 100, kThreshold * kTableSize) << full.dump(2);
  EXPECT_LE(entries, kTableSize);
  // A NAT pair per SYN (a SYN the veth backlog dropped creates nothing, hence the margin).
  EXPECT_GE(created, 2u * kSyns * 9 / 10) << full.dump(2);
  EXPECT_GT(full["evictions_estimated"].get<uint64_t>(), 0u) << "more created than fits\n" << full.dump(2);
  auto text = lab.run_weir({"bpf", "conntrack", "stats"});
  ASSERT_TRUE(text.ok()) << text.error().str();
  EXPECT_NE(text->find(fmt::format("of {} entries (", kTableSize)), std::string::npos) << *text;

  // The agent's next scans see it: one WARNING, not one per scan.
  const std::string warned = fmt::format("of {} entries, warning threshold {}%", kTableSize, kThreshold);
  ASSERT_TRUE(wait_until([&] { return count_lines(lab.agent_log(), {"[WARNING]", warned}) > 0; }, 10s))
      << tail(lab.agent_log(), 30);
  EXPECT_EQ(count_lines(lab.agent_log(), {"[WARNING]", "raise DataplaneConfig spec.mapSizes.conntrack"}), 1)
      << tail(lab.agent_log(), 30);
  // `weir doctor` says so too (a WARN: nothing is broken yet).
  DoctorReport d;
  EXPECT_TRUE(wait_until([&] { return (d = run_doctor(lab)).level("conntrack") == "WARN"; }, 15s, 300ms)) << d.out;
  EXPECT_NE(d.found("conntrack").find(fmt::format("of {} entries", kTableSize)), std::string::npos) << d.out;
  EXPECT_NE(d.found("conntrack").find(fmt::format("warning level {}%", kThreshold)), std::string::npos) << d.out;

  // The flood's entries expire (20 s): the agent deletes them, counts its deletions and says
  // the warning cleared, once.
  ASSERT_TRUE(wait_until([&] { return count_lines(lab.agent_log(), {"[INFO]", "occupancy warning cleared"}) > 0; },
                         40s))
      << tail(lab.agent_log(), 30);
  auto after = ct_stats(lab);
  EXPECT_LT(after["entries"].get<uint64_t>() * 100, kThreshold * kTableSize) << after.dump(2);
  EXPECT_GT(after["deleted_agent"].get<uint64_t>(), 0u) << after.dump(2);
  EXPECT_EQ(count_lines(lab.agent_log(), {"[WARNING]", warned}), 1) << tail(lab.agent_log(), 30);
  EXPECT_EQ(count_lines(lab.agent_log(), {"occupancy warning cleared"}), 1);
  EXPECT_EQ(run_doctor(lab).level("conntrack"), "OK");

  if (HasFailure()) std::cerr << tail(lab.agent_log(), 60);
  EXPECT_TRUE(lab.down().ok());
}

}  // namespace
}  // namespace weir::e2e
