// Small value types for addresses and protocols used by the model and calc layers.
//
// Byte order: every Ipv4 holds its address in HOST byte order (10.0.0.1 == 0x0a000001), so that
// comparison and sorting follow the numeric order of the address. The dataplane converts to
// network order (Ipv4::network_order()) when it writes BPF map keys and values. Ports in the
// model and calc are host-order uint16_t as well.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weir::model {

// An IPv4 address, host byte order.
struct Ipv4 {
  uint32_t value = 0;  // host order: 10.0.0.1 == 0x0a000001

  // Parses a dotted quad "a.b.c.d" strictly: exactly four decimal parts 0..255, no leading zeros
  // (as Go's net.ParseIP since 1.17), no whitespace, no prefix. nullopt when invalid.
  static std::optional<Ipv4> parse(std::string_view s);
  // Builds from a network-order value as read from a BPF map or packet.
  static Ipv4 from_network_order(uint32_t be);
  // The address in network byte order, for BPF map keys and values.
  uint32_t network_order() const;
  // "a.b.c.d".
  std::string str() const;

  auto operator<=>(const Ipv4&) const = default;
};

// An IPv4 prefix: address (host order) and prefix length 0..32.
struct Cidr {
  Ipv4 addr;
  uint8_t prefix_len = 32;

  // "a.b.c.d/n".
  std::string str() const;
  // The prefix's netmask, host order (0 for /0, all ones for /32).
  uint32_t mask() const { return netmask(prefix_len); }
  static uint32_t netmask(unsigned len) {
    return len == 0 ? 0 : len >= 32 ? 0xffffffffu : ~(0xffffffffu >> len);
  }
  // True when `a` is in this prefix.
  bool contains(Ipv4 a) const { return (a.value & mask()) == (addr.value & mask()); }
  // True when the two prefixes share an address.
  bool overlaps(const Cidr& o) const { return contains(o.addr) || o.contains(addr); }
  // The prefix's first and last address (network and broadcast address for prefixes up to /30).
  Ipv4 first() const { return Ipv4{addr.value & mask()}; }
  Ipv4 last() const { return Ipv4{(addr.value & mask()) | ~mask()}; }
  auto operator<=>(const Cidr&) const = default;
};

// An address block that is no unicast destination a service may take: 0.0.0.0/8 ("this
// network", with the unspecified 0.0.0.0), loopback 127.0.0.0/8, link-local 169.254.0.0/16,
// multicast 224.0.0.0/4 and the limited broadcast 255.255.255.255.
struct SpecialBlock {
  Cidr cidr;
  std::string_view what;  // "a loopback address", ...
};
// The special block `a` is in, or nullptr for an ordinary address.
const SpecialBlock* special_block(Ipv4 a);
// The first special block `c` overlaps, or nullptr.
const SpecialBlock* special_block(const Cidr& c);

// An Ethernet MAC address.
struct Mac {
  std::array<uint8_t, 6> bytes{};

  // Parses "aa:bb:cc:dd:ee:ff" (hex digits in either case; ':' or '-' separators, the same
  // separator throughout). Only the syntax is checked here; see is_unicast().
  static std::optional<Mac> parse(std::string_view s);
  // Lowercase "aa:bb:cc:dd:ee:ff".
  std::string str() const;
  // True for a usable unicast station address: not all-zero, multicast bit (bit 0 of the first
  // byte) clear.
  bool is_unicast() const;
  auto operator<=>(const Mac&) const = default;
};

// L4 protocols a Service/EndpointSlice port may name. The values are the IP protocol numbers.
enum class Protocol : uint8_t { TCP = 6, UDP = 17, SCTP = 132 };

// "TCP", "UDP", "SCTP".
std::string_view to_string(Protocol p);
// Parses the Kubernetes spelling (case-sensitive: "TCP", "UDP", "SCTP"); nullopt otherwise.
std::optional<Protocol> parse_protocol(std::string_view s);
// IP protocol number (6, 17, 132).
inline uint8_t ip_proto(Protocol p) { return static_cast<uint8_t>(p); }

}  // namespace weir::model
