// ConntrackScanner: expires conntrack entries by their state's timeout and removes NAT flows
// whose backend is no longer a backend of their frontend. The decisions are calc's
// (calc/conntrack.h); this class only walks the map and deletes.
#pragma once

#include <cstdint>

#include "calc/conntrack.h"
#include "maps/weir_maps.h"
#include "model/resources.h"
#include "util/result.h"

namespace weir::dataplane {

// CLOCK_MONOTONIC in ns: the clock bpf_ktime_get_ns() reads.
uint64_t monotonic_ns();

class ConntrackScanner {
 public:
  explicit ConntrackScanner(maps::ConntrackMap& ct) : ct_(ct) {}

  struct Stats {
    size_t scanned = 0;
    size_t expired = 0;        // entries removed for idleness
    size_t stale_backend = 0;  // entries removed because their backend went away
  };

  // One pass over the map. A NAT pair (FWD + REV) is alive while either half is, and both
  // halves go together. `backends` may be null (no valid service state yet): then only
  // timeouts apply.
  Result<Stats> scan(const model::ConntrackTimeouts& timeouts, const calc::BackendIndex* backends,
                     uint64_t now_ns);

 private:
  maps::ConntrackMap& ct_;
};

}  // namespace weir::dataplane
