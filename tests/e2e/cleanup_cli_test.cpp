// `weir bpf cleanup` as an operator runs it: the weir binary itself (exit code, stdout, stderr),
// on a private bpffs in private mount and network namespaces (tests/common/private_bpffs.h; the
// binary is started from the thread that owns them, so it sees only them). Never the machine's
// own /sys/fs/bpf, never the root network namespace. And `weir lab down` when the lab's node
// namespace is already gone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../common/private_bpffs.h"
#include "cli/commands.h"
#include "e2e_util.h"
#include "lab/lab.h"
#include "maps/pin_layout.h"
#include "weir/maps.h"

namespace weir::e2e {
namespace {

namespace fs = std::filesystem;
using privns::exists;
using privns::PrivateBpffs;

// A state dir of this test's own (never /run/weir/<something> another agent uses).
struct StateDir {
  std::string path = "/tmp/weir-cleanup-cli-state-" + std::to_string(::getpid());
  ~StateDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

lab::RunResult weir_cleanup(const std::string& pin_root, const std::string& state_dir) {
  return privns::run_cmd({kWeirBinary, "--pin-root", pin_root, "--state-dir", state_dir, "bpf", "cleanup"});
}

std::vector<std::string> tree(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().string());
  return out;
}

TEST(CleanupCli, RefusesTheBpffsMountPointWithExitNonZero) {
  require_root();
  PrivateBpffs p("cleanup-cli-mnt");
  StateDir state;
  p.run([&] {
    privns::pin_foreign_map(p.mnt() + "/other-app/state", "state");
    privns::pin_foreign_map(p.mnt() + "/top_map", "top_map");
    const auto before = tree(p.mnt());
    auto r = weir_cleanup(p.mnt(), state.path);
    EXPECT_FALSE(r.status.success()) << r.out;
    EXPECT_NE(r.err.find("refusing to clean pin root " + p.mnt()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("mount point of a bpffs"), std::string::npos) << r.err;
    EXPECT_EQ(tree(p.mnt()), before) << "nothing may be removed";
  });
}

TEST(CleanupCli, RefusesAForeignPinRootWithExitNonZero) {
  require_root();
  PrivateBpffs p("cleanup-cli-other");
  StateDir state;
  fs::create_directories(state.path + "/policy");
  std::ofstream(state.path + "/policy/pod_ingress.json") << "{}";
  p.run([&] {
    const std::string other = p.mnt() + "/other-app";
    privns::pin_foreign_map(other + "/maps/" + WEIR_MAP_NAT_FE, "other_fe");
    privns::pin_foreign_map(other + "/maps/sessions", "sessions");
    const auto before = tree(p.mnt());
    auto r = weir_cleanup(other, state.path);
    EXPECT_FALSE(r.status.success()) << r.out;
    EXPECT_NE(r.err.find("refusing to clean pin root " + other + ": it holds no weir state"), std::string::npos)
        << r.err;
    EXPECT_EQ(tree(p.mnt()), before) << "nothing may be removed";
  });
  EXPECT_TRUE(exists(state.path + "/policy/pod_ingress.json")) << "a refused cleanup removes no state file either";
}

TEST(CleanupCli, RemovesARealWeirPinRootAndItsStateFiles) {
  require_root();
  PrivateBpffs p("cleanup-cli-real");
  StateDir state;
  fs::create_directories(state.path + "/policy");
  std::ofstream(state.path + "/policy/weirc0_ingress.json") << "{}";
  p.run([&] {
    const int ifx = privns::add_veth("weirc0", "weirc1");
    ASSERT_GT(ifx, 0);
    const maps::PinLayout layout{p.mnt() + "/weir"};
    ASSERT_TRUE(privns::make_weir_root(layout, ifx, "weirc0"));
    ASSERT_EQ(privns::weir_progs_on(ifx).size(), 2u);

    auto r = weir_cleanup(layout.root, state.path);
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_NE(r.out.find("removed pin root " + layout.root + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("removed 1 policy info file(s) under " + state.path + "/policy"), std::string::npos)
        << r.out;
    EXPECT_EQ(r.out.find("left "), std::string::npos) << r.out;
    EXPECT_FALSE(exists(layout.root)) << testing::PrintToString(tree(layout.root));
    EXPECT_FALSE(exists(state.path));
    EXPECT_TRUE(privns::weir_progs_on(ifx).empty());

    auto again = weir_cleanup(layout.root, state.path);
    EXPECT_TRUE(again.status.success()) << again.err;
    EXPECT_EQ(again.out, "nothing to clean\n");
  });
}

TEST(CleanupCli, LeavesForeignPinsAndSaysSo) {
  require_root();
  PrivateBpffs p("cleanup-cli-foreign");
  StateDir state;
  p.run([&] {
    const int ifx = privns::add_veth("weirc0", "weirc1");
    ASSERT_GT(ifx, 0);
    const maps::PinLayout layout{p.mnt() + "/weir"};
    ASSERT_TRUE(privns::make_weir_root(layout, ifx, "weirc0"));
    const std::string foreign = layout.root + "/other_map";
    privns::pin_foreign_map(foreign, "other_map");

    auto r = weir_cleanup(layout.root, state.path);
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_NE(r.out.find("left " + foreign + ": not created by weir"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("left pin root " + layout.root), std::string::npos) << r.out;
    EXPECT_TRUE(exists(foreign));
    EXPECT_EQ(tree(layout.root), std::vector<std::string>{foreign}) << "only the foreign pin is left";
    EXPECT_TRUE(privns::weir_progs_on(ifx).empty());
  });
}

// The agent's state dir (/run/weir/<pin root name>) goes with `lab down` also when the node
// namespace was deleted behind the lab's back (no `weir bpf cleanup` can run in it then).
TEST(LabDown, RemovesTheAgentStateDirWhenTheNodeNamespaceIsGone) {
  require_root();
  lab::LabSpec spec;
  spec.pods = 1;
  spec.weir_binary = kWeirBinary;
  spec.start_agent = false;
  auto up = lab::Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  lab::Lab l(std::move(*up));
  cli::GlobalOptions g;
  g.pin_root = l.pin_root();
  const std::string agent_state = g.effective_state_dir();
  ASSERT_EQ(agent_state, "/run/weir/weir-lab-" + l.id());
  fs::create_directories(agent_state + "/policy");
  std::ofstream(agent_state + "/policy/" + l.pods().at(0).host_if + "_ingress.json") << "{}";
  auto del = lab::run_process({"ip", "netns", "del", l.node_netns()});
  ASSERT_TRUE(del.ok() && del->status.success());
  ASSERT_TRUE(l.down().ok());
  EXPECT_FALSE(exists(agent_state));
  std::error_code ec;
  fs::remove_all(agent_state, ec);  // whatever the outcome
}

}  // namespace
}  // namespace weir::e2e
