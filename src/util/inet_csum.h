// The Internet checksum (RFC 1071) and big-endian stores, for the packets weir builds in
// userspace (the lab's SYN flood, `weir bpf trace`).
#pragma once

#include <cstddef>
#include <cstdint>

namespace weir {

// One's complement sum of 16-bit big-endian words added to `sum`, not yet folded or inverted
// (an odd last byte counts as its word's high byte).
inline uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i]) << 8 | p[i + 1];
  if (n % 2) sum += static_cast<uint32_t>(p[n - 1]) << 8;
  return sum;
}

// The checksum field's value for a running sum: folded to 16 bits and inverted.
inline uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Stores `v` big-endian at `p`.
inline void put_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

}  // namespace weir
