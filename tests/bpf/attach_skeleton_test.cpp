// bpf::Skeleton<S> (src/bpf/skeleton.h): open -> configure -> load -> destroy, and the verifier
// log captured into the Error when a program is rejected. The programs are small objects of the
// tests' own (tests/bpf/progs/skel_good.bpf.c, skel_bad.bpf.c, a deliberately invalid one) that
// the build compiles into bpftool skeletons, so they are not part of weir and the tests need no
// compiler at run time. Needs root; fails otherwise.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "bpf/bpffs.h"
#include "bpf/map.h"
#include "bpf/skeleton.h"
#include "skel_bad.skel.h"
#include "skel_good.skel.h"

namespace weir::attach_skeleton_test {
namespace {

// A skeleton type whose object file does not exist: open() fails as libbpf reports it.
struct MissingSkel {
  struct bpf_object* obj = nullptr;
  static MissingSkel* open(const struct bpf_object_open_opts* opts) {
    struct bpf_object* o = bpf_object__open_file("/proc/self/weir-no-such-object.bpf.o", opts);
    if (o == nullptr) return nullptr;
    bpf_object__close(o);
    return nullptr;
  }
  static int load(MissingSkel*) { return -ENOENT; }
  static void destroy(MissingSkel* s) { delete s; }
};

class SkeletonTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "needs root (BPF_PROG_LOAD)"; }
  void TearDown() override {
    if (!pins_.empty()) {
      EXPECT_TRUE(bpf::remove_tree(pins_).ok());
    }
  }
  std::string pins_;
};

TEST_F(SkeletonTest, LoadsConfiguresAndPins) {
  auto s = bpf::Skeleton<weir_test_skel_good>::open("good");
  ASSERT_TRUE(s.ok()) << s.error().str();
  EXPECT_FALSE(s->loaded());
  auto bad = s->set_max_entries("no_such_map", 8);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().msg.find("no_such_map"), std::string::npos);
  ASSERT_TRUE(s->set_max_entries("weir_t_map", 128).ok());
  ASSERT_TRUE(bpf::ensure_bpffs().ok());
  pins_ = "/sys/fs/bpf/weir-skel-" + std::to_string(getpid());
  ASSERT_TRUE(bpf::mkdirs(pins_).ok());
  ASSERT_TRUE(s->set_pin_path("weir_t_map", pins_ + "/weir_t_map").ok());
  auto st = s->load();
  ASSERT_TRUE(st.ok()) << st.error().str();
  EXPECT_TRUE(s->loaded());
  EXPECT_FALSE(s->set_max_entries("weir_t_map", 4).ok()) << "configuring after load must fail";
  auto m = bpf::MapFd::open_pinned(pins_ + "/weir_t_map");
  ASSERT_TRUE(m.ok()) << m.error().str();
  EXPECT_EQ(m->info().max_entries, 128u);
  // Moving the skeleton keeps the object alive exactly once.
  bpf::Skeleton<weir_test_skel_good> moved = std::move(*s);
  EXPECT_TRUE(moved.loaded());
  EXPECT_EQ(s->get(), nullptr);
}

TEST_F(SkeletonTest, VerifierLogIsInTheError) {
  auto s = bpf::Skeleton<weir_test_skel_bad>::open("bad");
  ASSERT_TRUE(s.ok()) << s.error().str();
  auto st = s->load();
  ASSERT_FALSE(st.ok()) << "the verifier must reject an unchecked packet read";
  EXPECT_EQ(st.error().err, EACCES) << st.error().str();
  EXPECT_NE(st.error().msg.find("loading BPF object bad"), std::string::npos) << st.error().str();
  EXPECT_NE(st.error().msg.find("verifier log"), std::string::npos) << st.error().str();
  EXPECT_NE(st.error().msg.find("invalid access to packet"), std::string::npos) << st.error().str();
  EXPECT_NE(s->last_log().find("invalid access to packet"), std::string::npos) << s->last_log();
}

TEST_F(SkeletonTest, OpenFailureIsAnError) {
  auto s = bpf::Skeleton<MissingSkel>::open("missing");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().msg.find("opening BPF object missing"), std::string::npos) << s.error().str();
}

}  // namespace
}  // namespace weir::attach_skeleton_test
