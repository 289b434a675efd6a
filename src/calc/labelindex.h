// LabelIndex: the incremental map from selectors to IP sets.
//
// Policy rules name endpoints by selector; the dataplane matches addresses against IP sets (the
// ipsets LPM map, key = set id + CIDR). The index keeps, for each distinct selector (optionally
// paired with a namespace selector), the set of /32 addresses of the endpoints it selects, and
// records what changed so that the dataplane writes only deltas:
//
//   LabelIndex idx;
//   auto id = idx.add_selector(*parse_selector("app == 'web'"));  // refcounted, evaluated once
//   idx.update_endpoint("default/web-1", {{"app", "web"}}, {ip}, "default");
//   for (const SetChange& c : idx.take_changes()) { write c.added, delete c.removed }
//
// Set ids (docs/selectors.md): a selector alone has id fnv1a64(canonical) == Selector::id(); a
// (selector, namespace selector) pair has id fnv1a64(canonical + '\0' + ns canonical). Canonical
// texts never contain NUL, so the two forms cannot collide by construction.
//
// Cost, with E endpoints, S sets, M = sets one endpoint is in, I = IPs of one endpoint, c = cost
// of one selector evaluation (a few map lookups):
//   update_endpoint, labels or namespace changed   O(S * c + changed sets * I)
//   update_endpoint, only IPs changed              O(M * changed IPs)
//   remove_endpoint                                O(M * I)
//   add_selector, new set                          O(E * c) (with a namespace selector: only the
//                                                  endpoints of matching namespaces); existing: O(log S)
//   release_selector, last reference               O(E log M + members)
//   update_namespace                               O(S * c + endpoints in it * changed sets)
//   take_changes                                   O(changed sets * delta log delta)
// Memory: one (ip -> count) entry per set member and one set id per (endpoint, set) match.
// Unrelated sets are never recomputed: only sets an endpoint enters or leaves are touched.
//
// Pure (no syscalls), single-threaded: the caller serialises access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/net.h"
#include "model/selector.h"
#include "util/result.h"

namespace weir::calc {

using SetId = uint64_t;

// The implicit namespace label that Kubernetes sets on every namespace; the index adds it (with
// the namespace's name as value) to the labels of every namespace it knows.
inline constexpr const char* kNamespaceNameLabel = "kubernetes.io/metadata.name";

// What one IP set selects: the endpoints whose labels match `selector` and, when ns_selector is
// set, that belong to a namespace whose labels match it (endpoints without a namespace never
// match a set with a namespace selector).
struct SetSpec {
  model::Selector selector;
  std::optional<model::Selector> ns_selector;

  // fnv1a64(selector.canonical()) without a namespace selector (equal to selector.id()),
  // else fnv1a64(selector.canonical() + '\0' + ns_selector->canonical()).
  SetId id() const;
  // `app == "web"`, or `app == "web" [namespace: team == "a"]`.
  std::string str() const;

  bool operator==(const SetSpec&) const = default;
};

// What changed in one set since the previous take_changes(). Addresses are sorted.
struct SetChange {
  SetId id = 0;
  std::vector<model::Ipv4> added;    // write (id, ip/32)
  std::vector<model::Ipv4> removed;  // delete (id, ip/32)
  bool created = false;  // first report of this set (added holds all its members)
  bool deleted = false;  // the set is gone (last reference released); removed holds all the
                         // members previously reported

  bool operator==(const SetChange&) const = default;
};

class LabelIndex {
 public:
  // Counters for tests and the profiler.
  struct Stats {
    uint64_t selector_evaluations = 0;  // (set, endpoint) and (namespace selector, namespace) tests
    uint64_t member_updates = 0;        // increments/decrements of a set member's count
  };

  // ------------------------------------------------------------ endpoints
  // Adds or replaces an endpoint: its labels, its IPs (duplicates ignored) and its namespace
  // (empty: none, e.g. a host endpoint). A label or namespace change re-evaluates this endpoint
  // against every set; an IP-only change touches only the sets the endpoint is in.
  void update_endpoint(const std::string& key, const model::Labels& labels,
                       const std::vector<model::Ipv4>& ips, const std::string& ns = {});
  // False when the key is unknown.
  bool remove_endpoint(const std::string& key);

  // ------------------------------------------------------------ namespaces
  // Sets a namespace's labels (kubernetes.io/metadata.name=<name> is always added). Only the
  // endpoints of that namespace are re-evaluated, and only against the sets whose namespace
  // selector changed its verdict. A namespace never updated has only the implicit label.
  void update_namespace(const std::string& name, const model::Labels& labels);
  // Forgets the labels set by update_namespace (back to the implicit label only). False when
  // the namespace had no labels set.
  bool remove_namespace(const std::string& name);

  // ------------------------------------------------------------ sets
  // Takes a reference on the set of `selector` (and `ns_selector`), creating and evaluating it
  // on first use. Returns its id. Fails only if a different set already has the same id (a 64-bit
  // hash collision).
  Result<SetId> add_selector(const model::Selector& selector);
  Result<SetId> add_selector(const model::Selector& selector, const model::Selector& ns_selector);
  Result<SetId> add_set(const SetSpec& spec);
  // Drops one reference; the set is deleted with its last reference. Error for an unknown id.
  Status release_selector(SetId id);

  // The changes since the previous call, sorted by set id; sets whose net membership did not
  // change are left out (except a newly created set, reported once with created = true even when
  // empty). A set released and re-added in between is reported as a plain delta.
  std::vector<SetChange> take_changes();

  // ------------------------------------------------------------ inspection
  bool has_set(SetId id) const;
  // Current members, sorted; empty for an unknown id.
  std::vector<model::Ipv4> members(SetId id) const;
  // The spec of a live set.
  std::optional<SetSpec> spec(SetId id) const;
  // References held on a set; 0 for an unknown id.
  uint32_t refcount(SetId id) const;
  // Live set ids, sorted.
  std::vector<SetId> set_ids() const;
  size_t set_count() const { return sets_.size(); }
  size_t endpoint_count() const { return endpoints_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  struct Set {
    SetSpec spec;
    std::string key;  // the text hashed into the id, to detect collisions
    uint32_t refs = 0;
    std::unordered_map<uint32_t, uint32_t> members;  // ip (host order) -> matching endpoints with it
    std::unordered_map<uint32_t, int8_t> pending;    // ip -> +1 added / -1 removed, unreported
    bool published = false;  // reported by take_changes (the dataplane has it)
    bool dirty = false;      // listed in dirty_
  };
  struct Endpoint {
    std::string ns;
    model::Labels labels;
    std::vector<uint32_t> ips;   // sorted, unique
    std::vector<SetId> matched;  // sorted
  };
  struct Namespace {
    model::Labels labels;    // includes kNamespaceNameLabel
    bool declared = false;   // labels set by update_namespace
    std::set<std::string> endpoints;
  };

  bool evaluate(const Set& set, const Endpoint& ep);
  void join(SetId id, Set& set, Endpoint& ep, const std::vector<uint32_t>& ips);
  void leave(SetId id, Set& set, Endpoint& ep, const std::vector<uint32_t>& ips);
  void add_ip(SetId id, Set& set, uint32_t ip);
  void remove_ip(SetId id, Set& set, uint32_t ip);
  void note(SetId id, Set& set, uint32_t ip, bool present);
  void attach_ns(const std::string& key, const std::string& ns);
  void detach_ns(const std::string& key, const std::string& ns);

  std::map<SetId, Set> sets_;
  std::unordered_map<std::string, Endpoint> endpoints_;
  std::map<std::string, Namespace> namespaces_;
  std::map<SetId, std::vector<uint32_t>> deleted_;  // released sets: members the dataplane has
  std::vector<SetId> dirty_;
  Stats stats_;
};

}  // namespace weir::calc
