// TC attachment (src/bpf/attach.h), feature probing and `weir bpf cleanup`, on veths inside a
// network namespace the test creates (weir-attach-<pid>) and deletes in TearDown, also on
// failure. Work that must happen in that namespace runs on a dedicated thread that setns()es
// into it, so the test process itself never changes namespace. Needs root; fails (never skips)
// otherwise. Programs are trivial SCHED_CLS programs loaded here (weir_test / other_prog), so
// these tests do not depend on bpf/tc.bpf.c.
//
// The kernel decides what is expected: tcx exists from 6.6 (uname, see kernel_version.h). On an
// older kernel (Debian 12's 6.1) the tests about tcx links check instead that a tcx attach is
// refused with EINVAL, names the interface and leaves nothing behind, and the tests of attach in
// general use the mode bpf::probe_tc_mode() picks, as the agent does.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <functional>
#include <string>
#include <thread>
#include <tuple>

#include "bpf/attach.h"
#include "bpf/bpffs.h"
#include "bpf/features.h"
#include "bpf/netlink.h"
#include "cli/bpf_ops.h"
#include "kernel_version.h"
#include "maps/pin_layout.h"
#include "shell.h"
#include "util/fd.h"

namespace weir::attach_test {
namespace {

using bpf::TcDir;
using bpf::TcMode;
using bpf::TcProgInfo;
using test::sh;

Fd load_prog(const char* name) {
  struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},  // r0 = TC_ACT_OK
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  return Fd(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name, "GPL", insns, 2, nullptr));
}

uint32_t prog_id(const Fd& fd) {
  struct bpf_prog_info info {};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return 0;
  return info.id;
}

test::KernelVersion kernel() {
  auto k = test::KernelVersion::running();
  EXPECT_TRUE(k.has_value()) << "uname(2) gave no MAJOR.MINOR release";
  return k.value_or(test::KernelVersion{});
}

std::vector<TcProgInfo> weir_only(const std::vector<TcProgInfo>& v) {
  std::vector<TcProgInfo> out;
  for (const auto& p : v)
    if (p.is_weir()) out.push_back(p);
  return out;
}

class AttachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "TC attach tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF)";
    ns_ = "weir-attach-" + std::to_string(getpid());
    pin_root_ = "/sys/fs/bpf/weir-attach-" + std::to_string(getpid());
    auto st = bpf::ensure_bpffs();
    ASSERT_TRUE(st.ok()) << st.error().str();
    std::string out;
    sh("ip netns del " + ns_);  // a leftover of a crashed run with the same pid
    ASSERT_EQ(sh("ip netns add " + ns_, &out), 0) << out;
    ns_created_ = true;
    for (int i = 0; i < 2; i++) {
      std::string h = "weirh" + std::to_string(i), p = "weirp" + std::to_string(i);
      ASSERT_EQ(sh(ip() + "link add " + h + " type veth peer name " + p, &out), 0) << out;
      ASSERT_EQ(sh(ip() + "link set " + h + " up", &out), 0) << out;
      ASSERT_EQ(sh(ip() + "link set " + p + " up", &out), 0) << out;
    }
    auto mk = bpf::mkdirs(pin_root_);
    ASSERT_TRUE(mk.ok()) << mk.error().str();
    p1_ = load_prog("weir_test");
    p2_ = load_prog("weir_test");
    other_ = load_prog("other_prog");
    ASSERT_TRUE(p1_.valid() && p2_.valid() && other_.valid()) << "bpf_prog_load: " << std::strerror(errno);
    in_ns([&] {
      auto l0 = bpf::link_by_name("weirh0");
      auto l1 = bpf::link_by_name("weirh1");
      ASSERT_TRUE(l0.ok() && l1.ok());
      if0_ = l0->ifindex;
      if1_ = l1->ifindex;
    });
    auto mode = bpf::probe_tc_mode();
    ASSERT_TRUE(mode.ok()) << mode.error().str();
    mode_ = *mode;
  }

  void TearDown() override {
    if (!pin_root_.empty()) {
      auto st = bpf::remove_tree(pin_root_);
      EXPECT_TRUE(st.ok()) << st.error().str();
    }
    if (ns_created_) {
      EXPECT_EQ(sh("ip netns del " + ns_), 0) << "could not delete netns " << ns_;
    }
  }

  std::string ip() const { return "ip -n " + ns_ + " "; }
  // nsenter keeps our mount namespace (ip netns exec remounts /sys, hiding /sys/fs/bpf).
  std::string tc() const { return "nsenter --net=/run/netns/" + ns_ + " tc "; }

  // Run `f` on a thread inside the test namespace (gtest assertions work there; a fatal
  // assertion ends `f` only).
  void in_ns(const std::function<void()>& f) {
    std::thread t([&] {
      Fd nsfd(::open(("/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC));
      ASSERT_TRUE(nsfd.valid()) << "open /run/netns/" << ns_ << ": " << std::strerror(errno);
      ASSERT_EQ(::setns(nsfd.get(), CLONE_NEWNET), 0) << "setns: " << std::strerror(errno);
      f();
    });
    t.join();
  }

  std::string link_pin(const std::string& ifname, TcDir d) const {
    return maps::PinLayout{pin_root_}.link_path(ifname, d);
  }

  std::vector<TcProgInfo> list(int ifindex, TcDir d) {
    auto l = bpf::tc_list(ifindex, d);
    EXPECT_TRUE(l.ok()) << l.error().str();
    return l.ok() ? *l : std::vector<TcProgInfo>{};
  }

  // The link pin of (ifname, d) in tcx mode; clsact needs none.
  std::string pin_for(const std::string& ifname, TcDir d) const {
    return mode_ == TcMode::Tcx ? link_pin(ifname, d) : "";
  }

  // True on a kernel with tcx (6.6+). On an older one, checks that a tcx attach to weirh0 is
  // refused with EINVAL and an error naming the interface, and leaves no pin and no program
  // behind (what `--tc-mode tcx` gets there), and returns false: the caller's tcx-only
  // checks do not apply.
  bool tcx_or_refused() {
    if (kernel().has_tcx()) return true;
    in_ns([&] {
      const std::string pin = link_pin("weirh0", TcDir::Ingress);
      auto st = bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p1_.get(), TcMode::Tcx, pin);
      ASSERT_FALSE(st.ok()) << "kernel " << kernel().release << " predates tcx, yet a tcx attach worked";
      EXPECT_EQ(st.error().err, EINVAL) << st.error().str();
      EXPECT_NE(st.error().msg.find("tcx ingress link on weirh0"), std::string::npos) << st.error().str();
      struct stat sb {};
      EXPECT_NE(::stat(pin.c_str(), &sb), 0) << "a refused attach left the pin " << pin;
      EXPECT_TRUE(list(if0_, TcDir::Ingress).empty());
      EXPECT_FALSE(*bpf::has_clsact(if0_)) << "a refused tcx attach must not fall back on its own";
    });
    return false;
  }

  std::string ns_, pin_root_;
  bool ns_created_ = false;
  Fd p1_, p2_, other_;
  int if0_ = 0, if1_ = 0;
  TcMode mode_ = TcMode::Tcx;  // what probe_tc_mode() picks on this kernel
};

TEST(KernelVersion, ParsesDebianAndUpstreamReleases) {
  auto d = test::KernelVersion::parse("6.1.0-57-cloud-amd64");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(std::tie(d->major, d->minor, d->patch), std::make_tuple(6, 1, 0));
  EXPECT_FALSE(d->has_tcx());
  auto u = test::KernelVersion::parse("6.18.44-fc-v1252");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(std::tie(u->major, u->minor, u->patch), std::make_tuple(6, 18, 44));
  EXPECT_TRUE(u->has_tcx());
  EXPECT_TRUE(test::KernelVersion::parse("6.6")->has_tcx());
  EXPECT_FALSE(test::KernelVersion::parse("5.19.17")->has_tcx());
  EXPECT_FALSE(test::KernelVersion::parse("linux").has_value());
}

// The probe's answer must be what the kernel version says (tcx from 6.6), whichever kernel
// this runs on: a probe that always said "tcx" (or never) fails on one of the two kernels of
// the test run (this machine's and Debian 12's 6.1 in scripts/test-kernel.sh).
TEST(TcModeProbe, FollowsTheKernelVersion) {
  ASSERT_EQ(geteuid(), 0u) << "needs root";
  const auto k = kernel();
  auto m = bpf::probe_tc_mode();
  ASSERT_TRUE(m.ok()) << m.error().str();
  const TcMode want = k.has_tcx() ? TcMode::Tcx : TcMode::Clsact;
  EXPECT_EQ(bpf::to_string(*m), bpf::to_string(want))
      << "kernel " << k.release << (k.has_tcx() ? " has tcx (6.6+)" : " predates tcx (6.6)");
}

TEST(Features, KernelHasEverythingWeirNeeds) {
  ASSERT_EQ(geteuid(), 0u) << "needs root";
  const auto k = kernel();
  bpf::KernelFeatureProbe probe;
  auto f = probe.probe();
  ASSERT_TRUE(f.ok()) << f.error().str();
  EXPECT_TRUE(f->missing().empty()) << f->describe();
  EXPECT_EQ(f->tcx, k.has_tcx()) << "kernel " << k.release << "\n" << f->describe();
  EXPECT_EQ(bpf::to_string(f->tc_mode()), k.has_tcx() ? "tcx" : "clsact");
  bpf::KernelFeatures none;
  EXPECT_EQ(none.missing().size(), 9u);  // everything but tcx is required
  none.tcx = true;
  EXPECT_EQ(none.missing().size(), 9u);
}

TEST_F(AttachTest, TcxAttachReplacesAtomicallyAndDetaches) {
  if (!tcx_or_refused()) return;
  in_ns([&] {
    const std::string pin = link_pin("weirh0", TcDir::Ingress);
    auto st = bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p1_.get(), TcMode::Tcx, pin);
    ASSERT_TRUE(st.ok()) << st.error().str();
    auto l = list(if0_, TcDir::Ingress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_id, prog_id(p1_));
    EXPECT_EQ(l[0].prog_name, "weir_test");
    EXPECT_EQ(l[0].mode, TcMode::Tcx);
    EXPECT_NE(l[0].link_id, 0u);
    const uint32_t link_id = l[0].link_id;
    // The pin is a tcx link holding p1 (checked through the link itself, not tc_list).
    Fd link(bpf_obj_get(pin.c_str()));
    ASSERT_TRUE(link.valid()) << pin;
    struct bpf_link_info li {};
    __u32 len = sizeof(li);
    ASSERT_EQ(bpf_obj_get_info_by_fd(link.get(), &li, &len), 0);
    EXPECT_EQ(li.prog_id, prog_id(p1_));
    EXPECT_EQ(li.type, bpf::kBpfLinkTypeTcx);
    // Nothing on the other direction or the other interface.
    EXPECT_TRUE(list(if0_, TcDir::Egress).empty());
    EXPECT_TRUE(list(if1_, TcDir::Ingress).empty());

    // Re-attach: same link, new program, still exactly one weir program.
    st = bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p2_.get(), TcMode::Tcx, pin);
    ASSERT_TRUE(st.ok()) << st.error().str();
    l = list(if0_, TcDir::Ingress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_id, prog_id(p2_));
    EXPECT_EQ(l[0].link_id, link_id) << "replacement must update the link, not create a new one";
    ASSERT_EQ(bpf_obj_get_info_by_fd(link.get(), &li, &len), 0);
    EXPECT_EQ(li.prog_id, prog_id(p2_));
    // Idempotent.
    st = bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p2_.get(), TcMode::Tcx, pin);
    ASSERT_TRUE(st.ok()) << st.error().str();
    EXPECT_EQ(list(if0_, TcDir::Ingress).size(), 1u);

    st = bpf::tc_detach(if0_, TcDir::Ingress, TcMode::Tcx, pin);
    ASSERT_TRUE(st.ok()) << st.error().str();
    EXPECT_TRUE(list(if0_, TcDir::Ingress).empty());
    struct stat sb {};
    EXPECT_NE(::stat(pin.c_str(), &sb), 0) << "pin " << pin << " must be removed";
    // Detaching again is fine.
    st = bpf::tc_detach(if0_, TcDir::Ingress, TcMode::Tcx, pin);
    EXPECT_TRUE(st.ok()) << st.error().str();
  });
}

TEST_F(AttachTest, TcxStalePinIsReplaced) {
  if (!tcx_or_refused()) return;
  in_ns([&] {
    // A pin left from an interface that no longer exists: the link is defunct.
    const std::string pin = link_pin("weirh1", TcDir::Egress);
    ASSERT_TRUE(bpf::tc_attach(if1_, "weirh1", TcDir::Egress, p1_.get(), TcMode::Tcx, pin).ok());
    std::string out;
    ASSERT_EQ(sh(ip() + "link del weirh1", &out), 0) << out;
    ASSERT_EQ(sh(ip() + "link add weirh1 type veth peer name weirp1", &out), 0) << out;
    auto l1 = bpf::link_by_name("weirh1");
    ASSERT_TRUE(l1.ok());
    auto st = bpf::tc_attach(l1->ifindex, "weirh1", TcDir::Egress, p2_.get(), TcMode::Tcx, pin);
    ASSERT_TRUE(st.ok()) << st.error().str();
    auto l = list(l1->ifindex, TcDir::Egress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_id, prog_id(p2_));
    ASSERT_TRUE(bpf::tc_detach(l1->ifindex, TcDir::Egress, TcMode::Tcx, pin).ok());
  });
}

TEST_F(AttachTest, ClsactAttachReplacesAndDetachRemovesQdisc) {
  in_ns([&] {
    auto has = bpf::has_clsact(if0_);
    ASSERT_TRUE(has.ok());
    EXPECT_FALSE(*has);
    auto st = bpf::tc_attach(if0_, "weirh0", TcDir::Egress, p1_.get(), TcMode::Clsact, "");
    ASSERT_TRUE(st.ok()) << st.error().str();
    auto l = list(if0_, TcDir::Egress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_id, prog_id(p1_));
    EXPECT_EQ(l[0].prog_name, "weir_test");
    EXPECT_EQ(l[0].mode, TcMode::Clsact);
    EXPECT_EQ(l[0].priority, bpf::kWeirTcPriority);
    EXPECT_EQ(l[0].handle, bpf::kWeirTcHandle);
    EXPECT_TRUE(l[0].direct_action);
    // Independent view: tc itself.
    std::string out;
    ASSERT_EQ(sh(tc() + "filter show dev weirh0 egress", &out), 0) << out;
    EXPECT_NE(out.find("weir_test"), std::string::npos) << out;
    EXPECT_NE(out.find("direct-action"), std::string::npos) << out;
    EXPECT_NE(out.find("pref 49374"), std::string::npos) << out;

    st = bpf::tc_attach(if0_, "weirh0", TcDir::Egress, p2_.get(), TcMode::Clsact, "");
    ASSERT_TRUE(st.ok()) << st.error().str();
    l = list(if0_, TcDir::Egress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_id, prog_id(p2_));

    // Ingress too, then detach both: the qdisc goes only with the last filter.
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p1_.get(), TcMode::Clsact, "").ok());
    ASSERT_TRUE(bpf::tc_detach(if0_, TcDir::Egress, TcMode::Clsact, "").ok());
    EXPECT_TRUE(list(if0_, TcDir::Egress).empty());
    EXPECT_TRUE(*bpf::has_clsact(if0_)) << "ingress filter still there";
    ASSERT_TRUE(bpf::tc_detach(if0_, TcDir::Ingress, TcMode::Clsact, "").ok());
    EXPECT_TRUE(list(if0_, TcDir::Ingress).empty());
    EXPECT_FALSE(*bpf::has_clsact(if0_));
    ASSERT_EQ(sh(tc() + "qdisc show dev weirh0", &out), 0) << out;
    EXPECT_EQ(out.find("clsact"), std::string::npos) << out;
    // Idempotent; an interface that is gone is not an error either.
    EXPECT_TRUE(bpf::tc_detach(if0_, TcDir::Ingress, TcMode::Clsact, "").ok());
    EXPECT_TRUE(bpf::tc_detach(0, TcDir::Ingress, TcMode::Clsact, "").ok());
  });
}

TEST_F(AttachTest, StaleWeirFilterRemovedOtherFilterKept) {
  // The seed's incident: an old generation of our program at another priority.
  const std::string stale_pin = pin_root_ + "/stale", other_pin = pin_root_ + "/other";
  ASSERT_EQ(bpf_obj_pin(p1_.get(), stale_pin.c_str()), 0);
  ASSERT_EQ(bpf_obj_pin(other_.get(), other_pin.c_str()), 0);
  std::string out;
  ASSERT_EQ(sh(tc() + "qdisc add dev weirh0 clsact", &out), 0) << out;
  ASSERT_EQ(sh(tc() + "filter add dev weirh0 egress pref 1 handle 0x1 bpf da object-pinned " + stale_pin, &out), 0) << out;
  ASSERT_EQ(sh(tc() + "filter add dev weirh0 egress pref 2 handle 0x1 bpf da object-pinned " + other_pin, &out), 0) << out;
  in_ns([&] {
    auto before = list(if0_, TcDir::Egress);
    ASSERT_EQ(before.size(), 2u);
    auto st = bpf::tc_attach(if0_, "weirh0", TcDir::Egress, p2_.get(), TcMode::Clsact, "");
    ASSERT_TRUE(st.ok()) << st.error().str();
    auto l = list(if0_, TcDir::Egress);
    auto w = weir_only(l);
    ASSERT_EQ(w.size(), 1u) << "exactly one weir program may remain";
    EXPECT_EQ(w[0].prog_id, prog_id(p2_));
    EXPECT_EQ(w[0].priority, bpf::kWeirTcPriority);
    ASSERT_EQ(l.size(), 2u);
    EXPECT_EQ(l[0].prog_name, "other_prog");
    EXPECT_EQ(l[0].priority, 2u);

    ASSERT_TRUE(bpf::tc_detach(if0_, TcDir::Egress, TcMode::Clsact, "").ok());
    l = list(if0_, TcDir::Egress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_name, "other_prog");
    EXPECT_TRUE(*bpf::has_clsact(if0_)) << "the qdisc still carries another filter";
  });
  ASSERT_EQ(sh(tc() + "filter show dev weirh0 egress", &out), 0) << out;
  EXPECT_NE(out.find("other_prog"), std::string::npos) << out;
  EXPECT_EQ(out.find("weir_test"), std::string::npos) << out;
}

TEST_F(AttachTest, StaleWeirTcxLinkRemovedWhenAttachingElsewhereAndViceVersa) {
  if (!tcx_or_refused()) return;
  in_ns([&] {
    // A tcx link from a previous run whose pin is not ours (another pin path).
    const std::string old_pin = pin_root_ + "/old_link";
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p1_.get(), TcMode::Tcx, old_pin).ok());
    const std::string pin = link_pin("weirh0", TcDir::Ingress);
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p2_.get(), TcMode::Tcx, pin).ok());
    auto l = list(if0_, TcDir::Ingress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_id, prog_id(p2_));

    // Switching to clsact removes the weir tcx link.
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p1_.get(), TcMode::Clsact, "").ok());
    l = list(if0_, TcDir::Ingress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].mode, TcMode::Clsact);
    EXPECT_EQ(l[0].prog_id, prog_id(p1_));

    // And back to tcx: the weir cls_bpf filter goes, and the clsact qdisc it left empty too.
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p2_.get(), TcMode::Tcx, pin).ok());
    l = list(if0_, TcDir::Ingress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].mode, TcMode::Tcx);
    EXPECT_EQ(l[0].prog_id, prog_id(p2_));
    EXPECT_FALSE(*bpf::has_clsact(if0_));
    ASSERT_TRUE(bpf::tc_detach(if0_, TcDir::Ingress, TcMode::Tcx, pin).ok());
    EXPECT_TRUE(list(if0_, TcDir::Ingress).empty());
  });
}

TEST_F(AttachTest, NonWeirTcxProgramLeftAlone) {
  if (!tcx_or_refused()) return;
  in_ns([&] {
    const std::string other_pin = pin_root_ + "/other_link";
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Egress, other_.get(), TcMode::Tcx, other_pin).ok());
    const std::string pin = link_pin("weirh0", TcDir::Egress);
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Egress, p1_.get(), TcMode::Tcx, pin).ok());
    auto l = list(if0_, TcDir::Egress);
    ASSERT_EQ(l.size(), 2u);
    EXPECT_EQ(l[0].prog_name, "other_prog");
    EXPECT_EQ(l[1].prog_name, "weir_test");
    EXPECT_EQ(l[1].priority, 1u);  // position in the tcx chain
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Egress, p2_.get(), TcMode::Tcx, pin).ok());
    ASSERT_TRUE(bpf::tc_detach(if0_, TcDir::Egress, TcMode::Tcx, pin).ok());
    l = list(if0_, TcDir::Egress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_name, "other_prog");
    ASSERT_TRUE(bpf::tc_detach(if0_, TcDir::Egress, TcMode::Tcx, other_pin).ok());
    EXPECT_TRUE(list(if0_, TcDir::Egress).empty());
  });
}

TEST_F(AttachTest, ListUnknownInterfaceFails) {
  in_ns([&] {
    auto l = bpf::tc_list(4242, TcDir::Ingress);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.error().err, ENODEV) << l.error().str();
    auto n = bpf::link_by_name("nosuchif0");
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().err, ENODEV);
    EXPECT_NE(n.error().msg.find("nosuchif0"), std::string::npos);
  });
}

TEST_F(AttachTest, NetlinkLinksOfTheNamespace) {
  in_ns([&] {
    auto links = bpf::list_links();
    ASSERT_TRUE(links.ok()) << links.error().str();
    std::vector<std::string> names;
    int last = 0;
    for (const auto& l : *links) {
      names.push_back(l.name);
      EXPECT_GT(l.ifindex, last) << "sorted by ifindex";
      last = l.ifindex;
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"lo", "weirh0", "weirh1", "weirp0", "weirp1"}));
    auto h0 = bpf::link_by_index(if0_);
    ASSERT_TRUE(h0.ok());
    EXPECT_EQ(h0->name, "weirh0");
    EXPECT_TRUE(h0->up);
    EXPECT_EQ(h0->kind, "veth");
    std::string out;
    ASSERT_EQ(sh(ip() + "link show weirh0", &out), 0);
    EXPECT_NE(out.find(bpf::format_mac(h0->mac.data())), std::string::npos) << out;
  });
}

TEST_F(AttachTest, GuardDetachesUnlessReleased) {
  in_ns([&] {
    const std::string pin = pin_for("weirh0", TcDir::Ingress);
    {
      auto a = bpf::TcAttachment::attach(if0_, "weirh0", TcDir::Ingress, p1_.get(), mode_, pin);
      ASSERT_TRUE(a.ok()) << a.error().str();
      EXPECT_TRUE(a->active());
      bpf::TcAttachment moved = std::move(*a);
      EXPECT_FALSE(a->active());
      EXPECT_EQ(list(if0_, TcDir::Ingress).size(), 1u);
    }
    EXPECT_TRUE(list(if0_, TcDir::Ingress).empty()) << "guard must detach on destruction";
    {
      auto a = bpf::TcAttachment::attach(if1_, "weirh1", TcDir::Egress, p1_.get(), TcMode::Clsact, "");
      ASSERT_TRUE(a.ok()) << a.error().str();
      a->release();
    }
    EXPECT_EQ(list(if1_, TcDir::Egress).size(), 1u) << "released attachment stays";
    ASSERT_TRUE(bpf::tc_detach(if1_, TcDir::Egress, TcMode::Clsact, "").ok());
  });
}

TEST_F(AttachTest, CleanupRemovesEverythingWeirAndIsIdempotent) {
  const std::string other_pin = pin_root_ + "/other";
  ASSERT_EQ(bpf_obj_pin(other_.get(), other_pin.c_str()), 0);
  std::string out;
  maps::PinLayout layout{pin_root_ + "/root"};
  in_ns([&] {
    const std::string pin = mode_ == TcMode::Tcx ? layout.link_path("weirh0", TcDir::Ingress) : "";
    auto st = bpf::tc_attach(if0_, "weirh0", TcDir::Ingress, p1_.get(), mode_, pin);
    ASSERT_TRUE(st.ok()) << st.error().str();
    ASSERT_TRUE(bpf::tc_attach(if0_, "weirh0", TcDir::Egress, p1_.get(), TcMode::Clsact, "").ok());
    ASSERT_TRUE(bpf::tc_attach(if1_, "weirh1", TcDir::Egress, p2_.get(), TcMode::Clsact, "").ok());
  });
  // A foreign filter on weirh1 ingress keeps its clsact qdisc alive.
  ASSERT_EQ(sh(tc() + "filter add dev weirh1 ingress pref 3 handle 0x1 bpf da object-pinned " + other_pin, &out), 0)
      << out;
  // weir's marker, as the loader leaves it: cleanup only cleans a pin root that is weir's.
  ASSERT_TRUE(maps::write_pin_marker(layout).ok());
  in_ns([&] {
    auto r = cli::cleanup(layout);
    ASSERT_TRUE(r.ok()) << r.error().str();
    std::string all;
    for (const auto& l : r->removed) all += l + "\n";
    EXPECT_NE(all.find("weirh0 ingress"), std::string::npos) << all;
    EXPECT_NE(all.find("weirh0 egress"), std::string::npos) << all;
    EXPECT_NE(all.find("weirh1 egress"), std::string::npos) << all;
    EXPECT_NE(all.find("removed empty clsact qdisc of weirh0"), std::string::npos) << all;
    EXPECT_EQ(all.find("clsact qdisc of weirh1"), std::string::npos) << all;
    EXPECT_NE(all.find("removed pin root " + layout.root), std::string::npos) << all;
    for (int idx : {if0_, if1_})
      for (TcDir d : {TcDir::Ingress, TcDir::Egress}) EXPECT_TRUE(weir_only(list(idx, d)).empty());
    auto l = list(if1_, TcDir::Ingress);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0].prog_name, "other_prog");
    EXPECT_FALSE(*bpf::has_clsact(if0_));
    EXPECT_TRUE(*bpf::has_clsact(if1_));
    struct stat sb {};
    EXPECT_NE(::stat(layout.root.c_str(), &sb), 0);

    auto again = cli::cleanup(layout);
    ASSERT_TRUE(again.ok()) << again.error().str();
    EXPECT_TRUE(again->removed.empty()) << again->removed.front();
  });
}

TEST_F(AttachTest, CleanupRefusesRootOutsideBpffs) {
  const std::string dir = "/tmp/weir-attach-notbpf-" + std::to_string(getpid());
  ASSERT_TRUE(bpf::mkdirs(dir).ok());
  const std::string file = dir + "/keep";
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  in_ns([&] {
    auto r = cli::cleanup(maps::PinLayout{dir});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().msg.find("not on a bpffs"), std::string::npos) << r.error().str();
  });
  struct stat sb {};
  EXPECT_EQ(::stat(file.c_str(), &sb), 0) << "cleanup must not touch a non-bpffs directory";
  std::remove(file.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace weir::attach_test
