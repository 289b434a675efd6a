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

std::string key_bytes(const weir_ct_key& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

}  // namespace

Result<ConntrackScanner::Stats> ConntrackScanner::scan(const model::ConntrackTimeouts& timeouts,
                                                       const calc::BackendIndex* backends,
                                                       uint64_t now_ns) {
  auto entries = ct_.dump();
  if (!entries) return entries.error().wrap("conntrack scan");
  std::unordered_map<std::string, size_t> index;
  index.reserve(entries->size());
  for (size_t i = 0; i < entries->size(); i++) index[key_bytes((*entries)[i].first)] = i;

  Stats stats;
  stats.scanned = entries->size();
  std::vector<weir_ct_key> doomed;
  for (const auto& [key, val] : *entries) {
    uint64_t last = val.last_seen_ns;
    auto partner = calc::ct_partner_key(key, val);
    if (partner) {
      auto it = index.find(key_bytes(*partner));
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
