// ServiceSyncer: programs the NAT frontend and backend maps from calc's frontends.
//
// Every change of a frontend's backends is written under a FRESH service id: the backends
// (id, 0..n-1) are written first, then the frontend is switched to the new id and count in one
// map update. The old id's backends are RETIRED, not deleted: a packet that read the old
// frontend a moment before the switch may still be about to look up one of them, so they are
// deleted at the start of the next apply()/apply_changes() (a sync later, as the policy manager
// frees replaced jump slots) that comes at least `retire_grace` (default 1 s) after the switch:
// the agent never syncs faster than its minSyncPeriod, but a caller that syncs back to back
// (a test, a burst) must not shrink a packet's window to one sync's few microseconds, which a
// vCPU preempted between the two lookups can outlast. A removed frontend's backends are retired
// the same way. A packet
// therefore always finds a complete, consistent backend list, old or new. Established flows do
// not depend on ids (their conntrack entries carry the backend address), so they are
// untouched; flows to backends that were removed are removed by the conntrack scanner.
// Memory and time stay bounded: the retired list holds only the ids replaced or removed since
// the previous sync or within the grace, and deleting them costs what writing them cost.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "calc/calc.h"
#include "calc/diff.h"
#include "maps/table.h"
#include "util/result.h"

namespace weir::dataplane {

class ServiceSyncer {
 public:
  static constexpr std::chrono::milliseconds kRetireGrace{1000};
  // Writes m.nat_fe and m.nat_be (kernel maps, or fakes in unit tests).
  explicit ServiceSyncer(maps::CoreTables m, std::chrono::nanoseconds retire_grace = kRetireGrace)
      : maps_(m), grace_(retire_grace) {}

  // Reads what is already programmed (a previous agent's work) so that apply() changes only
  // what differs: a restart with unchanged input writes nothing. Backend entries that no
  // frontend refers to (the previous agent's retired ones, or left by a crash between two
  // writes) are retired: deleted at the next apply()/apply_changes(), not now.
  Status adopt();

  // Makes the maps hold exactly `desired`. Frontends whose backends (as a set), local count
  // and affinity are unchanged are not touched. A failure on one frontend (e.g. a full map)
  // is logged with the service named and does not stop the others; the returned Status then
  // lists every failure.
  Status apply(const std::vector<calc::Frontend>& desired);

  // Applies a diff of calc's frontends (calc::update_service_frontends()) without looking at
  // the others: removals first, then additions and updates, with apply()'s rules per frontend.
  // A later apply() with the full set finds nothing left to do.
  Status apply_changes(const calc::SetDiff<calc::FrontendKey, calc::Frontend>& d);

  struct Stats {
    size_t written = 0;    // frontends created or re-pointed
    size_t removed = 0;    // frontends deleted
    size_t unchanged = 0;  // frontends left as they were
  };
  const Stats& last_stats() const { return stats_; }
  size_t programmed() const { return programmed_.size(); }
  // Service ids whose backends wait for the next sync to be deleted.
  size_t retired() const { return retired_.size(); }

 private:
  struct Programmed {
    uint32_t svc_id = 0;
    std::vector<calc::Backend> backends;  // in ordinal order
    uint32_t local = 0;
    uint32_t affinity_timeout = 0;
  };

  void apply_one(const calc::Frontend& fe, std::vector<std::string>& failures);
  bool remove_one(const calc::FrontendKey& key, const Programmed& p,
                  std::vector<std::string>& failures);
  Status write(const calc::Frontend& fe);
  Status remove(const calc::FrontendKey& key, const Programmed& p);
  Status delete_backends(uint32_t svc_id, size_t count);
  void retire(const Programmed& p);
  void delete_retired();
  uint32_t allocate_id();

  maps::CoreTables maps_;
  std::map<calc::FrontendKey, Programmed> programmed_;
  struct Retired {
    uint32_t svc_id = 0;
    uint32_t count = 0;                           // backends (svc_id, 0..count-1)
    std::chrono::steady_clock::time_point since;  // when its frontend left the id
  };
  // Oldest first (an id is retired once: a frontend only ever moves to a fresh id), so a sync
  // deletes from the front and stops at the first one still within the grace.
  std::deque<Retired> retired_;
  std::chrono::nanoseconds grace_;
  uint32_t next_id_ = 1;
  Stats stats_;
};

// Map key/value conversions (host-order calc types <-> network-order map types).
weir_nat_fe_key to_map_key(const calc::FrontendKey& k);
calc::FrontendKey from_map_key(const weir_nat_fe_key& k);

}  // namespace weir::dataplane
