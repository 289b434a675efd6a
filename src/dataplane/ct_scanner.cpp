#include "dataplane/ct_scanner.h"

#include <algorithm>
#include <cstddef>
#include <ctime>
#include <optional>
#include <utility>
#include <vector>

namespace weir::dataplane {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The inputs and running totals of one scan.
struct ConntrackScanner::Pass {
  const model::ConntrackTimeouts& timeouts;
  const calc::BackendIndex* backends;
  uint64_t now_ns;
  Stats stats;
  // Keys to delete at the end of the current chunk, by reason (reused: no allocation per entry).
  std::vector<weir_ct_key> expired, stale;
};

Result<ConntrackScanner::Stats> ConntrackScanner::scan(const model::ConntrackTimeouts& timeouts,
                                                       const calc::BackendIndex* backends,
                                                       uint64_t now_ns) {
  Pass p{timeouts, backends, now_ns, {}, {}, {}};
  p.expired.reserve(size_t{2} * kChunk);
  p.stale.reserve(size_t{2} * kChunk);
  auto st = maps_.ct.for_each_chunk(
      [&](const weir_ct_key* keys, const weir_ct_val* vals, size_t n) -> Status {
        p.stats.scanned += n;
        for (size_t i = 0; i < n; i++) WEIR_TRY(judge(p, keys[i], vals[i]));
        return remove_doomed(p);
      },
      kChunk);
  if (!st) return st.error().wrap("conntrack scan");
  if (auto r = record_deletions(p.stats.deleted()); !r) return r.error();
  return p.stats;
}

// Deletes the entry (and its NAT twin) when calc says so. The twin's last_seen is read only when
// the entry's own says "expired": a pair lives while either half does.
Status ConntrackScanner::judge(Pass& p, const weir_ct_key& key, const weir_ct_val& val) const {
  auto decide = [&](uint64_t last) {
    return calc::ct_decide(key, val, last, p.now_ns, p.timeouts, p.backends);
  };
  auto verdict = decide(val.last_seen_ns);
  if (verdict == calc::CtVerdict::Keep) {
    p.stats.kept++;
    return {};
  }
  auto partner = calc::ct_partner_key(key, val);
  std::optional<weir_ct_val> twin;
  if (partner && (verdict == calc::CtVerdict::Expired || flow_end_)) {
    auto t = maps_.ct.lookup(*partner);
    if (!t) return t.error();
    twin = *t;
  }
  if (partner && verdict == calc::CtVerdict::Expired) {
    if (twin) verdict = decide(std::max<uint64_t>(val.last_seen_ns, twin->last_seen_ns));
    if (verdict == calc::CtVerdict::Keep) {
      p.stats.kept++;
      return {};
    }
  }
  // A pair is reported from its FWD half, or from its REV half when that is all there is.
  if (flow_end_ && (val.type != WEIR_CT_NAT_REV || !twin))
    flow_end_(CtRemoved{key, val, twin, verdict == calc::CtVerdict::StaleBackend});
  auto& doomed = verdict == calc::CtVerdict::Expired ? p.expired : p.stale;
  doomed.push_back(key);
  // The two halves of a NAT pair go together (the twin may be gone already, or listed twice
  // when both halves are in this chunk: a key already deleted is skipped).
  if (partner) doomed.push_back(*partner);
  return {};
}

// Deletes the chunk's doomed keys, a batch per reason, and counts what was really deleted.
Status ConntrackScanner::remove_doomed(Pass& p) {
  for (auto [keys, count] : {std::pair{&p.expired, &p.stats.expired}, std::pair{&p.stale, &p.stats.stale_backend}}) {
    if (keys->empty()) continue;
    auto n = maps_.ct.remove_batch(keys->data(), keys->size());
    if (!n) return n.error().wrap("deleting entries");
    *count += *n;
    keys->clear();
  }
  return {};
}

// The agent is the only writer of index WEIR_CT_STATS_AGENT: read, add to CPU 0's slot, write.
Status ConntrackScanner::record_deletions(uint64_t n) {
  if (n == 0) return {};
  auto cur = maps_.ct_stats.lookup(WEIR_CT_STATS_AGENT);
  if (!cur) return cur.error().wrap("conntrack scan: recording deletions");
  if (!*cur) return make_error("conntrack scan: map {} has no index {}", maps_.ct_stats.name(),
                               int(WEIR_CT_STATS_AGENT));
  (**cur)[0].deleted += n;
  auto st = maps_.ct_stats.update(WEIR_CT_STATS_AGENT, **cur);
  if (!st) return st.error().wrap("conntrack scan: recording deletions");
  return {};
}

}  // namespace weir::dataplane
