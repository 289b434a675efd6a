// Packet builder for BPF tests and benchmarks: Ethernet / IPv4 (options, fragment bits) /
// TCP, UDP, ICMP, described field by field and serialised with correct checksums unless a test
// asks for a wrong one. Tests build the expected output the same way (copy the input spec,
// change the fields the program should change, build) and compare byte for byte.
//
// Header-only so that bench/ can use it too. Addresses are given as dotted strings or as
// network-order uint32 (what the maps and the BPF side use); ports as host-order numbers.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace weir::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

// "10.0.0.1" -> network-order uint32 (as it sits in a packet or a weir map key).
inline uint32_t ip4(const char* dotted) {
  in_addr a{};
  if (inet_pton(AF_INET, dotted, &a) != 1) throw std::invalid_argument(std::string("bad IPv4 address: ") + dotted);
  return a.s_addr;
}
inline std::string ip4_str(uint32_t be) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{};
  a.s_addr = be;
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

constexpr uint16_t kEthIPv4 = 0x0800;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint16_t kEthIPv6 = 0x86dd;

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;

struct EthSpec {
  Mac dst{};
  Mac src{};
  uint16_t type = kEthIPv4;
};

struct Ip4Spec {
  uint8_t version = 4;
  uint8_t tos = 0;
  uint16_t id = 0;
  bool df = false;
  bool mf = false;
  uint16_t frag_offset = 0;  // in 8-byte units
  uint8_t ttl = 64;
  uint8_t proto = 0;         // 0: taken from the L4 spec
  uint32_t saddr = 0;        // network order
  uint32_t daddr = 0;
  Bytes options;             // padded to a multiple of 4 by the test, not by the builder
  std::optional<uint8_t> ihl;         // override the computed header length (32-bit words)
  std::optional<uint16_t> tot_len;    // override the computed total length
  std::optional<uint16_t> check;      // override the computed header checksum (host order)
};

struct TcpSpec {
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = 0;
  uint16_t window = 65535;
  uint16_t urg = 0;
  Bytes options;                   // multiple of 4
  std::optional<uint8_t> doff;     // override the data offset (32-bit words)
  std::optional<uint16_t> check;   // override the checksum (host order)
};

struct UdpSpec {
  uint16_t sport = 0;
  uint16_t dport = 0;
  bool no_checksum = false;        // checksum field 0 ("not computed")
  std::optional<uint16_t> len;     // override the UDP length
  std::optional<uint16_t> check;
};

struct IcmpSpec {
  uint8_t type = 8;
  uint8_t code = 0;
  uint32_t rest = 0;               // bytes 4..7 in host order: (id << 16 | seq) for echo, mtu...
  std::optional<uint16_t> check;
  static IcmpSpec echo(uint8_t type, uint16_t id, uint16_t seq) {
    IcmpSpec s;
    s.type = type;
    s.rest = (uint32_t(id) << 16) | seq;
    return s;
  }
};

// No L4 header at all (non-first fragments, other protocols): the payload follows the IP header.
struct NoL4 {};

struct PacketSpec {
  EthSpec eth;
  Ip4Spec ip;
  std::variant<NoL4, TcpSpec, UdpSpec, IcmpSpec> l4 = NoL4{};
  Bytes payload;
  // Raw bytes after the Ethernet header instead of an IPv4 packet (ARP, IPv6 ...).
  std::optional<Bytes> raw_l3;
  // Append bytes after the IP datagram (Ethernet padding); not covered by any length.
  Bytes trailer;
};

namespace detail {
inline void put16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}
inline void put32(Bytes& b, uint32_t v) {
  put16(b, uint16_t(v >> 16));
  put16(b, uint16_t(v));
}
inline void set16(Bytes& b, size_t off, uint16_t v) {
  b[off] = uint8_t(v >> 8);
  b[off + 1] = uint8_t(v);
}
inline void append_be32(Bytes& b, uint32_t network_order) {
  const auto* p = reinterpret_cast<const uint8_t*>(&network_order);
  b.insert(b.end(), p, p + 4);
}
// Internet checksum (RFC 1071) as the builder computes it: 16-bit big-endian words summed
// into 32 bits, carries folded, complemented. The test verifier uses its own code.
inline uint16_t builder_csum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}
inline uint32_t pseudo_sum(uint32_t saddr, uint32_t daddr, uint8_t proto, uint16_t len) {
  Bytes ph;
  append_be32(ph, saddr);
  append_be32(ph, daddr);
  ph.push_back(0);
  ph.push_back(proto);
  put16(ph, len);
  uint32_t sum = 0;
  for (size_t i = 0; i < ph.size(); i += 2) sum += uint32_t(ph[i]) << 8 | ph[i + 1];
  return sum;
}
}  // namespace detail

inline uint8_t l4_proto(const PacketSpec& s) {
  if (s.ip.proto != 0) return s.ip.proto;
  if (std::holds_alternative<TcpSpec>(s.l4)) return 6;
  if (std::holds_alternative<UdpSpec>(s.l4)) return 17;
  if (std::holds_alternative<IcmpSpec>(s.l4)) return 1;
  return 0;
}

// Serialise the L4 header + payload (checksum computed with the pseudo-header of `s.ip`).
inline Bytes build_l4(const PacketSpec& s) {
  using namespace detail;
  Bytes l4;
  if (const auto* t = std::get_if<TcpSpec>(&s.l4)) {
    put16(l4, t->sport);
    put16(l4, t->dport);
    put32(l4, t->seq);
    put32(l4, t->ack);
    uint8_t doff = t->doff.value_or(uint8_t(5 + t->options.size() / 4));
    l4.push_back(uint8_t(doff << 4));
    l4.push_back(t->flags);
    put16(l4, t->window);
    put16(l4, 0);
    put16(l4, t->urg);
    l4.insert(l4.end(), t->options.begin(), t->options.end());
    l4.insert(l4.end(), s.payload.begin(), s.payload.end());
    uint16_t c = t->check.value_or(
        builder_csum(l4.data(), l4.size(), pseudo_sum(s.ip.saddr, s.ip.daddr, 6, uint16_t(l4.size()))));
    set16(l4, 16, c);
  } else if (const auto* u = std::get_if<UdpSpec>(&s.l4)) {
    put16(l4, u->sport);
    put16(l4, u->dport);
    put16(l4, u->len.value_or(uint16_t(8 + s.payload.size())));
    put16(l4, 0);
    l4.insert(l4.end(), s.payload.begin(), s.payload.end());
    uint16_t c = 0;
    if (u->check) {
      c = *u->check;
    } else if (!u->no_checksum) {
      c = builder_csum(l4.data(), l4.size(), pseudo_sum(s.ip.saddr, s.ip.daddr, 17, uint16_t(l4.size())));
      if (c == 0) c = 0xffff;  // RFC 768: a computed 0 is sent as all ones
    }
    set16(l4, 6, c);
  } else if (const auto* ic = std::get_if<IcmpSpec>(&s.l4)) {
    l4.push_back(ic->type);
    l4.push_back(ic->code);
    put16(l4, 0);
    put32(l4, ic->rest);
    l4.insert(l4.end(), s.payload.begin(), s.payload.end());
    set16(l4, 2, ic->check.value_or(builder_csum(l4.data(), l4.size())));
  } else {
    l4 = s.payload;
  }
  return l4;
}

// The IPv4 datagram (header + L4), without Ethernet.
inline Bytes build_ip(const PacketSpec& s) {
  using namespace detail;
  Bytes l4 = build_l4(s);
  Bytes ip;
  uint8_t ihl = s.ip.ihl.value_or(uint8_t(5 + s.ip.options.size() / 4));
  ip.push_back(uint8_t(s.ip.version << 4 | (ihl & 0xf)));
  ip.push_back(s.ip.tos);
  put16(ip, s.ip.tot_len.value_or(uint16_t(20 + s.ip.options.size() + l4.size())));
  put16(ip, s.ip.id);
  put16(ip, uint16_t((s.ip.df ? 0x4000 : 0) | (s.ip.mf ? 0x2000 : 0) | (s.ip.frag_offset & 0x1fff)));
  ip.push_back(s.ip.ttl);
  ip.push_back(l4_proto(s));
  put16(ip, 0);
  append_be32(ip, s.ip.saddr);
  append_be32(ip, s.ip.daddr);
  ip.insert(ip.end(), s.ip.options.begin(), s.ip.options.end());
  set16(ip, 10, s.ip.check.value_or(builder_csum(ip.data(), ip.size())));
  ip.insert(ip.end(), l4.begin(), l4.end());
  return ip;
}

inline Bytes build(const PacketSpec& s) {
  using namespace detail;
  Bytes b(s.eth.dst.begin(), s.eth.dst.end());
  b.insert(b.end(), s.eth.src.begin(), s.eth.src.end());
  put16(b, s.eth.type);
  Bytes l3 = s.raw_l3 ? *s.raw_l3 : build_ip(s);
  b.insert(b.end(), l3.begin(), l3.end());
  b.insert(b.end(), s.trailer.begin(), s.trailer.end());
  return b;
}

// First n bytes of a frame (truncation vectors).
inline Bytes truncated(Bytes b, size_t n) {
  if (n < b.size()) b.resize(n);
  return b;
}

// Human-readable hex dump with a marker on the first differing byte (assertion messages).
inline std::string hex_diff(const Bytes& got, const Bytes& want) {
  std::string out;
  char buf[32];
  size_t n = std::max(got.size(), want.size());
  size_t first = n;
  for (size_t i = 0; i < n; i++) {
    if (i >= got.size() || i >= want.size() || got[i] != want[i]) {
      first = i;
      break;
    }
  }
  out += "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) + " bytes";
  if (first < n) out += ", first difference at offset " + std::to_string(first);
  out += "\n off  got                                              want\n";
  for (size_t row = 0; row < n; row += 16) {
    std::snprintf(buf, sizeof(buf), "%04zx ", row);
    out += buf;
    for (int side = 0; side < 2; side++) {
      const Bytes& b = side == 0 ? got : want;
      for (size_t i = row; i < row + 16; i++) {
        if (i < b.size()) {
          bool diff = i >= got.size() || i >= want.size() || got[i] != want[i];
          std::snprintf(buf, sizeof(buf), diff ? "%02x*" : "%02x ", b[i]);
          out += buf;
        } else {
          out += "   ";
        }
      }
      out += side == 0 ? " | " : "\n";
    }
  }
  return out;
}

}  // namespace weir::test
