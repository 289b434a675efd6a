// PolicyManager over in-memory maps with a loader that loads nothing: jump slot handling, the
// ifstate flip, fail-closed, adoption and IP set writes, without root. With real programs and
// packets: tests/bpf/fail_closed_test.cpp, tests/bpf/policy_path_test.cpp.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "calc/policy.h"
#include "dataplane/policy_manager.h"
#include "dataplane/policy_slots.h"
#include "dataplane_testing.h"
#include "maps/fake_table.h"
#include "model/parse.h"

namespace weir::dataplane {
namespace {

using calc::pol::Direction;
using test::FakeLoader;
constexpr uint32_t kIfindex = 5;

// The client (weir0h) with an egress policy allowing TCP `port` to the server pods.
std::string world(uint16_t port, bool with_server = true) {
  std::string y = R"(apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {node: n1, interface: weir0h, ips: [10.65.0.10]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-out, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: server}}}]
    ports: [{protocol: TCP, port: )" + std::to_string(port) + "}]\n";
  if (with_server) {
    y += R"(---
apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: server, namespace: default, labels: {app: server}}
spec: {node: n2, interface: weir0s, ips: [10.65.0.20]}
)";
  }
  return y;
}

std::string no_policy() {
  return R"(apiVersion: weir.dev/v1
kind: WorkloadEndpoint
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {node: n1, interface: weir0h, ips: [10.65.0.10]}
)";
}

class PolicyManagerFake : public ::testing::Test {
 protected:
  void SetUp() override {
    weir_ifstate_val v{};
    std::strncpy(v.name, "weir0h", sizeof(v.name) - 1);
    v.flags = WEIR_IF_F_WORKLOAD;
    v.ingress_slot = v.egress_slot = WEIR_NO_POLICY_SLOT;
    ASSERT_TRUE(m.ifstate.update(kIfindex, v).ok());
    state_dir = ::testing::TempDir() + "weir-polmgr-" + std::to_string(getpid());
  }
  void TearDown() override { std::filesystem::remove_all(state_dir); }

  PolicyManager make() {
    return PolicyManager(
        m.policy(), polprog::PolicyMapFds{}, state_dir,
        [this](uint32_t i, Direction d, uint32_t s) { return set_policy_slot(m.ifstate, i, d, s); },
        [this](uint32_t i, Direction d) { return get_policy_slot(m.ifstate, i, d); }, &loader);
  }
  Status apply(PolicyManager& pm, const std::string& yaml) {
    auto snap = model::build_snapshot({{"world.yaml", yaml}});
    EXPECT_TRUE(snap.ok());
    resolver.update(*snap.snapshot);
    return pm.apply(resolver, {{"default/client", "weir0h", kIfindex}});
  }
  uint32_t egress_slot() { return m.ifstate.peek(kIfindex)->egress_slot; }

  maps::FakeTables m;
  FakeLoader loader;
  calc::PolicyResolver resolver;
  std::string state_dir;
};

TEST_F(PolicyManagerFake, ANewVersionTakesAFreshSlotAndTheOldIsClearedAtTheNextApply) {
  auto pm = make();
  ASSERT_TRUE(pm.adopt().ok());
  ASSERT_TRUE(apply(pm, world(8080)).ok());
  const uint32_t first = egress_slot();
  EXPECT_GE(first, uint32_t(WEIR_JUMP_FIRST_POLICY_SLOT));
  EXPECT_TRUE(m.jump.contains(first));
  EXPECT_EQ(m.ifstate.peek(kIfindex)->ingress_slot, WEIR_NO_POLICY_SLOT);
  EXPECT_EQ(pm.installed(), 1u);

  ASSERT_TRUE(apply(pm, world(9090)).ok());
  const uint32_t second = egress_slot();
  EXPECT_NE(second, first) << "a program replaced in the slot packets may be running";
  EXPECT_TRUE(m.jump.contains(second));
  EXPECT_TRUE(m.jump.contains(first)) << "the old program was cleared by the apply that replaced it";

  ASSERT_TRUE(apply(pm, world(9090)).ok());
  EXPECT_FALSE(m.jump.contains(first)) << "a replaced program is never cleared";
  EXPECT_EQ(egress_slot(), second);
  EXPECT_EQ(loader.loaded.size(), 2u) << "an unchanged policy was loaded again";
}

TEST_F(PolicyManagerFake, APolicyThatGoesPointsAtNothingAndFreesItsSlotLater) {
  auto pm = make();
  ASSERT_TRUE(apply(pm, world(8080)).ok());
  const uint32_t slot = egress_slot();
  ASSERT_TRUE(apply(pm, no_policy()).ok());
  EXPECT_EQ(egress_slot(), WEIR_NO_POLICY_SLOT);
  EXPECT_EQ(pm.installed(), 0u);
  EXPECT_TRUE(m.jump.contains(slot));
  ASSERT_TRUE(apply(pm, no_policy()).ok());
  EXPECT_FALSE(m.jump.contains(slot));
}

TEST_F(PolicyManagerFake, ANewWorkloadWhosePolicyFailsRunsDenyAllUntilItInstalls) {
  auto pm = make();
  loader.fail_prefix = "we{}_weir0h";
  auto st = apply(pm, world(8080));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err, EACCES) << "the loader's errno was lost";
  EXPECT_NE(st.error().msg.find("verifier rejected"), std::string::npos) << st.error().str();
  ASSERT_TRUE(pm.deny_all_slot(Direction::Egress).has_value());
  EXPECT_EQ(egress_slot(), *pm.deny_all_slot(Direction::Egress)) << "not failed closed";
  EXPECT_EQ(pm.failing(), 1u);
  EXPECT_TRUE(pm.unprotected().empty());

  loader.fail_prefix.clear();
  ASSERT_TRUE(apply(pm, world(8080)).ok());
  EXPECT_NE(egress_slot(), *pm.deny_all_slot(Direction::Egress));
  EXPECT_EQ(pm.failing(), 0u);
  EXPECT_TRUE(m.jump.contains(*pm.deny_all_slot(Direction::Egress))) << "deny-all stays loaded";
}

TEST_F(PolicyManagerFake, AnInstalledWorkloadKeepsItsProgramWhenTheNextFails) {
  auto pm = make();
  ASSERT_TRUE(apply(pm, world(8080)).ok());
  const uint32_t slot = egress_slot();
  loader.fail_prefix = "we{}_weir0h";
  EXPECT_FALSE(apply(pm, world(9090)).ok());
  EXPECT_EQ(egress_slot(), slot);
  EXPECT_TRUE(m.jump.contains(slot));
  EXPECT_FALSE(pm.deny_all_slot(Direction::Egress).has_value());
  EXPECT_EQ(pm.failing(), 0u);
}

TEST_F(PolicyManagerFake, AdoptedSlotsAreNotReusedAndGoAfterTheFirstGoodApply) {
  const uint32_t old_slot = WEIR_JUMP_FIRST_POLICY_SLOT;
  ASSERT_TRUE(m.jump.update(old_slot, 99).ok());
  ASSERT_TRUE(m.jump.update(old_slot + 1, 98).ok());
  ASSERT_TRUE(set_policy_slot(m.ifstate, kIfindex, Direction::Egress, old_slot).ok());
  auto pm = make();
  ASSERT_TRUE(pm.adopt().ok());
  ASSERT_TRUE(apply(pm, world(8080)).ok());
  EXPECT_GT(egress_slot(), old_slot + 1) << "a previous agent's slot was overwritten";
  EXPECT_EQ(*m.jump.peek(old_slot), 99u);
  ASSERT_TRUE(apply(pm, world(8080)).ok());
  EXPECT_FALSE(m.jump.contains(old_slot)) << "a previous agent's program never cleared";
  EXPECT_FALSE(m.jump.contains(old_slot + 1));
}

TEST_F(PolicyManagerFake, IpSetMembersAreWrittenAndAFullSetMapKeepsItsErrno) {
  auto pm = make();
  ASSERT_TRUE(apply(pm, world(8080)).ok());
  auto members = *m.ipset_exact.dump();
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].first.addr, model::Ipv4::parse("10.65.0.20")->network_order());
  // The server goes: its member is deleted after the flip.
  ASSERT_TRUE(apply(pm, world(8080, false)).ok());
  EXPECT_EQ(m.ipset_exact.size(), 0u);

  m.ipset_exact.set_max_entries(0);
  auto st = apply(pm, world(8080));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err, E2BIG) << st.error().str();
  EXPECT_NE(st.error().msg.find("10.65.0.20"), std::string::npos) << st.error().str();
  EXPECT_NE(st.error().msg.find("weir_ipsetx"), std::string::npos) << st.error().str();
}

}  // namespace
}  // namespace weir::dataplane
