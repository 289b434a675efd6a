// The agent's start-up decision on an unsupported kernel, with a fake feature probe: no root
// needed, nothing is loaded.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "agent/agent.h"

namespace weir::agent {
namespace {

// Captures what the default logger prints while alive.
class LogCapture {
 public:
  LogCapture() : old_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(old_); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> old_;
};

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
