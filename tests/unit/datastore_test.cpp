// datastore/: open_datastore, DirDatastore loading, InotifyWatcher / MtimeWatcher.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "datastore/dir_datastore.h"
#include "model_testing.h"

namespace weir::datastore {
namespace {

namespace fs = std::filesystem;
using weir::testing::HasError;

// A temporary directory /tmp/weir-<pid>-XXXXXX, removed on destruction (also when a test fails).
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/weir-" + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

  void write(const std::string& name, const std::string& text) const {
    std::ofstream out(path_ / name, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("writing " + name);
  }
  void copy_testdata(const std::string& name) const { write(name, weir::testing::testdata(name)); }

 private:
  fs::path path_;
};

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

  auto etcd = open_datastore("etcd:https://127.0.0.1:2379");
  ASSERT_FALSE(etcd.ok());
  EXPECT_NE(etcd.error().msg.find("etcd: not supported yet"), std::string::npos)
      << etcd.error().msg;

  auto unknown = open_datastore("consul:x");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().msg.find("expected dir:PATH"), std::string::npos);
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
  fs::create_directory(d.path() / "sub.yaml");
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

}  // namespace
}  // namespace weir::datastore
