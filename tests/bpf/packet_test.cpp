// The test tools themselves: the builder's checksums against published values, and the
// independent verifier against the builder and against corrupted frames.
#include <gtest/gtest.h>

#include "csum_verify.h"
#include "packet.h"

namespace weir::test {
namespace {

TEST(PacketBuilder, Rfc1071Example) {
  // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2 (with carries); checksum 220d.
  const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(detail::builder_csum(data, sizeof(data)), 0x220d);
}

TEST(PacketBuilder, KnownIpv4HeaderChecksum) {
  // 192.168.0.1 -> 192.168.0.199, UDP, tot_len 0x73, DF, ttl 64: header checksum 0xb861.
  PacketSpec s;
  s.ip.saddr = ip4("192.168.0.1");
  s.ip.daddr = ip4("192.168.0.199");
  s.ip.df = true;
  s.ip.proto = 17;
  s.ip.tot_len = 0x73;
  Bytes ip = build_ip(s);
  EXPECT_EQ(ip[10], 0xb8);
  EXPECT_EQ(ip[11], 0x61);
}

TEST(PacketBuilder, LayoutOfATcpSyn) {
  PacketSpec s;
  s.eth.dst = Mac{1, 2, 3, 4, 5, 6};
  s.eth.src = Mac{7, 8, 9, 10, 11, 12};
  s.ip.saddr = ip4("10.0.0.1");
  s.ip.daddr = ip4("10.0.0.2");
  s.ip.options = Bytes{1, 1, 1, 0};
  TcpSpec t;
  t.sport = 1234;
  t.dport = 80;
  t.seq = 0x01020304;
  t.flags = kTcpSyn;
  s.l4 = t;
  Bytes f = build(s);
  ASSERT_EQ(f.size(), 14u + 24 + 20);
  EXPECT_EQ(f[12], 0x08);
  EXPECT_EQ(f[14], 0x46);  // version 4, ihl 6
  EXPECT_EQ(f[14 + 9], 6);
  EXPECT_EQ(f[14 + 2], 0);
  EXPECT_EQ(f[14 + 3], 44);
  EXPECT_EQ(f[38], 0x04);  // sport 1234 = 0x04d2 at the L4 offset ihl*4
  EXPECT_EQ(f[39], 0xd2);
  EXPECT_EQ(f[38 + 4], 0x01);
  EXPECT_EQ(f[38 + 12], 0x50);
  EXPECT_EQ(f[38 + 13], kTcpSyn);
}

TEST(ChecksumVerifier, AcceptsEveryBuiltProtocolAndRejectsCorruption) {
  std::vector<PacketSpec> specs;
  PacketSpec base;
  base.ip.saddr = ip4("10.1.2.3");
  base.ip.daddr = ip4("10.3.2.1");
  base.payload = Bytes{'o', 'd', 'd'};
  {
    auto s = base;
    TcpSpec t;
    t.sport = 1;
    t.dport = 2;
    t.flags = kTcpAck;
    s.l4 = t;
    specs.push_back(s);
  }
  {
    auto s = base;
    UdpSpec u;
    u.sport = 3;
    u.dport = 4;
    s.l4 = u;
    specs.push_back(s);
  }
  {
    auto s = base;
    s.l4 = IcmpSpec::echo(8, 9, 10);
    specs.push_back(s);
  }
  for (const auto& s : specs) {
    Bytes f = build(s);
    EXPECT_EQ(verify::checksums(f), "");
    for (size_t i = 14; i < f.size(); i++) {
      Bytes g = f;
      g[i] ^= 0x10;  // any single-byte change must break some checksum
      EXPECT_NE(verify::checksums(g), "") << "corruption at offset " << i << " not detected";
    }
  }
}

TEST(ChecksumVerifier, UdpZeroChecksumMeansNone) {
  PacketSpec s;
  s.ip.saddr = ip4("10.1.2.3");
  s.ip.daddr = ip4("10.3.2.1");
  UdpSpec u;
  u.sport = 3;
  u.dport = 4;
  u.no_checksum = true;
  s.l4 = u;
  s.payload = Bytes{1, 2, 3};
  EXPECT_EQ(verify::checksums(build(s)), "");
}

TEST(ChecksumVerifier, ChecksQuotedHeaderOfIcmpErrors) {
  PacketSpec inner;
  inner.ip.saddr = ip4("10.1.2.3");
  inner.ip.daddr = ip4("10.3.2.1");
  inner.l4 = UdpSpec{};
  Bytes quoted = truncated(build_ip(inner), 28);
  quoted[12] ^= 1;  // quoted source address changed without fixing its header checksum
  PacketSpec s;
  s.ip.saddr = ip4("10.3.2.1");
  s.ip.daddr = ip4("10.1.2.3");
  IcmpSpec ic;
  ic.type = 3;
  ic.code = 3;
  s.l4 = ic;
  s.payload = quoted;
  EXPECT_EQ(verify::checksums(build(s)), "quoted: IP header checksum wrong");
}

}  // namespace
}  // namespace weir::test
