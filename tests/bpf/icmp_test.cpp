// The no-backend answers (TCP RST, ICMP port unreachable) and ICMP errors about NATed flows.
#include "tc_fixture.h"

namespace weir::test {
namespace {

class NoBackendTest : public TcTest {
 protected:
  // The RST|ACK weir must send back for a TCP segment `in` to a VIP without backends.
  static PacketSpec rst_for(const PacketSpec& in, uint32_t seg_len) {
    const auto& t = std::get<TcpSpec>(in.l4);
    PacketSpec want;
    want.eth.src = in.eth.dst;
    want.eth.dst = in.eth.src;
    want.ip.saddr = in.ip.daddr;
    want.ip.daddr = in.ip.saddr;
    want.ip.df = true;
    want.ip.ttl = 64;
    TcpSpec r;
    r.sport = t.dport;
    r.dport = t.sport;
    r.seq = (t.flags & kTcpAck) ? t.ack : 0;
    r.ack = t.seq + seg_len;
    r.flags = kTcpRst | kTcpAck;
    r.window = 0;
    want.l4 = r;
    return want;
  }
  // The ICMP port unreachable for a datagram `in`: the original IP header + 8 bytes quoted.
  static PacketSpec unreach_for(const PacketSpec& in) {
    PacketSpec want;
    want.eth.src = in.eth.dst;
    want.eth.dst = in.eth.src;
    want.ip.tos = 0xc0;
    want.ip.ttl = 64;
    want.ip.saddr = in.ip.daddr;
    want.ip.daddr = in.ip.saddr;
    IcmpSpec ic;
    ic.type = 3;
    ic.code = 3;
    want.l4 = ic;
    want.payload = truncated(build_ip(in), 20 + in.ip.options.size() + 8);
    return want;
  }
};

TEST_F(NoBackendTest, TcpSynGetsRstAckFromTheVip) {
  auto syn = client_tcp(47000, kVip, kVipTcpEmptyPort, kTcpSyn, 0xfffffff0);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT) << "sent back out of the client's veth";
  EXPECT_FRAME(r.out, build(rst_for(syn, 1)));
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_DROP_NO_BACKEND), uint64_t(1)));
  EXPECT_TRUE(tc->ct_all().empty());
  // On its way into the client the RST crosses to_wl, which passes it without creating state.
  auto back = run(Prog::ToWl, client_if, r.out);
  EXPECT_EQ(back.retval, TC_ACT_OK);
  EXPECT_FRAME(back.out, r.out);
  EXPECT_EQ(only_outcome(client_if, kEgress).first, WEIR_CNT_ACCEPT_NEW_FLOW);
  EXPECT_TRUE(tc->ct_all().empty());
}

TEST_F(NoBackendTest, RstForSynWithOptionsAndDataIsTrimmed) {
  auto syn = client_tcp(47001, kVip, kVipTcpEmptyPort, kTcpSyn, 5000);
  syn.ip.options = Bytes{0x01, 0x01, 0x01, 0x00};
  tcp_of(syn).options = Bytes{0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x01, 0x01};
  syn.payload = Bytes(13, 'f');  // TCP Fast Open data: acknowledged as sequence space
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(rst_for(syn, 1 + 13)));
  EXPECT_EQ(r.out.size(), 54u);
  EXPECT_CSUMS(r.out);
}

TEST_F(NoBackendTest, BackendMissingFromTheBackendMapIsNoBackend) {
  weir_nat_fe_val fe{};
  fe.svc_id = 99;  // no backend entries with this id
  fe.count = 3;
  ASSERT_TRUE(tc->put_frontend(kVip, 8443, kTcp, fe).ok());
  auto syn = client_tcp(47002, kVip, 8443, kTcpSyn, 10);
  auto r = from_wl(client_if, syn);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(rst_for(syn, 1)));
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_DROP_NO_BACKEND), 1u);
}

TEST_F(NoBackendTest, UdpGetsIcmpPortUnreachableQuotingTheDatagram) {
  auto q = client_udp(47003, kVip, kVipUdpEmptyPort);
  q.payload = Bytes(64, 'q');
  auto r = from_wl(client_if, q);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(unreach_for(q)));
  EXPECT_EQ(r.out.size(), 14u + 20 + 8 + 28);
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_DROP_NO_BACKEND), uint64_t(1)));
  EXPECT_TRUE(tc->ct_all().empty());
  EXPECT_EQ(r.mark, WEIR_MARK_ANSWER) << "the answer carries weir's mark to to_wl";
  auto back = tc->run(Prog::ToWl, client_if, r.out, 1, r.mark);
  ASSERT_TRUE(back.ok()) << back.error().str();
  EXPECT_EQ(back->retval, TC_ACT_OK);
  EXPECT_FRAME(back->out, r.out);
  EXPECT_EQ(back->mark, 0u) << "the mark goes with the answer's last weir hook";
  EXPECT_TRUE(tc->ct_all().empty()) << "weir's own answer must not create state";
  // The same ICMP error without the mark (e.g. sent by another host) concerns no flow: dropped.
  auto forged = run(Prog::ToWl, client_if, r.out);
  EXPECT_EQ(forged.retval, TC_ACT_SHOT);
  EXPECT_EQ(cnt(client_if, kEgress, WEIR_CNT_DROP_ICMP_NO_FLOW), 1u);
}

TEST_F(NoBackendTest, TinyUdpDatagramGrowsIntoTheIcmpAnswer) {
  auto q = client_udp(47004, kVip, kVipUdpEmptyPort);
  q.payload.clear();  // 42-byte frame, the answer is 70 bytes
  auto r = from_wl(client_if, q);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(unreach_for(q)));
  EXPECT_CSUMS(r.out);
}

TEST_F(NoBackendTest, IcmpAnswerQuotesIpOptions) {
  auto q = client_udp(47005, kVip, kVipUdpEmptyPort);
  q.ip.options = Bytes{0x94, 0x04, 0x00, 0x00};  // router alert
  auto r = from_wl(client_if, q);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_FRAME(r.out, build(unreach_for(q)));
  EXPECT_EQ(r.out.size(), 14u + 20 + 8 + 24 + 8);
  EXPECT_CSUMS(r.out);
}

class IcmpErrorTest : public TcTest {
 protected:
  // A UDP NAT flow client:cport -> VIP:53 -> backend 1:5353, approved on both sides. Returns the
  // DNATed datagram as the backend received it.
  Bytes udp_nat_flow(uint16_t cport) {
    auto r = from_wl(client_if, client_udp(cport, kVip, kVipUdpPort));
    EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
    EXPECT_EQ(run(Prog::ToWl, be1_if, r.out).retval, TC_ACT_OK);
    return r.out;
  }
  static PacketSpec icmp_error(const Mac& src_mac, const Mac& dst_mac, uint32_t saddr, uint32_t daddr, uint8_t type,
                               uint8_t code, Bytes quoted, uint32_t rest = 0) {
    IcmpSpec ic;
    ic.type = type;
    ic.code = code;
    ic.rest = rest;
    return icmp_pkt(src_mac, dst_mac, saddr, daddr, ic, std::move(quoted));
  }
  static uint16_t udp_check_of(const Bytes& frame) { return uint16_t(frame[14 + 20 + 6] << 8 | frame[14 + 20 + 7]); }
};

TEST_F(IcmpErrorTest, PortUnreachableFromTheBackendIsReverseNated) {
  Bytes dnated = udp_nat_flow(48000);
  // Backend 1 answers with port unreachable, quoting client:48000 -> be1:5353.
  Bytes quoted = truncated(Bytes(dnated.begin() + 14, dnated.end()), 28);
  auto err = icmp_error(kBe1Mac, kBe1HostMac, kBe1Ip, kClientIp, 3, 3, quoted);
  auto r = from_wl(be1_if, err);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  // Expected: from the VIP, quoting client:48000 -> VIP:53 (the quoted UDP checksum is left
  // as the backend saw it), delivered into the client.
  auto orig = client_udp(48000, kVip, kVipUdpPort);
  udp_of(orig).check = udp_check_of(dnated);
  auto want = icmp_error(kClientHostMac, kClientMac, kVip, kClientIp, 3, 3, truncated(build_ip(orig), 28));
  EXPECT_FRAME(r.out, build(want));
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(only_outcome(be1_if, kIngress).first, WEIR_CNT_REDIRECT_PEER);
  EXPECT_EQ(cnt(be1_if, kIngress, WEIR_CNT_OTHER_ICMP_ERR_NAT), 1u);
  EXPECT_EQ(tc->ct_all().size(), 2u) << "ICMP errors never create state";
}

TEST_F(IcmpErrorTest, FragmentationNeededFromARouterKeepsItsSource) {
  const uint16_t cport = 48001;
  auto syn = client_tcp(cport, kVip, kVipTcpPort, kTcpSyn, 4242);
  auto r1 = from_wl(client_if, syn);
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  const uint32_t router = ip4("10.65.200.1");
  Bytes quoted = truncated(Bytes(r1.out.begin() + 14, r1.out.end()), 28);
  auto err = icmp_error(kClientHostMac, kClientMac, router, kClientIp, 3, 4, quoted, 1400);  // mtu 1400
  auto r = to_wl(client_if, err);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  // The quoted TCP header's first 8 bytes (ports, seq) do not include its checksum.
  auto want = icmp_error(kClientHostMac, kClientMac, router, kClientIp, 3, 4, truncated(build_ip(syn), 28), 1400);
  EXPECT_FRAME(r.out, build(want));
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(only_outcome(client_if, kEgress).first, WEIR_CNT_ACCEPT_ESTABLISHED);
  EXPECT_EQ(cnt(client_if, kEgress, WEIR_CNT_OTHER_ICMP_ERR_NAT), 1u);
}

TEST_F(IcmpErrorTest, ErrorFromTheClientAboutAVipReplyGoesToTheBackend) {
  Bytes dnated = udp_nat_flow(48002);
  // The backend's reply, reverse NATed, as the client received it: VIP:53 -> client:48002.
  auto reply = udp_pkt(kBe1Mac, kBe1HostMac, kBe1Ip, kBeUdpPort, kClientIp, 48002, Bytes{'r'});
  auto rr = from_wl(be1_if, reply);
  ASSERT_EQ(rr.retval, TC_ACT_REDIRECT);
  Bytes quoted = truncated(Bytes(rr.out.begin() + 14, rr.out.end()), 28);
  // The client's socket is gone: it answers port unreachable to the VIP.
  auto err = icmp_error(kClientMac, kClientHostMac, kClientIp, kVip, 3, 3, quoted);
  auto r = from_wl(client_if, err);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  auto orig_reply = reply;
  udp_of(orig_reply).check = udp_check_of(rr.out);
  auto want = icmp_error(kBe1HostMac, kBe1Mac, kClientIp, kBe1Ip, 3, 3, truncated(build_ip(orig_reply), 28));
  EXPECT_FRAME(r.out, build(want));
  EXPECT_CSUMS(r.out);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_REDIRECT_PEER), 1u);
  EXPECT_EQ(cnt(client_if, kIngress, WEIR_CNT_OTHER_ICMP_ERR_NAT), 1u);
}

TEST_F(IcmpErrorTest, ErrorAboutAPlainFlowPassesUnchanged) {
  auto q = client_udp(48003, kRemoteIp, 53);
  ASSERT_EQ(from_wl(client_if, q).retval, TC_ACT_OK);
  auto err = icmp_error(kClientHostMac, kClientMac, kRemoteIp, kClientIp, 3, 3, truncated(build_ip(q), 28));
  auto r = to_wl(client_if, err);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FRAME(r.out, build(err));
  EXPECT_EQ(only_outcome(client_if, kEgress).first, WEIR_CNT_ACCEPT_ESTABLISHED);
  EXPECT_EQ(cnt(client_if, kEgress, WEIR_CNT_OTHER_ICMP_ERR_NAT), 0u);
}

TEST_F(IcmpErrorTest, ErrorAboutAnUnknownFlowIsDroppedWithoutState) {
  // An ICMP error answers a packet of a flow; one about no tracked flow reaches no workload (a
  // policy-isolated pod must not receive crafted errors), in either direction.
  auto q = client_udp(48004, kRemoteIp, 53);
  auto err = icmp_error(kClientHostMac, kClientMac, kRemoteIp, kClientIp, 11, 0, truncated(build_ip(q), 28));
  auto r = to_wl(client_if, err);
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kEgress), std::make_pair(int(WEIR_CNT_DROP_ICMP_NO_FLOW), uint64_t(1)));
  auto from_pod = icmp_error(kClientMac, kClientHostMac, kClientIp, kRemoteIp, 3, 3,
                             truncated(build_ip(udp_pkt(kClientHostMac, kClientMac, kRemoteIp, 53, kClientIp, 48004)), 28));
  EXPECT_EQ(from_wl(client_if, from_pod).retval, TC_ACT_SHOT);
  EXPECT_EQ(only_outcome(client_if, kIngress), std::make_pair(int(WEIR_CNT_DROP_ICMP_NO_FLOW), uint64_t(1)));
  EXPECT_TRUE(tc->ct_all().empty());
}

TEST_F(IcmpErrorTest, QuotedHeaderWithOptionsIsParsed) {
  // A NAT flow whose datagrams carry IP options; the quote has the longer header.
  auto q = client_udp(48005, kVip, kVipUdpPort);
  q.ip.options = Bytes{0x01, 0x01, 0x01, 0x00};
  auto r1 = from_wl(client_if, q);
  ASSERT_EQ(r1.retval, TC_ACT_REDIRECT);
  ASSERT_EQ(run(Prog::ToWl, be1_if, r1.out).retval, TC_ACT_OK);
  Bytes quoted = truncated(Bytes(r1.out.begin() + 14, r1.out.end()), 32);
  auto err = icmp_error(kBe1Mac, kBe1HostMac, kBe1Ip, kClientIp, 3, 3, quoted);
  auto r = from_wl(be1_if, err);
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  auto orig = q;
  udp_of(orig).check = uint16_t(r1.out[14 + 24 + 6] << 8 | r1.out[14 + 24 + 7]);
  auto want = icmp_error(kClientHostMac, kClientMac, kVip, kClientIp, 3, 3, truncated(build_ip(orig), 32));
  EXPECT_FRAME(r.out, build(want));
  EXPECT_CSUMS(r.out);
}

}  // namespace
}  // namespace weir::test
