// `weir bpf cleanup` removes only what weir created (cli::cleanup, in process). Every test runs on
// a private bpffs in private mount and network namespaces (tests/common/private_bpffs.h), never
// on the machine's own /sys/fs/bpf: a real weir pin root is made by the production loader
// (dataplane::TcPrograms::load) and attached to a veth of the private namespace.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "../common/private_bpffs.h"
#include "bpf/bpffs.h"
#include "cli/bpf_ops.h"
#include "maps/pin_layout.h"
#include "maps/weir_maps.h"
#include "weir/maps.h"

namespace weir::cleanup_test {
namespace {

namespace fs = std::filesystem;
using privns::exists;
using privns::PrivateBpffs;

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += l + "\n";
  return s;
}

uint32_t pinned_id(const std::string& path) {
  auto o = bpf::inspect_pin(path);
  return o.ok() ? o->id : 0;
}

// Every path under `dir` (directories end in '/', pins carry their kernel id), recursively.
std::vector<std::string> snapshot(const std::string& dir) {
  std::vector<std::string> out;
  auto entries = bpf::list_dir(dir);
  if (!entries.ok()) return out;
  for (const auto& e : *entries) {
    std::string path = dir + "/" + e.name;
    if (e.is_dir) {
      out.push_back(path + "/");
      for (auto& s : snapshot(path)) out.push_back(std::move(s));
    } else {
      out.push_back(path + " id " + std::to_string(pinned_id(path)));
    }
  }
  return out;
}

TEST(Cleanup, RemovesARealWeirPinRootCompletely) {
  PrivateBpffs p("cleanup-real");
  p.run([&] {
    const int ifx = privns::add_veth("weirc0", "weirc1");
    ASSERT_GT(ifx, 0);
    const maps::PinLayout layout{p.mnt() + "/weir"};
    ASSERT_TRUE(privns::make_weir_root(layout, ifx, "weirc0"));
    EXPECT_TRUE(*maps::is_pin_marker(layout.marker_path())) << "the loader writes the marker";
    for (const auto& n : maps::all_map_names()) ASSERT_TRUE(exists(layout.map_path(n))) << n;
    ASSERT_EQ(privns::weir_progs_on(ifx).size(), 2u);

    auto r = cli::cleanup(layout);
    ASSERT_TRUE(r.ok()) << r.error().str();
    EXPECT_NE(joined(r->removed).find("removed pin root " + layout.root), std::string::npos)
        << joined(r->removed);
    EXPECT_TRUE(r->left.empty()) << joined(r->left);
    EXPECT_FALSE(exists(layout.root)) << joined(snapshot(layout.root));
    EXPECT_TRUE(privns::weir_progs_on(ifx).empty());
    EXPECT_TRUE(exists(p.mnt())) << "the bpffs itself is not weir's";

    auto again = cli::cleanup(layout);
    ASSERT_TRUE(again.ok()) << again.error().str();
    EXPECT_TRUE(again->removed.empty() && again->left.empty()) << joined(again->removed);
  });
}

TEST(Cleanup, ForeignPinsUnderAWeirPinRootSurvive) {
  PrivateBpffs p("cleanup-foreign");
  p.run([&] {
    const int ifx = privns::add_veth("weirc0", "weirc1");
    const int other_if = privns::add_veth("weirc2", "weirc3");
    ASSERT_GT(ifx, 0);
    ASSERT_GT(other_if, 0);
    const maps::PinLayout layout{p.mnt() + "/weir"};
    ASSERT_TRUE(privns::make_weir_root(layout, ifx, "weirc0"));
    // Impostors under weir's own map names: another kernel name; weir's name but another type.
    ASSERT_EQ(::unlink(layout.map_path(WEIR_MAP_CT).c_str()), 0);
    privns::pin_foreign_map(layout.map_path(WEIR_MAP_CT), "other_ct");
    ASSERT_EQ(::unlink(layout.map_path(WEIR_MAP_ROUTES).c_str()), 0);
    privns::pin_foreign_map(layout.map_path(WEIR_MAP_ROUTES), WEIR_MAP_ROUTES, BPF_MAP_TYPE_HASH);
    privns::pin_foreign_map(layout.maps_dir() + "/other_map", "other_map");
    privns::pin_foreign_map(layout.root + "/other_app_map", "other_app_map");
    privns::pin_foreign_map(layout.root + "/sub/inner", "inner");
    // A foreign program pinned under links/ with a weir-like name, and a foreign program attached
    // to another interface through weir's own attach code: in tcx mode its link is pinned under
    // links/ with a weir-like name too.
    Fd other = privns::load_trivial_prog("other_prog");
    ASSERT_TRUE(other.valid());
    ASSERT_TRUE(bpf::mkdirs(layout.links_dir()).ok());  // clsact mode pins no link: no links/ yet
    ASSERT_EQ(bpf_obj_pin(other.get(), (layout.links_dir() + "/weirc9_ingress").c_str()), 0);
    auto mode = bpf::probe_tc_mode();
    ASSERT_TRUE(mode.ok());
    ASSERT_TRUE(bpf::tc_attach(other_if, "weirc2", bpf::TcDir::Ingress, other.get(), *mode,
                               layout.link_path("weirc2", bpf::TcDir::Ingress)).ok());
    std::vector<std::string> foreign = {
        layout.map_path(WEIR_MAP_CT), layout.map_path(WEIR_MAP_ROUTES), layout.maps_dir() + "/other_map",
        layout.root + "/other_app_map", layout.root + "/sub/inner", layout.links_dir() + "/weirc9_ingress"};
    if (*mode == bpf::TcMode::Tcx) foreign.push_back(layout.link_path("weirc2", bpf::TcDir::Ingress));
    std::map<std::string, uint32_t> ids;
    for (const auto& f : foreign) ids[f] = pinned_id(f);

    auto r = cli::cleanup(layout);
    ASSERT_TRUE(r.ok()) << r.error().str();
    const std::string left = joined(r->left);
    for (const auto& f : foreign) {
      EXPECT_NE(ids[f], 0u) << f;
      EXPECT_EQ(pinned_id(f), ids[f]) << f << " must stay, the same object";
      if (f.find("/sub/") == std::string::npos) {
        EXPECT_NE(left.find("left " + f + ": not created by weir"), std::string::npos) << f << "\n" << left;
      }
    }
    EXPECT_NE(left.find("left " + layout.root + "/sub: not created by weir (a directory)"), std::string::npos) << left;
    EXPECT_NE(left.find("left pin root " + layout.root), std::string::npos) << left;
    // Weir's own went: marker, the other maps, its links; its programs are off the interface.
    EXPECT_FALSE(exists(layout.marker_path()));
    for (const auto& n : maps::all_map_names())
      if (n != WEIR_MAP_CT && n != WEIR_MAP_ROUTES) {
        EXPECT_FALSE(exists(layout.map_path(n))) << n;
      }
    for (bpf::TcDir d : {bpf::TcDir::Ingress, bpf::TcDir::Egress})
      EXPECT_FALSE(exists(layout.link_path("weirc0", d)));
    EXPECT_TRUE(privns::weir_progs_on(ifx).empty());
    auto on_other = bpf::tc_list(other_if, bpf::TcDir::Ingress);
    ASSERT_TRUE(on_other.ok());
    ASSERT_EQ(on_other->size(), 1u) << "the foreign program must stay attached";
    EXPECT_EQ(on_other->at(0).prog_name, "other_prog");

    // What is left holds no weir state: a second run refuses and removes nothing.
    auto before = snapshot(layout.root);
    auto again = cli::cleanup(layout);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().msg.find("holds no weir state"), std::string::npos) << again.error().str();
    EXPECT_EQ(snapshot(layout.root), before);
  });
}

TEST(Cleanup, RefusesTheBpffsMountPoint) {
  PrivateBpffs p("cleanup-mnt");
  p.run([&] {
    const int ifx = privns::add_veth("weirc0", "weirc1");
    ASSERT_GT(ifx, 0);
    // The bpffs holds a weir pin root, foreign pins, and even weir's marker at its top.
    ASSERT_TRUE(privns::make_weir_root(maps::PinLayout{p.mnt() + "/weir"}, ifx, "weirc0"));
    ASSERT_TRUE(maps::write_pin_marker(maps::PinLayout{p.mnt()}).ok());
    privns::pin_foreign_map(p.mnt() + "/other_map", "other_map");
    ASSERT_TRUE(bpf::mkdirs(p.mnt() + "/sub").ok());
    const auto before = snapshot(p.mnt());
    for (const std::string& root : {p.mnt(), p.mnt() + "/", p.mnt() + "/sub/.."}) {
      auto r = cli::cleanup(maps::PinLayout{root});
      ASSERT_FALSE(r.ok()) << root;
      EXPECT_NE(r.error().msg.find("refusing to clean pin root " + root), std::string::npos) << r.error().str();
      EXPECT_NE(r.error().msg.find("mount point of a bpffs"), std::string::npos) << r.error().str();
      EXPECT_EQ(snapshot(p.mnt()), before) << "nothing may be removed";
      EXPECT_EQ(privns::weir_progs_on(ifx).size(), 2u) << "a refused cleanup detaches nothing either";
    }
  });
}

TEST(Cleanup, RefusesAPinRootWithoutWeirState) {
  PrivateBpffs p("cleanup-other");
  p.run([&] {
    const int ifx = privns::add_veth("weirc0", "weirc1");
    ASSERT_GT(ifx, 0);
    ASSERT_TRUE(privns::make_weir_root(maps::PinLayout{p.mnt() + "/weir"}, ifx, "weirc0"));
    // Another application's pin root, laid out like weir's: a map under a weir map name (but
    // not weir's map), a weir_-named program pinned under links/.
    const std::string other = p.mnt() + "/other-app";
    privns::pin_foreign_map(other + "/maps/" + WEIR_MAP_CT, "other_ct");
    privns::pin_foreign_map(other + "/maps/state", "state");
    privns::pin_foreign_map(other + "/counters", "counters");
    Fd prog = privns::load_trivial_prog("weir_lookalike");
    ASSERT_TRUE(prog.valid());
    ASSERT_TRUE(bpf::mkdirs(other + "/links").ok());
    ASSERT_EQ(bpf_obj_pin(prog.get(), (other + "/links/x_ingress").c_str()), 0);
    const std::string empty = p.mnt() + "/empty";
    ASSERT_TRUE(bpf::mkdirs(empty).ok());
    const auto before = snapshot(p.mnt());
    for (const std::string& root : {other, empty}) {
      auto r = cli::cleanup(maps::PinLayout{root});
      ASSERT_FALSE(r.ok()) << root;
      EXPECT_NE(r.error().msg.find("refusing to clean pin root " + root + ": it holds no weir state"),
                std::string::npos) << r.error().str();
      EXPECT_EQ(snapshot(p.mnt()), before) << "nothing may be removed";
      EXPECT_EQ(privns::weir_progs_on(ifx).size(), 2u) << "a refused cleanup detaches nothing either";
    }
  });
}

TEST(Cleanup, RecognisesAPinRootMadeBeforeTheMarker) {
  PrivateBpffs p("cleanup-old");
  p.run([&] {
    const int ifx = privns::add_veth("weirc0", "weirc1");
    ASSERT_GT(ifx, 0);
    const maps::PinLayout layout{p.mnt() + "/weir"};
    ASSERT_TRUE(privns::make_weir_root(layout, ifx, "weirc0"));
    ASSERT_EQ(::unlink(layout.marker_path().c_str()), 0);  // as a weir without the marker left it
    auto r = cli::cleanup(layout);
    ASSERT_TRUE(r.ok()) << r.error().str();
    EXPECT_FALSE(exists(layout.root)) << joined(snapshot(layout.root));
  });
}

TEST(Cleanup, RemovesARetiredMapAnOlderAgentPinned) {
  // An older agent's counters map (weir_counters1, before its value grew) next to today's maps.
  PrivateBpffs p("cleanup-retired");
  p.run([&] {
    const int ifx = privns::add_veth("weirc0", "weirc1");
    ASSERT_GT(ifx, 0);
    const maps::PinLayout layout{p.mnt() + "/weir"};
    ASSERT_TRUE(privns::make_weir_root(layout, ifx, "weirc0"));
    ASSERT_FALSE(maps::retired_map_names().empty());
    const std::string old = maps::retired_map_names().front();
    auto m = bpf::MapFd::create(BPF_MAP_TYPE_PERCPU_HASH, old, 8, 248, 16);
    ASSERT_TRUE(m.ok()) << m.error().str();
    ASSERT_TRUE(m->pin(layout.map_path(old)).ok());
    auto r = cli::cleanup(layout);
    ASSERT_TRUE(r.ok()) << r.error().str();
    EXPECT_FALSE(exists(layout.root)) << joined(snapshot(layout.root));
  });
}

TEST(Loader, UnpinsARetiredMapOnceItsSuccessorIsPinned) {
  PrivateBpffs p("loader-retired");
  p.run([&] {
    const maps::PinLayout layout{p.mnt() + "/weir"};
    ASSERT_TRUE(bpf::mkdirs(layout.maps_dir()).ok());
    const std::string old = maps::retired_map_names().front();
    auto m = bpf::MapFd::create(BPF_MAP_TYPE_PERCPU_HASH, old, 8, 248, 16);
    ASSERT_TRUE(m.ok()) << m.error().str();
    ASSERT_TRUE(m->pin(layout.map_path(old)).ok());
    auto progs = dataplane::TcPrograms::load(layout, privns::small_map_sizes());
    ASSERT_TRUE(progs.ok()) << progs.error().str();
    EXPECT_FALSE(exists(layout.map_path(old)));
    EXPECT_TRUE(exists(layout.map_path(WEIR_MAP_COUNTERS)));
    auto r = cli::cleanup(layout);
    EXPECT_TRUE(r.ok()) << r.error().str();
  });
}

TEST(Cleanup, MarkerIsWrittenOnceAndCheckedStrictly) {
  PrivateBpffs p("cleanup-marker");
  p.run([&] {
    const maps::PinLayout l{p.mnt() + "/a/b"};
    ASSERT_TRUE(maps::write_pin_marker(l).ok());
    const uint32_t id = pinned_id(l.marker_path());
    ASSERT_NE(id, 0u);
    ASSERT_TRUE(maps::write_pin_marker(l).ok());
    EXPECT_EQ(pinned_id(l.marker_path()), id) << "an existing marker is kept";
    auto m = bpf::MapFd::open_pinned(l.marker_path());
    ASSERT_TRUE(m.ok());
    uint32_t key = 0;
    maps::PinMarkerValue v;
    v.magic = 0;
    EXPECT_FALSE(bpf::detail::raw_update(*m, &key, &v, BPF_ANY).ok()) << "the marker is frozen";

    // An array map of the marker's name and shape but without the magic is not the marker.
    const maps::PinLayout f{p.mnt() + "/fake"};
    ASSERT_TRUE(bpf::mkdirs(f.root).ok());
    auto fake = bpf::MapFd::create(BPF_MAP_TYPE_ARRAY, "weir_marker", 4, sizeof(v), 1);
    ASSERT_TRUE(fake.ok());
    ASSERT_TRUE(fake->pin(f.marker_path()).ok());
    EXPECT_FALSE(*maps::is_pin_marker(f.marker_path()));
    auto st = maps::write_pin_marker(f);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().msg.find(f.marker_path()), std::string::npos) << st.error().str();
    auto r = cli::cleanup(f);
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(exists(f.marker_path()));
  });
}

// The state files: only weir's (regular *.json / *.json.tmp under policy/), and no exception
// whatever the directory holds (a symlink loop used to throw out of cleanup).
TEST(Cleanup, StateFilesOnlyWeirsAndNeverThrows) {
  const std::string state = "/tmp/weir-cleanup-statedir-" + std::to_string(::getpid());
  const std::string pol = state + "/policy";
  struct Rm {
    std::string dir;
    ~Rm() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } rm{state};
  fs::create_directories(pol + "/dir.json");
  for (const char* f : {"a_ingress.json", "b_egress.json.tmp", "notes.txt"}) std::ofstream(pol + "/" + f) << "{}";
  fs::create_symlink("loop.json", pol + "/loop.json");
  fs::create_symlink("notes.txt", pol + "/link.json");
  PrivateBpffs p("cleanup-state");
  p.run([&] {
    std::optional<Result<cli::CleanupReport>> r;
    EXPECT_NO_THROW(r.emplace(cli::cleanup(maps::PinLayout{p.mnt() + "/absent"}, state)));
    ASSERT_TRUE(r && r->ok());
    EXPECT_NE(joined((*r)->removed).find("removed 2 policy info file(s) under " + pol), std::string::npos)
        << joined((*r)->removed);
    EXPECT_FALSE(exists(pol + "/a_ingress.json"));
    EXPECT_FALSE(exists(pol + "/b_egress.json.tmp"));
    for (const char* f : {"notes.txt", "dir.json", "loop.json", "link.json"}) EXPECT_TRUE(exists(pol + "/" + f)) << f;

    // Only weir's files left: they go, then the directories they leave empty.
    for (const char* f : {"notes.txt", "loop.json", "link.json"}) fs::remove(pol + "/" + f);
    fs::remove(pol + "/dir.json");
    std::ofstream(pol + "/c_ingress.json") << "{}";
    cli::CleanupReport rep;
    cli::cleanup_state_files(state + "/", rep);
    EXPECT_FALSE(exists(state)) << joined(rep.removed);
    EXPECT_TRUE(exists("/tmp"));
  });
}

}  // namespace
}  // namespace weir::cleanup_test
