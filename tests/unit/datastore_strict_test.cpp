// DirDatastore and strict input (issue 8, section 6): entries that are not regular files, the
// size limit, and what an accepted load reports (resources that went, "datastore valid again").
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "datastore/dir_datastore.h"
#include "datastore_testing.h"

namespace weir::datastore {
namespace {

namespace fs = std::filesystem;
using weir::testing::dump;
using weir::testing::TempDir;

std::string service_yaml(const std::string& name, int octet) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         "}\nspec:\n  clusterIP: 10.96.4." + std::to_string(octet) + "\n  ports: [{port: 80}]\n";
}

std::string slice_yaml(const std::string& svc) {
  return "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + svc +
         "-1\n  labels: {kubernetes.io/service-name: " + svc +
         "}\naddressType: IPv4\nendpoints: [{addresses: [10.65.0.9]}]\n";
}

// A Unix socket bound at `path`; the fd stays open (closed by the caller).
int bind_socket(const fs::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    throw std::runtime_error("bind " + path.string() + ": " + std::strerror(errno));
  return fd;
}

// Runs `fn` in a child process and fails when it does not finish within `limit` (a load that
// blocks on a FIFO would hang the test binary otherwise). The child's exit code is returned.
int in_child_within(std::chrono::seconds limit, const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "the load did not finish within " << limit.count() << " s (blocked?)";
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Kind {
  const char* name;
  std::function<void(const TempDir&, const std::string&)> make;
  const char* message;
};

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> k = {
      {"dangling symlink",
       [](const TempDir& d, const std::string& n) {
         fs::create_symlink("nowhere.txt", d.path() / n);
       },
       "cannot read: a dangling symlink (its target \"nowhere.txt\" does not exist)"},
      {"symlink loop",
       [](const TempDir& d, const std::string& n) { fs::create_symlink(n, d.path() / n); },
       "cannot read: a symlink loop (too many levels of symbolic links)"},
      {"directory",
       [](const TempDir& d, const std::string& n) { fs::create_directory(d.path() / n); },
       "cannot read: a directory, not a file (subdirectories are not read)"},
      {"FIFO",
       [](const TempDir& d, const std::string& n) {
         if (::mkfifo((d.path() / n).c_str(), 0600) != 0) throw std::runtime_error("mkfifo");
       },
       "cannot read: a FIFO (named pipe), not a regular file (only regular files and symlinks "
       "to them are read)"},
      {"socket", [](const TempDir& d, const std::string& n) { ::close(bind_socket(d.path() / n)); },
       "cannot read: a socket, not a regular file"},
      // A device node needs root to create; /dev/null is one anybody can point at.
      {"character device",
       [](const TempDir& d, const std::string& n) {
         fs::create_symlink("/dev/null", d.path() / n);
       },
       "cannot read: a character device, not a regular file"},
  };
  return k;
}

TEST(DirDatastoreStrict, EntriesThatAreNoRegularFilesFailTheLoadWithTheReason) {
  for (const auto& k : kinds()) {
    SCOPED_TRACE(k.name);
    TempDir d;
    d.write("good.yaml", service_yaml("s1", 1));
    k.make(d, "bad.yaml");
    int rc = in_child_within(std::chrono::seconds(10), [&] {
      DirDatastore full(d.path()), incr(d.path());
      auto a = full.load_detailed();
      auto b = incr.load_incremental();
      if (a.ok() || b.ok()) return 1;
      if (dump(a.errors) != dump(b.errors)) return 2;  // both paths, the same error
      if (a.errors.size() != 1 || a.errors[0].file != "bad.yaml" ||
          a.errors[0].message.find(k.message) != 0)
        return 3;
      return 0;
    });
    EXPECT_EQ(rc, 0);
    // The message itself, in this process (the child only says whether it matched).
    DirDatastore ds(d.path());
    auto r = ds.load_detailed();
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
    EXPECT_EQ(r.errors[0].file, "bad.yaml");
    EXPECT_NE(r.errors[0].message.find(k.message), std::string::npos) << r.errors[0].str();
    // Fixed by removing it: the load is accepted again.
    fs::remove(d.path() / "bad.yaml");
    EXPECT_TRUE(ds.load_detailed().ok());
  }
}

TEST(DirDatastoreStrict, AFifoNeverBlocksEvenWithAllKindsTogether) {
  TempDir d;
  d.write("good.yaml", service_yaml("s1", 1));
  std::string c = "a";
  for (const auto& k : kinds()) k.make(d, (c += "a") + ".yaml");
  int rc = in_child_within(std::chrono::seconds(10), [&] {
    DirDatastore ds(d.path());
    for (int i = 0; i < 3; ++i)
      if (ds.load_incremental().errors.size() != kinds().size()) return 1;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(DirDatastoreStrict, SymlinksToRegularFilesStayFine) {
  TempDir d, elsewhere;
  elsewhere.write("real.yaml", service_yaml("s1", 1));
  fs::create_symlink(elsewhere.path() / "real.yaml", d.path() / "linked.yaml");
  fs::create_symlink(d.path() / "linked.yaml", d.path() / "twice.yml");  // a chain, no loop
  d.write("own.yaml", service_yaml("s2", 2));
  DirDatastore ds(d.path());
  auto r = ds.load_detailed();
  EXPECT_FALSE(r.ok());  // s1 twice through the two links: a duplicate, so both were read
  EXPECT_NE(dump(r.errors).find("duplicate Service default/s1"), std::string::npos)
      << dump(r.errors);
  fs::remove(d.path() / "twice.yml");
  auto ok = ds.load_detailed();
  ASSERT_TRUE(ok.ok()) << dump(ok.errors);
  EXPECT_EQ(ok.snapshot->services.size(), 2u);
}

TEST(DirDatastoreStrict, AFileOverTheSizeLimitIsNotRead) {
  TempDir d;
  d.write("good.yaml", service_yaml("s1", 1));
  fs::path big = d.path() / "big.yaml";
  d.write("big.yaml", "");
  fs::resize_file(big, model::kMaxFileBytes + 1);  // sparse: nothing is written
  DirDatastore ds(d.path());
  auto r = ds.load_incremental();
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].str(),
            "big.yaml: the file is 67108865 bytes, over the limit of 64 MiB per file (67108864 "
            "bytes): split it into several files");
  EXPECT_EQ(ds.files_read(), 1u);  // good.yaml only
  EXPECT_EQ(dump(DirDatastore(d.path()).load_detailed().errors), dump(r.errors));
  fs::resize_file(big, 0);
  EXPECT_TRUE(ds.load_incremental().ok());
}

// ---------------------------------------------------------------- what an accepted load reports

TEST(DirDatastoreStrict, AFileThatHoldsNothingNowRemovesItsResourcesAndSaysWhich) {
  TempDir d;
  d.write("a.yaml", service_yaml("s1", 1) + "---\n" + slice_yaml("s1"));
  d.write("b.yaml", service_yaml("s2", 2) + "---\n" + service_yaml("s3", 3));
  d.write("w.yaml",
          "apiVersion: weir.dev/v1\nkind: WorkloadEndpoint\nmetadata: {name: w1}\n"
          "spec: {node: node-a, interface: weirw1, ips: [10.65.0.2]}\n");
  DirDatastore ds(d.path());
  auto first = ds.load_incremental();
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first.removed.empty());
  EXPECT_FALSE(first.valid_again);

  // Truncated to nothing (a failed write, say): accepted, and its resources are named.
  d.write("a.yaml", "");
  auto empty = ds.load_incremental();
  ASSERT_TRUE(empty.ok()) << dump(empty.errors);
  EXPECT_FALSE(empty.changes.full);  // the fast path reports it too
  ASSERT_EQ(empty.removed.size(), 1u);
  EXPECT_EQ(empty.removed[0].file, "a.yaml");
  EXPECT_EQ(empty.removed[0].now, RemovedFrom::Now::Empty);
  EXPECT_EQ(empty.removed[0].resources,
            (std::vector<std::string>{"EndpointSlice default/s1-1", "Service default/s1"}));
  EXPECT_EQ(accepted_load_messages(empty, "datastore dir:/x"),
            std::vector<std::string>{"datastore dir:/x: a.yaml (the file holds no resources now): "
                                     "2 resources removed: EndpointSlice default/s1-1, Service "
                                     "default/s1"});

  // One service of two goes; a file is deleted; a workload goes (the full path).
  d.write("b.yaml", service_yaml("s3", 3));
  auto one = ds.load_incremental();
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one.removed.size(), 1u);
  EXPECT_EQ(one.removed[0].now, RemovedFrom::Now::HasOthers);
  EXPECT_EQ(one.removed[0].resources, std::vector<std::string>{"Service default/s2"});
  fs::remove(d.path() / "a.yaml");
  auto gone = ds.load_incremental();
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone.removed.empty());  // it held nothing any more
  fs::remove(d.path() / "w.yaml");
  auto wep = ds.load_incremental();
  ASSERT_TRUE(wep.ok());
  EXPECT_TRUE(wep.changes.full);
  ASSERT_EQ(wep.removed.size(), 1u);
  EXPECT_EQ(wep.removed[0].now, RemovedFrom::Now::Gone);
  EXPECT_EQ(accepted_load_messages(wep, "d"),
            std::vector<std::string>{"d: w.yaml (the file is gone): 1 resource removed: "
                                     "WorkloadEndpoint default/w1"});

  // A service moved from one file to another is not removed.
  d.write("b.yaml", "");
  d.write("c.yaml", service_yaml("s3", 3));
  auto moved = ds.load_incremental();
  ASSERT_TRUE(moved.ok());
  EXPECT_FALSE(moved.changes.full);
  EXPECT_TRUE(moved.removed.empty());
}

TEST(DirDatastoreStrict, AfterARejectedLoadTheFirstGoodOneSaysValidAgain) {
  TempDir d;
  d.write("a.yaml", service_yaml("s1", 1));
  d.write("b.yaml", service_yaml("s2", 2));
  DirDatastore ds(d.path());
  ASSERT_TRUE(ds.load_incremental().ok());
  d.write("b.yaml", service_yaml("s2", 2) + "spec: {}\n");  // a duplicate key
  auto bad = ds.load_incremental();
  ASSERT_FALSE(bad.ok());
  auto still_bad = ds.load_incremental();
  ASSERT_FALSE(still_bad.ok());
  // Fixed by deleting b.yaml: valid again, and s2 is reported gone (against what was last
  // accepted, not against the rejected loads).
  fs::remove(d.path() / "b.yaml");
  auto good = ds.load_incremental();
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(good.valid_again);
  ASSERT_EQ(good.removed.size(), 1u);
  EXPECT_EQ(good.removed[0].resources, std::vector<std::string>{"Service default/s2"});
  auto lines = accepted_load_messages(good, "datastore dir:/x");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(
      lines[0],
      "datastore dir:/x: datastore valid again (the previous load was rejected); applying it");
  EXPECT_EQ(lines[1],
            "datastore dir:/x: b.yaml (the file is gone): 1 resource removed: Service default/s2");
  // Only the first good load says so.
  d.write("c.yaml", service_yaml("s3", 3));
  auto next = ds.load_incremental();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next.valid_again);
  EXPECT_TRUE(accepted_load_messages(next, "x").empty());
  // The very first load being rejected counts too.
  TempDir d2;
  d2.write("a.yaml", "kind: [");
  DirDatastore ds2(d2.path());
  ASSERT_FALSE(ds2.load_incremental().ok());
  d2.write("a.yaml", service_yaml("s1", 1));
  EXPECT_TRUE(ds2.load_incremental().valid_again);
}

TEST(DirDatastoreStrict, RemovalMessagesAreSummarised) {
  Load l;
  RemovedFrom big{"big.yaml", RemovedFrom::Now::HasOthers, {}};
  for (int i = 0; i < 12; ++i)
    big.resources.push_back("Service default/s" + std::to_string(10 + i));
  l.removed.push_back(big);
  for (int f = 0; f < 12; ++f)
    l.removed.push_back({"f" + std::to_string(10 + f) + ".yaml",
                         RemovedFrom::Now::Gone,
                         {"Service x/a", "Service x/b"}});
  auto lines = accepted_load_messages(l, "ds");
  ASSERT_EQ(lines.size(), 11u);
  EXPECT_EQ(lines[0],
            "ds: big.yaml: 12 resources removed: Service default/s10, Service default/s11, "
            "Service default/s12, Service default/s13, Service default/s14 and 7 more");
  EXPECT_EQ(lines[9],
            "ds: f18.yaml (the file is gone): 2 resources removed: Service x/a, Service x/b");
  EXPECT_EQ(lines[10], "ds: and 6 resources removed from 3 more files");
}

}  // namespace
}  // namespace weir::datastore
