// bpf::Skeleton<S> (src/bpf/skeleton.h): open -> configure -> load -> destroy, and the verifier
// log captured into the Error when a program is rejected. A stand-in skeleton type (the same
// static open/load/destroy members bpftool generates) opens objects that clang compiles here,
// so a deliberately invalid program can be tested without embedding it into weir. Needs root
// and clang (as the build does); fails otherwise.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "bpf/bpffs.h"
#include "bpf/map.h"
#include "bpf/skeleton.h"

namespace weir::attach_skeleton_test {
namespace {

// Object file the next FakeSkel::open() opens (tests run sequentially).
std::string g_object_path;  // NOLINT: test-only

struct FakeSkel {
  struct bpf_object* obj = nullptr;
  static FakeSkel* open(const struct bpf_object_open_opts* opts) {
    struct bpf_object* o = bpf_object__open_file(g_object_path.c_str(), opts);
    if (o == nullptr) return nullptr;
    return new FakeSkel{o};
  }
  static int load(FakeSkel* s) { return bpf_object__load(s->obj); }
  static void destroy(FakeSkel* s) {
    bpf_object__close(s->obj);
    delete s;
  }
};

class SkeletonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (BPF_PROG_LOAD)";
    dir_ = "/tmp/weir-skel-" + std::to_string(getpid());
    ASSERT_TRUE(bpf::mkdirs(dir_).ok());
  }
  void TearDown() override {
    std::string cmd = "rm -rf " + dir_;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    if (!pins_.empty()) {
      EXPECT_TRUE(bpf::remove_tree(pins_).ok());
    }
  }
  // Compile `src` with clang -target bpf; returns the object path.
  std::string compile(const std::string& name, const std::string& src) {
    const std::string c = dir_ + "/" + name + ".bpf.c", o = dir_ + "/" + name + ".bpf.o";
    std::ofstream(c) << src;
    std::string cmd = "clang -g -O2 -target bpf -I/usr/include/$(uname -m)-linux-gnu -c " + c + " -o " + o +
                      " 2>" + dir_ + "/clang.log";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << "clang failed, see " << dir_ << "/clang.log";
    return o;
  }
  std::string dir_, pins_;
};

const char* kGood = R"(
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } weir_t_map SEC(".maps");
SEC("tc") int weir_good(struct __sk_buff *skb) { __u32 k = 0; __u64 *v = bpf_map_lookup_elem(&weir_t_map, &k); return v ? 1 : 0; }
char LICENSE[] SEC("license") = "GPL";
)";

// Reads packet data without the bounds check the verifier requires.
const char* kBad = R"(
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("tc") int weir_bad(struct __sk_buff *skb) { void *data = (void *)(long)skb->data; return *(volatile int *)data; }
char LICENSE[] SEC("license") = "GPL";
)";

TEST_F(SkeletonTest, LoadsConfiguresAndPins) {
  g_object_path = compile("good", kGood);
  auto s = bpf::Skeleton<FakeSkel>::open("good");
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
  bpf::Skeleton<FakeSkel> moved = std::move(*s);
  EXPECT_TRUE(moved.loaded());
  EXPECT_EQ(s->get(), nullptr);
}

TEST_F(SkeletonTest, VerifierLogIsInTheError) {
  g_object_path = compile("bad", kBad);
  auto s = bpf::Skeleton<FakeSkel>::open("bad");
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
  g_object_path = dir_ + "/missing.bpf.o";
  auto s = bpf::Skeleton<FakeSkel>::open("missing");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().msg.find("opening BPF object missing"), std::string::npos) << s.error().str();
}

}  // namespace
}  // namespace weir::attach_skeleton_test
