#include "dataplane/ct_scanner.h"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

namespace weir::dataplane {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

// A conntrack key as two integers (it is 16 bytes, padding zeroed by the datapath and by
// ct_make_key), for a hash index without an allocation per entry.
struct Key128 {
  uint64_t lo = 0, hi = 0;
  bool operator==(const Key128&) const = default;
};
static_assert(sizeof(weir_ct_key) == sizeof(Key128));

Key128 key128(const weir_ct_key& k) {
  uint64_t w[2];
  std::memcpy(w, &k, sizeof(k));
  return Key128{w[0], w[1]};
}

struct Key128Hash {
  size_t operator()(const Key128& k) const {
    uint64_t h = (k.lo ^ (k.hi * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
    return static_cast<size_t>(h ^ (h >> 31));
  }
};

}  // namespace

Result<ConntrackScanner::Stats> ConntrackScanner::scan(const model::ConntrackTimeouts& timeouts,
                                                       const calc::BackendIndex* backends,
                                                       uint64_t now_ns) {
  auto entries = ct_.dump();
  if (!entries) return entries.error().wrap("conntrack scan");
  std::unordered_map<Key128, size_t, Key128Hash> index;
  index.reserve(entries->size());
  for (size_t i = 0; i < entries->size(); i++) index.emplace(key128((*entries)[i].first), i);

  Stats stats;
  stats.scanned = entries->size();
  std::vector<weir_ct_key> doomed;
  for (const auto& [key, val] : *entries) {
    uint64_t last = val.last_seen_ns;
    auto partner = calc::ct_partner_key(key, val);
    if (partner) {
      auto it = index.find(key128(*partner));
      if (it != index.end()) last = std::max<uint64_t>(last, (*entries)[it->second].second.last_seen_ns);
    }
    auto verdict = calc::ct_decide(key, val, last, now_ns, timeouts, backends);
    if (verdict == calc::CtVerdict::Keep) continue;
    (verdict == calc::CtVerdict::Expired ? stats.expired : stats.stale_backend)++;
    doomed.push_back(key);
    // The two halves of a NAT pair go together (deleting one twice is harmless).
    if (partner) doomed.push_back(*partner);
  }
  for (const auto& k : doomed) {
    auto r = ct_.remove(k);
    if (!r) return r.error().wrap("conntrack scan: deleting entry");
  }
  return stats;
}

}  // namespace weir::dataplane
