// Independent checksum verifier for frames produced by the BPF programs. Written apart from the
// packet builder on purpose (different code, different arithmetic): it re-parses the frame from
// its bytes and checks every checksum it can see, so a bug in the builder's checksum cannot
// hide the same bug in the datapath.
//
// Arithmetic: the RFC 1071 one's complement sum of 16-bit words, computed as
//   T = 256 * (sum of bytes at even offsets) + (sum of bytes at odd offsets)
// in 64 bits; a region that includes its own checksum field is valid iff its end-around-carry
// sum is 0xffff, i.e. iff T != 0 and T % 65535 == 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace weir::test::verify {

struct Acc {
  uint64_t even = 0;  // bytes at even offsets of the logical region (high byte of a word)
  uint64_t odd = 0;
  uint64_t pos = 0;   // logical offset of the next byte
  void add(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++, pos++) (pos % 2 == 0 ? even : odd) += p[i];
  }
  void add_be32_raw(uint32_t network_order) {
    add(reinterpret_cast<const uint8_t*>(&network_order), 4);
  }
  void add_byte(uint8_t b) { add(&b, 1); }
  void add_u16(uint16_t host) {
    add_byte(uint8_t(host >> 8));
    add_byte(uint8_t(host & 0xff));
  }
  bool valid() const {
    uint64_t t = even * 256 + odd;
    return t != 0 && t % 65535 == 0;
  }
};

inline uint16_t rd16(const std::vector<uint8_t>& b, size_t off) { return uint16_t(b[off] << 8 | b[off + 1]); }

// Checks the IPv4 header checksum of the header at `off` (length from its IHL). "" when valid.
inline std::string check_ip_header(const std::vector<uint8_t>& f, size_t off, const char* what) {
  if (off + 20 > f.size()) return std::string(what) + ": IP header truncated";
  size_t ihl = size_t(f[off] & 0xf) * 4;
  if (ihl < 20 || off + ihl > f.size()) return std::string(what) + ": bad IHL";
  Acc a;
  a.add(&f[off], ihl);
  if (!a.valid()) return std::string(what) + ": IP header checksum wrong";
  return "";
}

// Verifies every checksum of an Ethernet/IPv4 frame: the IP header; TCP/UDP with the
// pseudo-header (UDP 0 = none); ICMP over the whole message and, for ICMP errors, the quoted IP
// header. L4 of fragments is not checked (it covers data not in this packet). "" when valid.
inline std::string checksums(const std::vector<uint8_t>& f) {
  if (f.size() < 14 + 20) return "frame too short for Ethernet + IPv4";
  if (rd16(f, 12) != 0x0800) return "not IPv4";
  const size_t ip = 14;
  std::string e = check_ip_header(f, ip, "outer");
  if (!e.empty()) return e;
  size_t ihl = size_t(f[ip] & 0xf) * 4;
  size_t tot = rd16(f, ip + 2);
  if (ip + tot > f.size()) return "IP total length beyond the frame";
  uint16_t frag = rd16(f, ip + 6);
  if (frag & 0x3fff) return "";  // fragment: L4 checksum not verifiable here
  uint8_t proto = f[ip + 9];
  size_t l4 = ip + ihl;
  size_t l4len = tot - ihl;
  if (proto == 6 || proto == 17) {
    if (proto == 17 && l4len >= 8 && rd16(f, l4 + 6) == 0) return "";  // UDP without checksum
    Acc a;
    a.add(&f[ip + 12], 8);  // saddr, daddr as they sit in the header
    a.add_byte(0);
    a.add_byte(proto);
    a.add_u16(uint16_t(l4len));
    a.add(&f[l4], l4len);
    if (!a.valid()) return proto == 6 ? "TCP checksum wrong" : "UDP checksum wrong";
    return "";
  }
  if (proto == 1) {
    if (l4len < 8) return "ICMP message shorter than 8 bytes";
    Acc a;
    a.add(&f[l4], l4len);
    if (!a.valid()) return "ICMP checksum wrong";
    uint8_t type = f[l4];
    if (type == 3 || type == 11 || type == 12) {
      e = check_ip_header(f, l4 + 8, "quoted");
      if (!e.empty()) return e;
    }
  }
  return "";
}

}  // namespace weir::test::verify
