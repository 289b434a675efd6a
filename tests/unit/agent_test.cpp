// The agent's start-up decision on an unsupported kernel, with a fake feature probe: no root
// needed, nothing is loaded.
#include <gtest/gtest.h>

#include "agent/agent.h"
#include "log_capture.h"

namespace weir::agent {
namespace {

using test::LogCapture;

bpf::KernelFeatures all_features() {
  bpf::KernelFeatures f;
  f.bpf_syscall = f.btf = f.lru_hash = f.lpm_trie = f.percpu_hash = f.prog_array = true;
  f.sched_cls = f.test_run = f.redirect_peer_helper = f.tcx = true;
  return f;
}

TEST(Agent, RefusesToRunOnAKernelWithoutWhatItNeeds) {
  auto f = all_features();
  f.lru_hash = false;
  f.redirect_peer_helper = false;
  bpf::FixedFeatureProbe probe(f);
  LogCapture log;
  AgentOptions o;
  o.datastore = "dir:/nonexistent-weir-test";
  o.pin_root = "/nonexistent-weir-test-pins";
  EXPECT_EQ(run_agent(o, probe), 1);
  std::string text = log.text();
  EXPECT_NE(text.find("BPF data plane mode enabled but not supported by the kernel"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lru_hash"), std::string::npos) << text;
  EXPECT_NE(text.find("redirect_peer"), std::string::npos) << text;
  EXPECT_NE(text.find("[error]"), std::string::npos) << text;
  EXPECT_EQ(text.find("BPF enabled"), std::string::npos) << text;
}

TEST(Agent, MissingTcxIsNotFatalButABadDatastoreIs) {
  auto f = all_features();
  f.tcx = false;  // Debian 12's 6.1 kernel: clsact fallback
  bpf::FixedFeatureProbe probe(f);
  LogCapture log;
  AgentOptions o;
  o.datastore = "dir:/nonexistent-weir-test";
  o.pin_root = "/nonexistent-weir-test-pins";
  EXPECT_EQ(run_agent(o, probe), 2);
  std::string text = log.text();
  EXPECT_EQ(text.find("not supported by the kernel"), std::string::npos) << text;
  EXPECT_NE(text.find("/nonexistent-weir-test"), std::string::npos) << text;
}

}  // namespace
}  // namespace weir::agent
