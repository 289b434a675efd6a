// A cluster of three lab nodes with three pods each, one agent per node, all reading one etcd
// cluster of three members that the lab runs on the underlay (issue 10, docs/cluster.md):
// pod-to-pod TCP and UDP across nodes; a ClusterIP whose backends are only on other nodes, every
// backend used and the replies reverse-NATed on the client's node; a NetworkPolicy on node 3
// that lets a pod of node 1 in and not one of node 2, and an egress policy decided on the
// sender's node; an etcd member killed (changes still propagate); all of etcd down (the
// dataplane keeps working; a later change is applied once it is back); a node's agent
// restarted while cross-node TCP connections are open (they survive). The same cluster with
// VXLAN: no kernel routes, weir_from_ul on every node's underlay interface, encapsulation and
// decapsulation counted, pods at the underlay MTU - 50, fragments across nodes, an oversized
// datagram answered with ICMP fragmentation-needed, node-to-node traffic the agent did not make
// untouched, and etcd down and back (one member).
#include <fmt/format.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <filesystem>
#include <set>

#include "e2e_util.h"
#include "lab/lab.h"
#include "lab/traffic.h"

namespace weir::e2e {
namespace {

using lab::Lab;

constexpr const char* kWebVip = "10.96.0.50";
constexpr const char* kApiVip = "10.96.0.51";

class ClusterE2E : public ::testing::Test {
 protected:
  void up(const std::string& encap, int etcd_members) {
    require_root();
    lab::LabSpec spec = lab_spec(3);
    spec.nodes = 3;
    spec.encap = encap;
    spec.datastore = "etcd";
    spec.etcd_members = etcd_members;
    auto l = Lab::up(spec);
    ASSERT_TRUE(l.ok()) << l.error().str();
    lab_.emplace(std::move(*l));
    for (const auto& p : lab_->pods()) {
      auto s = lab_->start_server(p.name, {8080}, {9090});
      ASSERT_TRUE(s.ok()) << s.error().str();
      ip_[p.name] = p.ip;
    }
  }

  void TearDown() override {
    if (HasFailure() && lab_) {
      for (const auto& n : lab_->nodes())
        std::cerr << "---- agent log of " << n.name << " (tail):\n"
                  << tail(lab_->agent_log(n.name), 40);
    }
    if (lab_) {
      const std::string id = lab_->id(), state_dir = lab_->state_dir();
      std::vector<std::string> pins;
      for (const auto& n : lab_->nodes()) pins.push_back(n.pin_root);
      auto s = lab_->down();
      EXPECT_TRUE(s.ok()) << s.error().str();
      // Nothing left: namespaces (underlay, nodes, pods), pins, the state dir with etcd's data.
      EXPECT_TRUE(lab_namespaces(id).empty());
      for (const auto& p : pins) EXPECT_FALSE(std::filesystem::exists(p)) << p;
      EXPECT_FALSE(std::filesystem::exists(state_dir)) << state_dir;
    }
  }

  // One TCP request from `from` to ip:port: the name that answered, or the error.
  static std::string answer(const Result<std::string>& r) { return r.ok() ? *r : "ERROR " + r.error().str(); }

  Result<std::string> tcp_once(const std::string& from, const std::string& ip, uint16_t port,
                               std::chrono::milliseconds timeout = 2s) {
    return lab_->in_pod(from, [&]() -> Result<std::string> {
      auto fd = lab::tcp_connect(ip, port, timeout);
      if (!fd) return fd.error();
      return lab::tcp_request(fd->get(), timeout);
    });
  }

  lab::ClientReport client(const std::string& from, const std::string& ip, uint16_t port,
                           lab::Proto proto, int count) {
    lab::ClientOptions co;
    co.target = {ip, port};
    co.proto = proto;
    co.count = count;
    auto r = lab_->in_pod(from, [&] { return lab::run_client(co); });
    return r.ok() ? *r : lab::ClientReport{};
  }

  std::optional<NatFrontend> frontend(const std::string& node, const std::string& vip, int port,
                                      int proto) {
    auto out = lab_->run_weir_on(node, {"bpf", "nat", "dump"});
    if (!out.ok()) return std::nullopt;
    return find_frontend(parse_nat_dump(*out), vip, port, proto);
  }

  // Waits until every node's NAT map has vip:port with `count` backends.
  bool everywhere(const std::string& vip, int port, int count, std::chrono::milliseconds timeout = 20s) {
    return wait_until(
        [&] {
          for (const auto& n : lab_->nodes()) {
            auto f = frontend(n.name, vip, port, 6);
            if (!f || f->count != count) return false;
          }
          return true;
        },
        timeout);
  }

  uint64_t counter(const std::string& node, const std::string& iface, const std::string& hook,
                   const std::string& name) {
    auto out = lab_->run_weir_on(node, {"bpf", "counters", "dump", "--iface=" + iface, "--json"});
    if (!out.ok()) return 0;
    auto j = nlohmann::json::parse(*out, nullptr, false);
    if (j.is_discarded() || j.empty()) return 0;
    auto h = j[0]["hooks"][hook];
    if (h.is_null() || !h.contains(name)) return 0;
    return h[name].get<uint64_t>();
  }

  Status write_service(const std::string& file, const std::string& name, const std::string& vip,
                       const std::vector<std::string>& pods) {
    lab::ServiceDef svc;
    svc.name = name;
    svc.cluster_ip = vip;
    svc.ports = {{"http", "TCP", 80, 8080}, {"dns", "UDP", 53, 9090}};
    auto backends = lab_->backends(pods);
    if (!backends.ok()) return backends.error();
    return lab_->write_service(file, svc, *backends);
  }

  void pod_to_pod_across_nodes();
  void cluster_ip_with_remote_backends();
  void policy_across_nodes();
  void etcd_member_killed();
  void etcd_outage();
  void agent_restart_keeps_cross_node_connections();

  std::optional<Lab> lab_;
  std::map<std::string, std::string> ip_;
};

void ClusterE2E::pod_to_pod_across_nodes() {
  SCOPED_TRACE("pod to pod across nodes");
  for (int a = 1; a <= 3; ++a)
    for (int b = 1; b <= 3; ++b) {
      if (a == b) continue;
      std::string from = fmt::format("n{}-pod1", a), to = fmt::format("n{}-pod2", b);
      auto t = tcp_once(from, ip_[to], 8080);
      ASSERT_TRUE(t.ok()) << from << " -> " << to << " TCP: " << t.error().str();
      EXPECT_EQ(*t, to);
      auto u = lab_->in_pod(from, [&] { return lab::udp_request(ip_[to], 9090); });
      ASSERT_TRUE(u.ok()) << from << " -> " << to << " UDP: " << u.error().str();
      EXPECT_EQ(u->name, to);
      EXPECT_EQ(u->from, ip_[to] + ":9090");
    }
}

void ClusterE2E::cluster_ip_with_remote_backends() {
  SCOPED_TRACE("ClusterIP with backends on other nodes");
  // Backends on nodes 2 and 3 only; the clients on node 1.
  const std::vector<std::string> backends{"n2-pod1", "n2-pod2", "n3-pod1", "n3-pod2"};
  ASSERT_TRUE(write_service("svc-web.yaml", "web", kWebVip, backends).ok());
  ASSERT_TRUE(everywhere(kWebVip, 80, 4)) << "the service did not reach every node's NAT map";
  // Every agent programs every service; "local" counts the backends on its own node.
  EXPECT_EQ(frontend(lab_->nodes()[0].name, kWebVip, 80, 6)->local, 0);
  EXPECT_EQ(frontend(lab_->nodes()[1].name, kWebVip, 80, 6)->local, 2);

  auto tcp = client("n1-pod1", kWebVip, 80, lab::Proto::Tcp, 60);
  EXPECT_EQ(tcp.answers, 60) << tcp.str();
  for (const auto& b : backends) EXPECT_GT(tcp.backends[b], 0) << b << " never answered:\n" << tcp.str();
  EXPECT_EQ(tcp.sources[std::string(kWebVip) + ":80"], 60) << "replies not from the VIP:\n" << tcp.str();
  auto udp = client("n1-pod2", kWebVip, 53, lab::Proto::Udp, 40);
  EXPECT_EQ(udp.answers, 40) << udp.str();
  EXPECT_EQ(udp.sources[std::string(kWebVip) + ":53"], 40) << "UDP replies not from the VIP:\n" << udp.str();
  std::set<std::string> udp_backends;
  for (const auto& [b, n] : udp.backends) udp_backends.insert(b);
  EXPECT_GE(udp_backends.size(), 3u) << udp.str();
  // From a node that has backends of its own too.
  auto mixed = client("n3-pod3", kWebVip, 80, lab::Proto::Tcp, 20);
  EXPECT_EQ(mixed.answers, 20) << mixed.str();
  // The flow is NATed on the client's node: its conntrack has VIP -> backend.
  auto ct = lab_->run_weir_on(lab_->nodes()[0].name, {"bpf", "conntrack", "dump"});
  ASSERT_TRUE(ct.ok()) << ct.error().str();
  bool nat_seen = false;
  for (const auto& e : parse_conntrack_nat(*ct))
    if (e.vip == std::string(kWebVip) + ":80" && e.client.rfind(ip_["n1-pod1"] + ":", 0) == 0) nat_seen = true;
  EXPECT_TRUE(nat_seen) << "no NAT entry on node 1 for n1-pod1 -> " << kWebVip << ":\n" << *ct;
}

void ClusterE2E::policy_across_nodes() {
  SCOPED_TRACE("policy across nodes");
  const std::string n2 = lab_->nodes()[1].name, n3 = lab_->nodes()[2].name;
  // Ingress on node 3: n3-pod3 accepts TCP 8080 from n1-pod1 only (decided on node 3 by the
  // source address). Egress on node 2: n2-pod3 may only reach n1-pod1 (decided on node 2).
  ASSERT_TRUE(lab_->write_resource(
                      "netpol.yaml",
                      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                      "metadata: {name: n3-pod3-from-n1-pod1, namespace: default}\n"
                      "spec:\n  podSelector: {matchLabels: {app: n3-pod3}}\n"
                      "  policyTypes: [Ingress]\n  ingress:\n"
                      "  - from:\n    - podSelector: {matchLabels: {app: n1-pod1}}\n"
                      "    ports:\n    - {protocol: TCP, port: 8080}\n"
                      "---\n"
                      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                      "metadata: {name: n2-pod3-to-n1-pod1, namespace: default}\n"
                      "spec:\n  podSelector: {matchLabels: {app: n2-pod3}}\n"
                      "  policyTypes: [Egress]\n  egress:\n"
                      "  - to:\n    - podSelector: {matchLabels: {app: n1-pod1}}\n")
                  .ok());
  const std::string target_if = lab_->pod("n3-pod3")->host_if;
  const std::string sender_if = lab_->pod("n2-pod3")->host_if;
  ASSERT_TRUE(wait_until([&] { return !tcp_once("n2-pod1", ip_["n3-pod3"], 8080, 300ms).ok(); }, 20s))
      << "node 3 never started refusing n2-pod1";
  ASSERT_TRUE(wait_until([&] { return !tcp_once("n2-pod3", ip_["n3-pod1"], 8080, 300ms).ok(); }, 20s))
      << "node 2 never started refusing n2-pod3's egress";
  uint64_t in_drops = counter(n3, target_if, "egress", "dropped_by_policy");
  uint64_t out_drops = counter(n2, sender_if, "ingress", "dropped_by_policy");
  for (int i = 0; i < 3; ++i) {
    auto allowed = tcp_once("n1-pod1", ip_["n3-pod3"], 8080);
    ASSERT_TRUE(allowed.ok()) << "n1-pod1 -> n3-pod3: " << allowed.error().str();
    EXPECT_EQ(*allowed, "n3-pod3");
    EXPECT_FALSE(tcp_once("n2-pod1", ip_["n3-pod3"], 8080, 300ms).ok()) << "node 2's pod got in";
    EXPECT_FALSE(tcp_once("n1-pod2", ip_["n3-pod3"], 8080, 300ms).ok()) << "another pod of node 1 got in";
    auto egress_ok = tcp_once("n2-pod3", ip_["n1-pod1"], 8080);
    ASSERT_TRUE(egress_ok.ok()) << "n2-pod3 -> n1-pod1: " << egress_ok.error().str();
    EXPECT_FALSE(tcp_once("n2-pod3", ip_["n3-pod1"], 8080, 300ms).ok()) << "n2-pod3's egress policy let it out";
  }
  // Each denial counted on the node that decided it: the receiver's for ingress, the sender's
  // for egress.
  EXPECT_GE(counter(n3, target_if, "egress", "dropped_by_policy"), in_drops + 6);
  EXPECT_GE(counter(n2, sender_if, "ingress", "dropped_by_policy"), out_drops + 3);
  // Replies of the allowed flows pass without a policy of their own (conntrack).
  auto back = tcp_once("n3-pod3", ip_["n1-pod1"], 8080);
  ASSERT_TRUE(back.ok()) << "n3-pod3 (ingress-isolated only) -> n1-pod1: " << back.error().str();
  ASSERT_TRUE(lab_->remove_resource("netpol.yaml").ok());
}

void ClusterE2E::etcd_member_killed() {
  SCOPED_TRACE("an etcd member killed");
  ASSERT_TRUE(lab_->stop_etcd(0).ok());  // the member every agent named first
  // The write may meet the two others electing a new leader (if member 0 led): an operator's
  // `weir apply` would fail with etcd's message and be run again; so does this one, for 10 s.
  Status written = make_error("not tried");
  ASSERT_TRUE(wait_until(
      [&] {
        written = write_service("svc-api.yaml", "api", kApiVip, {"n1-pod3"});
        return written.ok();
      },
      10s, 500ms))
      << "writing with one member down: " << written.error().str();
  ASSERT_TRUE(everywhere(kApiVip, 80, 1)) << "a change made with one member down did not propagate";
  auto r = tcp_once("n3-pod1", kApiVip, 80);
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(*r, "n1-pod3");
  ASSERT_TRUE(lab_->start_etcd(0).ok());
}

void ClusterE2E::etcd_outage() {
  SCOPED_TRACE("etcd down and back");
  ASSERT_TRUE(lab_->stop_etcd().ok());
  std::this_thread::sleep_for(1s);  // the agents notice: their watches break
  for (const auto& n : lab_->nodes()) EXPECT_TRUE(lab_->agent_running(n.name)) << n.name;
  auto during = client("n2-pod3", kWebVip, 80, lab::Proto::Tcp, 10);
  EXPECT_EQ(during.answers, 10) << "with etcd down:\n" << during.str();
  auto p2p = tcp_once("n3-pod2", ip_["n1-pod2"], 8080);
  EXPECT_TRUE(p2p.ok()) << "pod to pod with etcd down: " << p2p.error().str();
  ASSERT_TRUE(lab_->start_etcd().ok());
  // A change after the outage reaches every node: web now has n3-pod1 only.
  ASSERT_TRUE(write_service("svc-web.yaml", "web", kWebVip, {"n3-pod1"}).ok());
  ASSERT_TRUE(everywhere(kWebVip, 80, 1, 30s)) << "the change after the outage did not reach every node";
  auto after = client("n1-pod1", kWebVip, 80, lab::Proto::Tcp, 10);
  EXPECT_EQ(after.answers, 10) << after.str();
  EXPECT_EQ(after.backends["n3-pod1"], 10) << after.str();
}

void ClusterE2E::agent_restart_keeps_cross_node_connections() {
  SCOPED_TRACE("agent restart with cross-node connections open");
  // Through the VIP (NATed on node 1, the backends are on nodes 2 and 3) and pod to pod (node 2).
  auto via_vip = lab_->in_pod("n1-pod2", [&] { return lab::tcp_connect(kWebVip, 80); });
  ASSERT_TRUE(via_vip.ok()) << via_vip.error().str();
  auto direct = lab_->in_pod("n1-pod2", [&] { return lab::tcp_connect(ip_["n2-pod2"], 8080); });
  ASSERT_TRUE(direct.ok()) << direct.error().str();
  const std::string backend = answer(lab::tcp_request(via_vip->get()));
  ASSERT_TRUE(backend.rfind("n1-", 0) != 0 && backend.rfind("ERROR", 0) != 0)
      << "the VIP connection should reach a backend on another node, got " << backend;
  ASSERT_EQ(answer(lab::tcp_request(direct->get())), "n2-pod2");

  const std::string n1 = lab_->nodes()[0].name;
  ASSERT_TRUE(lab_->stop_agent(SIGTERM, n1).ok());
  EXPECT_EQ(answer(lab::tcp_request(via_vip->get())), backend) << "with node 1's agent stopped";
  ASSERT_TRUE(lab_->start_agent(n1).ok());
  for (int i = 0; i < 5; ++i) {
    auto a = lab::tcp_request(via_vip->get());
    ASSERT_TRUE(a.ok()) << "through the VIP after the restart: " << a.error().str();
    EXPECT_EQ(*a, backend);
    auto b = lab::tcp_request(direct->get());
    ASSERT_TRUE(b.ok()) << "pod to pod after the restart: " << b.error().str();
    EXPECT_EQ(*b, "n2-pod2");
    std::this_thread::sleep_for(200ms);  // across sync periods of the new agent
  }
  auto fresh = tcp_once("n1-pod1", ip_["n3-pod2"], 8080);
  EXPECT_TRUE(fresh.ok()) << "a new cross-node connection after the restart: " << fresh.error().str();
}

TEST_F(ClusterE2E, VxlanThreeNodesEncapsulatesServicesPolicyMtuAndAgentRestart) {
  ASSERT_NO_FATAL_FAILURE(up("vxlan", 1));
  const auto& nodes = lab_->nodes();
  // No kernel routes between nodes: the programs encapsulate.
  for (const auto& n : nodes) {
    auto routes = lab::run_process({"ip", "-n", n.name, "route", "show", "proto", "77"});
    ASSERT_TRUE(routes.ok()) << routes.error().str();
    EXPECT_EQ(routes->out, "") << n.name;
  }
  // weir_from_ul on every node's underlay interface, and pods at 1500 - 50.
  auto progs = lab_->attached_programs();
  ASSERT_TRUE(progs.ok()) << progs.error().str();
  for (const auto& n : nodes) {
    bool found = false;
    for (const auto& p : *progs)
      if (p.node == n.name && p.ifname == "eth0" && p.prog_name == "weir_from_ul") found = true;
    EXPECT_TRUE(found) << "no weir_from_ul on " << n.name << "'s eth0";
  }
  auto mtu = lab::run_process({"ip", "-n", lab_->pod("n2-pod1")->netns, "link", "show", "eth0"});
  ASSERT_TRUE(mtu.ok());
  EXPECT_NE(mtu->out.find("mtu 1450"), std::string::npos) << mtu->out;

  ASSERT_NO_FATAL_FAILURE(pod_to_pod_across_nodes());
  // `weir doctor` on node 1: its probe of the VXLAN port is answered by both other nodes.
  auto doc = run_doctor(*lab_);
  EXPECT_EQ(doc.level("vxlan-port"), "OK") << doc.out;
  EXPECT_NE(doc.found("vxlan-port").find("UDP 4789: the 2 other nodes answered"), std::string::npos) << doc.out;
  // Encapsulated on the sender's pod interface, decapsulated on the receiver's underlay.
  const std::string n1 = nodes[0].name, n2 = nodes[1].name;
  EXPECT_GT(counter(n1, lab_->pod("n1-pod1")->host_if, "ingress", "redirect_neigh"), 0u);
  EXPECT_GT(counter(n2, "eth0", "ingress", "redirect_plain"), 0u);
  EXPECT_EQ(counter(n2, "eth0", "ingress", "dropped_decap"), 0u);
  ASSERT_NO_FATAL_FAILURE(cluster_ip_with_remote_backends());
  ASSERT_NO_FATAL_FAILURE(policy_across_nodes());

  // Fragments both ways: a 3000-byte request and an 8000-byte answer (IP fragments of the pods'
  // 1450-byte MTU, each encapsulated).
  auto big = lab_->in_pod("n1-pod2", [&] { return lab::udp_sized_request(ip_["n3-pod2"], 9090, 3000, 8000); });
  ASSERT_TRUE(big.ok()) << "fragmented UDP across nodes: " << big.error().str();
  EXPECT_EQ(big->name, "n3-pod2");
  EXPECT_EQ(big->bytes, 8000u);

  // Bulk TCP across nodes (the pod's stack sends 64 KB GSO packets; they leave the underlay as
  // MTU-sized VXLAN frames, and none is refused on arrival): 16 MB within 20 s (a path that only
  // lets single segments through, after timeouts, manages a few hundred kbit/s).
  const uint64_t decap_drops = counter(n2, "eth0", "ingress", "dropped_decap");
  auto bulk = lab_->in_pod("n1-pod1", [&]() -> Result<std::string> {
    auto fd = lab::tcp_connect(ip_["n2-pod1"], 8080);
    if (!fd) return fd.error();
    const std::string chunk(1 << 16, 'x');
    auto deadline = std::chrono::steady_clock::now() + 20s;
    for (size_t sent = 0; sent < (16u << 20);) {
      if (std::chrono::steady_clock::now() > deadline) return Error{ETIMEDOUT, fmt::format("{} bytes sent in 20 s", sent)};
      ssize_t w = ::send(fd->get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (w < 0) return errno_error("send");
      sent += size_t(w);
    }
    return lab::tcp_request(fd->get(), 10s);
  });
  ASSERT_TRUE(bulk.ok()) << "16 MB over TCP across nodes: " << bulk.error().str();
  EXPECT_EQ(*bulk, "n2-pod1");
  EXPECT_EQ(counter(n2, "eth0", "ingress", "dropped_decap"), decap_drops);

  // A pod given the underlay's MTU by mistake (both ends of its veth at 1500): a 1472-byte
  // datagram with DF (1500 bytes of IP) cannot take the 50 bytes of VXLAN. weir answers ICMP
  // fragmentation-needed (next-hop MTU 1450), which the pod's kernel takes as the path MTU, and
  // counts the drop.
  const auto p3 = *lab_->pod("n1-pod3");
  ASSERT_TRUE(lab::run_process({"ip", "-n", p3.netns, "link", "set", "eth0", "mtu", "1500"}).ok());
  ASSERT_TRUE(lab::run_process({"ip", "-n", n1, "link", "set", p3.host_if, "mtu", "1500"}).ok());
  const uint64_t encap_drops = counter(n1, p3.host_if, "ingress", "dropped_encap");
  auto pmtu = lab_->in_pod("n1-pod3", [&]() -> Result<int> {
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) return errno_error("socket");
    int pmtud = IP_PMTUDISC_DO;
    if (::setsockopt(s.get(), IPPROTO_IP, IP_MTU_DISCOVER, &pmtud, sizeof pmtud) != 0)
      return errno_error("IP_MTU_DISCOVER");
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(9090);
    ::inet_pton(AF_INET, ip_["n2-pod3"].c_str(), &dst.sin_addr);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) return errno_error("connect");
    std::string payload(1472, 'x');
    if (::send(s.get(), payload.data(), payload.size(), 0) < 0) return errno_error("send");
    std::this_thread::sleep_for(300ms);
    int m = 0;
    socklen_t len = sizeof m;
    if (::getsockopt(s.get(), IPPROTO_IP, IP_MTU, &m, &len) != 0) return errno_error("IP_MTU");
    return m;
  });
  ASSERT_TRUE(pmtu.ok()) << pmtu.error().str();
  EXPECT_EQ(*pmtu, 1450) << "the pod did not learn the path MTU from weir's ICMP answer";
  EXPECT_GT(counter(n1, p3.host_if, "ingress", "dropped_encap"), encap_drops);
  ASSERT_TRUE(lab::run_process({"ip", "-n", p3.netns, "link", "set", "eth0", "mtu", "1450"}).ok());
  ASSERT_TRUE(lab::run_process({"ip", "-n", n1, "link", "set", p3.host_if, "mtu", "1450"}).ok());

  // Node-to-node traffic weir did not make passes weir_from_ul: node 1 reaches node 2's
  // address (a refused connection came back), and every agent still follows etcd over the
  // underlay (the changes above arrived).
  auto reach = lab_->in_netns(n1, [&] { return lab::tcp_connect(nodes[1].underlay_ip, 9, 2s); });
  ASSERT_FALSE(reach.ok());
  EXPECT_EQ(reach.error().err, ECONNREFUSED) << reach.error().str();
  EXPECT_GT(counter(n2, "eth0", "ingress", "accepted_underlay"), 0u);

  // etcd's traffic crosses every node's weir_from_ul: it goes away and comes back. (One member
  // here: the routed test kills one of three; under the 6.1 guest's TCG, two more members cost
  // the test command time it does not have.)
  ASSERT_NO_FATAL_FAILURE(etcd_outage());
  ASSERT_NO_FATAL_FAILURE(agent_restart_keeps_cross_node_connections());

  // A firewall on node 1 drops what it sends to node 2's VXLAN port (weir's own encapsulated
  // packets leave by a TC redirect, past netfilter; the doctor's probe is a socket's): node 1's
  // doctor names node 2, and node 3 still answers.
  const auto in_n1 = lab::RunOptions::in(n1);
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"nft", "add", "table", "ip", "weirtest"},
        {"nft", "add", "chain", "ip", "weirtest", "vxlanblock", "{ type filter hook output priority 0; }"},
        {"nft", "add", "rule", "ip", "weirtest", "vxlanblock", "ip", "daddr", nodes[1].underlay_ip, "udp", "dport",
         "4789", "drop"}}) {
    auto r = lab::run_process(cmd, in_n1);
    ASSERT_TRUE(r.ok()) << r.error().str();
    ASSERT_TRUE(r->status.exited && r->status.code == 0) << fmt::format("{}: {}", fmt::join(cmd, " "), r->err);
  }
  doc = run_doctor(*lab_);
  EXPECT_EQ(doc.level("vxlan-port"), "FAIL") << doc.out;
  EXPECT_NE(doc.found("vxlan-port").find("from 1 of 2 other nodes within 1000 ms: " + nodes[1].underlay_ip),
            std::string::npos)
      << doc.out;
  EXPECT_EQ(doc.rc, 1) << "a FAIL: exit code 1";
}

TEST_F(ClusterE2E, RoutedThreeNodesServicesPolicyEtcdFailuresAndAgentRestart) {
  ASSERT_NO_FATAL_FAILURE(up("none", 3));
  // Routed mode: each node has a kernel route to every other node's pod CIDR.
  auto routes = lab::run_process({"ip", "-n", lab_->nodes()[0].name, "route", "show", "proto", "77"});
  ASSERT_TRUE(routes.ok()) << routes.error().str();
  for (size_t k = 1; k < 3; ++k)
    EXPECT_NE(routes->out.find(lab_->nodes()[k].pod_cidr + " via " + lab_->nodes()[k].underlay_ip),
              std::string::npos)
        << routes->out;
  // `weir lab status` shows every node, its agent's health (running, last sync) and its pods.
  Result<lab::RunResult> status = make_error("not run");
  auto all_synced = [&] {
    status = lab::run_process({kWeirBinary, "lab", "status", "--id", lab_->id()});
    if (!status.ok()) return false;
    for (const auto& n : lab_->nodes())
      if (status->out.find(fmt::format("pid {} running, last sync 20", lab_->agent_pid(n.name))) ==
          std::string::npos)
        return false;
    return true;
  };
  wait_until(all_synced, 10s);  // the first sync follows "BPF enabled" closely
  ASSERT_TRUE(status.ok()) << status.error().str();
  for (const auto& n : lab_->nodes()) {
    const size_t at = status->out.find("  node " + n.name);
    ASSERT_NE(at, std::string::npos) << status->out;
    const std::string block = status->out.substr(at, 1200);
    EXPECT_NE(block.find(fmt::format("pid {} running, last sync 20", lab_->agent_pid(n.name))),
              std::string::npos)
        << block;
    for (const auto& p : lab_->pods_of(n.name))
      EXPECT_NE(block.find(p.name + " "), std::string::npos) << p.name << " in\n" << block;
  }
  // Each agent attaches to its own node's pods only (every node's services, below).
  auto progs = lab_->attached_programs();
  ASSERT_TRUE(progs.ok()) << progs.error().str();
  for (const auto& n : lab_->nodes()) {
    std::set<std::string> want, got;
    for (const auto& p : lab_->pods_of(n.name)) want.insert(p.host_if);
    for (const auto& p : *progs)
      if (p.node == n.name) got.insert(p.ifname);
    EXPECT_EQ(got, want) << n.name;
  }
  ASSERT_NO_FATAL_FAILURE(pod_to_pod_across_nodes());
  ASSERT_NO_FATAL_FAILURE(cluster_ip_with_remote_backends());
  ASSERT_NO_FATAL_FAILURE(policy_across_nodes());
  ASSERT_NO_FATAL_FAILURE(etcd_member_killed());
  ASSERT_NO_FATAL_FAILURE(etcd_outage());
  ASSERT_NO_FATAL_FAILURE(agent_restart_keeps_cross_node_connections());
}

}  // namespace
}  // namespace weir::e2e
