// The rule compiler without the kernel: chunk splitting, the comments `policy dump` shows, and
// the errors. What the generated code does is tested under BPF_PROG_TEST_RUN in
// tests/bpf/polprog_compile_test.cpp.
#include "polprog/compiler.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <string>
#include <vector>

#include "polprog/disasm.h"
#include "weir/policy.h"

namespace weir::polprog {
namespace {

namespace pol = calc::pol;

pol::Rule port_rule(uint64_t id, pol::Action a, uint16_t port) {
  pol::Rule r;
  r.id = id;
  r.action = a;
  r.match.protocol = 6;
  r.match.dst_ports = {{port, port}};
  return r;
}

pol::EndpointPolicy many_rules(size_t n) {
  pol::EndpointPolicy p;
  std::vector<pol::Rule> rules;
  for (size_t i = 0; i < n; i++) rules.push_back(port_rule(i + 1, pol::Action::Allow, static_cast<uint16_t>(i)));
  p.tiers.push_back({"default", {{"ns/many", rules}}, pol::Action::Deny});
  return p;
}

TEST(PolprogCompileUnit, CommentsInTheSeedsStyle) {
  pol::EndpointPolicy p;
  pol::Rule r = port_rule(1, pol::Action::Allow, 80);
  r.description = "action:\"allow\" protocol:{name:\"tcp\"} dst_ports:{first:80 last:80}";
  r.match.src_sets = {0x303904ae5eae5418ull};
  p.tiers.push_back({"default", {{"default/knp.default.allow-web", {r}}}, pol::Action::Deny});
  auto c = compile(p, {});
  ASSERT_TRUE(c.ok()) << c.error().str();
  ASSERT_EQ(c->chunks.size(), 1u);
  EXPECT_EQ(c->rule_count, 1u);
  EXPECT_EQ(describe(*c),
            "// Start of tier default\n"
            "// Start of policy default/knp.default.allow-web\n"
            "// Start of rule action:\"allow\" protocol:{name:\"tcp\"} dst_ports:{first:80 last:80}\n"
            "// IPSets src_ip_set_ids:<0x303904ae5eae5418>\n"
            "// End of rule 0000000000000001\n"
            "// End of policy default/knp.default.allow-web\n"
            "// End of tier default: deny\n"
            "// End of tiers: allow\n");
  std::string asm_text = disassemble(*c);
  EXPECT_NE(asm_text.find("// Start of rule action:\"allow\""), std::string::npos) << asm_text;
  EXPECT_NE(asm_text.find("map[ipsets]"), std::string::npos) << asm_text;
  EXPECT_NE(asm_text.find("call bpf_tail_call#12"), std::string::npos) << asm_text;
  EXPECT_EQ(asm_text.find("chunk"), std::string::npos) << asm_text;
}

TEST(PolprogCompileUnit, DefaultDescriptionAndTierDefaults) {
  pol::EndpointPolicy p;
  pol::Rule r = port_rule(42, pol::Action::Pass, 80);
  p.tiers.push_back({"first", {{"p", {r}}}, pol::Action::Pass});
  p.tiers.push_back({"second", {}, pol::Action::Deny});
  auto c = compile(p, {});
  ASSERT_TRUE(c.ok()) << c.error().str();
  std::string d = describe(*c);
  EXPECT_NE(d.find("// Start of rule action:\"pass\" rule_id:\"000000000000000g\"\n"), std::string::npos) << d;
  EXPECT_NE(d.find("// End of tier first: pass\n"), std::string::npos) << d;
  EXPECT_NE(d.find("// End of tier second: deny\n"), std::string::npos) << d;
}

TEST(PolprogCompileUnit, ChunksRespectTheLimitAndAskForSlotsInOrder) {
  for (size_t max : {600u, 1000u, 3000u}) {
    SCOPED_TRACE(max);
    std::vector<size_t> asked;
    CompileOptions o;
    o.max_insns_per_chunk = max;
    o.slot_of_chunk = [&](size_t i) {
      asked.push_back(i);
      return static_cast<uint32_t>(100 + i);
    };
    auto c = compile(many_rules(1000), o);
    ASSERT_TRUE(c.ok()) << c.error().str();
    ASSERT_GT(c->chunks.size(), 1u);
    ASSERT_EQ(c->chunk_slots.size(), c->chunks.size());
    EXPECT_EQ(c->chunk_slots[0], 0u);
    ASSERT_EQ(asked.size(), c->chunks.size() - 1);
    size_t total = 0;
    for (size_t i = 0; i < c->chunks.size(); i++) {
      EXPECT_LE(c->chunks[i].insns.size(), max);
      if (i > 0) {
        EXPECT_EQ(asked[i - 1], i);
        EXPECT_EQ(c->chunk_slots[i], 100 + i);
      }
      total += c->chunks[i].insns.size();
    }
    // The split fills chunks: no more than one chunk beyond the minimum.
    EXPECT_LE(c->chunks.size(), total / max + 2);
    // Every rule appears exactly once across the chunks.
    std::string d = describe(*c);
    size_t starts = 0;
    for (size_t pos = 0; (pos = d.find("// Start of rule", pos)) != std::string::npos; pos++) starts++;
    EXPECT_EQ(starts, 1000u);
    std::string text = disassemble(*c);
    EXPECT_NE(text.find(fmt::format("// ---- chunk 1 of {} (jump slot 101)", c->chunks.size())), std::string::npos);
  }
}

TEST(PolprogCompileUnit, SmallPoliciesAreOneChunkWithoutSlots) {
  auto c = compile(many_rules(100), {});
  ASSERT_TRUE(c.ok()) << c.error().str();
  EXPECT_EQ(c->chunks.size(), 1u);
  EXPECT_LE(c->chunks[0].insns.size(), kAutoChunkInsns);
}

TEST(PolprogCompileUnit, AutomaticChunksStaySmallUntilTheChunkLimitForcesThemToGrow) {
  CompileOptions o;  // max_insns_per_chunk = 0: automatic
  o.slot_of_chunk = [](size_t i) { return static_cast<uint32_t>(i + 2); };
  auto mid = compile(many_rules(1000), o);
  ASSERT_TRUE(mid.ok()) << mid.error().str();
  EXPECT_GT(mid->chunks.size(), 1u);
  for (const auto& ch : mid->chunks) EXPECT_LE(ch.insns.size(), kAutoChunkInsns);
  // 20,000 rules do not fit 26 chunks of 4,096: chunks grow, their number stays in the limit.
  auto big = compile(many_rules(20000), o);
  ASSERT_TRUE(big.ok()) << big.error().str();
  EXPECT_LE(big->chunks.size(), kMaxPolicyChunks);
  size_t largest = 0;
  for (const auto& ch : big->chunks) largest = std::max(largest, ch.insns.size());
  EXPECT_GT(largest, kAutoChunkInsns);
  EXPECT_LE(largest, kMaxChunkInsns);
}

TEST(PolprogCompileUnit, JumpOffsetsCapChunksWhateverTheOption) {
  CompileOptions o;
  o.max_insns_per_chunk = 1000000;
  o.slot_of_chunk = [](size_t i) { return static_cast<uint32_t>(i + 2); };
  auto c = compile(many_rules(10000), o);
  ASSERT_TRUE(c.ok()) << c.error().str();
  EXPECT_GT(c->chunks.size(), 1u);
  for (const auto& ch : c->chunks) EXPECT_LE(ch.insns.size(), kMaxChunkInsns);
}

TEST(PolprogCompileUnit, Errors) {
  // Chunks needed but no slot allocator.
  CompileOptions o;
  o.max_insns_per_chunk = 500;
  auto c = compile(many_rules(200), o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().msg.find("slot_of_chunk is not set"), std::string::npos) << c.error().msg;
  // More than 30 chunks.
  o.slot_of_chunk = [](size_t i) { return static_cast<uint32_t>(i + 2); };
  c = compile(many_rules(5000), o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().msg.find("more than 30"), std::string::npos) << c.error().msg;
  // A limit below what a chunk needs for itself.
  o.max_insns_per_chunk = 50;
  c = compile(many_rules(1), o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().msg.find("too small"), std::string::npos) << c.error().msg;
  // A rule larger than a chunk.
  o.max_insns_per_chunk = 400;
  pol::EndpointPolicy big = many_rules(1);
  for (int i = 0; i < 100; i++) big.tiers[0].policies[0].rules[0].match.dst_nets.push_back({model::Ipv4{uint32_t(i)}, 24});
  c = compile(big, o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().msg.find("more than fit in a chunk"), std::string::npos) << c.error().msg;
  // Invalid IR.
  pol::EndpointPolicy bad = many_rules(1);
  bad.tiers[0].policies[0].rules[0].id = 0;
  c = compile(bad, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().msg.find("rule id 0"), std::string::npos) << c.error().msg;
  bad = many_rules(1);
  bad.tiers[0].policies[0].rules[0].match.dst_ports = {{90, 80}};
  c = compile(bad, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().msg.find("first > last"), std::string::npos) << c.error().msg;
}

// The continuation slot depends on the direction: egress policy runs from weir_from_wl.
TEST(PolprogCompileUnit, ContinuationSlotByDirection) {
  for (auto [dir, slot] : {std::pair{pol::Direction::Egress, WEIR_JUMP_FROM_WL_POLICY_DONE},
                           std::pair{pol::Direction::Ingress, WEIR_JUMP_TO_WL_POLICY_DONE}}) {
    pol::EndpointPolicy p = many_rules(3);
    p.direction = dir;
    auto c = compile(p, {});
    ASSERT_TRUE(c.ok()) << c.error().str();
    std::string text = disassemble(*c);
    // The tail call's index: the last "w3 = ..." before the first "call bpf_tail_call".
    size_t call = text.find("call bpf_tail_call");
    ASSERT_NE(call, std::string::npos);
    size_t line = text.rfind("w3 = ", call);
    ASSERT_NE(line, std::string::npos);
    EXPECT_EQ(text.substr(line, text.find('\n', line) - line), fmt::format("w3 = {}", slot)) << text;
  }
}

}  // namespace
}  // namespace weir::polprog
