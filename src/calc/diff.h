// Diff of two calc outputs, so the dataplane applies changes incrementally.
#pragma once

#include <string>
#include <set>
#include <vector>

#include "calc/calc.h"

namespace weir::calc {

// Changes of one keyed collection from `before` to `after`.
template <typename Key, typename Value>
struct SetDiff {
  std::vector<Value> added;    // key only in after (sorted by key)
  std::vector<Value> updated;  // key in both, value differs: the new value (sorted by key)
  std::vector<Key> removed;    // key only in before (sorted)

  bool empty() const { return added.empty() && updated.empty() && removed.empty(); }
  size_t size() const { return added.size() + updated.size() + removed.size(); }
};

struct Diff {
  SetDiff<FrontendKey, Frontend> frontends;    // keyed by (vip, port, proto)
  SetDiff<model::Cidr, Route> routes;          // keyed by cidr
  SetDiff<std::string, Interface> interfaces;  // keyed by name

  bool empty() const { return frontends.empty() && routes.empty() && interfaces.empty(); }
  // "frontends +1 ~0 -2, routes +0 ~0 -0, interfaces +1 ~0 -0" for logs.
  std::string summary() const;
};

// What to add/update/remove to go from `before` to `after`. Both must be sorted by key, as
// compute() returns them. Warnings are not diffed.
Diff diff(const Output& before, const Output& after);

// The same, per collection.
SetDiff<FrontendKey, Frontend> diff_frontends(const std::vector<Frontend>& before,
                                              const std::vector<Frontend>& after);
SetDiff<model::Cidr, Route> diff_routes(const std::vector<Route>& before,
                                        const std::vector<Route>& after);
SetDiff<std::string, Interface> diff_interfaces(const std::vector<Interface>& before,
                                                const std::vector<Interface>& after);

// Incremental service calc: replaces, in `frontends` (sorted by key, as compute_frontends()
// returns them for `snap` before the change), the frontends of the services named in
// `services` ("ns/name") by what compute_frontends() gives for them in `snap` now, and returns
// what changed. Valid when nothing but those services and their EndpointSlices changed (the
// node's workloads included: `local` is local_workload_ips() of snap). Costs one pass over the
// snapshot's services, slices and the frontends, plus the changed services' own work.
SetDiff<FrontendKey, Frontend> update_service_frontends(std::vector<Frontend>& frontends,
                                                        const model::Snapshot& snap,
                                                        const std::vector<std::string>& services,
                                                        const std::set<Ipv4>& local,
                                                        std::vector<model::Warning>* warnings = nullptr);

}  // namespace weir::calc
