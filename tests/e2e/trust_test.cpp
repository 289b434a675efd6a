// A hostile pod in the lab, with real sockets and the agent: it cannot use another pod's address
// to reach a pod that admits only that neighbour, cannot slip VLAN-tagged frames or crafted ICMP
// errors through; and a fragmented UDP exchange (4 KB each way over a 1500-byte MTU, like a
// large DNS answer) works through a ClusterIP.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/sysinfo.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "e2e_util.h"
#include "lab/flood.h"
#include "lab/lab.h"
#include "lab/traffic.h"
#include "util/fd.h"

namespace weir::e2e {
namespace {

using lab::Lab;

constexpr const char* kVip = "10.96.0.30";

// Internet checksum over `n` bytes (RFC 1071).
uint16_t inet_csum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += uint32_t(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// v += bytes (resize + memcpy: GCC 12's -Warray-bounds misreads vector::insert of small arrays).
void append(std::vector<uint8_t>& v, const void* p, size_t n) {
  const size_t o = v.size();
  v.resize(o + n);
  std::memcpy(v.data() + o, p, n);
}

// An IPv4 packet (20-byte header) with `l4` as payload, checksum filled in.
std::vector<uint8_t> ipv4(uint32_t saddr, uint32_t daddr, uint8_t proto, const std::vector<uint8_t>& l4) {
  std::vector<uint8_t> p(20);
  p[0] = 0x45;
  const uint16_t tot = uint16_t(20 + l4.size());
  p[2] = uint8_t(tot >> 8);
  p[3] = uint8_t(tot);
  p[8] = 64;
  p[9] = proto;
  std::memcpy(&p[12], &saddr, 4);
  std::memcpy(&p[16], &daddr, 4);
  const uint16_t c = inet_csum(p.data(), 20);
  p[10] = uint8_t(c >> 8);
  p[11] = uint8_t(c);
  append(p, l4.data(), l4.size());
  return p;
}

// A UDP header + payload (checksum 0: "not computed", valid for IPv4).
std::vector<uint8_t> udp(uint16_t sport, uint16_t dport, const std::string& payload) {
  std::vector<uint8_t> u(8);
  const uint16_t len = uint16_t(8 + payload.size());
  u[0] = uint8_t(sport >> 8);
  u[1] = uint8_t(sport);
  u[2] = uint8_t(dport >> 8);
  u[3] = uint8_t(dport);
  u[4] = uint8_t(len >> 8);
  u[5] = uint8_t(len);
  append(u, payload.data(), payload.size());
  return u;
}

uint32_t addr(const std::string& dotted) {
  in_addr a{};
  ::inet_pton(AF_INET, dotted.c_str(), &a);
  return a.s_addr;
}

// Sends an IPv4 packet (header included) from the calling thread's netns.
Status send_raw_ip(const std::vector<uint8_t>& pkt, uint32_t daddr) {
  Fd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!fd) return errno_error("raw socket");
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = daddr;
  if (::sendto(fd.get(), pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
    return errno_error("raw sendto");
  return {};
}

// Sends an Ethernet frame out of `ifname` of the calling thread's netns.
Status send_frame(const std::string& ifname, const std::vector<uint8_t>& frame) {
  Fd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("packet socket");
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = int(::if_nametoindex(ifname.c_str()));
  to.sll_halen = 6;
  if (to.sll_ifindex == 0) return errno_error("if_nametoindex " + ifname);
  if (::sendto(fd.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
    return errno_error("packet sendto");
  return {};
}

// A capture of the IPv4 packets a namespace receives (AF_PACKET, opened in the calling
// thread's netns); count() reads what arrived until `wait` passes.
class Capture {
 public:
  static Result<Capture> open() {
    Fd fd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_IP)));
    if (!fd) return errno_error("packet socket");
    return Capture(std::move(fd));
  }
  // IPv4 packets from `saddr` seen within `wait`.
  int count_from(uint32_t saddr, std::chrono::milliseconds wait) {
    int n = 0;
    auto deadline = std::chrono::steady_clock::now() + wait;
    std::vector<uint8_t> buf(65536);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return n;
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, int(left.count())) <= 0) continue;
      ssize_t r = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (r >= 20 && std::memcmp(&buf[12], &saddr, 4) == 0) ++n;
    }
  }

 private:
  explicit Capture(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

class TrustE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    require_root();
    auto up = Lab::up(lab_spec());
    ASSERT_TRUE(up.ok()) << up.error().str();
    lab_.emplace(std::move(*up));
    ASSERT_TRUE(lab_->start_server("pod3", {8080}, {5353}).ok());
    // The agent attaches at its first sync: wait for both programs on every pod's interface.
    ASSERT_TRUE(wait_until([&] {
      auto a = lab_->attached_programs();
      return a.ok() && a->size() == 2 * lab_->pods().size();
    }, 15s)) << "programs not attached";
  }
  void TearDown() override {
    if (!lab_) return;
    if (HasFailure()) std::cerr << "---- agent log (last 60 lines)\n" << tail(lab_->agent_log(), 60);
    auto s = lab_->down();
    EXPECT_TRUE(s.ok()) << s.error().str();
  }

  uint64_t counter(const std::string& iface, const std::string& hook, const std::string& name) {
    auto out = lab_->run_weir({"bpf", "counters", "dump", "--iface=" + iface, "--json"});
    if (!out.ok()) return 0;
    auto j = nlohmann::json::parse(*out, nullptr, false);
    if (j.is_discarded() || j.empty()) return 0;
    auto h = j[0]["hooks"][hook];
    if (h.is_null() || !h.contains(name)) return 0;
    return h[name].get<uint64_t>();
  }
  lab::Pod pod(const std::string& n) {
    auto p = lab_->pod(n);
    EXPECT_TRUE(p.ok()) << n;
    return p ? *p : lab::Pod{};
  }
  bool udp_reaches(const std::string& from, std::chrono::milliseconds timeout = 500ms) {
    auto r = lab_->in_pod(from, [&] { return lab::udp_request(pod("pod3").ip, 5353, timeout); });
    return r.ok() && r->name == "pod3";
  }

  std::optional<Lab> lab_;
};

TEST_F(TrustE2E, PodCannotUseItsNeighboursAddressToPassPolicy) {
  ASSERT_TRUE(lab_->write_resource("np.yaml",
                                   "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                                   "metadata: {name: pod3-from-pod1, namespace: default}\n"
                                   "spec:\n  podSelector: {matchLabels: {app: pod3}}\n"
                                   "  policyTypes: [Ingress]\n  ingress:\n"
                                   "  - from: [{podSelector: {matchLabels: {app: pod1}}}]\n")
                  .ok());
  ASSERT_TRUE(wait_until([&] { return udp_reaches("pod1") && !udp_reaches("pod2", 200ms); }, 15s))
      << "the policy admits pod1 and not pod2";

  // pod2 sends as pod1: a UDP datagram and a TCP SYN, with pod1's source address.
  const uint32_t pod1 = addr(pod("pod1").ip), pod3 = addr(pod("pod3").ip);
  auto cap = lab_->in_pod("pod3", [] { return Capture::open(); });
  ASSERT_TRUE(cap.ok()) << cap.error().str();
  auto sent = lab_->in_pod("pod2", [&]() -> Status {
    WEIR_TRY(send_raw_ip(ipv4(pod1, pod3, IPPROTO_UDP, udp(40999, 5353, "spoofed\n")), pod3));
    std::vector<uint8_t> syn(20, 0);
    syn[0] = 0x9c; syn[1] = 0x40;  // sport 40000
    syn[2] = 0x1f; syn[3] = 0x90;  // dport 8080
    syn[12] = 5 << 4;
    syn[13] = 0x02;                // SYN
    syn[14] = 0xff; syn[15] = 0xff;
    return send_raw_ip(ipv4(pod1, pod3, IPPROTO_TCP, syn), pod3);
  });
  ASSERT_TRUE(sent.ok()) << sent.error().str();
  EXPECT_EQ(cap->count_from(pod1, 1000ms), 0) << "a packet with pod1's address from pod2 reached pod3";
  EXPECT_GE(counter(pod("pod2").host_if, "ingress", "dropped_unknown_source"), 2u);
  auto ct = lab_->run_weir({"bpf", "conntrack", "dump"});
  ASSERT_TRUE(ct.ok());
  EXPECT_EQ(ct->find(":40999"), std::string::npos) << "no state for the spoofed flow\n" << *ct;
  EXPECT_EQ(ct->find(":40000 "), std::string::npos) << *ct;
  EXPECT_TRUE(udp_reaches("pod1")) << "the real pod1 still passes";
}

TEST_F(TrustE2E, VlanTaggedFramesFromAPodAreDropped) {
  const uint32_t src = addr(pod("pod1").ip), dst = addr(pod("pod3").ip);
  auto cap = lab_->in_pod("pod3", [] { return Capture::open(); });
  ASSERT_TRUE(cap.ok()) << cap.error().str();
  std::vector<uint8_t> frame(6, 0xff);  // broadcast: the host veth takes it whatever its MAC
  for (int i = 0; i < 6; i++) frame.push_back(uint8_t(0x02 + i));
  const uint8_t tag[] = {0x81, 0x00, 0x00, 0x0a, 0x08, 0x00};  // 802.1Q VLAN 10, IPv4
  append(frame, tag, sizeof tag);
  auto ip = ipv4(src, dst, IPPROTO_UDP, udp(41000, 5353, "tagged\n"));
  append(frame, ip.data(), ip.size());
  auto sent = lab_->in_pod("pod1", [&] { return send_frame("eth0", frame); });
  ASSERT_TRUE(sent.ok()) << sent.error().str();
  EXPECT_EQ(cap->count_from(src, 700ms), 0) << "the tagged frame was forwarded";
  EXPECT_TRUE(wait_until([&] { return counter(pod("pod1").host_if, "ingress", "dropped_vlan") >= 1; }, 3s));
}

TEST_F(TrustE2E, IcmpErrorAboutNoFlowNeverReachesAPod) {
  // From the node (where a router's error would come from): "port unreachable" quoting a
  // datagram pod3 never sent.
  const uint32_t node_src = addr("10.65.0.1"), pod3 = addr(pod("pod3").ip);
  auto quoted = ipv4(pod3, addr("192.0.2.9"), IPPROTO_UDP, udp(42000, 53, ""));
  std::vector<uint8_t> icmp = {3, 3, 0, 0, 0, 0, 0, 0};
  append(icmp, quoted.data(), 28);
  const uint16_t c = inet_csum(icmp.data(), icmp.size());
  icmp[2] = uint8_t(c >> 8);
  icmp[3] = uint8_t(c);
  auto cap = lab_->in_pod("pod3", [] { return Capture::open(); });
  ASSERT_TRUE(cap.ok()) << cap.error().str();
  auto sent = lab_->in_netns(lab_->node_netns(),
                             [&] { return send_raw_ip(ipv4(node_src, pod3, IPPROTO_ICMP, icmp), pod3); });
  ASSERT_TRUE(sent.ok()) << sent.error().str();
  EXPECT_EQ(cap->count_from(node_src, 700ms), 0) << "the crafted ICMP error reached pod3";
  EXPECT_TRUE(wait_until([&] { return counter(pod("pod3").host_if, "egress", "dropped_icmp_no_flow") >= 1; }, 3s));
}

TEST_F(TrustE2E, FragmentedUdpWorksThroughAClusterIp) {
  lab::ServiceDef svc;
  svc.name = "dns";
  svc.cluster_ip = kVip;
  svc.ports = {{"dns", "UDP", 53, 5353}};
  auto b = lab_->backends({"pod3"});
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(lab_->write_service("svc-dns.yaml", svc, *b).ok());
  ASSERT_TRUE(wait_until([&] {
    auto r = lab_->in_pod("pod1", [] { return lab::udp_request(kVip, 53, 300ms); });
    return r.ok();
  }, 15s)) << "service not programmed";

  for (int i = 0; i < 5; i++) {
    auto r = lab_->in_pod("pod1", [] { return lab::udp_sized_request(kVip, 53, 4000, 4000, 2s); });
    ASSERT_TRUE(r.ok()) << "4000-byte query, 4000-byte answer: " << r.error().str();
    EXPECT_EQ(r->bytes, 4000u);
    EXPECT_EQ(r->name, "pod3");
    EXPECT_EQ(r->from, std::string(kVip) + ":53") << "the answer comes from the VIP";
  }
  EXPECT_EQ(counter(pod("pod1").host_if, "ingress", "dropped_frag_unsupported"), 0u);
  EXPECT_EQ(counter(pod("pod1").host_if, "ingress", "dropped_frag_incomplete"), 0u);
  EXPECT_EQ(counter(pod("pod3").host_if, "ingress", "dropped_frag_order"), 0u);
}

// An idle connection through a ClusterIP outlives a flood of new flows from another pod that
// evicts its conntrack entries (a 1,024-entry table, 6,000 SYNs): its next request is
// re-resolved to the same backend and answered, never sent to the VIP un-NATed.
TEST(ConntrackFloodE2E, IdleServiceConnectionSurvivesAFloodThatEvictsItsEntries) {
  require_root();
  lab::LabSpec spec;
  spec.pods = 3;
  spec.weir_binary = kWeirBinary;
  spec.start_agent = false;
  spec.conntrack_scan_period = 60s;  // eviction, not expiry, removes the entries here
  auto up = Lab::up(spec);
  ASSERT_TRUE(up.ok()) << up.error().str();
  Lab lab = std::move(*up);
  ASSERT_TRUE(lab.write_resource("dataplaneconfig.yaml",
                                 "apiVersion: weir.dev/v1\nkind: DataplaneConfig\nmetadata: {name: default}\n"
                                 "spec:\n  minSyncPeriod: 200ms\n  conntrackScanPeriod: 60s\n"
                                 "  mapSizes: {conntrack: 1024}\n")
                  .ok());
  ASSERT_TRUE(lab.start_agent().ok());
  ASSERT_TRUE(lab.start_server("pod3", {8080}, {}).ok());
  ASSERT_TRUE(write_web_service(lab, kVip, {"pod3"}).ok());

  // The idle connection: pod2 -> VIP:80 -> pod3:8080, one request answered.
  Fd conn;
  ASSERT_TRUE(wait_until([&] {
    auto c = lab.in_pod("pod2", [] { return lab::tcp_connect(kVip, 80, 500ms); });
    if (!c) return false;
    if (!lab::tcp_request(c->get(), 1s).ok()) return false;
    conn = std::move(*c);
    return true;
  }, 15s)) << "service not reachable";
  auto local = lab.in_pod("pod2", [&]() -> Result<uint16_t> {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    if (::getsockname(conn.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) return errno_error("getsockname");
    return uint16_t(ntohs(sa.sin_port));
  });
  ASSERT_TRUE(local.ok());
  const std::string mine = fmt::format(":{} ", *local);
  auto has_mine = [&] {
    auto ct = lab.run_weir({"bpf", "conntrack", "dump"});
    return ct.ok() && ct->find(mine) != std::string::npos;
  };
  ASSERT_TRUE(has_mine()) << "the connection's entries exist before the flood";

  // pod1 floods SYNs from many source ports to pod3's server, which answers each (so the
  // flood's entries are used, as a real flood's are: a never-used entry cannot push a used one
  // out of the kernel's LRU).
  auto pod1 = lab.pod("pod1");
  ASSERT_TRUE(pod1.ok());
  // Rounds of 20,000 SYNs until the connection's entries are gone, 10 rounds at most. Which
  // entries the kernel's LRU takes first depends on the CPU each packet runs on (a CPU that
  // inserts recycles its own free and pending lists first, and on a quiet machine one flooding
  // thread can keep recycling its own entries), so each round runs on the next CPU.
  uint16_t next_port = 1024;
  const int cpus = std::max(1, get_nprocs());
  auto flood_round = [&](int round) -> Status {
    return lab.in_pod("pod1", [&]() -> Status {
      cpu_set_t before, one;
      CPU_ZERO(&one);
      CPU_SET(round % cpus, &one);
      const bool pinned = sched_getaffinity(0, sizeof(before), &before) == 0 &&
                          sched_setaffinity(0, sizeof(one), &one) == 0;
      lab::FloodOptions o;
      o.target = {lab.pod("pod3")->ip, 8080};
      o.count = 20000;
      o.first_port = next_port;
      auto r = lab::syn_flood(o);
      if (pinned) (void)sched_setaffinity(0, sizeof(before), &before);
      if (!r) return r.error();
      next_port = r->next_port;
      return {};
    });
  };
  int rounds = 0;
  while (has_mine() && rounds < 10) {
    auto st = flood_round(rounds);
    ASSERT_TRUE(st.ok()) << st.error().str();
    ++rounds;
  }
  ASSERT_FALSE(has_mine()) << "10 flood rounds did not evict the connection's entries: the test proves nothing\n"
                           << lab.run_weir({"bpf", "counters", "dump", "--iface=" + pod1->host_if}).value();
  std::cerr << "entries evicted after " << rounds << " flood round(s) of 20,000 SYNs\n";

  auto again = lab::tcp_request(conn.get(), 3s);
  EXPECT_TRUE(again.ok()) << "the idle connection broke: " << again.error().str();
  if (again.ok()) {
    EXPECT_EQ(*again, "pod3");
  }
  EXPECT_TRUE(has_mine()) << "its entries were re-created";
  if (HasFailure()) std::cerr << tail(lab.agent_log(), 40);
  EXPECT_TRUE(lab.down().ok());
}

}  // namespace
}  // namespace weir::e2e
