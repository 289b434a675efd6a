// Never lose a backend mid-change: one service's backends rewritten 1,000 times by the
// ServiceSyncer while clients connect to its ClusterIP continuously, through the real TC
// programs attached to the lab's pods (the same load and attach the agent does, driven from this
// process so that the syncer can run as fast as a test wants). Every connect must succeed and
// be answered: a packet that read the old frontend just before a switch must still find the old
// backends (dataplane/service_syncer.h).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "bpf/attach.h"
#include "bpf/bpffs.h"
#include "calc/calc.h"
#include "dataplane/endpoint_manager.h"
#include "dataplane/programs.h"
#include "dataplane/service_syncer.h"
#include "datastore/datastore.h"
#include "e2e_util.h"
#include "lab/lab.h"
#include "lab/netns.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

using lab::Lab;

constexpr const char* kVip = "10.96.0.10";
// At least this many rewrites, back to back (as fast as the syncer goes: far faster than the
// agent, which syncs at most once per minSyncPeriod), for at least kChurnTime and until the
// clients have made more connections than that (a slow machine, e.g. the 6.1 guest under TCG
// next to the host's tests, connects less often per rewrite), up to kChurnLimit: the race needs
// a packet delayed between its frontend and backend lookups, which is rare, so the test gives
// it many chances.
constexpr int kRewrites = 1000;
constexpr auto kChurnTime = std::chrono::seconds(8);
constexpr auto kChurnLimit = std::chrono::seconds(120);
constexpr int kClients = 4;

struct ClientTally {
  std::mutex mu;
  uint64_t ok = 0;
  std::map<std::string, uint64_t> failures;  // "connect: Connection refused" -> count
  void fail(const std::string& what) {
    std::lock_guard<std::mutex> l(mu);
    failures[what]++;
  }
  uint64_t answered() {
    std::lock_guard<std::mutex> l(mu);
    return ok;
  }
  std::string str() {
    std::lock_guard<std::mutex> l(mu);
    std::string s = fmt::format("{} answered", ok);
    for (const auto& [k, n] : failures) s += fmt::format(", {} x {}", n, k);
    return s;
  }
};

// One connection: connect, one request, close with RST (SO_LINGER 0, so that tens of thousands
// of connections leave no TIME_WAIT behind). Failures are tallied by step and errno text.
void one_connection(ClientTally& t) {
  auto fd = lab::tcp_connect(kVip, 80, std::chrono::milliseconds(2000));
  if (!fd) return t.fail("connect: " + fd.error().str().substr(fd.error().str().rfind(':') + 1));
  auto answer = lab::tcp_request(fd->get(), std::chrono::milliseconds(2000));
  linger lg{1, 0};
  (void)setsockopt(fd->get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  if (!answer) return t.fail("request: " + answer.error().str().substr(answer.error().str().rfind(':') + 1));
  std::lock_guard<std::mutex> l(t.mu);
  t.ok++;
}

TEST(ServiceChurnE2E, BackendsRewrittenThousandTimesWhileClientsConnect) {
  require_root();
  lab::LabSpec spec;
  spec.pods = 4;
  spec.weir_binary = kWeirBinary;
  spec.start_agent = false;  // this test is the agent
  auto up = Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab lab = std::move(*up);
  for (const char* p : {"pod2", "pod3", "pod4"}) {
    auto s = lab.start_server(p, {8080}, {});
    ASSERT_TRUE(s.ok()) << s.error().str();
  }
  lab::ServiceDef svc;
  svc.cluster_ip = kVip;
  svc.ports = {{"http", "TCP", 80, 8080}};
  auto all = lab.backends({"pod2", "pod3", "pod4"});
  ASSERT_TRUE(all.ok()) << all.error().str();
  ASSERT_TRUE(lab.write_service("svc-web.yaml", svc, *all).ok());
  ASSERT_TRUE(lab::set_sysctl(lab.pod("pod1")->netns, "net.ipv4.ip_local_port_range", "1024 65000").ok());

  // What the agent computes and applies, without the agent.
  auto ds = datastore::open_datastore("dir:" + lab.datastore_dir());
  ASSERT_TRUE(ds.ok()) << ds.error().str();
  auto snap = (*ds)->load();
  ASSERT_TRUE(snap.ok()) << snap.error().str();
  calc::Output out = calc::compute(*snap, lab.node_name());
  ASSERT_EQ(out.frontends.size(), 1u);
  ASSERT_EQ(out.frontends[0].backends.size(), 3u);

  maps::PinLayout layout{lab.pin_root()};
  std::optional<dataplane::TcPrograms> progs;
  std::optional<maps::KernelTables> tables;
  std::optional<dataplane::TcInterfaces> ifs;
  std::optional<dataplane::EndpointManager> em;
  auto attached = lab.in_netns(lab.node_netns(), [&]() -> Status {
    for (const auto& dir : {layout.maps_dir(), layout.links_dir()}) WEIR_TRY(bpf::mkdirs(dir));
    auto p = dataplane::TcPrograms::load(layout, model::MapSizes{});
    if (!p) return p.error();
    progs.emplace(std::move(*p));
    auto mode = bpf::probe_tc_mode();
    if (!mode) return mode.error();
    tables.emplace(progs->maps());
    ifs.emplace(layout, *mode, progs->from_wl_fd(), progs->to_wl_fd());
    em.emplace(tables->core(), *ifs);
    return em->apply(out.interfaces, out.routes);
  });
  ASSERT_TRUE(attached.ok()) << attached.error().str();
  dataplane::ServiceSyncer syncer(tables->core());
  ASSERT_TRUE(syncer.adopt().ok());
  ASSERT_TRUE(syncer.apply(out.frontends).ok());

  ClientTally tally;
  auto first = lab.in_pod("pod1", [&] { one_connection(tally); });  // never from the root netns
  ASSERT_TRUE(first.ok()) << first.error().str();
  ASSERT_EQ(tally.ok, 1u) << "the service does not answer before any change: " << tally.str();

  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; i++) {
    clients.emplace_back([&] {
      auto st = lab.in_pod("pod1", [&] {
        while (!stop.load()) one_connection(tally);
      });
      if (!st.ok()) tally.fail("entering pod1: " + st.error().str());
    });
  }
  // Rotate among subsets of the three backends: every rewrite changes the set, so every one
  // takes a fresh service id and retires the previous one.
  const std::vector<std::vector<int>> subsets = {{0, 1, 2}, {0, 1}, {1, 2}, {0, 2}, {0}, {1}, {2}};
  std::string sync_error;
  const auto churn_start = std::chrono::steady_clock::now();
  auto churning = [&](int i) {
    auto now = std::chrono::steady_clock::now();
    if (i < kRewrites || now < churn_start + kChurnTime) return true;
    return tally.answered() <= uint64_t(kRewrites) && now < churn_start + kChurnLimit;
  };
  int rewrites = 0;
  for (int i = 0; sync_error.empty() && churning(i); i++, rewrites++) {
    std::vector<calc::Frontend> fes = out.frontends;
    fes[0].backends.clear();
    for (int b : subsets[(i + 1) % subsets.size()]) fes[0].backends.push_back(out.frontends[0].backends[b]);
    if (auto st = syncer.apply(fes); !st) sync_error = st.error().str();
    EXPECT_EQ(syncer.last_stats().written, 1u);
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_TRUE(sync_error.empty()) << sync_error;
  std::cerr << "clients during " << rewrites << " rewrites: " << tally.str() << "\n";
  EXPECT_GE(rewrites, kRewrites);
  EXPECT_TRUE(tally.failures.empty()) << tally.str();
  EXPECT_GT(tally.ok, uint64_t(kRewrites)) << "too few connections to mean anything";
  // Bounded: what is retired goes once the grace has passed; then only the current id's
  // backends remain.
  EXPECT_LE(syncer.retired(), size_t(rewrites));
  ASSERT_TRUE(syncer.apply(out.frontends).ok());
  std::this_thread::sleep_for(dataplane::ServiceSyncer::kRetireGrace);
  ASSERT_TRUE(syncer.apply(out.frontends).ok());
  EXPECT_EQ(syncer.retired(), 0u);
  EXPECT_EQ(progs->maps().nat_be.count().value(), 3u);

  em.reset();
  progs.reset();
  auto down = lab.down();
  EXPECT_TRUE(down.ok()) << down.error().str();
}

}  // namespace
}  // namespace weir::e2e
