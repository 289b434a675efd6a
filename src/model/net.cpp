#include "model/net.h"

#include <fmt/format.h>

#include <bit>

namespace weir::model {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

uint32_t bswap_if_little(uint32_t v) {
  if constexpr (std::endian::native == std::endian::little) return __builtin_bswap32(v);
  return v;
}

}  // namespace

std::optional<Ipv4> Ipv4::parse(std::string_view s) {
  uint32_t value = 0;
  size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (pos >= s.size() || s[pos] != '.') return std::nullopt;
      ++pos;
    }
    size_t start = pos;
    uint32_t octet = 0;
    while (pos < s.size() && is_digit(s[pos]) && pos - start < 3) {
      octet = octet * 10 + static_cast<uint32_t>(s[pos] - '0');
      ++pos;
    }
    size_t len = pos - start;
    if (len == 0 || octet > 255) return std::nullopt;
    if (len > 1 && s[start] == '0') return std::nullopt;  // leading zero: ambiguous (octal?)
    value = (value << 8) | octet;
  }
  if (pos != s.size()) return std::nullopt;
  return Ipv4{value};
}

Ipv4 Ipv4::from_network_order(uint32_t be) { return Ipv4{bswap_if_little(be)}; }

uint32_t Ipv4::network_order() const { return bswap_if_little(value); }

std::string Ipv4::str() const {
  return fmt::format("{}.{}.{}.{}", (value >> 24) & 0xff, (value >> 16) & 0xff, (value >> 8) & 0xff,
                     value & 0xff);
}

std::string Cidr::str() const { return fmt::format("{}/{}", addr.str(), prefix_len); }

namespace {

constexpr SpecialBlock kSpecialBlocks[] = {
    {Cidr{Ipv4{0x00000000}, 32}, "the unspecified address"},
    {Cidr{Ipv4{0x00000000}, 8}, "in \"this network\" (0.0.0.0/8)"},
    {Cidr{Ipv4{0x7f000000}, 8}, "a loopback address (127.0.0.0/8)"},
    {Cidr{Ipv4{0xa9fe0000}, 16}, "a link-local address (169.254.0.0/16)"},
    {Cidr{Ipv4{0xe0000000}, 4}, "a multicast address (224.0.0.0/4)"},
    {Cidr{Ipv4{0xffffffff}, 32}, "the broadcast address"},
};

}  // namespace

const SpecialBlock* special_block(Ipv4 a) {
  for (const auto& b : kSpecialBlocks)
    if (b.cidr.contains(a)) return &b;
  return nullptr;
}

const SpecialBlock* special_block(const Cidr& c) {
  for (const auto& b : kSpecialBlocks)
    if (b.cidr.overlaps(c)) return &b;
  return nullptr;
}

std::optional<Mac> Mac::parse(std::string_view s) {
  if (s.size() != 17) return std::nullopt;
  char sep = s[2];
  if (sep != ':' && sep != '-') return std::nullopt;
  Mac m;
  for (size_t i = 0; i < 6; ++i) {
    size_t p = i * 3;
    int hi = hex_value(s[p]);
    int lo = hex_value(s[p + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i < 5 && s[p + 2] != sep) return std::nullopt;
    m.bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return m;
}

std::string Mac::str() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2],
                     bytes[3], bytes[4], bytes[5]);
}

bool Mac::is_unicast() const {
  if ((bytes[0] & 1u) != 0) return false;
  for (uint8_t b : bytes)
    if (b != 0) return true;
  return false;
}

std::string_view to_string(Protocol p) {
  switch (p) {
    case Protocol::TCP:
      return "TCP";
    case Protocol::UDP:
      return "UDP";
    case Protocol::SCTP:
      return "SCTP";
  }
  return "?";
}

std::optional<Protocol> parse_protocol(std::string_view s) {
  if (s == "TCP") return Protocol::TCP;
  if (s == "UDP") return Protocol::UDP;
  if (s == "SCTP") return Protocol::SCTP;
  return std::nullopt;
}

}  // namespace weir::model
