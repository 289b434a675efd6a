// `weir bpf policy dump` text and the info files it reads: the seed's layout, counts per rule,
// IP set ids, the Error line, and a JSON round trip of the info the agent writes.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>

#include "cli/policy_format.h"
#include "dataplane/policy_info.h"
#include "dataplane/policy_manager.h"
#include "polprog/compiler.h"

namespace weir {
namespace {

using calc::pol::Action;
using calc::pol::Direction;

calc::pol::EndpointPolicy sample() {
  calc::pol::EndpointPolicy p;
  p.direction = Direction::Ingress;
  calc::pol::Rule allow;
  allow.id = 0x1234567890abcdefULL;
  allow.action = Action::Allow;
  allow.match.protocol = 6;
  allow.match.src_sets = {0x303904ae5eae5418ULL};
  allow.description =
      "action:\"allow\" protocol:{name:\"tcp\"} dst_ports:{first:80 last:80} "
      "src_ip_set_ids:\"0x303904ae5eae5418\" original_src_selector:\"app == 'client'\"";
  calc::pol::Rule log;
  log.id = 42;
  log.action = Action::Log;
  log.description = "action:\"log\"";
  p.tiers.push_back({"kubernetes", {{"default/allow-client", {allow, log}}}, Action::Deny});
  return p;
}

TEST(PolicyDumpFormat, SeedLayoutWithCountsAndSets) {
  auto info = dataplane::policy_info_from(sample(), "weirab12p2", 7);
  std::string text = cli::format_policy_dump(info, {{0x1234567890abcdefULL, 9}}, false, "");
  std::string id = calc::pol::format_rule_id(0x1234567890abcdefULL);
  EXPECT_EQ(text,
            "IfaceName: weirab12p2\n"
            "Hook: tc egress\n"
            "Error: \n"
            "Policy Info:\n"
            "// Start of tier kubernetes\n"
            "// Start of policy default/allow-client\n"
            "// Start of rule action:\"allow\" protocol:{name:\"tcp\"} dst_ports:{first:80 last:80} "
            "src_ip_set_ids:\"0x303904ae5eae5418\" original_src_selector:\"app == 'client'\" "
            "rule_id:\"" + id + "\"\n"
            "// IPSets src_ip_set_ids:<0x303904ae5eae5418>\n"
            "// count = 9\n"
            "// End of rule " + id + "\n"
            "// Start of rule action:\"log\" rule_id:\"" + calc::pol::format_rule_id(42) + "\"\n"
            "// count = 0\n"
            "// End of rule " + calc::pol::format_rule_id(42) + "\n"
            "// End of policy default/allow-client\n"
            "// End of tier kubernetes: deny\n");
}

TEST(PolicyDumpFormat, EgressPolicyRunsAtTcIngressAndErrorsShow) {
  auto p = sample();
  p.direction = Direction::Egress;
  auto info = dataplane::policy_info_from(p, "weirab12p1", 5);
  std::string text = cli::format_policy_dump(info, {}, false, "stale");
  EXPECT_NE(text.find("Hook: tc ingress\nError: stale\n"), std::string::npos) << text;
  EXPECT_NE(text.find("// count = 0\n"), std::string::npos);
  EXPECT_EQ(cli::format_no_policy("x", "egress").rfind("IfaceName: x\nHook: tc ingress\n", 0), 0u);
}

TEST(PolicyDumpFormat, AsmIsAppendedOnlyWhenAsked) {
  auto info = dataplane::policy_info_from(sample(), "i", 1);
  info.asm_text = "0: (b7) r0 = 2\n1: (95) exit\n";
  info.entry_slot = 3;
  info.chunk_slots = {3, 4};
  EXPECT_EQ(cli::format_policy_dump(info, {}, false, "").find("r0 = 2"), std::string::npos);
  std::string with = cli::format_policy_dump(info, {}, true, "");
  EXPECT_NE(with.find("Program (entry slot 3, slots 3,4):\n0: (b7) r0 = 2\n1: (95) exit\n"),
            std::string::npos)
      << with;
  auto j = cli::policy_dump_json(info, {{42, 5}}, false, "");
  EXPECT_FALSE(j.contains("asm"));
  EXPECT_EQ(j["tiers"][0]["policies"][0]["rules"][1]["count"], 5);
  EXPECT_EQ(j["hook"], "tc egress");
}

// Program names: two pods' programs never share a name (the interface's end is kept), every
// name fits BPF_OBJ_NAME_LEN and holds only what a BPF name may, and the dump lists them.
TEST(PolicyProgramNames, TellEndpointsApartAndFitTheKernel) {
  auto name = [](const std::string& iface, Direction d, size_t chunk) {
    return polprog::chunk_program_name(dataplane::policy_program_pattern(iface, d), chunk);
  };
  EXPECT_EQ(name("weirk61p0", Direction::Ingress, 0), "wi0_weirk61p0");
  EXPECT_EQ(name("weirk61p1", Direction::Ingress, 0), "wi0_weirk61p1");
  EXPECT_EQ(name("weirk61p1", Direction::Egress, 3), "we3_weirk61p1");
  EXPECT_EQ(name("weirk61n2p10", Direction::Ingress, 12), "wi12.irk61n2p10");
  // Calico-style 15-character names: the hash at the end survives, '.' marks the cut.
  EXPECT_EQ(name("cali1234567890a", Direction::Ingress, 0), "wi0.1234567890a");
  EXPECT_NE(name("cali1234567890a", Direction::Egress, 0), name("cali1234567890b", Direction::Egress, 0));
  EXPECT_EQ(name("veth-a.b", Direction::Egress, 0), "we0_veth_a_b");
  for (const char* iface : {"a", "weirk61p0", "cali1234567890a", "x-y-z-0123456789"})
    for (size_t chunk : {0u, 9u, 10u, 123u}) {
      std::string n = name(iface, Direction::Ingress, chunk);
      EXPECT_LE(n.size(), 15u) << n;
      for (char c : n) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.') << n;
    }
  // Patterns without "{}" keep the old shape: the index appended.
  EXPECT_EQ(polprog::chunk_program_name("weir_t_pol", 2), "weir_t_pol2");
  EXPECT_EQ(polprog::chunk_program_name("abcdefghijklmnopq", 12), "abcdefghijklm12");

  auto info = dataplane::policy_info_from(sample(), "weirk61p0", 7);
  info.chunk_slots = {3, 4};
  info.program_names = {name("weirk61p0", Direction::Ingress, 0), name("weirk61p0", Direction::Ingress, 1)};
  std::string text = cli::format_policy_dump(info, {}, false, "");
  EXPECT_NE(text.find("Error: \nPrograms: wi0_weirk61p0 (slot 3), wi1_weirk61p0 (slot 4)\nPolicy Info:\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(cli::policy_dump_json(info, {}, false, "")["program_names"][1], "wi1_weirk61p0");
}

TEST(PolicyInfo, JsonFileRoundTripAndBadInput) {
  auto dir = std::filesystem::temp_directory_path() /
             ("weir-policy-info-test-" + std::to_string(::getpid()));
  auto info = dataplane::policy_info_from(sample(), "weirab12p2", 7);
  info.entry_slot = 5;
  info.entry_prog_id = 77;
  info.chunk_slots = {5, 6};
  info.program_names = {"wi0_weirab12p2", "wi1_weirab12p2"};
  info.asm_text = "asm";
  ASSERT_TRUE(dataplane::write_policy_info(dir.string(), info));
  auto back = dataplane::read_policy_info(dir.string(), "weirab12p2", "ingress");
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(dataplane::to_json(*back), dataplane::to_json(info));
  auto missing = dataplane::read_policy_info(dir.string(), "weirab12p2", "egress");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().err, ENOENT);
  auto bad = dataplane::policy_info_from_json({{"iface", "x"}});
  EXPECT_FALSE(bad);
  ASSERT_TRUE(dataplane::remove_policy_info(dir.string(), "weirab12p2", "ingress"));
  EXPECT_FALSE(std::filesystem::exists(dataplane::policy_info_path(dir.string(), "weirab12p2", "ingress")));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weir
