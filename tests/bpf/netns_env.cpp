// Global gtest environment: bpffs on /sys/fs/bpf (mounted as the agent does when the machine has
// not: several tests pin under it), and a private network namespace with three veth pairs.
// Fails loudly when not root or when either cannot be made: the environment reports the reason
// and every test that needs the namespace fails.
#include "netns_env.h"

#include <gtest/gtest.h>

#include "bpf/bpffs.h"
#include "tc_harness.h"

namespace weir::test {
namespace {

TestTopology g_topology;  // written once by the environment before any test runs

class NetnsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    // Before the tests, not in each: a fresh machine may boot without it, and a test that pins
    // under /sys/fs/bpf before some other one mounted it failed (sysfs refuses the mkdir).
    if (auto b = bpf::ensure_bpffs(); !b.ok()) ADD_FAILURE() << "bpffs at /sys/fs/bpf: " << b.error().str();
    auto st = enter_private_netns();
    if (!st.ok()) {
      g_topology.error = st.error().str();
      // Non-fatal on purpose: the tests still run and each fails on topology().ready, so the
      // summary lists every test as FAILED instead of skipped.
      ADD_FAILURE() << g_topology.error;
      return;
    }
    uint32_t* slots[] = {&g_topology.client_if, &g_topology.be1_if, &g_topology.be2_if};
    for (int i = 0; i < 3; i++) {
      auto r = add_veth("weir" + std::to_string(i) + "h", "weir" + std::to_string(i) + "p");
      if (!r.ok()) {
        g_topology.error = r.error().str();
        ADD_FAILURE() << g_topology.error;
        return;
      }
      *slots[i] = r->first;
    }
    g_topology.ready = true;
  }
};

[[maybe_unused]] ::testing::Environment* const g_env =
    ::testing::AddGlobalTestEnvironment(new NetnsEnvironment);

}  // namespace

const TestTopology& topology() { return g_topology; }

}  // namespace weir::test
