// datastore/: open_datastore, DirDatastore loading, InotifyWatcher / MtimeWatcher.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "calc/calc.h"
#include "datastore/dir_datastore.h"
#include "datastore_testing.h"
#include "model_testing.h"

namespace weir::datastore {
namespace {

namespace fs = std::filesystem;
using weir::testing::HasError;
using weir::testing::TempDir;

// Waits up to `ms` for the fd to become readable.
bool readable(int fd, int ms = 3000) {
  struct pollfd p {
    fd, POLLIN, 0
  };
  return ::poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

TEST(OpenDatastore, Specs) {
  TempDir d;
  auto ok = open_datastore("dir:" + d.path().string());
  ASSERT_TRUE(ok.ok()) << ok.error().str();
  EXPECT_EQ((*ok)->describe(), "dir:" + d.path().string());

  auto tls = open_datastore("etcd:https://127.0.0.1:2379");
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(tls.error().msg.find("TLS (https) is not supported"), std::string::npos)
      << tls.error().msg;
  // Opening contacts nothing: the first load does.
  auto etcd = open_datastore("etcd:http://127.0.0.1:1,http://127.0.0.1:2");
  ASSERT_TRUE(etcd.ok()) << etcd.error().str();
  EXPECT_EQ((*etcd)->describe(), "etcd:http://127.0.0.1:1,http://127.0.0.1:2 (prefix /weir/)");
  auto prefixed = open_datastore("etcd:http://127.0.0.1:1", DatastoreOptions{"/other/"});
  ASSERT_TRUE(prefixed.ok());
  EXPECT_EQ((*prefixed)->describe(), "etcd:http://127.0.0.1:1 (prefix /other/)");
  EXPECT_FALSE(open_datastore("etcd:http://127.0.0.1:1", DatastoreOptions{"nope"}).ok());

  auto unknown = open_datastore("consul:x");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().msg.find("expected dir:PATH or etcd:http://HOST:PORT"), std::string::npos);
  EXPECT_NE(unknown.error().msg.find("consul:x"), std::string::npos);

  auto bare = open_datastore(d.path().string());
  EXPECT_FALSE(bare.ok());

  auto empty = open_datastore("dir:");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().msg.find("needs a path"), std::string::npos);

  auto missing = open_datastore("dir:" + (d.path() / "nope").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err, ENOENT);
  EXPECT_NE(missing.error().str().find("nope"), std::string::npos);

  d.write("file.yaml", "");
  auto notdir = open_datastore("dir:" + (d.path() / "file.yaml").string());
  ASSERT_FALSE(notdir.ok());
  EXPECT_NE(notdir.error().msg.find("is not a directory"), std::string::npos);
}

TEST(ResourceFileNames, Filter) {
  for (const char* good : {"a.yaml", "a.yml", "a.json", "00-services.yaml", "x.y.yaml"})
    EXPECT_TRUE(is_resource_file_name(good)) << good;
  for (const char* bad : {"", ".a.yaml", ".a.yaml.swp", "a.yaml~", "a.yaml.swp", "#a.yaml#",
                          "a.txt", "yaml", "a.yaml.bak", "..data", "a.yaml.tmp"})
    EXPECT_FALSE(is_resource_file_name(bad)) << bad;
}

TEST(DirDatastore, LoadsAllFilesSortedAndIgnoresTheRest) {
  TempDir d;
  d.copy_testdata("workloads.yaml");
  d.copy_testdata("services.yaml");
  d.copy_testdata("endpointslices.yaml");
  d.copy_testdata("kubectl_list.yaml");
  d.write("config.yml", weir::testing::testdata("dataplane_config.yaml"));
  d.write(
      "extra.json",
      R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"j"},"spec":{"clusterIP":"10.96.1.1","ports":[{"port":1}]}})");
  // Not resource files: would be errors if they were read.
  const std::string garbage = "this: is: not: valid: yaml: [\n";
  d.write(".hidden.yaml", garbage);
  d.write("services.yaml~", garbage);
  d.write(".services.yaml.swp", garbage);
  d.write("README.txt", garbage);
  fs::create_directory(d.path() / "sub");  // not a resource file name (sub.yaml would be an error)
  fs::create_directory(d.path() / "nested");
  std::ofstream(d.path() / "nested" / "n.yaml") << garbage;

  DirDatastore ds(d.path());
  auto r = ds.load_detailed();
  ASSERT_TRUE(r.ok()) << weir::testing::dump(r.errors);
  EXPECT_EQ(r.snapshot->files,
            (std::vector<std::string>{"config.yml", "endpointslices.yaml", "extra.json",
                                      "kubectl_list.yaml", "services.yaml", "workloads.yaml"}));
  EXPECT_EQ(r.snapshot->services.size(), 5u);
  EXPECT_EQ(r.snapshot->endpoint_slices.size(), 4u);
  EXPECT_EQ(r.snapshot->workload_endpoints.size(), 3u);
  ASSERT_TRUE(r.snapshot->config);
  EXPECT_EQ(r.snapshot->config->source.file, "config.yml");
  auto res = ds.load();
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->services.size(), 5u);
}

TEST(DirDatastore, EmptyDirectoryIsAnEmptySnapshot) {
  TempDir d;
  DirDatastore ds(d.path());
  auto r = ds.load_detailed();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.snapshot->services.empty());
  EXPECT_TRUE(r.snapshot->files.empty());
  EXPECT_FALSE(r.snapshot->config);
}

TEST(DirDatastore, AnyErrorRejectsTheWholeLoad) {
  TempDir d;
  d.copy_testdata("services.yaml");
  d.copy_testdata("endpointslices.yaml");
  d.write("zz-bad.yaml", R"(apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.99
  ports: [{port: 70000}]
)");
  d.write("aa-orphan.yaml", R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: orphan, labels: {kubernetes.io/service-name: ghost}}
addressType: IPv4
)");
  DirDatastore ds(d.path());
  auto r = ds.load_detailed();
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.snapshot);
  EXPECT_TRUE(HasError(r.errors, "zz-bad.yaml", "Service default/web", "spec.ports[0].port",
                       "70000 is out of range 1..65535"));
  EXPECT_TRUE(HasError(r.errors, "aa-orphan.yaml", "EndpointSlice default/orphan",
                       "metadata.labels[\"kubernetes.io/service-name\"]",
                       "Service default/ghost does not exist"));
  auto res = ds.load();
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().msg.find("2 errors"), std::string::npos) << res.error().msg;

  // Fixing the files makes the next load succeed.
  fs::remove(d.path() / "zz-bad.yaml");
  fs::remove(d.path() / "aa-orphan.yaml");
  EXPECT_TRUE(ds.load_detailed().ok());
}

TEST(DirDatastore, DuplicateAcrossFilesNamesBothFiles) {
  TempDir d;
  d.copy_testdata("services.yaml");
  d.write("services-copy.yaml", weir::testing::testdata("services.yaml"));
  DirDatastore ds(d.path());
  auto r = ds.load_detailed();
  ASSERT_FALSE(r.ok());
  // services-copy.yaml sorts first, so services.yaml holds the duplicates.
  EXPECT_TRUE(HasError(r.errors, "services.yaml", "Service kube-system/dns", "metadata.name",
                       "also defined in services-copy.yaml (document 1)"));
  // One error per duplicated service; no extra noise about their (identical) frontends.
  EXPECT_EQ(r.errors.size(), 3u) << weir::testing::dump(r.errors);
}

TEST(DirDatastore, MissingDirectoryIsAnError) {
  fs::path gone;
  {
    TempDir d;
    gone = d.path();
  }
  DirDatastore ds(gone);
  auto r = ds.load_detailed();
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, gone.string());
  EXPECT_NE(r.errors[0].message.find("No such file or directory"), std::string::npos)
      << r.errors[0].str();
}

TEST(InotifyWatcher, SeesWritesRenamesDeletesButNotTempFiles) {
  TempDir d;
  auto w = InotifyWatcher::create(d.path());
  ASSERT_TRUE(w.ok()) << w.error().str();
  Watcher& watcher = **w;
  ASSERT_GE(watcher.fd(), 0);
  auto changed = watcher.drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);

  // A file written and closed.
  d.copy_testdata("services.yaml");
  ASSERT_TRUE(readable(watcher.fd()));
  changed = watcher.drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  changed = watcher.drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);  // drained

  // Editor temp files and dotfiles: events arrive but are not changes.
  d.write(".services.yaml.swp", "x");
  d.write("services.yaml~", "x");
  d.write("notes.txt", "x");
  ASSERT_TRUE(readable(watcher.fd()));
  changed = watcher.drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);

  // Atomic replace via rename (how editors and kubectl-like tools save).
  d.write(".tmp-upload", weir::testing::testdata("workloads.yaml"));
  (void)watcher.drain();
  fs::rename(d.path() / ".tmp-upload", d.path() / "workloads.yaml");
  ASSERT_TRUE(readable(watcher.fd()));
  changed = watcher.drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);

  // Delete.
  fs::remove(d.path() / "services.yaml");
  ASSERT_TRUE(readable(watcher.fd()));
  changed = watcher.drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);

  // Kubernetes ConfigMap volume update: the "..data" symlink is swapped.
  fs::create_directory(d.path() / "..2024_05_02");
  fs::create_directory_symlink(d.path() / "..2024_05_02", d.path() / "..data_tmp");
  (void)watcher.drain();
  fs::rename(d.path() / "..data_tmp", d.path() / "..data");
  ASSERT_TRUE(readable(watcher.fd()));
  changed = watcher.drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
}

TEST(InotifyWatcher, DirectoryRemovedIsAChange) {
  auto d = std::make_unique<TempDir>();
  auto w = InotifyWatcher::create(d->path());
  ASSERT_TRUE(w.ok()) << w.error().str();
  d.reset();  // removes the directory
  ASSERT_TRUE(readable((*w)->fd()));
  auto changed = (*w)->drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
}

TEST(InotifyWatcher, CreateFailsOnMissingDirectory) {
  auto w = InotifyWatcher::create("/tmp/weir-" + std::to_string(::getpid()) + "-does-not-exist");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().err, ENOENT);
  EXPECT_NE(w.error().msg.find("does-not-exist"), std::string::npos);
}

TEST(DirDatastore, WatchReturnsAnInotifyWatcher) {
  TempDir d;
  DirDatastore ds(d.path());
  auto w = ds.watch();
  ASSERT_TRUE(w.ok());
  EXPECT_GE((*w)->fd(), 0);
  d.copy_testdata("services.yaml");
  ASSERT_TRUE(readable((*w)->fd()));
  auto changed = (*w)->drain();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  // The caller then re-reads the snapshot.
  auto r = ds.load_detailed();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.snapshot->services.size(), 3u);
}

TEST(MtimeWatcher, DetectsChangesByFingerprint) {
  TempDir d;
  MtimeWatcher w(d.path(), std::chrono::milliseconds(10));
  EXPECT_EQ(w.fd(), -1);
  EXPECT_EQ(w.poll_interval(), std::chrono::milliseconds(10));
  auto c = w.drain();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(*c);
  d.write("a.yaml", "# one\n");
  c = w.drain();
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(*c);
  c = w.drain();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(*c);
  d.write("a.yaml", "# one, longer\n");  // size changes
  c = w.drain();
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(*c);
  d.write(".ignored.yaml", "x");
  c = w.drain();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(*c);
  fs::remove(d.path() / "a.yaml");
  c = w.drain();
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(*c);
}

}  // namespace
}  // namespace weir::datastore

namespace weir::datastore {
namespace {

std::string service_yaml(const std::string& name, int octet) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         "}\nspec:\n  clusterIP: 10.96.3." + std::to_string(octet) + "\n  ports: [{port: 80}]\n";
}

TEST(DirDatastore, OnlyChangedFilesAreParsedAgainAndTheResultIsTheSame) {
  TempDir d;
  for (int i = 1; i <= 20; ++i) d.write("svc-" + std::to_string(100 + i) + ".yaml", service_yaml("s" + std::to_string(i), i));
  DirDatastore ds(d.path());
  auto first = ds.load_detailed();
  ASSERT_TRUE(first.ok()) << weir::testing::dump(first.errors);
  EXPECT_EQ(ds.files_parsed(), 20u);

  // Nothing changed: nothing parsed, the same snapshot.
  auto same = ds.load_detailed();
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(ds.files_parsed(), 20u);
  EXPECT_EQ(same.snapshot->services.size(), 20u);
  EXPECT_EQ(same.snapshot->files, first.snapshot->files);

  // One file changed: one parse; its new content is what the snapshot holds.
  d.write("svc-105.yaml", service_yaml("s5", 205));
  auto one = ds.load_detailed();
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(ds.files_parsed(), 21u);
  const auto* s5 = one.snapshot->find_service("default", "s5");
  ASSERT_NE(s5, nullptr);
  EXPECT_EQ(s5->cluster_ip->str(), "10.96.3.205");

  // Cross-file validation still sees everything: a duplicate name in a new file is rejected,
  // and removing it brings the last good state back without re-parsing the others.
  d.write("svc-999.yaml", service_yaml("s7", 250));
  auto dup = ds.load_detailed();
  EXPECT_FALSE(dup.ok());
  EXPECT_EQ(ds.files_parsed(), 22u);
  fs::remove(d.path() / "svc-999.yaml");
  auto back = ds.load_detailed();
  ASSERT_TRUE(back.ok()) << weir::testing::dump(back.errors);
  EXPECT_EQ(ds.files_parsed(), 22u);
  EXPECT_EQ(back.snapshot->services.size(), 20u);

  // A second DataplaneConfig in another file is still an error.
  d.write("a.yaml", weir::testing::testdata("dataplane_config.yaml"));
  d.write("b.yaml", weir::testing::testdata("dataplane_config.yaml"));
  auto two = ds.load_detailed();
  ASSERT_FALSE(two.ok());
  EXPECT_NE(weir::testing::dump(two.errors).find("only one DataplaneConfig"), std::string::npos)
      << weir::testing::dump(two.errors);
}


// ---------------------------------------------------------------- load_incremental

std::string svc_and_slice_yaml(const std::string& name, int octet, const std::string& backend) {
  return service_yaml(name, octet) +
         "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + name +
         "-1\n  labels: {kubernetes.io/service-name: " + name +
         "}\naddressType: IPv4\nendpoints:\n- addresses: [" + backend + "]\nports: [{port: 8080}]\n";
}

// `s` with its first `from` replaced by `to`.
std::string with(std::string s, const std::string& from, const std::string& to) {
  return s.replace(s.find(from), from.size(), to);
}

const char* kWorkloads =
    "apiVersion: weir.dev/v1\nkind: WorkloadEndpoint\nmetadata: {name: w1}\n"
    "spec: {node: node-a, interface: weirw1, ips: [10.65.0.2]}\n";

// What the agent uses of a snapshot, in order: service and slice identities with their files,
// and the frontends calc makes of it.
std::string summary(const model::Snapshot& s) {
  std::string out;
  for (const auto& x : s.services) out += "svc " + x.source.file + " " + x.key() + "\n";
  for (const auto& x : s.endpoint_slices) out += "es " + x.source.file + " " + x.key() + "\n";
  for (const auto& x : s.workload_endpoints) out += "wep " + x.key() + "\n";
  for (const auto& f : s.files) out += "file " + f + "\n";
  for (const auto& fe : calc::compute_frontends(s, "node-a")) {
    out += "fe " + fe.key.str() + " " + fe.service + " local " + std::to_string(fe.local);
    for (const auto& b : fe.backends) out += " " + b.str();
    out += "\n";
  }
  return out;
}

// A fresh datastore's full load of the same directory, for comparison.
model::SnapshotResult fresh_load(const fs::path& dir) { return DirDatastore(dir).load_detailed(); }

TEST(DirDatastoreIncremental, ServiceChangesAreIncrementalAndEqualAFullLoad) {
  TempDir d;
  for (int i = 1; i <= 6; ++i)
    d.write("svc-" + std::to_string(i) + ".yaml",
            svc_and_slice_yaml("s" + std::to_string(i), i, "10.65.0." + std::to_string(i + 1)));
  d.write("workloads.yaml", kWorkloads);
  DirDatastore ds(d.path());
  auto first = ds.load_incremental();
  ASSERT_TRUE(first.ok()) << weir::testing::dump(first.errors);
  EXPECT_TRUE(first.changes.full);
  EXPECT_EQ(ds.full_loads(), 1u);

  auto check = [&](const Load& l, const char* step) {
    SCOPED_TRACE(step);
    ASSERT_TRUE(l.ok()) << weir::testing::dump(l.errors);
    auto f = fresh_load(d.path());
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(summary(*l.snapshot), summary(*f.snapshot));
  };

  // Nothing changed: not full, nothing listed.
  auto same = ds.load_incremental();
  check(same, "unchanged");
  EXPECT_FALSE(same.changes.full);
  EXPECT_TRUE(same.changes.services.empty());

  // A slice's backend changes: that service only.
  d.write("svc-3.yaml", svc_and_slice_yaml("s3", 3, "10.65.0.9"));
  auto one = ds.load_incremental();
  check(one, "one slice changed");
  EXPECT_FALSE(one.changes.full);
  EXPECT_EQ(one.changes.services, std::vector<std::string>{"default/s3"});

  // A file added (sorting between others), another removed: both services listed.
  d.write("svc-35.yaml", svc_and_slice_yaml("s35", 35, "10.65.0.2"));
  fs::remove(d.path() / "svc-5.yaml");
  auto two = ds.load_incremental();
  check(two, "added and removed");
  EXPECT_FALSE(two.changes.full);
  EXPECT_EQ(two.changes.services, (std::vector<std::string>{"default/s35", "default/s5"}));
  EXPECT_EQ(ds.full_loads(), 1u);

  // A file that grows from one service to two and back.
  d.write("svc-2.yaml", svc_and_slice_yaml("s2", 2, "10.65.0.3") + "---\n" + service_yaml("s2b", 102));
  check(ds.load_incremental(), "file grows");
  d.write("svc-2.yaml", svc_and_slice_yaml("s2", 2, "10.65.0.3"));
  check(ds.load_incremental(), "file shrinks");
  EXPECT_EQ(ds.full_loads(), 1u);

  // Anything else (a workload) takes the full path.
  d.write("workloads.yaml", std::string(kWorkloads) + "---\n" +
                                "apiVersion: weir.dev/v1\nkind: WorkloadEndpoint\nmetadata: {name: w2}\n"
                                "spec: {node: node-a, interface: weirw2, ips: [10.65.0.3]}\n");
  auto wep = ds.load_incremental();
  check(wep, "workload changed");
  EXPECT_TRUE(wep.changes.full);
  EXPECT_EQ(ds.full_loads(), 2u);

  // So does a Node (its pod CIDR routes every pod of that node), and its removal is reported.
  d.write("nodes.yaml", "apiVersion: weir.dev/v1\nkind: Node\nmetadata: {name: node-b}\n"
                        "spec: {underlayAddress: 192.168.200.3, podCIDR: 10.66.0.0/26}\n");
  auto node = ds.load_incremental();
  check(node, "node added");
  EXPECT_TRUE(node.changes.full);
  ASSERT_EQ(node.snapshot->nodes.size(), 1u);
  fs::remove(d.path() / "nodes.yaml");
  auto gone = ds.load_incremental();
  check(gone, "node removed");
  EXPECT_TRUE(gone.changes.full);
  EXPECT_TRUE(gone.snapshot->nodes.empty());
  ASSERT_EQ(gone.removed.size(), 1u);
  EXPECT_EQ(gone.removed[0].resources, std::vector<std::string>{"Node node-b"});
  EXPECT_EQ(ds.full_loads(), 4u);
}

TEST(DirDatastoreIncremental, CrossResourceErrorsAreTheFullLoadsAndTheLastGoodStateComesBack) {
  TempDir d;
  for (int i = 1; i <= 4; ++i)
    d.write("svc-" + std::to_string(i) + ".yaml",
            svc_and_slice_yaml("s" + std::to_string(i), i, "10.65.0." + std::to_string(i + 1)));
  d.write("workloads.yaml", kWorkloads);  // 10.65.0.2
  DirDatastore ds(d.path());
  ASSERT_TRUE(ds.load_incremental().ok());

  struct Case {
    const char* what;
    std::string file, text, expect;
  };
  std::vector<Case> cases = {
      {"duplicate service name", "svc-9.yaml", service_yaml("s2", 99), "duplicate Service default/s2"},
      {"slice without its service", "svc-1.yaml",
       svc_and_slice_yaml("s1", 1, "10.65.0.2").substr(service_yaml("s1", 1).size() + 4),
       "Service default/s1 does not exist"},
      {"clusterIP:port collision", "svc-9.yaml", service_yaml("other", 3), "10.96.3.3:80/TCP is already used"},
      {"syntax error", "svc-9.yaml", "kind: [", "svc-9.yaml"},
      // Strict input: the same errors whichever path the load takes (the pod and the config
      // are unchanged, so the fast path has to apply the cluster IP rules itself).
      {"clusterIP on a pod's address", "svc-9.yaml",
       with(service_yaml("hijack", 3), "10.96.3.3", "10.65.0.2"),
       "10.65.0.2 is the address of WorkloadEndpoint default/w1"},
      {"clusterIP outside the service CIDR", "svc-2.yaml",
       with(svc_and_slice_yaml("s2", 2, "10.65.0.3"), "10.96.3.2", "10.200.0.2"),
       "10.200.0.2 is outside the service CIDR"},
      {"duplicate key", "svc-9.yaml", service_yaml("d", 9) + "kind: Service\n",
       "duplicate key \"kind\""},
      {"quoted port", "svc-9.yaml", with(service_yaml("q", 9), "port: 80", "port: \"80\""),
       "\"80\" is a string, not an integer"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::string saved;
    if (fs::exists(d.path() / c.file)) {
      std::ifstream in(d.path() / c.file);
      saved.assign(std::istreambuf_iterator<char>(in), {});
    }
    d.write(c.file, c.text);
    auto bad = ds.load_incremental();
    auto full = fresh_load(d.path());
    EXPECT_FALSE(bad.ok());
    EXPECT_FALSE(full.ok());
    EXPECT_EQ(weir::testing::dump(bad.errors), weir::testing::dump(full.errors));
    EXPECT_NE(weir::testing::dump(bad.errors).find(c.expect), std::string::npos)
        << weir::testing::dump(bad.errors);
    if (saved.empty()) fs::remove(d.path() / c.file);
    else d.write(c.file, saved);
    auto back = ds.load_incremental();
    ASSERT_TRUE(back.ok()) << weir::testing::dump(back.errors);
    EXPECT_TRUE(back.changes.full);  // after a rejected load, everything is recomputed
    EXPECT_EQ(summary(*back.snapshot), summary(*fresh_load(d.path()).snapshot));
    // And the next change is incremental again.
    d.write("svc-4.yaml", svc_and_slice_yaml("s4", 4, "10.65.0.7"));
    auto next = ds.load_incremental();
    ASSERT_TRUE(next.ok());
    EXPECT_FALSE(next.changes.full);
  }
}

TEST(DirDatastoreIncremental, OldUnchangedFilesAreNotReadAgainRecentOnesAre) {
  TempDir d;
  for (int i = 1; i <= 5; ++i)
    d.write("svc-" + std::to_string(i) + ".yaml", service_yaml("s" + std::to_string(i), i));
  auto old = fs::file_time_type::clock::now() - std::chrono::seconds(30);
  for (int i = 1; i <= 5; ++i) fs::last_write_time(d.path() / ("svc-" + std::to_string(i) + ".yaml"), old);
  DirDatastore ds(d.path());
  ASSERT_TRUE(ds.load_incremental().ok());
  EXPECT_EQ(ds.files_read(), 5u);
  ASSERT_TRUE(ds.load_incremental().ok());
  EXPECT_EQ(ds.files_read(), 5u);  // stat says unchanged and old: not read

  // Rewritten in place with the same size: its mtime moved, so it is read (and parsed).
  d.write("svc-2.yaml", service_yaml("s2", 7));
  auto l = ds.load_incremental();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(ds.files_read(), 6u);
  EXPECT_EQ(l.snapshot->find_service("default", "s2")->cluster_ip->str(), "10.96.3.7");
  // Modified less than a second before it was read: read again on the next load, in case it
  // changes again within one mtime tick; an identical content is not parsed again.
  uint64_t parsed = ds.files_parsed();
  ASSERT_TRUE(ds.load_incremental().ok());
  EXPECT_EQ(ds.files_read(), 7u);
  EXPECT_EQ(ds.files_parsed(), parsed);
  // Same size, same mtime (set back), other content: caught because it is recent... and a
  // file whose mtime is forced back to the old value is caught by its ctime.
  d.write("svc-3.yaml", service_yaml("s3", 8));
  fs::last_write_time(d.path() / "svc-3.yaml", old);
  auto l2 = ds.load_incremental();
  ASSERT_TRUE(l2.ok());
  EXPECT_EQ(l2.snapshot->find_service("default", "s3")->cluster_ip->str(), "10.96.3.8");
}

}  // namespace
}  // namespace weir::datastore
