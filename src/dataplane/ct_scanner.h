// ConntrackScanner: expires conntrack entries by their state's timeout and removes NAT flows
// whose backend is no longer a backend of their frontend. The decisions are calc's
// (calc/conntrack.h); this class only walks the map and deletes.
//
// Cost: the map is streamed in chunks of kChunk entries (BPF_MAP_LOOKUP_BATCH into buffers
// reused from chunk to chunk), so memory stays O(kChunk) whatever the table's size, and nothing
// is allocated per entry. A NAT entry whose own last_seen says "expired" costs one lookup of
// its twin (the pair lives while either half does); everything else is decided from the chunk.
// Figures: bench/README.md (weir_ct_scan_bench).
#pragma once

#include <cstdint>
#include <functional>

#include "calc/conntrack.h"
#include "dataplane/flow_events.h"
#include "maps/table.h"
#include "model/resources.h"
#include "util/result.h"

namespace weir::dataplane {

// CLOCK_MONOTONIC in ns: the clock bpf_ktime_get_ns() reads.
uint64_t monotonic_ns();

class ConntrackScanner {
 public:
  static constexpr uint32_t kChunk = 4096;

  // Walks and deletes in m.ct; adds its deletions to m.ct_stats (index WEIR_CT_STATS_AGENT).
  explicit ConntrackScanner(maps::CoreTables m) : maps_(m) {}

  struct Stats {
    size_t scanned = 0;        // entries seen by the walk
    size_t kept = 0;           // of those, left in place: the table's occupancy after the pass
                               // (entries created meanwhile in walked buckets aside)
    size_t expired = 0;        // entries removed for idleness
    size_t stale_backend = 0;  // entries removed because their backend went away
    size_t deleted() const { return expired + stale_backend; }
  };

  // One pass over the map. A NAT pair (FWD + REV) is alive while either half is, and both
  // halves go together. `backends` may be null (no valid service state yet): then only
  // timeouts apply. The entries removed are added to weir_ct_stats1[WEIR_CT_STATS_AGENT].deleted
  // (an Error if that fails; the entries are removed anyway).
  Result<Stats> scan(const model::ConntrackTimeouts& timeouts, const calc::BackendIndex* backends,
                     uint64_t now_ns);

  // Called once per flow the scan removes (a NAT pair once, from its FWD half when it has one),
  // before the deletion, with the entries as they were: the flow records' "flow end"
  // (docs/observe.md). Unset: nothing is reported (and no extra lookup is made).
  using FlowEndSink = std::function<void(const CtRemoved&)>;
  void set_flow_end_sink(FlowEndSink sink) { flow_end_ = std::move(sink); }

 private:
  struct Pass;
  Status judge(Pass& p, const weir_ct_key& key, const weir_ct_val& val) const;
  Status remove_doomed(Pass& p);
  Status record_deletions(uint64_t n);

  maps::CoreTables maps_;
  FlowEndSink flow_end_;
};

}  // namespace weir::dataplane
