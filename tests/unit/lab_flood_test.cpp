// The SYN the lab's flood sends (src/lab/flood.h), checked byte by byte with checksums computed
// here independently. No root needed (no socket is opened).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>

#include "lab/flood.h"

namespace weir::lab {
namespace {

uint32_t addr(const char* s) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, s, &a), 1);
  return a.s_addr;
}

// RFC 1071 over 16-bit big-endian words; 0 when the data holds its own valid checksum.
uint16_t fold(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

TEST(LabFlood, SynPacketHeadersAndChecksums) {
  auto p = syn_packet(addr("10.65.0.2"), addr("10.96.0.10"), 40000, 80, 0x01020304, 0x1234);
  // IPv4: version 4, IHL 5, total length 40, id, DF, TTL 64, TCP, addresses.
  EXPECT_EQ(p[0], 0x45);
  EXPECT_EQ(p[2] << 8 | p[3], 40);
  EXPECT_EQ(p[4] << 8 | p[5], 0x1234);
  EXPECT_EQ(p[6], 0x40);
  EXPECT_EQ(p[8], 64);
  EXPECT_EQ(p[9], IPPROTO_TCP);
  uint32_t s, d;
  std::memcpy(&s, &p[12], 4);
  std::memcpy(&d, &p[16], 4);
  EXPECT_EQ(s, addr("10.65.0.2"));
  EXPECT_EQ(d, addr("10.96.0.10"));
  EXPECT_EQ(fold(p.data(), 20), 0) << "IP header checksum";
  // TCP: ports, sequence, data offset 5, SYN only, window.
  const uint8_t* t = p.data() + 20;
  EXPECT_EQ(t[0] << 8 | t[1], 40000);
  EXPECT_EQ(t[2] << 8 | t[3], 80);
  uint32_t seq;
  std::memcpy(&seq, t + 4, 4);
  EXPECT_EQ(seq, 0x01020304u);
  EXPECT_EQ(t[12], 5 << 4);
  EXPECT_EQ(t[13], 0x02);
  EXPECT_EQ(t[14] << 8 | t[15], 64240);
  uint8_t pseudo[12] = {};
  std::memcpy(pseudo, &p[12], 8);
  pseudo[9] = IPPROTO_TCP;
  pseudo[11] = 20;
  uint32_t sum = 0;
  for (int i = 0; i < 12; i += 2) sum += uint32_t(pseudo[i]) << 8 | pseudo[i + 1];
  EXPECT_EQ(fold(t, 20, sum), 0) << "TCP checksum over the pseudo-header";
}

TEST(LabFlood, OnlyPortsIdAndChecksumsChangeBetweenSyns) {
  auto a = syn_packet(addr("10.65.0.2"), addr("10.65.0.4"), 1024, 8080, 7, 1);
  auto b = syn_packet(addr("10.65.0.2"), addr("10.65.0.4"), 1025, 8080, 7, 2);
  for (size_t i = 0; i < a.size(); i++) {
    bool may_differ = i == 4 || i == 5 || i == 10 || i == 11 || i == 20 || i == 21 || i == 36 || i == 37;
    if (!may_differ) {
      EXPECT_EQ(a[i], b[i]) << "byte " << i;
    }
  }
  EXPECT_EQ(b[20] << 8 | b[21], 1025);
}

TEST(LabFlood, BadOptionsAreErrorsBeforeAnySocket) {
  FloodOptions o;
  o.target = {"10.96.0.10", 80};
  o.count = 0;
  auto r = syn_flood(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().msg.find("--count 0"), std::string::npos) << r.error().str();
  o.count = 1;
  o.rate = -1;
  EXPECT_NE(syn_flood(o).error().msg.find("--rate -1"), std::string::npos);
  o.rate = 0;
  o.first_port = 2000;
  o.last_port = 1000;
  EXPECT_NE(syn_flood(o).error().msg.find("source ports 2000..1000"), std::string::npos);
  o.first_port = 1024;
  o.last_port = 65535;
  o.target.ip = "10.96.0";
  EXPECT_NE(syn_flood(o).error().msg.find("invalid IPv4 address"), std::string::npos);
}

}  // namespace
}  // namespace weir::lab
