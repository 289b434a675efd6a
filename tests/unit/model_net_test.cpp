// model/net.h: Ipv4, Cidr, Mac, Protocol.
#include <gtest/gtest.h>

#include "model/net.h"

namespace weir::model {
namespace {

TEST(Ipv4, ParsesDottedQuadInHostOrder) {
  auto ip = Ipv4::parse("10.65.0.2");
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->value, 0x0a410002u);
  EXPECT_EQ(ip->str(), "10.65.0.2");
  EXPECT_EQ(Ipv4::parse("0.0.0.0")->value, 0u);
  EXPECT_EQ(Ipv4::parse("255.255.255.255")->value, 0xffffffffu);
}

TEST(Ipv4, RejectsMalformed) {
  for (const char* bad :
       {"", "10", "10.0.0", "10.0.0.0.1", "256.0.0.1", "10.0.0.01", "10.0.0.-1", "10..0.1",
        " 10.0.0.1", "10.0.0.1 ", "10.0.0.1/32", "a.b.c.d", "1000.0.0.1", "::1", "10.0.0.1."}) {
    EXPECT_FALSE(Ipv4::parse(bad)) << bad;
  }
}

TEST(Ipv4, NetworkOrderRoundTrip) {
  Ipv4 ip = *Ipv4::parse("10.65.0.2");
  uint32_t be = ip.network_order();
  const auto* bytes = reinterpret_cast<const uint8_t*>(&be);
  EXPECT_EQ(bytes[0], 10);
  EXPECT_EQ(bytes[1], 65);
  EXPECT_EQ(bytes[2], 0);
  EXPECT_EQ(bytes[3], 2);
  EXPECT_EQ(Ipv4::from_network_order(be), ip);
}

TEST(Ipv4, OrdersNumerically) {
  EXPECT_LT(*Ipv4::parse("9.255.255.255"), *Ipv4::parse("10.0.0.0"));
  EXPECT_LT(*Ipv4::parse("10.0.0.2"), *Ipv4::parse("10.0.0.10"));
}

TEST(Cidr, Formats) { EXPECT_EQ((Cidr{*Ipv4::parse("10.0.0.1"), 32}).str(), "10.0.0.1/32"); }

TEST(Mac, ParsesAndFormats) {
  auto m = Mac::parse("AA:bb:0c:dd:ee:0F");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->str(), "aa:bb:0c:dd:ee:0f");
  EXPECT_TRUE(Mac::parse("02-00-00-00-00-01"));
  for (const char* bad : {"", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa:bb:cc-dd:ee:ff",
                          "gg:bb:cc:dd:ee:ff", "aabbccddeeff", "aa:bb:cc:dd:ee:f"}) {
    EXPECT_FALSE(Mac::parse(bad)) << bad;
  }
}

TEST(Mac, Unicast) {
  EXPECT_TRUE(Mac::parse("02:00:00:00:00:01")->is_unicast());
  EXPECT_FALSE(Mac::parse("00:00:00:00:00:00")->is_unicast());
  EXPECT_FALSE(Mac::parse("01:00:5e:00:00:01")->is_unicast());
  EXPECT_FALSE(Mac::parse("ff:ff:ff:ff:ff:ff")->is_unicast());
}

TEST(Protocol, ParsesKubernetesSpelling) {
  EXPECT_EQ(parse_protocol("TCP"), Protocol::TCP);
  EXPECT_EQ(parse_protocol("UDP"), Protocol::UDP);
  EXPECT_EQ(parse_protocol("SCTP"), Protocol::SCTP);
  EXPECT_FALSE(parse_protocol("tcp"));
  EXPECT_FALSE(parse_protocol("ICMP"));
  EXPECT_EQ(ip_proto(Protocol::UDP), 17);
  EXPECT_EQ(to_string(Protocol::SCTP), "SCTP");
}

}  // namespace
}  // namespace weir::model
