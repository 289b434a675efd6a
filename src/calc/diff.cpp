#include "calc/diff.h"

#include <fmt/format.h>

namespace weir::calc {

namespace {

// Merge of two key-sorted vectors.
template <typename Key, typename Value, typename KeyOf>
SetDiff<Key, Value> diff_sorted(const std::vector<Value>& before, const std::vector<Value>& after,
                                KeyOf key_of) {
  SetDiff<Key, Value> d;
  size_t i = 0, j = 0;
  while (i < before.size() || j < after.size()) {
    if (j == after.size() || (i < before.size() && key_of(before[i]) < key_of(after[j]))) {
      d.removed.push_back(key_of(before[i]));
      ++i;
    } else if (i == before.size() || key_of(after[j]) < key_of(before[i])) {
      d.added.push_back(after[j]);
      ++j;
    } else {
      if (!(before[i] == after[j])) d.updated.push_back(after[j]);
      ++i;
      ++j;
    }
  }
  return d;
}

}  // namespace

SetDiff<FrontendKey, Frontend> diff_frontends(const std::vector<Frontend>& before,
                                              const std::vector<Frontend>& after) {
  return diff_sorted<FrontendKey, Frontend>(
      before, after, [](const Frontend& f) -> const FrontendKey& { return f.key; });
}

SetDiff<model::Cidr, Route> diff_routes(const std::vector<Route>& before,
                                        const std::vector<Route>& after) {
  return diff_sorted<model::Cidr, Route>(
      before, after, [](const Route& r) -> const model::Cidr& { return r.cidr; });
}

SetDiff<std::string, Interface> diff_interfaces(const std::vector<Interface>& before,
                                                const std::vector<Interface>& after) {
  return diff_sorted<std::string, Interface>(
      before, after, [](const Interface& i) -> const std::string& { return i.name; });
}

Diff diff(const Output& before, const Output& after) {
  Diff d;
  d.frontends = diff_frontends(before.frontends, after.frontends);
  d.routes = diff_routes(before.routes, after.routes);
  d.interfaces = diff_interfaces(before.interfaces, after.interfaces);
  return d;
}

std::string Diff::summary() const {
  auto part = [](std::string_view name, const auto& s) {
    return fmt::format("{} +{} ~{} -{}", name, s.added.size(), s.updated.size(), s.removed.size());
  };
  return fmt::format("{}, {}, {}", part("frontends", frontends), part("routes", routes),
                     part("interfaces", interfaces));
}

}  // namespace weir::calc
