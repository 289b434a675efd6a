// Diff of two calc outputs, so the dataplane applies changes incrementally.
#pragma once

#include <string>
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

}  // namespace weir::calc
