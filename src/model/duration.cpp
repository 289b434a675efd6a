#include "model/duration.h"

#include "model/validation.h"

#include <fmt/format.h>

#include <cstdint>
#include <limits>

namespace weir::model {

namespace {

constexpr uint64_t kNs = 1;
constexpr uint64_t kUs = 1000 * kNs;
constexpr uint64_t kMs = 1000 * kUs;
constexpr uint64_t kS = 1000 * kMs;
constexpr uint64_t kM = 60 * kS;
constexpr uint64_t kH = 60 * kM;

// Unit at the start of `s` (longest match), its length in bytes and its size in ns; 0 if none.
uint64_t match_unit(std::string_view s, size_t& len) {
  struct U {
    std::string_view name;
    uint64_t ns;
  };
  static constexpr U units[] = {
      {"ns", kNs},
      {"us", kUs},
      {"\xc2\xb5s", kUs} /* µs U+00B5 */,
      {"\xce\xbcs", kUs} /* μs U+03BC */,
      {"ms", kMs},
      {"s", kS},
      {"m", kM},
      {"h", kH},
  };
  // Try two-letter units before one-letter ones ("ms" before "m").
  for (const U& u : units) {
    if (s.substr(0, u.name.size()) == u.name && u.name.size() > 1) {
      len = u.name.size();
      return u.ns;
    }
  }
  for (const U& u : units) {
    if (s.substr(0, u.name.size()) == u.name) {
      len = u.name.size();
      return u.ns;
    }
  }
  return 0;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

Result<std::chrono::nanoseconds> parse_duration(std::string_view in) {
  auto fail = [&](std::string_view why) -> Error {
    return make_error("invalid duration \"{}\": {}", clip(in), why);
  };
  std::string_view s = in;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return fail("empty");
  // Total in ns as unsigned, checked against INT64_MAX (+1 when negative).
  const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (neg ? 1 : 0);
  uint64_t total = 0;
  while (!s.empty()) {
    if (!is_digit(s[0]) && s[0] != '.') return fail("expected a number");
    // Integer part.
    uint64_t whole = 0;
    bool overflow = false;
    size_t i = 0;
    size_t int_digits = 0;
    while (i < s.size() && is_digit(s[i])) {
      if (whole > (std::numeric_limits<uint64_t>::max() - 9) / 10)
        overflow = true;
      else
        whole = whole * 10 + static_cast<uint64_t>(s[i] - '0');
      ++i;
      ++int_digits;
    }
    // Fraction.
    uint64_t frac = 0;
    uint64_t scale = 1;
    size_t frac_digits = 0;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && is_digit(s[i])) {
        // Keep at most 18 fraction digits; further digits cannot change the ns value
        // (a unit is at most 3.6e12 ns).
        if (scale < 1000000000000000000ull) {
          frac = frac * 10 + static_cast<uint64_t>(s[i] - '0');
          scale *= 10;
        }
        ++i;
        ++frac_digits;
      }
    }
    if (int_digits == 0 && frac_digits == 0) return fail("expected a number");
    if (overflow) return fail("out of range");
    s.remove_prefix(i);
    size_t ulen = 0;
    uint64_t unit = match_unit(s, ulen);
    if (unit == 0) {
      if (s.empty() || is_digit(s[0]) || s[0] == '.')
        return fail("missing unit (expected one of ns, us, ms, s, m, h)");
      size_t end = 0;
      while (end < s.size() && !is_digit(s[end]) && s[end] != '.') ++end;
      return fail(fmt::format("unknown unit \"{}\" (expected one of ns, us, ms, s, m, h)",
                              clip(s.substr(0, end))));
    }
    s.remove_prefix(ulen);
    if (whole > limit / unit) return fail("out of range");
    uint64_t v = whole * unit;
    if (frac_digits > 0) {
      // frac/scale * unit, rounded down; unit <= 3.6e12 and frac < 1e18 could overflow 64 bits,
      // so use 128-bit arithmetic.
      unsigned __int128 f = static_cast<unsigned __int128>(frac) * unit / scale;
      v += static_cast<uint64_t>(f);
    }
    if (v > limit - total) return fail("out of range");
    total += v;
  }
  if (neg) {
    if (total == static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1)
      return std::chrono::nanoseconds(std::numeric_limits<int64_t>::min());
    return std::chrono::nanoseconds(-static_cast<int64_t>(total));
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

namespace {

// "<whole>[.<frac without trailing zeros>]" of v / unit.
std::string fixed(uint64_t v, uint64_t unit) {
  uint64_t whole = v / unit;
  uint64_t rem = v % unit;
  std::string out = std::to_string(whole);
  if (rem != 0) {
    std::string digits;
    uint64_t u = unit;
    while (u > 1) {
      u /= 10;
      digits.push_back(static_cast<char>('0' + (rem / u) % 10));
    }
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return out;
}

}  // namespace

std::string format_duration(std::chrono::nanoseconds d) {
  int64_t n = d.count();
  if (n == 0) return "0s";
  bool neg = n < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(n + 1)) + 1 : static_cast<uint64_t>(n);
  std::string out;
  if (u < kS) {
    if (u < kUs)
      out = std::to_string(u) + "ns";
    else if (u < kMs)
      out = fixed(u, kUs) + "\xc2\xb5s";
    else
      out = fixed(u, kMs) + "ms";
  } else {
    uint64_t h = u / kH;
    uint64_t m = (u % kH) / kM;
    uint64_t rest = u % kM;
    if (h > 0)
      out = fmt::format("{}h{}m", h, m);
    else if (m > 0)
      out = fmt::format("{}m", m);
    out += fixed(rest, kS) + "s";
  }
  return neg ? "-" + out : out;
}

}  // namespace weir::model
