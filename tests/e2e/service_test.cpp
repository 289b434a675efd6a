// ClusterIP services through the agent, with real sockets in the lab: pod1 is the client,
// pod2..pod4 run servers that answer with their name, Service web (10.96.0.10: TCP 80 ->
// 8080 "http", UDP 53 -> 5353 "dns") has the three of them as ready endpoints.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "e2e_util.h"
#include "lab/lab.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

namespace fs = std::filesystem;
using lab::Lab;

constexpr const char* kVip = "10.96.0.10";
constexpr int kTcp = 6;
constexpr int kUdp = 17;
const std::vector<std::string> kServerPods = {"pod2", "pod3", "pod4"};

lab::ServiceDef web_service() {
  lab::ServiceDef s;
  s.name = "web";
  s.cluster_ip = kVip;
  s.ports = {{"http", "TCP", 80, 8080}, {"dns", "UDP", 53, 5353}};
  return s;
}

class ServiceE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    require_root();
    auto up = Lab::up(lab_spec(4));
    ASSERT_TRUE(up.ok()) << up.error().str();
    lab_.emplace(std::move(*up));
    for (const auto& p : kServerPods) {
      auto s = lab_->start_server(p, {8080}, {5353});
      ASSERT_TRUE(s.ok()) << s.error().str();
      ips_[p] = lab_->pod(p)->ip;
      names_by_ip_[ips_[p]] = p;
    }
    set_backends(kServerPods);
  }

  void TearDown() override {
    if (!lab_) return;
    if (HasFailure())
      std::cerr << "---- agent log (last 60 lines) of lab " << lab_->id() << "\n"
                << tail(lab_->agent_log(), 60);
    auto s = lab_->down();
    EXPECT_TRUE(s.ok()) << s.error().str();
  }

  // Rewrites Service web + its EndpointSlice and waits until `weir bpf nat dump` shows both
  // frontends with exactly these backends.
  void set_backends(const std::vector<std::string>& pods) {
    auto b = lab_->backends(pods);
    ASSERT_TRUE(b.ok()) << b.error().str();
    ASSERT_TRUE(lab_->write_service("svc-web.yaml", web_service(), *b).ok());
    std::set<std::string> want_tcp, want_udp;
    for (const auto& p : pods) {
      want_tcp.insert(ips_[p] + ":8080");
      want_udp.insert(ips_[p] + ":5353");
    }
    std::string last;
    bool ok = wait_until(
        [&] {
          auto out = lab_->run_weir({"bpf", "nat", "dump"});
          if (!out.ok()) {
            last = out.error().str();
            return false;
          }
          last = *out;
          auto fes = parse_nat_dump(*out);
          auto t = find_frontend(fes, kVip, 80, kTcp);
          auto u = find_frontend(fes, kVip, 53, kUdp);
          return t && u && t->count == static_cast<int>(pods.size()) &&
                 std::set<std::string>(t->backends.begin(), t->backends.end()) == want_tcp &&
                 std::set<std::string>(u->backends.begin(), u->backends.end()) == want_udp;
        },
        10s);
    ASSERT_TRUE(ok) << "the agent did not program " << kVip << " with backends "
                    << testing::PrintToString(pods) << "; last nat dump:\n"
                    << last;
  }

  std::string conntrack() {
    auto out = lab_->run_weir({"bpf", "conntrack", "dump"});
    EXPECT_TRUE(out.ok()) << out.error().str();
    return out.ok() ? *out : "";
  }

  std::optional<Lab> lab_;
  std::map<std::string, std::string> ips_;          // pod -> IP
  std::map<std::string, std::string> names_by_ip_;  // IP -> pod
};

struct Tally {
  std::map<std::string, int> names;
  std::map<std::string, int> sources;
  std::vector<std::string> errors;
};

TEST_F(ServiceE2E, TcpAndUdpThroughTheVipReachEveryReadyBackend) {
  auto tcp = lab_->in_pod("pod1", [&] {
    Tally t;
    for (int i = 0; i < 60; ++i) {
      auto fd = lab::tcp_connect(kVip, 80);
      if (!fd) {
        t.errors.push_back(fd.error().str());
        continue;
      }
      auto name = lab::tcp_request(fd->get());
      if (!name) {
        t.errors.push_back(name.error().str());
        continue;
      }
      t.names[*name]++;
      t.sources[*lab::peer_address(fd->get())]++;
    }
    return t;
  });
  ASSERT_TRUE(tcp.ok()) << tcp.error().str();
  EXPECT_TRUE(tcp->errors.empty()) << testing::PrintToString(tcp->errors);
  EXPECT_EQ(tcp->names.size(), 3u) << testing::PrintToString(tcp->names);
  for (const auto& p : kServerPods) EXPECT_GT(tcp->names[p], 0) << p << " never answered TCP";
  EXPECT_EQ(tcp->sources, (std::map<std::string, int>{{"10.96.0.10:80", 60}}));

  auto udp = lab_->in_pod("pod1", [&] {
    Tally t;
    for (int i = 0; i < 60; ++i) {
      auto a = lab::udp_request(kVip, 53);
      if (!a) {
        t.errors.push_back(a.error().str());
        continue;
      }
      t.names[a->name]++;
      t.sources[a->from]++;
    }
    return t;
  });
  ASSERT_TRUE(udp.ok()) << udp.error().str();
  EXPECT_TRUE(udp->errors.empty()) << testing::PrintToString(udp->errors);
  for (const auto& p : kServerPods) EXPECT_GT(udp->names[p], 0) << p << " never answered UDP";
  // Replies are reverse-NATed: they come from the VIP and the service port, not the backend.
  EXPECT_EQ(udp->sources, (std::map<std::string, int>{{"10.96.0.10:53", 60}}));
}

TEST_F(ServiceE2E, DumpsShowFrontendsConntrackAndCounters) {
  const auto pod1 = *lab_->pod("pod1");
  struct Flow {
    Fd fd;
    std::string name;
    uint16_t local_port = 0;
  };
  auto flow = lab_->in_pod("pod1", [&]() -> Result<Flow> {
    auto fd = lab::tcp_connect(kVip, 80);
    if (!fd) return fd.error();
    auto name = lab::tcp_request(fd->get());
    if (!name) return name.error();
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&sa), &len);
    return Flow{std::move(*fd), *name, ntohs(sa.sin_port)};
  });
  ASSERT_TRUE(flow.ok()) << flow.error().str();
  auto udp = lab_->in_pod("pod1", [&] { return lab::udp_request(kVip, 53); });
  ASSERT_TRUE(udp.ok()) << udp.error().str();

  // nat dump: both frontends, three backends each.
  auto nat = lab_->run_weir({"bpf", "nat", "dump"});
  ASSERT_TRUE(nat.ok()) << nat.error().str();
  auto fes = parse_nat_dump(*nat);
  auto t = find_frontend(fes, kVip, 80, kTcp);
  auto u = find_frontend(fes, kVip, 53, kUdp);
  ASSERT_TRUE(t && u) << *nat;
  EXPECT_EQ(t->count, 3) << *nat;
  EXPECT_EQ(u->count, 3) << *nat;
  EXPECT_EQ(t->backends.size(), 3u) << *nat;

  // conntrack dump: client -> VIP -> the backend that answered.
  auto ct = conntrack();
  auto entries = parse_conntrack_nat(ct);
  std::string want_client = fmt::format("{}:{}", pod1.ip, flow->local_port);
  bool tcp_found = false, udp_found = false;
  for (const auto& e : entries) {
    if (e.proto == "TCP" && e.client == want_client) {
      tcp_found = true;
      EXPECT_EQ(e.vip, "10.96.0.10:80") << e.line;
      EXPECT_EQ(e.backend, ips_[flow->name] + ":8080") << e.line;
    }
    if (e.proto == "UDP" && e.client.rfind(pod1.ip + ":", 0) == 0 && e.vip == "10.96.0.10:53" &&
        e.backend == ips_[udp->name] + ":5353")
      udp_found = true;
  }
  EXPECT_TRUE(tcp_found) << "no TCP " << want_client << " -> VIP -> backend entry in:\n" << ct;
  EXPECT_TRUE(udp_found) << "no UDP " << pod1.ip << " -> 10.96.0.10:53 -> " << udp->name
                         << " entry in:\n"
                         << ct;

  // counters dump on pod1's host-side interface: packets were seen.
  auto counters = lab_->run_weir({"bpf", "counters", "dump", "--iface=" + pod1.host_if});
  ASSERT_TRUE(counters.ok()) << counters.error().str();
  auto totals = parse_counters_total(*counters);
  ASSERT_TRUE(totals) << *counters;
  EXPECT_GT(totals->ingress, 0u) << *counters;
  EXPECT_GT(totals->ingress + totals->egress, 2u) << *counters;
}

TEST_F(ServiceE2E, EstablishedConnectionSurvivesAgentRestart) {
  auto conn = lab_->in_pod("pod1", [&]() -> Result<std::pair<Fd, std::string>> {
    auto fd = lab::tcp_connect(kVip, 80);
    if (!fd) return fd.error();
    auto name = lab::tcp_request(fd->get());
    if (!name) return name.error();
    return std::pair{std::move(*fd), *name};
  });
  ASSERT_TRUE(conn.ok()) << conn.error().str();
  const int fd = conn->first.get();
  const std::string backend = conn->second;

  auto stop = lab_->stop_agent(SIGTERM);
  ASSERT_TRUE(stop.ok()) << stop.error().str();
  ASSERT_TRUE(lab_->last_agent_exit());
  EXPECT_TRUE(lab_->last_agent_exit()->success()) << lab_->last_agent_exit()->str();
  // Programs and maps stay: the flow works while no agent runs.
  auto during = lab::tcp_request(fd);
  ASSERT_TRUE(during.ok()) << "with the agent stopped: " << during.error().str();
  EXPECT_EQ(*during, backend);

  auto start = lab_->start_agent();
  ASSERT_TRUE(start.ok()) << start.error().str();
  for (int i = 0; i < 5; ++i) {
    auto after = lab::tcp_request(fd);
    ASSERT_TRUE(after.ok()) << "after the restart: " << after.error().str();
    EXPECT_EQ(*after, backend);
    std::this_thread::sleep_for(200ms);  // across a few sync periods of the new agent
  }
  auto fresh = lab_->in_pod("pod1", [&]() -> Result<std::string> {
    auto fd2 = lab::tcp_connect(kVip, 80);
    if (!fd2) return fd2.error();
    return lab::tcp_request(fd2->get());
  });
  ASSERT_TRUE(fresh.ok()) << fresh.error().str();
}

TEST_F(ServiceE2E, RemovedBackendKeepsOthersAndGetsNoNewConnections) {
  // One open connection to each backend.
  auto held = lab_->in_pod("pod1", [&]() -> Result<std::map<std::string, Fd>> {
    std::map<std::string, Fd> by_name;
    for (int i = 0; i < 100 && by_name.size() < 3; ++i) {
      auto fd = lab::tcp_connect(kVip, 80);
      if (!fd) return fd.error();
      auto name = lab::tcp_request(fd->get());
      if (!name) return name.error();
      by_name.try_emplace(*name, std::move(*fd));
    }
    return by_name;
  });
  ASSERT_TRUE(held.ok()) << held.error().str();
  ASSERT_EQ(held->size(), 3u) << "100 connections did not reach all three backends";

  const std::string removed = ips_["pod4"] + ":8080";
  auto has_flow_to_removed = [&](const std::string& dump) {
    for (const auto& e : parse_conntrack_nat(dump))
      if (e.backend == removed) return true;
    return false;
  };
  std::string before = conntrack();
  ASSERT_TRUE(has_flow_to_removed(before)) << "no conntrack entry to " << removed << ":\n"
                                           << before;

  set_backends({"pod2", "pod3"});  // pod4 leaves the EndpointSlice
  if (HasFatalFailure()) return;

  for (const auto& p : {"pod2", "pod3"}) {
    auto r = lab::tcp_request(held->at(p).get());
    ASSERT_TRUE(r.ok()) << "open connection to " << p << ": " << r.error().str();
    EXPECT_EQ(*r, p);
  }
  auto fresh = lab_->in_pod("pod1", [&] {
    Tally t;
    for (int i = 0; i < 40; ++i) {
      auto fd = lab::tcp_connect(kVip, 80);
      if (!fd) {
        t.errors.push_back(fd.error().str());
        continue;
      }
      auto name = lab::tcp_request(fd->get());
      if (!name) {
        t.errors.push_back(name.error().str());
        continue;
      }
      t.names[*name]++;
    }
    return t;
  });
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->errors.empty()) << testing::PrintToString(fresh->errors);
  EXPECT_EQ(fresh->names.count("pod4"), 0u) << testing::PrintToString(fresh->names);
  EXPECT_GT(fresh->names["pod2"], 0);
  EXPECT_GT(fresh->names["pod3"], 0);

  // The scanner removes the flows to the deleted backend (scan period 1 s in the lab).
  std::string last;
  bool gone = wait_until(
      [&] {
        last = conntrack();
        return !has_flow_to_removed(last);
      },
      10s, 250ms);
  EXPECT_TRUE(gone) << "conntrack entries to " << removed << " are still there:\n" << last;
  // A change confined to one service's EndpointSlice took the agent's incremental path.
  EXPECT_NE(lab_->agent_log().find("(1 services changed)"), std::string::npos)
      << tail(lab_->agent_log(), 20);
}

TEST_F(ServiceE2E, VipWithoutReadyBackendIsRefusedFast) {
  lab::ServiceDef empty;
  empty.name = "empty";
  empty.cluster_ip = "10.96.0.11";
  empty.ports = {{"http", "TCP", 80, 8080}, {"dns", "UDP", 53, 5353}};
  auto b = lab_->backends({"pod2"}, /*ready=*/false);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(lab_->write_service("svc-empty.yaml", empty, *b).ok());
  std::string last;
  bool programmed = wait_until(
      [&] {
        auto out = lab_->run_weir({"bpf", "nat", "dump"});
        last = out.ok() ? *out : out.error().str();
        if (!out.ok()) return false;
        auto fes = parse_nat_dump(*out);
        return find_frontend(fes, "10.96.0.11", 80, kTcp) &&
               find_frontend(fes, "10.96.0.11", 53, kUdp);
      },
      5s);
  EXPECT_TRUE(programmed) << "no frontend for 10.96.0.11 (with count 0) in:\n" << last;
  if (programmed) {
    auto fes = parse_nat_dump(last);
    EXPECT_EQ(find_frontend(fes, "10.96.0.11", 80, kTcp)->count, 0) << last;
  }

  auto res = lab_->in_pod("pod1", [&] {
    auto t0 = std::chrono::steady_clock::now();
    auto tcp = lab::tcp_connect("10.96.0.11", 80, 3s);
    auto tcp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    auto udp = lab::udp_connected_request("10.96.0.11", 53, 3s);
    return std::tuple{tcp.ok() ? 0 : tcp.error().err, tcp_ms,
                      tcp.ok() ? std::string("connected") : tcp.error().str(),
                      udp.ok() ? 0 : udp.error().err, udp.ok() ? *udp : udp.error().str()};
  });
  ASSERT_TRUE(res.ok());
  auto [tcp_err, tcp_ms, tcp_msg, udp_err, udp_msg] = *res;
  EXPECT_EQ(tcp_err, ECONNREFUSED) << tcp_msg;
  EXPECT_LT(tcp_ms.count(), 1000) << "refusal must be immediate, not a timeout";
  EXPECT_EQ(udp_err, ECONNREFUSED) << "UDP should get ICMP port unreachable: " << udp_msg;

  // The service with backends is unaffected.
  auto ok = lab_->in_pod("pod1", [&]() -> Result<std::string> {
    auto fd = lab::tcp_connect(kVip, 80);
    if (!fd) return fd.error();
    return lab::tcp_request(fd->get());
  });
  EXPECT_TRUE(ok.ok()) << ok.error().str();
}

TEST_F(ServiceE2E, AgentKeepsRunningOnInvalidInput) {
  EXPECT_NE(lab_->agent_log().find("BPF enabled, starting BPF endpoint manager and map manager"),
            std::string::npos)
      << lab_->agent_log();

  auto log_line_naming = [&](const std::string& file) -> std::string {
    std::string line, found;
    std::istringstream in(lab_->agent_log());
    while (std::getline(in, line))
      if (line.find(file) != std::string::npos) found = line;
    return found;
  };
  auto is_error_line = [](std::string l) {
    for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return l.find("error") != std::string::npos || l.find("invalid") != std::string::npos ||
           l.find("reject") != std::string::npos;
  };

  // A YAML syntax error, then a well-formed resource with an invalid field.
  ASSERT_TRUE(lab_->write_resource("broken.yaml",
                                   "apiVersion: v1\nkind: Service\nmetadata: {name: broken\n"
                                   "spec: [\n")
                  .ok());
  EXPECT_TRUE(wait_until([&] { return !log_line_naming("broken.yaml").empty(); }, 5s))
      << "no log line names broken.yaml:\n"
      << tail(lab_->agent_log(), 30);
  EXPECT_TRUE(is_error_line(log_line_naming("broken.yaml"))) << log_line_naming("broken.yaml");
  ASSERT_TRUE(lab_->remove_resource("broken.yaml").ok());

  ASSERT_TRUE(lab_->write_resource("badport.yaml",
                                   "apiVersion: v1\nkind: Service\nmetadata: {name: badport}\n"
                                   "spec:\n  clusterIP: 10.96.0.12\n  ports:\n"
                                   "  - {name: http, protocol: TCP, port: 70000}\n")
                  .ok());
  EXPECT_TRUE(wait_until([&] { return !log_line_naming("badport.yaml").empty(); }, 5s))
      << "no log line names badport.yaml:\n"
      << tail(lab_->agent_log(), 30);
  EXPECT_TRUE(is_error_line(log_line_naming("badport.yaml"))) << log_line_naming("badport.yaml");

  EXPECT_TRUE(lab_->agent_running()) << tail(lab_->agent_log(), 30);
  auto answers = lab_->in_pod("pod1", [&] {
    Tally t;
    for (int i = 0; i < 10; ++i) {
      auto fd = lab::tcp_connect(kVip, 80);
      auto name = fd ? lab::tcp_request(fd->get()) : Result<std::string>(fd.error());
      if (!name)
        t.errors.push_back(name.error().str());
      else
        t.names[*name]++;
    }
    return t;
  });
  ASSERT_TRUE(answers.ok());
  EXPECT_TRUE(answers->errors.empty()) << testing::PrintToString(answers->errors);
}

// All program ids known to the kernel (bpftool -j prog show).
std::set<uint32_t> kernel_prog_ids() {
  std::set<uint32_t> ids;
  auto r = lab::run_checked({"bpftool", "-j", "prog", "show"});
  EXPECT_TRUE(r.ok()) << r.error().str();
  if (!r.ok()) return ids;
  for (const auto& p : nlohmann::json::parse(*r)) ids.insert(p.at("id").get<uint32_t>());
  return ids;
}

TEST_F(ServiceE2E, CleanupLeavesNoProgramFilterPinOrNamespace) {
  auto progs = lab_->attached_programs();
  ASSERT_TRUE(progs.ok()) << progs.error().str();
  std::set<uint32_t> ids;
  std::set<std::string> names;
  std::map<std::string, int> per_if;
  for (const auto& p : *progs) {
    ids.insert(p.prog_id);
    names.insert(p.prog_name);
    per_if[p.ifname]++;
  }
  ASSERT_FALSE(ids.empty()) << "the agent attached nothing to the pods' interfaces";
  EXPECT_TRUE(names.count("weir_from_wl") && names.count("weir_to_wl"))
      << testing::PrintToString(names);
  for (const auto& p : lab_->pods()) EXPECT_EQ(per_if[p.host_if], 2) << p.host_if;

  ASSERT_TRUE(lab_->stop_agent().ok());
  auto kept = lab_->attached_programs();
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->size(), progs->size()) << "SIGTERM must leave the programs attached";

  auto cleanup = lab_->run_weir({"bpf", "cleanup"});
  ASSERT_TRUE(cleanup.ok()) << cleanup.error().str();

  // No tcx program or tc filter on the lab's interfaces (checked while they still exist).
  auto after = lab_->attached_programs();
  ASSERT_TRUE(after.ok()) << after.error().str();
  for (const auto& p : *after) ADD_FAILURE() << "still attached: " << p.str();
  for (const auto& p : lab_->pods()) {
    for (const char* dir : {"ingress", "egress"}) {
      auto tc = lab::run_process(
          {"tc", "-n", lab_->node_netns(), "filter", "show", "dev", p.host_if, dir});
      ASSERT_TRUE(tc.ok());
      EXPECT_EQ(tc->out.find("bpf"), std::string::npos) << p.host_if << " " << dir << ":\n"
                                                        << tc->out;
    }
  }
  // The programs themselves are gone from the kernel (freed once the last link/pin is).
  std::set<uint32_t> left;
  bool freed = wait_until(
      [&] {
        left.clear();
        auto all = kernel_prog_ids();
        for (auto id : ids)
          if (all.count(id)) left.insert(id);
        return left.empty();
      },
      5s);
  EXPECT_TRUE(freed) << "programs still loaded: " << testing::PrintToString(left);
  // Nothing pinned under the pin root.
  std::vector<std::string> pins;
  std::error_code ec;
  if (fs::exists(lab_->pin_root()))
    for (const auto& e : fs::recursive_directory_iterator(lab_->pin_root(), ec))
      if (!e.is_directory()) pins.push_back(e.path().string());
  EXPECT_TRUE(pins.empty()) << testing::PrintToString(pins);

  const std::string id = lab_->id();
  const std::string state_dir = lab_->state_dir();
  const std::string pin_root = lab_->pin_root();
  auto down = lab_->down();
  ASSERT_TRUE(down.ok()) << down.error().str();
  lab_.reset();
  EXPECT_TRUE(lab_namespaces(id).empty()) << testing::PrintToString(lab_namespaces(id));
  EXPECT_FALSE(fs::exists(state_dir));
  EXPECT_FALSE(fs::exists(pin_root));
}

}  // namespace
}  // namespace weir::e2e
