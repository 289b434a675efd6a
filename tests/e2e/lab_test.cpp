// The lab itself, without the agent: topology, plain kernel forwarding between pods, the
// servers, resources, and cleanup on every path (down, down from the record in another
// process, failure in up, owner crash).
#include "lab/lab.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "e2e_util.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

namespace fs = std::filesystem;
using lab::Lab;
using lab::LabSpec;

LabSpec no_agent_spec(int pods) {
  LabSpec s;
  s.pods = pods;
  s.weir_binary = kWeirBinary;
  s.start_agent = false;
  return s;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// MAC of `ifname` in the calling thread's netns ("" when absent).
std::string mac_of(const std::string& ifname) {
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname.c_str());
  if (::ioctl(s.get(), SIOCGIFHWADDR, &ifr) != 0) return "";
  auto* b = reinterpret_cast<unsigned char*>(ifr.ifr_hwaddr.sa_data);
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4],
                     b[5]);
}

TEST(Lab, TopologyServersAndKernelForwardingThenDownRemovesEverything) {
  require_root();
  auto up = Lab::up(no_agent_spec(3));
  ASSERT_TRUE(up.ok()) << up.error().str();
  std::optional<Lab> l(std::move(*up));
  const std::string id = l->id();
  EXPECT_EQ(id.size(), 6u);
  EXPECT_EQ(l->node_netns(), "weir-" + id + "-node");
  EXPECT_EQ(l->pin_root(), "/sys/fs/bpf/weir-lab-" + id);
  ASSERT_EQ(l->pods().size(), 3u);
  EXPECT_EQ(lab_namespaces(id).size(), 4u);

  // Pods: names, addresses, MACs, interfaces, in the right namespaces only.
  std::set<std::string> macs;
  for (size_t i = 0; i < 3; ++i) {
    const auto& p = l->pods()[i];
    EXPECT_EQ(p.name, fmt::format("pod{}", i + 1));
    EXPECT_EQ(p.netns, fmt::format("weir-{}-pod{}", id, i + 1));
    EXPECT_EQ(p.ip, fmt::format("10.65.0.{}", i + 2));
    EXPECT_EQ(p.host_if, fmt::format("weir{}p{}", id, i + 1));
    EXPECT_LE(p.host_if.size(), 15u);
    EXPECT_EQ(p.mac.substr(0, 6), "02:77:");
    macs.insert(p.mac);
    auto pod_side = l->in_netns(p.netns, [&] { return mac_of("eth0"); });
    ASSERT_TRUE(pod_side.ok()) << pod_side.error().str();
    EXPECT_EQ(*pod_side, p.mac);
    auto host_side =
        l->in_netns(l->node_netns(), [&] { return ::if_nametoindex(p.host_if.c_str()); });
    ASSERT_TRUE(host_side.ok());
    EXPECT_NE(*host_side, 0u) << p.host_if << " missing in the node netns";
    EXPECT_EQ(::if_nametoindex(p.host_if.c_str()), 0u)
        << p.host_if << " leaked into the root netns";
    // WorkloadEndpoint written for the agent.
    auto wep = read_all(l->datastore_dir() + "/wep-" + p.name + ".yaml");
    EXPECT_NE(wep.find("kind: WorkloadEndpoint"), std::string::npos);
    EXPECT_NE(wep.find("interface: " + p.host_if), std::string::npos);
    EXPECT_NE(wep.find("node: " + l->node_name()), std::string::npos);
    EXPECT_NE(wep.find("\"" + p.ip + "\""), std::string::npos);
  }
  EXPECT_EQ(macs.size(), 3u);
  auto cfg = read_all(l->datastore_dir() + "/dataplaneconfig.yaml");
  EXPECT_NE(cfg.find("minSyncPeriod: 200ms"), std::string::npos) << cfg;

  // Node sysctls.
  auto fwd = l->in_netns(l->node_netns(), [] { return read_all("/proc/sys/net/ipv4/ip_forward"); });
  ASSERT_TRUE(fwd.ok());
  EXPECT_EQ(*fwd, "1\n");
  auto parp = l->in_netns(l->node_netns(), [&] {
    return read_all("/proc/sys/net/ipv4/conf/" + l->pods()[0].host_if + "/proxy_arp");
  });
  ASSERT_TRUE(parp.ok());
  EXPECT_EQ(*parp, "1\n");

  // Servers answer pod to pod through the node's routing (no agent): TCP, many concurrent
  // connections each used several times, and UDP with the reply source.
  auto s2 = l->start_server("pod2", {8080}, {5353});
  ASSERT_TRUE(s2.ok()) << s2.error().str();
  auto s3 = l->start_server("pod3", {8080, 8081}, {5353});
  ASSERT_TRUE(s3.ok()) << s3.error().str();
  EXPECT_TRUE(lab::process_alive(*s2));
  const auto pod2 = *l->pod("pod2");
  const auto pod3 = *l->pod("pod3");
  auto tcp = l->in_pod("pod1", [&]() -> Result<std::vector<std::string>> {
    std::vector<Fd> conns;
    for (int i = 0; i < 20; ++i) {
      auto fd = lab::tcp_connect(i % 2 ? pod2.ip : pod3.ip, 8080);
      if (!fd) return fd.error();
      conns.push_back(std::move(*fd));
    }
    std::vector<std::string> names;
    for (int round = 0; round < 3; ++round)
      for (auto& c : conns) {
        auto n = lab::tcp_request(c.get());
        if (!n) return n.error();
        names.push_back(*n);
      }
    auto fd = lab::tcp_connect(pod3.ip, 8081);
    if (!fd) return fd.error();
    auto n = lab::tcp_request(fd->get());
    if (!n) return n.error();
    names.push_back(*n);
    return names;
  });
  ASSERT_TRUE(tcp.ok()) << tcp.error().str();
  ASSERT_EQ(tcp->size(), 61u);
  for (size_t i = 0; i < 60; ++i) EXPECT_EQ((*tcp)[i], (i % 20) % 2 ? "pod2" : "pod3") << i;
  EXPECT_EQ(tcp->back(), "pod3");
  auto udp = l->in_pod("pod1", [&] { return lab::udp_request(pod3.ip, 5353); });
  ASSERT_TRUE(udp.ok()) << udp.error().str();
  EXPECT_EQ(udp->name, "pod3");
  EXPECT_EQ(udp->from, pod3.ip + ":5353");
  // The gateway answers (ARP on the host-side veth) and unknown destinations fail fast.
  auto none = l->in_pod("pod1", [] { return lab::tcp_connect("10.96.0.99", 80, 2s); });
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().err, ETIMEDOUT) << none.error().str();

  // Resources: atomic write, no temp file left, removal.
  ASSERT_TRUE(l->write_resource("extra.yaml", "# nothing\n").ok());
  for (const auto& e : fs::directory_iterator(l->datastore_dir()))
    EXPECT_NE(e.path().filename().string()[0], '.') << "temp file left: " << e.path();
  EXPECT_TRUE(l->remove_resource("extra.yaml").ok());
  EXPECT_FALSE(l->write_resource(".hidden.yaml", "x").ok());
  EXPECT_FALSE(l->write_resource("../escape.yaml", "x").ok());

  // The CLI sees the lab.
  auto status = lab::run_process({kWeirBinary, "lab", "status", "--id", id});
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->status.success()) << status->err;
  EXPECT_NE(status->out.find(l->pods()[2].host_if), std::string::npos) << status->out;

  // Down: processes, namespaces, state; idempotent.
  const std::string state_dir = l->state_dir();
  ASSERT_TRUE(l->down().ok());
  EXPECT_FALSE(lab::process_alive(*s2));
  EXPECT_FALSE(lab::process_alive(*s3));
  EXPECT_TRUE(lab_namespaces(id).empty());
  EXPECT_FALSE(fs::exists(state_dir));
  EXPECT_TRUE(l->down().ok());
}

// A cluster without agents: the underlay bridge joins the nodes (a TCP connect from node 1 to
// node 2's underlay address is refused, i.e. it got there and back), each node has its /26 and a
// Node resource, names follow docs/lab.md, and down removes everything; bad cluster specs are
// refused before anything is created.
TEST(Lab, ClusterTopologyUnderlayAndDownRemovesEverything) {
  require_root();
  LabSpec spec = no_agent_spec(2);
  spec.nodes = 2;
  auto up = Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  std::optional<Lab> l(std::move(*up));
  const std::string id = l->id();
  ASSERT_TRUE(l->cluster());
  EXPECT_EQ(lab_namespaces(id).size(), 7u);  // underlay, 2 nodes, 4 pods
  ASSERT_EQ(l->nodes().size(), 2u);
  const auto& n1 = l->nodes()[0];
  const auto& n2 = l->nodes()[1];
  EXPECT_EQ(n1.name, "weir-" + id + "-n1");
  EXPECT_EQ(n1.underlay_ip, "192.168.200.2");
  EXPECT_EQ(n2.underlay_ip, "192.168.200.3");
  EXPECT_EQ(n1.pod_cidr, "10.65.0.0/26");
  EXPECT_EQ(n2.pod_cidr, "10.65.0.64/26");
  EXPECT_EQ(n2.pin_root, "/sys/fs/bpf/weir-lab-" + id + "-n2");
  auto p = l->pod("n2-pod1");
  ASSERT_TRUE(p.ok()) << p.error().str();
  EXPECT_EQ(p->ip, "10.65.0.66");
  EXPECT_EQ(p->node, n2.name);
  EXPECT_EQ(p->host_if, "weir" + id + "n2p1");
  EXPECT_EQ(l->pods_of("n1").size(), 2u);
  EXPECT_EQ(l->node("n2")->name, n2.name);
  EXPECT_FALSE(l->node("n3").ok());
  std::string node_yaml = read_all(l->datastore_dir() + "/node-n2.yaml");
  EXPECT_NE(node_yaml.find("underlayAddress: 192.168.200.3"), std::string::npos) << node_yaml;
  EXPECT_NE(node_yaml.find("podCIDR: 10.65.0.64/26"), std::string::npos) << node_yaml;
  auto reach = l->in_netns(n1.name, [&] { return lab::tcp_connect(n2.underlay_ip, 9, 2s); });
  ASSERT_FALSE(reach.ok());
  EXPECT_EQ(reach.error().err, ECONNREFUSED) << "node 2 not reached over the underlay: " << reach.error().str();
  ASSERT_TRUE(l->down().ok());
  EXPECT_TRUE(lab_namespaces(id).empty());
  EXPECT_FALSE(fs::exists(n1.pin_root));
  EXPECT_FALSE(fs::exists(Lab::default_state_dir(id)));

  LabSpec bad = no_agent_spec(2);
  bad.nodes = 21;
  EXPECT_FALSE(Lab::up(bad).ok());
  bad.nodes = 2;
  bad.pods = 62;  // a /26 holds 61 pods
  EXPECT_FALSE(Lab::up(bad).ok());
  bad = no_agent_spec(2);
  bad.encap = "vxlan";  // needs a cluster
  EXPECT_FALSE(Lab::up(bad).ok());
  bad.nodes = 2;
  bad.encap = "ipip";
  auto r = Lab::up(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().str().find("ipip"), std::string::npos) << r.error().str();
  bad = no_agent_spec(9);
  bad.nodes = 10;
  bad.run_id = "abcdefg";  // weirabcdefgn10p9 would have 16 characters
  r = Lab::up(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().str().find("weirabcdefgn10p9"), std::string::npos) << r.error().str();
}

TEST(Lab, DownFromTheRecordInAnotherProcess) {
  require_root();
  auto up = Lab::up(no_agent_spec(2));
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab l(std::move(*up));
  ASSERT_TRUE(l.start_server("pod2", {8080}, {}).ok());
  auto server = l.state().servers.at(0);
  l.release();  // as `weir lab up` does: the lab outlives this object
  const std::string id = l.id();
  ASSERT_EQ(lab_namespaces(id).size(), 3u);

  auto down = lab::run_process({kWeirBinary, "lab", "down", "--id", id});
  ASSERT_TRUE(down.ok()) << down.error().str();
  EXPECT_TRUE(down->status.success()) << down->err;
  EXPECT_TRUE(lab_namespaces(id).empty());
  EXPECT_FALSE(fs::exists(Lab::default_state_dir(id)));
  EXPECT_TRUE(wait_until([&] { return !lab::process_alive(server); }, 3s));
  // Again: nothing to do, still success.
  auto again = lab::run_process({kWeirBinary, "lab", "down", "--id", id});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->status.success()) << again->err;
}

TEST(Lab, FailedUpRemovesWhatItCreated) {
  require_root();
  LabSpec spec = no_agent_spec(2);
  spec.start_agent = true;
  spec.agent_log_level = "bogus";  // the agent refuses to start: up() must fail and clean up
  spec.run_id = fmt::format("f{:05x}", ::getpid() & 0xfffff);
  auto up = Lab::up(spec);
  ASSERT_FALSE(up.ok());
  EXPECT_NE(up.error().str().find("agent"), std::string::npos) << up.error().str();
  EXPECT_NE(up.error().str().find("log-level"), std::string::npos)
      << "the error should carry the agent's output: " << up.error().str();
  EXPECT_TRUE(lab_namespaces(spec.run_id).empty());
  EXPECT_FALSE(fs::exists(Lab::default_state_dir(spec.run_id)));

  LabSpec bad = no_agent_spec(2);
  bad.run_id = "Not/Valid";
  EXPECT_FALSE(Lab::up(bad).ok());
  bad.run_id = "abcdefghi";  // interface names would exceed 15 characters
  EXPECT_FALSE(Lab::up(bad).ok());
  bad.run_id = "";
  bad.pods = 0;
  EXPECT_FALSE(Lab::up(bad).ok());
  bad.pods = 2;
  bad.pod_cidr = "10.65.0.0/31";
  EXPECT_FALSE(Lab::up(bad).ok());
}

TEST(Lab, GuardianTearsDownWhenTheOwnerDies) {
  require_root();
  int pfd[2];
  ASSERT_EQ(::pipe(pfd), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pfd[0]);
    auto up = Lab::up(no_agent_spec(2));
    if (!up.ok()) _exit(2);
    auto srv = up->start_server("pod1", {8080}, {});
    if (!srv.ok()) _exit(3);
    std::string id = fmt::format("{} {} {}\n", up->id(), srv->pid, srv->start_time);
    if (::write(pfd[1], id.data(), id.size()) < 0) _exit(4);
    ::raise(SIGKILL);  // a crash: no destructor, no down()
    _exit(5);
  }
  ::close(pfd[1]);
  std::string line;
  char c;
  while (::read(pfd[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(pfd[0]);
  std::string id;
  lab::ProcessRecord server;
  std::istringstream(line) >> id >> server.pid >> server.start_time;
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "child status " << st;
  ASSERT_FALSE(id.empty()) << "the child could not bring its lab up";
  EXPECT_TRUE(wait_until([&] { return lab_namespaces(id).empty(); }, 20s))
      << "namespaces left: " << testing::PrintToString(lab_namespaces(id));
  EXPECT_TRUE(wait_until([&] { return !fs::exists(Lab::default_state_dir(id)); }, 5s));
  EXPECT_TRUE(wait_until([&] { return !lab::process_alive(server); }, 5s))
      << "the server the dead owner started is still running";
}

}  // namespace
}  // namespace weir::e2e
