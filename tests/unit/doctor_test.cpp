// `weir doctor`'s checks on facts (calc/doctor.h): a healthy node passes every check, and each
// fault turns its own check (and only that one) to WARN or FAIL with what was found and a fix.
// The same checks on a live lab: tests/e2e/doctor_test.cpp.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "calc/doctor.h"

namespace weir::calc::doctor {
namespace {

Facts healthy() {
  Facts f;
  f.bpffs_path = "/sys/fs/bpf";
  f.bpffs_mounted = true;
  f.kernel_has_tcx = true;
  AgentStatus a;
  a.pid = 42;
  a.alive = true;
  a.heartbeat_age_s = 3;
  a.last_sync_result = "full";
  a.last_success_age_s = 3;
  a.tc_mode = "tcx";
  f.agent = a;
  for (const char* name : {"weirab12p1", "weirab12p2"}) {
    InterfaceFacts itf;
    itf.name = name;
    itf.expected_ids = {{"ingress", 10}, {"egress", 11}};
    itf.hooks["ingress"] = {{10, "weir_from_wl", "tcx", true}};
    itf.hooks["egress"] = {{11, "weir_to_wl", "tcx", true}};
    f.interfaces.push_back(itf);
  }
  f.tunnel_map_enabled = false;
  f.ct_entries = 10;
  f.ct_capacity = 1000;
  f.map_sizes = {{"weir_ct4", 1000, 1000}};
  f.agent_log = "/run/agent.log";
  return f;
}

const Check& find(const std::vector<Check>& cs, const std::string& name) {
  for (const auto& c : cs)
    if (c.name == name) return c;
  static const Check none{"missing", Level::Fail, "no such check", ""};
  return none;
}

TEST(Doctor, AHealthyNodePassesEveryCheck) {
  auto cs = evaluate(healthy());
  for (const char* name : {"bpffs", "kernel", "agent", "programs", "foreign", "attach-mode", "xdp", "kube-proxy",
                           "tunnel", "vxlan-port", "conntrack", "map-sizes", "verifier"})
    EXPECT_EQ(find(cs, name).level, Level::Ok) << name << ": " << find(cs, name).found;
  EXPECT_EQ(worst(cs), Level::Ok);
  EXPECT_NE(find(cs, "agent").found.find("agent pid 42 running, last sync full"), std::string::npos);
}

struct Fault {
  const char* what;
  std::function<void(Facts&)> apply;
  const char* check;
  Level level;
  const char* found;  // a piece of the check's finding
};

TEST(Doctor, EachFaultTurnsItsOwnCheck) {
  const std::vector<Fault> faults = {
      {"no bpffs", [](Facts& f) { f.bpffs_mounted = false; }, "bpffs", Level::Fail, "no bpffs at /sys/fs/bpf"},
      {"kernel", [](Facts& f) { f.missing_features = {"lru_hash"}; }, "kernel", Level::Fail, "lacks lru_hash"},
      {"no status", [](Facts& f) { f.agent.reset(); }, "agent", Level::Fail, "no agent status file"},
      {"agent dead", [](Facts& f) { f.agent->alive = false; }, "agent", Level::Fail, "agent pid 42 is not running"},
      {"agent stuck", [](Facts& f) { f.agent->heartbeat_age_s = 120; }, "agent", Level::Fail, "stuck"},
      {"rejected", [](Facts& f) { f.agent->last_sync_result = "rejected"; }, "agent", Level::Warn, "rejected"},
      {"never synced", [](Facts& f) { f.agent->last_success_age_s = -1; }, "agent", Level::Fail, "never applied"},
      {"stale generation",
       [](Facts& f) { f.interfaces[1].hooks["egress"].push_back({7, "weir_to_wl", "tcx", true}); }, "programs",
       Level::Fail, "weirab12p2 egress: 2 weir programs"},
      {"old program", [](Facts& f) { f.interfaces[0].hooks["ingress"][0].id = 9; }, "programs", Level::Fail,
       "weirab12p1 ingress: weir_from_wl id 9 (the agent's is id 10)"},
      {"no program", [](Facts& f) { f.interfaces[0].hooks["egress"].clear(); }, "programs", Level::Fail,
       "no weir program: weirab12p1 egress"},
      {"foreign", [](Facts& f) { f.interfaces[0].hooks["ingress"].push_back({99, "cil_from_cont", "tcx", false}); },
       "foreign", Level::Warn, "weirab12p1 ingress: cil_from_cont (id 99, tcx)"},
      {"mixed modes", [](Facts& f) { f.interfaces[1].hooks["ingress"][0].mode = "clsact"; }, "attach-mode", Level::Fail,
       "weir_from_wl by clsact (the agent attaches by tcx)"},
      {"xdp generic", [](Facts& f) { f.interfaces[0].xdp_mode = "generic"; }, "xdp", Level::Warn, "generic"},
      {"kube-proxy", [](Facts& f) { f.kube_proxy_chains = {"KUBE-SERVICES"}; }, "kube-proxy", Level::Fail,
       "KUBE-SERVICES"},
      {"ipvs", [](Facts& f) { f.ipvs_services = 3; }, "kube-proxy", Level::Fail, "3 IPVS virtual services"},
      {"vxlan not in force", [](Facts& f) { f.agent->vxlan_enabled = true; }, "tunnel", Level::Fail,
       "weir_tunnel1 is off"},
      {"vxlan left on", [](Facts& f) { f.tunnel_map_enabled = true; }, "tunnel", Level::Fail, "still encapsulate"},
      {"vxlan port closed",
       [](Facts& f) {
         f.vxlan_probe = VxlanProbe{4789, {{"192.168.200.3", true, 0.4}, {"192.168.200.4", false, 0}}, "", 1000};
       },
       "vxlan-port", Level::Fail, "no answer on UDP 4789 from 1 of 2 other nodes within 1000 ms: 192.168.200.4"},
      {"vxlan probe impossible",
       [](Facts& f) { f.vxlan_probe = VxlanProbe{4789, {}, "binding to 192.168.200.2: Cannot assign", 1000}; },
       "vxlan-port", Level::Fail, "could not run: binding to 192.168.200.2"},
      {"conntrack pressure", [](Facts& f) { f.ct_entries = 950; }, "conntrack", Level::Warn, "950 of 1000 entries"},
      {"map size", [](Facts& f) { f.map_sizes[0].configured = 2000; }, "map-sizes", Level::Warn,
       "weir_ct4 pinned 1000 configured 2000"},
      {"verifier", [](Facts& f) { f.verifier_failures = {"libbpf: prog 'weir_from_wl': BPF program load failed"}; },
       "verifier", Level::Fail, "BPF program load failed"},
  };
  for (const auto& fault : faults) {
    Facts f = healthy();
    fault.apply(f);
    auto cs = evaluate(f);
    const Check& c = find(cs, fault.check);
    EXPECT_EQ(c.level, fault.level) << fault.what << ": " << c.found;
    EXPECT_NE(c.found.find(fault.found), std::string::npos) << fault.what << ": " << c.found;
    EXPECT_FALSE(c.fix.empty()) << fault.what;
    for (const auto& other : cs)
      if (other.name != fault.check && !(fault.check == std::string("agent") && other.name == "tunnel"))
        EXPECT_EQ(other.level, Level::Ok) << fault.what << " also turned " << other.name << ": " << other.found;
  }
}

TEST(Doctor, VxlanNeedsWeirFromUlOnTheUnderlay) {
  Facts f = healthy();
  f.agent->vxlan_enabled = true;
  f.agent->underlay = "eth0";
  f.tunnel_map_enabled = true;
  InterfaceFacts ul;
  ul.name = "eth0";
  ul.expected_ids = {{"ingress", 12}};
  ul.hooks["ingress"] = {{12, "weir_from_ul", "tcx", true}};
  f.interfaces.push_back(ul);
  auto cs = evaluate(f);
  EXPECT_EQ(find(cs, "tunnel").level, Level::Ok) << find(cs, "tunnel").found;
  EXPECT_EQ(find(cs, "programs").level, Level::Ok) << "the underlay's egress has no weir program, rightly";
  f.interfaces.back().hooks["ingress"].clear();
  cs = evaluate(f);
  EXPECT_EQ(find(cs, "tunnel").level, Level::Fail);
  EXPECT_NE(find(cs, "tunnel").found.find("no weir_from_ul on eth0"), std::string::npos);
}

TEST(Doctor, TheVxlanPortCheckPassesWhenEveryOtherNodeAnswersOrVxlanIsOff) {
  Facts f = healthy();
  EXPECT_EQ(find(evaluate(f), "vxlan-port").found, "VXLAN off on this node: no port to probe");
  f.vxlan_probe = VxlanProbe{4789, {}, "", 1000};
  EXPECT_EQ(find(evaluate(f), "vxlan-port").level, Level::Ok);
  EXPECT_NE(find(evaluate(f), "vxlan-port").found.find("no other node"), std::string::npos);
  f.vxlan_probe = VxlanProbe{8472, {{"192.168.200.3", true, 0.4}, {"192.168.200.4", true, 1.25}}, "", 1000};
  auto c = find(evaluate(f), "vxlan-port");
  EXPECT_EQ(c.level, Level::Ok);
  EXPECT_EQ(c.found, "UDP 8472: the 2 other nodes answered (slowest 1.2 ms)");
}

TEST(Doctor, VerifierFailuresAreFoundInALog) {
  const std::string log =
      "[info] BPF enabled\n"
      "[warning] libbpf: prog 'weir_from_wl': BPF program load failed: Permission denied\n"
      "[error] policy: egress policy of default/a (weir1) is not installed; ...: loading policy program we0_weir1 "
      "(12 instructions): verifier log:\n"
      "[info] sync done\n";
  auto lines = verifier_failures_in(log);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("BPF program load failed"), std::string::npos);
  EXPECT_NE(lines[1].find("loading policy program we0_weir1"), std::string::npos);
  EXPECT_TRUE(verifier_failures_in("[info] all fine\n").empty());
}

TEST(Doctor, OnlyTheAgentsLastRunCounts) {
  const std::string refused = "[warning] libbpf: prog 'weir_from_wl': BPF program load failed: Permission denied\n"
                              "[error] loading BPF programs: loading tc: Permission denied\n";
  const std::string run1 = std::string("[info] ") + kAgentStartMark + ": pid 10, node n1\n" + refused;
  const std::string run2 = std::string("[info] ") + kAgentStartMark + ": pid 11, node n1\n[info] BPF enabled\n";
  // A restart that loaded its programs: the earlier refusal is history.
  EXPECT_TRUE(verifier_failures_in(run1 + run2).empty());
  // The last run refused: both lines, none of the run before.
  auto lines = verifier_failures_in(run2 + "[info] sync done\n" + run1);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("loading BPF programs:"), std::string::npos);
  // A log without a start line (the agent's output kept by something else): all of it counts.
  EXPECT_EQ(verifier_failures_in(refused + "[info] BPF enabled\n").size(), 2u);
  // A start mark on the first line.
  EXPECT_EQ(verifier_failures_in(run1).size(), 2u);
}

}  // namespace
}  // namespace weir::calc::doctor
