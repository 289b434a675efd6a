// The filter expressions and the random packets the pcap filter tests run through both libpcap's
// interpreter and the eBPF translation (src/polprog/pcap_filter.h): tests/unit/pcap_filter_test.cpp
// (an eBPF interpreter, no root) and tests/bpf/pcap_filter_test.cpp (the kernel's verifier and
// BPF_PROG_TEST_RUN). Header-only.
//
// Packets are drawn from small pools (addresses, ports, flags, VLAN ids) that include the values
// the expressions name, so that every expression both matches and misses some of them; fields
// a filter does arithmetic on (IHL, fragment offset, TTL, TOS, TCP data offset) vary over their
// whole range, and some packets are truncated anywhere, headers included.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "polprog/asm.h"
#include "polprog/pcap_filter.h"
#include "util/result.h"

namespace weir::pcap_corpus {

// Expressions whose translation must agree with libpcap; each must match some generated packets
// and miss others (the tests check both).
inline const std::vector<std::string>& expressions() {
  static const std::vector<std::string> kExpressions = {
      // addresses, protocols, ports
      "host 10.65.0.2",
      "host 10.65.0.2 and tcp port 80",
      "src net 10.65.0.0/16 and udp",
      "dst port 53",
      "portrange 8000-8100",
      "udp and (port 53 or port 123)",
      "icmp",
      "ip proto 47",
      "ip multicast",
      "ip6",
      "ip6 and tcp port 80",
      "ip6 net fd00::/64",
      "icmp6",
      "not arp",
      "arp",
      "vlan 10",
      "ether host 02:00:00:00:00:01",
      "ether broadcast",
      "ether[0] & 1 != 0",
      // lengths
      "len > 100",
      "greater 200",
      "less 64",
      // header fields
      "tcp[tcpflags] & tcp-syn != 0",
      "tcp[13] = 18",
      "tcp dst port 80 and tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
      "ip[6:2] & 0x1fff != 0",
      "ip[2:2] > 576",
      "ip[0] & 0xf > 5",
      "ip and tcp[20:4] = 0x47455420",
      // variable offsets: the TCP payload after the options
      "tcp[((tcp[12]&0xf0)>>2):4] = 0x47455420",
      // arithmetic, with K and with X
      "ip[2:2] - ((ip[0]&0xf)<<2) > 100",
      "tcp[12]/4 > 20",
      "ip[1] % 4 = 0",
      "ip[8] * 2 > 100",
      "ip[8] - 10 > 200",
      "-ip[1] & 0xff > 100",
      "len - ip[0] > 50",
      "ip[1] + ip[8] > 300",
      "ip[1] * ip[8] > 10000",
      "ip[2:2] / (ip[8] & 3) > 200",  // X may be 0: no match
      "ip[1] % (ip[8] & 3) = 1",      // X may be 0: no match
      "ip[1] & ip[8] > 0x40",
      "ip[1] | ip[8] > 0xf0",
      "ip[1] ^ ip[8] < 0x10",
      "ip[8] << (ip[1] & 0x3f) > 0x10000",  // shifts by 32 or more give 0
      "ip[2:2] >> (ip[1] & 0x3f) > 3",
  };
  return kExpressions;
}

struct Packet {
  std::vector<uint8_t> bytes;  // the bytes a filter may read (caplen)
  uint32_t wirelen = 0;        // the packet's length (`len`); >= bytes.size()
};

// Random packets, reproducible from the seed.
class PacketGen {
 public:
  // min_len: the shortest packet (BPF_PROG_TEST_RUN wants an Ethernet header: 14).
  // snapped: some packets are cut short of their wire length (caplen < len), as by a snapshot
  // length or the non-linear part of an skb; otherwise caplen == len.
  PacketGen(uint32_t seed, size_t min_len, bool snapped)
      : rng_(seed), min_len_(min_len), snapped_(snapped) {}

  Packet next() {
    std::vector<uint8_t> p;
    ethernet(p);
    Packet out;
    out.wirelen = static_cast<uint32_t>(p.size());
    if (chance(25)) p.resize(range(std::min(shortest(p), p.size()), p.size()));
    if (!snapped_ || chance(50)) out.wirelen = static_cast<uint32_t>(p.size());
    out.bytes = std::move(p);
    return out;
  }

 private:
  // The shortest truncation of `p`: min_len_, and with min_len_ >= 14 (BPF_PROG_TEST_RUN) the
  // whole IPv4 or IPv6 header after the Ethernet header: the kernel refuses shorter ones.
  size_t shortest(const std::vector<uint8_t>& p) const {
    if (min_len_ < 14) return min_len_;
    uint32_t type = uint32_t{p[12]} << 8 | p[13];
    return type == 0x0800 ? 34 : type == 0x86dd ? 54 : min_len_;
  }

  // ---------------------------------------------------------------- randomness
  uint32_t u32() { return static_cast<uint32_t>(rng_()); }
  uint8_t byte() { return static_cast<uint8_t>(rng_()); }
  // A uniform value in [lo, hi].
  size_t range(size_t lo, size_t hi) { return std::uniform_int_distribution<size_t>(lo, hi)(rng_); }
  bool chance(int percent) { return range(0, 99) < static_cast<size_t>(percent); }
  template <typename T, size_t N>
  T pick(const std::array<T, N>& pool) {
    return pool[range(0, N - 1)];
  }

  // ---------------------------------------------------------------- writing fields
  static void put16(std::vector<uint8_t>& p, uint32_t v) {
    p.push_back(static_cast<uint8_t>(v >> 8));
    p.push_back(static_cast<uint8_t>(v));
  }
  static void put32(std::vector<uint8_t>& p, uint32_t v) {
    put16(p, v >> 16);
    put16(p, v & 0xffff);
  }
  static void set16(std::vector<uint8_t>& p, size_t at, uint32_t v) {
    p[at] = static_cast<uint8_t>(v >> 8);
    p[at + 1] = static_cast<uint8_t>(v);
  }
  void random_bytes(std::vector<uint8_t>& p, size_t n) {
    size_t at = p.size();
    p.resize(at + n);
    for (size_t i = 0; i < n; i += 4) {
      uint32_t r = u32();
      std::memcpy(&p[at + i], &r, std::min<size_t>(4, n - i));
    }
  }

  // ---------------------------------------------------------------- pools
  void mac(std::vector<uint8_t>& p) {
    static constexpr std::array<std::array<uint8_t, 6>, 4> kMacs = {{
        {0x02, 0, 0, 0, 0, 0x01},
        {0x02, 0, 0, 0, 0, 0x02},
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
        {0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb},
    }};
    if (chance(20)) return random_bytes(p, 6);
    const auto& m = pick(kMacs);
    p.insert(p.end(), m.begin(), m.end());
  }
  void ip4(std::vector<uint8_t>& p) {
    static constexpr std::array<uint32_t, 6> kAddrs = {
        0x0a410002,  // 10.65.0.2
        0x0a410003,  // 10.65.0.3
        0x0a410107,  // 10.65.1.7
        0x0a420002,  // 10.66.0.2
        0xc0a80101,  // 192.168.1.1
        0xe00000fb,  // 224.0.0.251
    };
    put32(p, chance(15) ? u32() : pick(kAddrs));
  }
  void ip6(std::vector<uint8_t>& p) {
    static constexpr std::array<uint32_t, 3> kPrefixes = {0xfd000000, 0x20010db8, 0xfe800000};
    put32(p, chance(15) ? u32() : pick(kPrefixes));
    put32(p, chance(70) ? 0 : u32());
    put32(p, 0);
    put32(p, chance(70) ? range(1, 3) : u32());
  }
  uint16_t port() {
    static constexpr std::array<uint16_t, 12> kPorts = {80,   80,   80,   53,   123,  443,
                                                       7999, 8000, 8050, 8100, 8101, 40000};
    return chance(15) ? static_cast<uint16_t>(u32()) : pick(kPorts);
  }

  // ---------------------------------------------------------------- layers
  void ethernet(std::vector<uint8_t>& p) {
    mac(p);
    mac(p);
    size_t kind = range(0, 99);
    if (kind >= 86 && kind < 94) {  // 802.1Q (VLAN 10 or 20, or any) over IPv4
      put16(p, 0x8100);
      put16(p, (byte() & 0xe0u) << 8 | (chance(80) ? (chance(50) ? 10 : 20) : range(0, 4095)));
    }
    if (kind < 55 || (kind >= 86 && kind < 94)) {
      put16(p, 0x0800);
      return ipv4(p);
    }
    if (kind < 70) {
      put16(p, 0x86dd);
      return ipv6(p);
    }
    if (kind < 78) {
      put16(p, 0x0806);
      return random_bytes(p, 28);  // an ARP body: no expression looks inside
    }
    put16(p, chance(50) ? 0x88cc : u32() & 0xffff);
    random_bytes(p, range(0, 80));
  }

  void ipv4(std::vector<uint8_t>& p) {
    size_t start = p.size();
    size_t ihl = chance(75) ? 5 : range(0, 15);  // 0-4: a broken header, read as it is
    uint32_t version = chance(5) ? byte() & 0xf0u : 0x40;  // filters must not assume 4
    p.push_back(static_cast<uint8_t>(version | ihl));
    p.push_back(byte());  // TOS
    put16(p, 0);          // total length, set below
    put16(p, u32());      // id
    put16(p, fragment());
    p.push_back(byte());  // TTL
    uint8_t proto = ip_proto();
    p.push_back(proto);
    put16(p, u32());  // checksum: never checked
    ip4(p);
    ip4(p);
    if (ihl > 5) random_bytes(p, (ihl - 5) * 4);
    transport(p, proto);
    set16(p, start + 2, chance(80) ? p.size() - start : u32());
  }

  uint32_t fragment() {
    if (chance(60)) return 0;
    if (chance(40)) return 0x4000;                                   // DF
    if (chance(40)) return 0x2000;                                   // MF, first fragment
    return (chance(50) ? 0x2000 : 0) | static_cast<uint32_t>(range(1, 0x1fff));  // later ones
  }

  uint8_t ip_proto() {
    static constexpr std::array<uint8_t, 8> kProtos = {6, 6, 6, 17, 17, 17, 1, 47};
    return chance(8) ? byte() : pick(kProtos);
  }

  void ipv6(std::vector<uint8_t>& p) {
    size_t start = p.size();
    put32(p, 0x60000000 | (u32() & 0x0fffffff));
    put16(p, 0);  // payload length, set below
    static constexpr std::array<uint8_t, 6> kNext = {6, 6, 17, 58, 58, 44};
    uint8_t next = chance(10) ? byte() : pick(kNext);
    p.push_back(next);
    p.push_back(byte());  // hop limit
    ip6(p);
    ip6(p);
    if (next == 44) {  // a fragment header, then the transport header
      next = chance(50) ? 58 : 6;
      p.push_back(next);
      p.push_back(0);
      put16(p, u32() & 0xfff9);
      put32(p, u32());
    }
    transport(p, next);
    set16(p, start + 4, p.size() - start - 40);
  }

  void transport(std::vector<uint8_t>& p, uint8_t proto) {
    if (proto == 6) return tcp(p);
    if (proto == 17) return udp(p);
    if (proto == 1 || proto == 58) {
      static constexpr std::array<uint8_t, 4> kTypes = {0, 8, 3, 128};
      p.push_back(pick(kTypes));
      random_bytes(p, 7);
    }
    payload(p);
  }

  void tcp(std::vector<uint8_t>& p) {
    put16(p, port());
    put16(p, port());
    put32(p, u32());                               // seq
    put32(p, u32());                               // ack
    size_t doff = chance(75) ? 5 : range(0, 15);   // 0-4: a broken header
    p.push_back(static_cast<uint8_t>(doff << 4));
    static constexpr std::array<uint8_t, 7> kFlags = {0x02, 0x02, 0x12, 0x10, 0x18, 0x11, 0x04};
    p.push_back(chance(15) ? byte() : pick(kFlags));
    put16(p, u32());  // window
    put32(p, u32());  // checksum, urgent pointer
    if (doff > 5) random_bytes(p, (doff - 5) * 4);
    payload(p);
  }

  void udp(std::vector<uint8_t>& p) {
    size_t start = p.size();
    put16(p, port());
    put16(p, port());
    put32(p, 0);  // length, checksum
    payload(p);
    set16(p, start + 4, p.size() - start);
  }

  // Some start like an HTTP request; lengths spread across the size expressions' thresholds.
  // Random bytes only at the start (the expressions read no further; it keeps the generator
  // from dominating the tests' time under the sanitizers).
  void payload(std::vector<uint8_t>& p) {
    size_t n = chance(30) ? range(0, 16) : chance(60) ? range(17, 200) : range(200, 1400);
    if (n >= 4 && chance(30)) {
      for (char c : {'G', 'E', 'T', ' '}) p.push_back(static_cast<uint8_t>(c));
      n -= 4;
    }
    size_t head = std::min<size_t>(n, 16);
    random_bytes(p, head);
    p.resize(p.size() + n - head, byte());
  }

  std::mt19937 rng_;
  size_t min_len_;
  bool snapped_;
};

// Expressions with scratch memory, variable offsets, division and shifts by X, for
// convention_program.
inline const std::vector<std::string>& convention_expressions() {
  static const std::vector<std::string> kExpressions = {
      "ip[2:2] - ((ip[0]&0xf)<<2) > 100",        "tcp[((tcp[12]&0xf0)>>2):4] = 0x47455420",
      "ip[2:2] / (ip[8] & 3) > 200",             "len - ip[0] > 50",
      "ip[8] << (ip[1] & 0x3f) > 0x10000",       "host 10.65.0.2 and tcp port 80",
  };
  return kExpressions;
}

// Returned by convention_program when emit_cbpf changed what its convention leaves alone.
inline constexpr int kConventionBroken = 99;

// `prog` translated with registers and stack other than the defaults (ctx in r6; data r7,
// data_end r8, A r9, X r0, tmp r2; M[] at fp-128), in a program that checks at both exits what
// the convention promises to leave alone: r3, r4, r5 and the stack outside M[] (a canary at
// fp-8). Returns 1 (match), 0 (no match) or kConventionBroken.
inline Result<polprog::Program> convention_program(const std::vector<polprog::CbpfInsn>& prog,
                                                   const std::string& expr) {
  using namespace polprog;  // NOLINT(google-build-using-namespace): registers
  Assembler a("convention");
  Label match = a.new_label("match"), no_match = a.new_label("no_match");
  Label check = a.new_label("check"), broken = a.new_label("broken");
  a.mov(R6, R1);
  a.mov(R3, 100);
  a.mov(R4, 200);
  a.mov(R5, 300);
  a.st(Size::U64, R10, -8, 0x1234);
  CbpfRegs regs{.ctx = R6, .data = R7, .data_end = R8, .a = R9, .x = R0, .tmp = R2, .mem_off = -128};
  if (auto s = emit_cbpf(a, prog, regs, match, no_match, expr); !s.ok()) return s.error();
  a.bind(match);
  a.mov(R1, 1);
  a.ja(check);
  a.bind(no_match);
  a.mov(R1, 0);
  a.bind(check);
  a.jne(R3, 100, broken);
  a.jne(R4, 200, broken);
  a.jne(R5, 300, broken);
  a.ldx(Size::U64, R2, R10, -8);
  a.jne(R2, 0x1234, broken);
  a.mov(R0, R1);
  a.exit();
  a.bind(broken);
  a.mov(R0, kConventionBroken);
  a.exit();
  return a.assemble();
}

// "0a 41 00 02 ..." for failure messages.
inline std::string hex(const std::vector<uint8_t>& bytes) {
  static constexpr const char* kDigits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < bytes.size(); i++) {
    if (i) s += i % 16 ? ' ' : '\n';
    s += kDigits[bytes[i] >> 4];
    s += kDigits[bytes[i] & 0xf];
  }
  return s;
}

}  // namespace weir::pcap_corpus
