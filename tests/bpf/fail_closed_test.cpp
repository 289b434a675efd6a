// Fail closed (dataplane/policy_manager.h): a workload whose policy fails to load runs the
// deny-all program until its policy is installed; one that already runs a program keeps it.
// The PolicyManager runs against the real maps of a loaded weir_tc object, its loader fails on
// demand (PolicyLoader), and packets go through the real programs (BPF_PROG_TEST_RUN).
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "calc/policy.h"
#include "cli/policy_format.h"
#include "dataplane/policy_manager.h"
#include "dataplane/policy_info.h"
#include "maps/table.h"
#include "maps/weir_maps.h"
#include "model/parse.h"
#include "tc_fixture.h"
#include "weir/maps.h"
#include "weir/policy.h"

namespace weir::test {
namespace {

using calc::pol::Direction;

// Loads through polprog::load, except programs whose name pattern (dataplane::
// policy_program_pattern) starts with `fail_prefix`.
class FlakyLoader : public dataplane::PolicyLoader {
 public:
  std::string fail_prefix;  // "" = never fail
  Result<polprog::LoadedPolicy> load(const polprog::CompiledPolicy& c, const polprog::PolicyMapFds& fds,
                                     const std::string& name) override {
    if (!fail_prefix.empty() && name.rfind(fail_prefix, 0) == 0) {
      return Error{E2BIG, "injected: the verifier rejected " + name};
    }
    return polprog::load(c, fds, name);
  }
};

// Captures what the default logger writes while it lives.
struct LogCapture {
  std::ostringstream out;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink =
      std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  LogCapture() { spdlog::default_logger()->sinks().push_back(sink); }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
  }
};

// The client workload (weir0h, 10.65.0.10) with an egress policy that allows TCP to 8080 only.
std::string world(uint16_t allowed_port) {
  return R"(apiVersion: weir.dev/v1
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
  - ports: [{protocol: TCP, port: )" +
         std::to_string(allowed_port) + "}]\n";
}

class FailClosedTest : public TcTest {
 protected:
  void SetUp() override {
    TcTest::SetUp();
    if (HasFatalFailure()) return;
    state_dir = "/tmp/weir-failclosed-" + std::to_string(getpid());
    const maps::MapFds mf = tc->map_fds();
    auto m = maps::WeirMaps::from_fds(mf);
    ASSERT_TRUE(m.ok()) << m.error().str();
    wm = std::make_unique<maps::WeirMaps>(std::move(*m));
    auto pm = maps::PolicyMaps::from_fds(mf);
    ASSERT_TRUE(pm.ok()) << pm.error().str();
    polm = std::make_unique<maps::PolicyMaps>(std::move(*pm));
    tables = std::make_unique<maps::KernelTables>(*wm, polm.get());
    polprog::PolicyMapFds fds = tc->policy_map_fds();
    mgr = std::make_unique<dataplane::PolicyManager>(
        tables->policy(), fds, state_dir,
        [this](uint32_t idx, Direction d, uint32_t slot) {
          return dataplane::set_policy_slot(tables->core().ifstate, idx, d, slot);
        },
        [this](uint32_t idx, Direction d) { return dataplane::get_policy_slot(tables->core().ifstate, idx, d); },
        &loader);
  }
  void TearDown() override {
    mgr.reset();
    tables.reset();
    std::filesystem::remove_all(state_dir);
    TcTest::TearDown();
  }
  Status apply(uint16_t allowed_port) {
    auto snap = model::build_snapshot({{"world.yaml", world(allowed_port)}});
    EXPECT_TRUE(snap.ok());
    resolver.update(*snap.snapshot);
    return mgr->apply(resolver, {{"default/client", "weir0h", client_if}});
  }
  uint32_t egress_slot() {
    auto s = dataplane::get_policy_slot(tables->core().ifstate, client_if, Direction::Egress);
    EXPECT_TRUE(s.ok());
    return s.ok() ? *s : 0;
  }
  // A new TCP flow from the client to a remote port: its verdict.
  int syn_to(uint16_t port, uint16_t sport) {
    return from_wl(client_if, client_tcp(sport, kRemoteIp, port, kTcpSyn)).retval;
  }

  std::string state_dir;
  std::unique_ptr<maps::WeirMaps> wm;
  std::unique_ptr<maps::PolicyMaps> polm;
  std::unique_ptr<maps::KernelTables> tables;
  FlakyLoader loader;
  calc::PolicyResolver resolver;
  std::unique_ptr<dataplane::PolicyManager> mgr;
};

TEST_F(FailClosedTest, NewWorkloadWhosePolicyFailsDeniesEverythingUntilItIsInstalled) {
  loader.fail_prefix = "we{}_weir0h";  // the client's egress policy program (not the deny-all)
  LogCapture log;
  auto st = apply(8080);
  EXPECT_NE(log.out.str().find("[error] policy: egress policy of default/client (weir0h) is not "
                               "installed; new flows are denied until it is (fail closed)"),
            std::string::npos)
      << log.out.str();
  ASSERT_FALSE(st.ok()) << "the failure is reported";
  EXPECT_NE(st.error().str().find("injected"), std::string::npos) << st.error().str();
  EXPECT_EQ(mgr->failing(), 1u);
  EXPECT_TRUE(mgr->unprotected().empty());
  auto deny = mgr->deny_all_slot(Direction::Egress);
  ASSERT_TRUE(deny.has_value());
  EXPECT_EQ(egress_slot(), *deny) << "the new workload must point at deny-all, not at nothing";

  // Even what its policy would allow is dropped, counted "Dropped by policy".
  EXPECT_EQ(syn_to(8080, 40001), TC_ACT_SHOT);
  EXPECT_EQ(syn_to(443, 40002), TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_BY_POLICY), 2u);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_TAIL_CALL), 0u);
  EXPECT_TRUE(tc->ct_all().empty()) << "a denied flow leaves no conntrack state";

  // `weir bpf policy dump` shows why on its Error line.
  auto info = dataplane::read_policy_info(state_dir, "weir0h", "egress");
  ASSERT_TRUE(info.ok()) << info.error().str();
  uint32_t live_id = 0;
  ASSERT_EQ(polm->jump.lookup(*deny).ok(), true);
  live_id = polm->jump.lookup(*deny)->value_or(0);
  const std::string error = cli::policy_dump_error(egress_slot(), live_id, "", *info);
  const std::string dump = cli::format_policy_dump(*info, {}, false, error);
  EXPECT_NE(dump.find("Error: policy not installed, every new flow is denied until it is (fail "
                      "closed): "),
            std::string::npos)
      << dump;
  EXPECT_NE(dump.find("injected"), std::string::npos) << dump;
  EXPECT_NE(dump.find("// Start of tier weir-fail-closed"), std::string::npos) << dump;

  // The load works again: the next apply installs the policy, and it decides.
  loader.fail_prefix.clear();
  ASSERT_TRUE(apply(8080).ok());
  EXPECT_EQ(mgr->failing(), 0u);
  EXPECT_NE(egress_slot(), *deny);
  EXPECT_EQ(syn_to(8080, 40003), TC_ACT_OK);
  EXPECT_EQ(syn_to(443, 40004), TC_ACT_SHOT);
  auto after = dataplane::read_policy_info(state_dir, "weir0h", "egress");
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->install_error.empty());
}

TEST_F(FailClosedTest, ExistingWorkloadKeepsItsProgramWhenItsNewPolicyFails) {
  ASSERT_TRUE(apply(8080).ok());
  const uint32_t before = egress_slot();
  ASSERT_NE(before, WEIR_NO_POLICY_SLOT);
  loader.fail_prefix = "we{}_weir0h";
  ASSERT_FALSE(apply(9090).ok());
  EXPECT_EQ(egress_slot(), before) << "the previous program stays in force";
  EXPECT_EQ(mgr->failing(), 0u);
  EXPECT_EQ(syn_to(8080, 40010), TC_ACT_OK);
  EXPECT_EQ(syn_to(9090, 40011), TC_ACT_SHOT);
}

TEST_F(FailClosedTest, WithoutEvenADenyAllTheInterfaceIsUnprotected) {
  loader.fail_prefix = "w";  // every policy program ("wi{}_..", "we{}_.."), deny-all included
  ASSERT_FALSE(apply(8080).ok());
  ASSERT_EQ(mgr->unprotected().count("weir0h"), 1u) << "the endpoint manager must not attach it";
  EXPECT_EQ(egress_slot(), WEIR_NO_POLICY_SLOT);
}

}  // namespace
}  // namespace weir::test
