// What a hostile or unlucky workload must not get through the TC programs: another pod's source
// address, ICMP errors about no flow, VLAN-tagged frames, fragments without (or out of order
// with) their first fragment; and what must keep working: fragmented datagrams through a
// service in both directions, TCP flows through a service whose conntrack entries were lost
// (re-resolved to the same backend, or reset), the lost half of a NAT pair re-created.
#include <algorithm>
#include <map>
#include <set>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tc_fixture.h"
#include "weir/frags.h"
#include "weir/maps.h"

namespace weir::test {
namespace {

constexpr uint32_t kSvc2 = 21;           // a TCP service with two local backends
constexpr uint16_t kVip2Port = 8000;

class TrustTest : public TcTest {
 protected:
  void SetUp() override {
    TcTest::SetUp();
    add_service(kVip, kVip2Port, kTcp, kSvc2, {{kBe1Ip, kBeTcpPort}, {kBe2Ip, kBeTcpPort}});
  }

  // The datapath's conntrack statistics, summed over CPUs.
  weir_ct_stats ct_stats() const {
    weir_ct_stats sum{};
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<weir_ct_stats> per(size_t(std::max(ncpu, 1)));
    uint32_t k = WEIR_CT_STATS_DATAPATH;
    EXPECT_EQ(bpf_map_lookup_elem(tc->map_fd(WEIR_MAP_CT_STATS), &k, per.data()), 0);
    for (const auto& s : per) {
      sum.created += s.created;
      sum.create_failed += s.create_failed;
      sum.deleted += s.deleted;
      sum.midflow_miss += s.midflow_miss;
      sum.midflow_renat += s.midflow_renat;
      sum.midflow_reset += s.midflow_reset;
    }
    return sum;
  }

  size_t frag_entries() const {
    size_t n = 0;
    weir_frag_key k{}, next{};
    const void* cur = nullptr;
    while (bpf_map_get_next_key(tc->map_fd(WEIR_MAP_FRAGS), cur, &next) == 0) {
      ++n;
      k = next;
      cur = &k;
    }
    return n;
  }

  // The datagram `s` cut into fragments of at most `mtu` bytes of IP (20-byte header).
  static std::vector<Bytes> fragment(const PacketSpec& s, size_t mtu) {
    const Bytes ip = build_ip(s);
    const Bytes payload(ip.begin() + 20, ip.end());
    const size_t step = (mtu - 20) / 8 * 8;
    std::vector<Bytes> frames;
    for (size_t off = 0; off < payload.size(); off += step) {
      PacketSpec f = s;
      f.ip.proto = l4_proto(s);
      f.ip.mf = off + step < payload.size();
      f.ip.frag_offset = uint16_t(off / 8);
      f.l4 = NoL4{};
      f.payload.assign(payload.begin() + long(off), payload.begin() + long(std::min(off + step, payload.size())));
      frames.push_back(build(f));
    }
    return frames;
  }

  // The IP payload of fragments (frames with Ethernet headers) put back together by offset;
  // checks every IP header checksum on the way.
  static Bytes reassemble(const std::vector<Bytes>& frames) {
    std::map<uint16_t, Bytes> parts;
    for (const auto& f : frames) {
      EXPECT_EQ(verify::check_ip_header(f, 14, "fragment"), "");
      const size_t ihl = (f[14] & 0x0f) * 4u;
      const uint16_t off = uint16_t(((f[14 + 6] & 0x1f) << 8 | f[14 + 7]) * 8);
      parts[off] = Bytes(f.begin() + long(14 + ihl), f.end());
    }
    Bytes out;
    for (const auto& [off, b] : parts) {
      EXPECT_EQ(off, out.size()) << "gap or overlap in the fragments";
      out.insert(out.end(), b.begin(), b.end());
    }
    return out;
  }
  static Bytes ip_payload(const PacketSpec& s) {
    const Bytes ip = build_ip(s);
    return Bytes(ip.begin() + 20, ip.end());
  }
  static std::string addr_of(const Bytes& frame, size_t off) {
    uint32_t a;
    std::memcpy(&a, frame.data() + off, 4);
    return ip4_str(a);
  }
};

// ------------------------------------------------------------------ source check

TEST_F(TrustTest, NewFlowWithAnotherPodsAddressIsDropped) {
  // The client pod sends as backend 1, with its own MAC and with backend 1's MAC.
  for (const Mac& src_mac : {kClientMac, kBe1Mac}) {
    auto s = tcp_pkt(src_mac, kClientHostMac, kBe1Ip, 40100, kRemoteIp, 443, kTcpSyn);
    EXPECT_EQ(from_wl(client_if, s).retval, TC_ACT_SHOT);
  }
  // And as an address no workload has, to a service.
  auto s = tcp_pkt(kClientMac, kClientHostMac, ip4("10.65.0.99"), 40101, kVip, kVipTcpPort, kTcpSyn);
  EXPECT_EQ(from_wl(client_if, s).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_DROP_UNKNOWN_SOURCE), uint64_t(3)));
  EXPECT_TRUE(tc->ct_all().empty()) << "a spoofed packet creates no state";
}

TEST_F(TrustTest, SpoofedPacketOnAnotherPodsFlowIsDropped) {
  // Backend 1 has a flow to a remote host; the client pod sends on that 5-tuple.
  auto own = be1_tcp(40200, kRemoteIp, 443, kTcpSyn);
  ASSERT_EQ(from_wl(be1_if, own).retval, TC_ACT_OK);
  backdate(kBe1Ip, 40200, kRemoteIp, 443, kTcp);
  auto spoof = tcp_pkt(kClientMac, kClientHostMac, kBe1Ip, 40200, kRemoteIp, 443, kTcpAck, 2000);
  EXPECT_EQ(from_wl(client_if, spoof).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress).first, WEIR_CNT_DROP_UNKNOWN_SOURCE);
  auto e = ct(kBe1Ip, 40200, kRemoteIp, 443, kTcp);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->last_seen_ns, kBackdated) << "the spoofed packet did not touch the flow";
  // The owner's packets still pass.
  EXPECT_EQ(from_wl(be1_if, be1_tcp(40200, kRemoteIp, 443, kTcpAck, 5001)).retval, TC_ACT_OK);
}

TEST_F(TrustTest, ForgedReplyOfAServiceFlowIsDropped) {
  // client -> VIP -> backend 1; backend 2 forges backend 1's reply to the client.
  auto syn = client_tcp(40300, kVip, kVipTcpPort, kTcpSyn);
  ASSERT_EQ(from_wl(client_if, syn).retval, TC_ACT_REDIRECT);
  auto forged = tcp_pkt(kBe2Mac, kBe2HostMac, kBe1Ip, kBeTcpPort, kClientIp, 40300, kTcpSyn | kTcpAck, 1, 1);
  EXPECT_EQ(from_wl(be2_if, forged).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(be2_if, kIngress).first, WEIR_CNT_DROP_UNKNOWN_SOURCE);
  // The real backend's reply is reverse-NATed as usual.
  auto reply = be1_tcp(kBeTcpPort, kClientIp, 40300, kTcpSyn | kTcpAck, 1, 1);
  auto r = from_wl(be1_if, reply);
  EXPECT_NE(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(addr_of(r.out, 14 + 12), ip4_str(kVip));
}

TEST_F(TrustTest, IcmpErrorWithAnotherPodsSourceIsDropped) {
  // A real flow client -> remote exists; backend 2 sends an error about it as if from the
  // client's address.
  auto q = client_udp(40400, kRemoteIp, 53);
  ASSERT_EQ(from_wl(client_if, q).retval, TC_ACT_OK);
  auto quoted = udp_pkt(kClientMac, kClientHostMac, kRemoteIp, 53, kClientIp, 40400);
  auto err = icmp_pkt(kBe2Mac, kBe2HostMac, kClientIp, kRemoteIp, IcmpSpec{3, 3, 0, {}},
                      truncated(build_ip(quoted), 28));
  EXPECT_EQ(from_wl(be2_if, err).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(be2_if, kIngress).first, WEIR_CNT_DROP_UNKNOWN_SOURCE);
}

// ------------------------------------------------------------------ VLAN

TEST_F(TrustTest, VlanTaggedFramesAreDropped) {
  for (uint16_t tpid : {uint16_t(0x8100), uint16_t(0x88a8)}) {
    PacketSpec s;
    s.eth.src = kClientMac;
    s.eth.dst = kClientHostMac;
    s.eth.type = tpid;
    Bytes tagged = {0x00, 0x0a, 0x08, 0x00};  // VLAN 10, then IPv4
    const Bytes ip = build_ip(client_udp(40500, kRemoteIp, 53));
    tagged.insert(tagged.end(), ip.begin(), ip.end());
    s.raw_l3 = tagged;
    auto r = from_wl(client_if, s);
    EXPECT_EQ(r.retval, TC_ACT_SHOT) << std::hex << tpid;
  }
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_DROP_VLAN), uint64_t(2)));
  EXPECT_TRUE(tc->ct_all().empty());
}

// ------------------------------------------------------------------ fragments

TEST_F(TrustTest, FragmentedUdpThroughTheVipArrivesWholeBothWays) {
  // A 4 KB query and a 4 KB answer (a large DNS answer) over a 1500-byte MTU.
  auto query = client_udp(40600, kVip, kVipUdpPort);
  query.payload = Bytes(4000, 'q');
  query.ip.id = 0x0a0a;
  const auto frags = fragment(query, 1500);
  ASSERT_EQ(frags.size(), 3u);
  std::vector<Bytes> at_backend;
  for (const auto& f : frags) {
    auto r = run(Prog::FromWl, client_if, f);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
    auto d = run(Prog::ToWl, be1_if, r.out);  // the backend's to_wl sees every fragment
    ASSERT_EQ(d.retval, TC_ACT_OK);
    EXPECT_EQ(Bytes(d.out.begin(), d.out.begin() + 12), Bytes(r.out.begin(), r.out.begin() + 12));
    at_backend.push_back(d.out);
  }
  auto as_backend_sees_it = query;
  as_backend_sees_it.ip.daddr = kBe1Ip;
  udp_of(as_backend_sees_it).dport = kBeUdpPort;
  EXPECT_EQ(reassemble(at_backend), ip_payload(as_backend_sees_it)) << "DNATed datagram, UDP checksum included";
  for (const auto& f : at_backend) {
    EXPECT_EQ(Bytes(f.begin(), f.begin() + 6), Bytes(kBe1Mac.begin(), kBe1Mac.end()));
  }
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_PLAIN), 3u);

  auto answer = udp_pkt(kBe1Mac, kBe1HostMac, kBe1Ip, kBeUdpPort, kClientIp, 40600);
  answer.payload = Bytes(4000, 'a');
  answer.ip.id = 0x0b0b;
  std::vector<Bytes> at_client;
  for (const auto& f : fragment(answer, 1500)) {
    auto r = run(Prog::FromWl, be1_if, f);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << "both sides approved: straight into the client";
    at_client.push_back(r.out);
  }
  auto as_client_sees_it = answer;
  as_client_sees_it.ip.saddr = kVip;
  udp_of(as_client_sees_it).sport = kVipUdpPort;
  EXPECT_EQ(reassemble(at_client), ip_payload(as_client_sees_it)) << "reverse-NATed datagram";
  EXPECT_EQ(cnt(be1_if, kIngress, WEIR_CNT_REDIRECT_PEER), 3u);
  EXPECT_EQ(frag_entries(), 0u) << "the last fragment removes its datagram's entry";
}

TEST_F(TrustTest, LaterFragmentsOutOfOrderOrWithoutTheirFirstAreDropped) {
  auto d = client_udp(40700, kRemoteIp, 9000);
  d.payload = Bytes(4000, 'x');
  d.ip.id = 0x0c0c;
  const auto frags = fragment(d, 1500);
  ASSERT_EQ(frags.size(), 3u);
  // The third before the first: no first fragment seen yet.
  EXPECT_EQ(run(Prog::FromWl, client_if, frags[2]).retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_FRAG_INCOMPLETE), 1u);
  // First, then the third: the second is missing.
  EXPECT_EQ(run(Prog::FromWl, client_if, frags[0]).retval, TC_ACT_OK);
  EXPECT_EQ(run(Prog::FromWl, client_if, frags[2]).retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_FRAG_ORDER), 1u);
  // In order, the rest passes.
  EXPECT_EQ(run(Prog::FromWl, client_if, frags[1]).retval, TC_ACT_OK);
  EXPECT_EQ(run(Prog::FromWl, client_if, frags[2]).retval, TC_ACT_OK);
  // Another datagram (another IP id) of the same flow does not ride on this one's entry.
  auto other = d;
  other.ip.id = 0x0c0d;
  EXPECT_EQ(run(Prog::FromWl, client_if, fragment(other, 1500)[1]).retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_FRAG_INCOMPLETE), 2u);
}

TEST_F(TrustTest, FragmentsOfASpoofedFirstFragmentAreDropped) {
  auto d = udp_pkt(kClientMac, kClientHostMac, kBe1Ip, 40800, kRemoteIp, 9000);
  d.payload = Bytes(3000, 'y');
  const auto frags = fragment(d, 1500);
  EXPECT_EQ(run(Prog::FromWl, client_if, frags[0]).retval, TC_ACT_SHOT);
  EXPECT_EQ(run(Prog::FromWl, client_if, frags[1]).retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_UNKNOWN_SOURCE), 1u);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_FRAG_INCOMPLETE), 1u);
}

// ------------------------------------------------------------------ lost conntrack entries

TEST_F(TrustTest, FlowHashPicksTheSameBackendForAFlowAndSpreadsFlows) {
  std::set<uint32_t> used;
  for (uint16_t port = 41000; port < 41064; port++) {
    auto r = from_wl(client_if, client_tcp(port, kVip, kVip2Port, kTcpSyn));
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
    uint32_t be;
    std::memcpy(&be, r.out.data() + 14 + 16, 4);
    used.insert(be);
    ASSERT_TRUE(tc->ct_clear().ok());
    auto again = from_wl(client_if, client_tcp(port, kVip, kVip2Port, kTcpSyn));
    EXPECT_EQ(Bytes(again.out.begin() + 30, again.out.begin() + 34), Bytes(r.out.begin() + 30, r.out.begin() + 34))
        << "port " << port << ": the same flow must hash to the same backend";
    ASSERT_TRUE(tc->ct_clear().ok());
  }
  EXPECT_EQ(used, (std::set<uint32_t>{kBe1Ip, kBe2Ip}));
}

TEST_F(TrustTest, MidFlowPacketOfAServiceFlowThatLostItsEntriesIsReNated) {
  const uint16_t cport = 41100;
  auto syn = client_tcp(cport, kVip, kVip2Port, kTcpSyn, 100);
  auto r1 = from_wl(client_if, syn);
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  uint32_t backend;
  std::memcpy(&backend, r1.out.data() + 14 + 16, 4);
  ASSERT_TRUE(tc->ct_clear().ok()) << "both entries evicted under a flood";
  const auto before = ct_stats();

  auto ack = client_tcp(cport, kVip, kVip2Port, kTcpAck | kTcpPsh, 101, 5001);
  auto r = from_wl(client_if, ack);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT) << "never sent to the VIP un-NATed";
  uint32_t daddr;
  std::memcpy(&daddr, r.out.data() + 14 + 16, 4);
  EXPECT_EQ(ip4_str(daddr), ip4_str(backend)) << "re-resolved to the backend the flow started with";
  EXPECT_CSUMS(r.out);
  const auto after = ct_stats();
  EXPECT_EQ(after.midflow_miss - before.midflow_miss, 1u);
  EXPECT_EQ(after.midflow_renat - before.midflow_renat, 1u);
  EXPECT_EQ(after.created - before.created, 2u) << "a NAT pair";

  // The entries record a connection past its handshake (not a SYN-SENT one with a short
  // timeout), and the backend's answer is reverse-NATed.
  auto f = ct(kClientIp, cport, kVip, kVip2Port, kTcp);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type, WEIR_CT_NAT_FWD);
  for (const auto* leg : {&f->a, &f->b}) EXPECT_EQ(leg->flags & (WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK), WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK);
  const uint32_t be_if = backend == kBe1Ip ? be1_if : be2_if;
  const Mac be_mac = backend == kBe1Ip ? kBe1Mac : kBe2Mac;
  const Mac be_host = backend == kBe1Ip ? kBe1HostMac : kBe2HostMac;
  ASSERT_EQ(run(Prog::ToWl, be_if, r.out).retval, TC_ACT_OK);
  auto reply = tcp_pkt(be_mac, be_host, backend, kBeTcpPort, kClientIp, cport, kTcpAck, 5001, 200);
  auto rr = from_wl(be_if, reply);
  EXPECT_EQ(rr.retval, TC_ACT_REDIRECT);
  EXPECT_EQ(addr_of(rr.out, 14 + 12), ip4_str(kVip));
}

TEST_F(TrustTest, MidFlowPacketToAServiceWithoutBackendsIsReset) {
  auto ack = client_tcp(41200, kVip, kVipTcpEmptyPort, kTcpAck, 300, 7000);
  auto r = from_wl(client_if, ack);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT) << "a RST back to the client";
  EXPECT_EQ(r.out[14 + 20 + 13], kTcpRst | kTcpAck);
  EXPECT_EQ(ct_stats().midflow_reset, 1u);
  // A RST is not answered with a RST.
  auto rst = client_tcp(41201, kVip, kVipTcpEmptyPort, kTcpRst, 300);
  EXPECT_EQ(from_wl(client_if, rst).retval, TC_ACT_SHOT);
  EXPECT_TRUE(tc->ct_all().empty());
}

TEST_F(TrustTest, LostHalfOfANatPairIsRecreatedFromTheOther) {
  const uint16_t cport = 41300;
  auto syn = client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 100);
  auto r1 = from_wl(client_if, syn);
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  ASSERT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_OK);
  const auto fkey = ct_key(kClientIp, cport, kVip, kVipTcpPort, kTcp).first;
  const auto rkey = ct_key(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp).first;
  const auto rev_before = tc->ct_get(rkey);
  ASSERT_TRUE(rev_before.has_value());

  // The reverse half is evicted; the client's next packet (after a clock tick) restores it.
  ASSERT_EQ(bpf_map_delete_elem(tc->map_fd(WEIR_MAP_CT), &rkey), 0);
  backdate(kClientIp, cport, kVip, kVipTcpPort, kTcp);
  ASSERT_NE(from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpAck, 101, 1)).retval, TC_ACT_SHOT);
  auto rev = tc->ct_get(rkey);
  ASSERT_TRUE(rev.has_value()) << "reverse half re-created";
  EXPECT_EQ(rev->type, WEIR_CT_NAT_REV);
  EXPECT_EQ(rev->nat_addr, kVip);
  EXPECT_EQ(rev->nat_port, htons(kVipTcpPort));
  EXPECT_EQ(rev->flags, rev_before->flags);
  EXPECT_EQ(rev->a.ifindex, rev_before->a.ifindex);
  EXPECT_EQ(rev->b.ifindex, rev_before->b.ifindex);
  auto rr = from_wl(be1_if, be1_tcp(kBeTcpPort, kClientIp, cport, kTcpAck, 5001, 102));
  EXPECT_NE(rr.retval, TC_ACT_SHOT);
  EXPECT_EQ(addr_of(rr.out, 14 + 12), ip4_str(kVip)) << "the reply is reverse-NATed";

  // The forward half is evicted; the backend's next packet restores it.
  ASSERT_EQ(bpf_map_delete_elem(tc->map_fd(WEIR_MAP_CT), &fkey), 0);
  backdate(kClientIp, cport, kBe1Ip, kBeTcpPort, kTcp);
  ASSERT_NE(from_wl(be1_if, be1_tcp(kBeTcpPort, kClientIp, cport, kTcpAck, 5002, 102)).retval, TC_ACT_SHOT);
  auto fwd = tc->ct_get(fkey);
  ASSERT_TRUE(fwd.has_value()) << "forward half re-created";
  EXPECT_EQ(fwd->type, WEIR_CT_NAT_FWD);
  EXPECT_EQ(fwd->nat_addr, kBe1Ip);
  EXPECT_EQ(fwd->nat_port, htons(kBeTcpPort));
  auto cr = from_wl(client_if, client_tcp(cport, kVip, kVipTcpPort, kTcpAck, 102, 5003));
  EXPECT_NE(cr.retval, TC_ACT_SHOT);
  EXPECT_EQ(addr_of(cr.out, 14 + 16), ip4_str(kBe1Ip)) << "the client's packet is DNATed to the same backend";
}

}  // namespace
}  // namespace weir::test
