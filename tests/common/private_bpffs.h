// A private bpffs for tests that must never touch the machine's own /sys/fs/bpf (the cleanup
// tests), shared by weir_bpf_tests and weir_e2e_tests.
//
// PrivateBpffs::run(body) runs `body` on a thread of its own that first unshares its filesystem
// attributes, a mount namespace and a network namespace, makes "/" a recursive slave (nothing
// mounted afterwards propagates back to the machine) and mounts a new bpffs on
// /tmp/weir-<tag>-<pid>. Processes the body starts (fork from that thread: the weir binary, ip,
// tc) inherit both namespaces. When the thread ends, both namespaces go, and with them the
// bpffs and every pin in it, the veths and every program attached to them, also when an
// assertion failed half-way; the destructor removes the (then empty) directory.
#pragma once

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bpf/attach.h"
#include "bpf/bpffs.h"
#include "bpf/map.h"
#include "dataplane/programs.h"
#include "lab/process.h"
#include "maps/map_table.h"
#include "maps/pin_layout.h"
#include "model/resources.h"
#include "util/fd.h"

namespace weir::privns {

class PrivateBpffs {
 public:
  explicit PrivateBpffs(const std::string& tag)
      : mnt_("/tmp/weir-" + tag + "-" + std::to_string(::getpid())) {
    ::mkdir(mnt_.c_str(), 0700);
  }
  ~PrivateBpffs() { ::rmdir(mnt_.c_str()); }
  PrivateBpffs(const PrivateBpffs&) = delete;
  PrivateBpffs& operator=(const PrivateBpffs&) = delete;

  // The mount point of the private bpffs (a plain empty directory outside run()).
  const std::string& mnt() const { return mnt_; }

  // Runs `body` in the private namespaces. A failure to set them up fails the test (never a
  // skip); gtest assertions work in the body (a fatal one ends the body only).
  void run(const std::function<void()>& body) const {
    std::thread t([&] {
      ASSERT_EQ(::unshare(CLONE_FS | CLONE_NEWNS | CLONE_NEWNET), 0)
          << "unshare(CLONE_FS|CLONE_NEWNS|CLONE_NEWNET) needs root: " << std::strerror(errno);
      ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr), 0)
          << "making / a recursive slave: " << std::strerror(errno);
      ASSERT_EQ(::mount("bpf", mnt_.c_str(), "bpf", 0, "mode=0700"), 0)
          << "mounting a bpffs on " << mnt_ << ": " << std::strerror(errno);
      body();
    });
    t.join();
  }

 private:
  std::string mnt_;
};

// Runs argv (in the calling thread's namespaces); fails the test when it cannot be run.
inline lab::RunResult run_cmd(const std::vector<std::string>& argv) {
  auto r = lab::run_process(argv);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().str());
  return r.ok() ? *r : lab::RunResult{};
}

// A veth pair (host side up) in the calling thread's network namespace; the host side's ifindex.
inline int add_veth(const std::string& host, const std::string& peer) {
  auto r = run_cmd({"ip", "link", "add", host, "type", "veth", "peer", "name", peer});
  EXPECT_TRUE(r.status.success()) << r.err;
  r = run_cmd({"ip", "link", "set", host, "up"});
  EXPECT_TRUE(r.status.success()) << r.err;
  return static_cast<int>(::if_nametoindex(host.c_str()));
}

// A trivial SCHED_CLS program (returns TC_ACT_OK) with the given kernel name.
inline Fd load_trivial_prog(const char* name) {
  struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  return Fd(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name, "GPL", insns, 2, nullptr));
}

// A small hash map named `name` pinned at `path` (its parent directory is created).
inline void pin_foreign_map(const std::string& path, const std::string& name,
                            uint32_t type = BPF_MAP_TYPE_HASH) {
  ASSERT_TRUE(bpf::mkdirs(path.substr(0, path.rfind('/'))).ok());
  auto m = bpf::MapFd::create(type, name, 8, 4, 8, type == BPF_MAP_TYPE_LPM_TRIE ? BPF_F_NO_PREALLOC : 0);
  ASSERT_TRUE(m.ok()) << m.error().str();
  auto st = m->pin(path);
  ASSERT_TRUE(st.ok()) << st.error().str();
}

// Map sizes small enough for tests (the defaults preallocate hundreds of MB).
inline model::MapSizes small_map_sizes() {
  model::MapSizes s;
  s.nat_frontend = s.nat_backend = s.conntrack = s.routes = 1024;
  s.ifstate = s.counters = s.ipsets = s.rule_counters = 1024;
  return s;
}

// The TC programs for make_weir_root, loaded once per process (the 6.1 verifier takes seconds
// per load of the object under TCG): the first call loads them with their maps pinned under
// `layout`, as the agent would; later calls pin the same maps under theirs. (Those pins go with
// each test's private bpffs; the kernel objects live on through this object's fds.)
inline Result<dataplane::TcPrograms*> shared_weir_programs(const maps::PinLayout& layout) {
  static std::optional<dataplane::TcPrograms> progs;  // NOLINT: one per test process
  if (!progs) {
    auto loaded = dataplane::TcPrograms::load(layout, small_map_sizes());
    if (!loaded) return loaded.error();
    progs.emplace(std::move(*loaded));
    return &*progs;
  }
  WEIR_TRY(maps::write_pin_marker(layout));
  WEIR_TRY(bpf::mkdirs(layout.maps_dir()));
  for (const maps::MapSpec& m : maps::kMapSpecs) {
    const int fd = progs->map_fds()[m.id];
    if (bpf_obj_pin(fd, layout.map_path(m.name).c_str()) != 0)
      return errno_error("pinning " + std::string(m.name) + " at " + layout.map_path(m.name));
  }
  return &*progs;
}

// A real weir pin root as the agent makes it: the production loader's maps and marker under
// `layout`, weir_from_wl / weir_to_wl attached to `ifindex` (`ifname`) in the mode the kernel
// supports (tcx links pinned under links/, else clsact filters). The programs are
// shared_weir_programs(): what is pinned or attached stays when the test's namespaces go.
inline bool make_weir_root(const maps::PinLayout& layout, int ifindex, const std::string& ifname) {
  auto mode = bpf::probe_tc_mode();
  EXPECT_TRUE(mode.ok()) << mode.error().str();
  auto progs = shared_weir_programs(layout);
  EXPECT_TRUE(progs.ok()) << progs.error().str();
  if (!mode.ok() || !progs.ok()) return false;
  const std::pair<bpf::TcDir, int> hooks[] = {{bpf::TcDir::Ingress, (*progs)->from_wl_fd()},
                                              {bpf::TcDir::Egress, (*progs)->to_wl_fd()}};
  bool ok = true;
  for (const auto& [dir, fd] : hooks) {
    auto st = bpf::tc_attach(ifindex, ifname, dir, fd, *mode, layout.link_path(ifname, dir));
    EXPECT_TRUE(st.ok()) << st.error().str();
    ok = ok && st.ok();
  }
  return ok;
}

// True when `path` exists (lstat).
inline bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Names of the weir_* programs on both hooks of `ifindex`.
inline std::vector<std::string> weir_progs_on(int ifindex) {
  std::vector<std::string> out;
  for (bpf::TcDir d : {bpf::TcDir::Ingress, bpf::TcDir::Egress}) {
    auto l = bpf::tc_list(ifindex, d);
    EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().str());
    if (!l.ok()) continue;
    for (const auto& p : *l)
      if (p.is_weir()) out.push_back(p.prog_name);
  }
  return out;
}

}  // namespace weir::privns
