// LabelIndex: see labelindex.h.
#include "calc/labelindex.h"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

namespace weir::calc {

namespace {

// The text hashed into a set id. Canonical selector texts contain no NUL byte (the parser
// rejects control characters in strings, and keys and Kubernetes values cannot hold one).
std::string set_key(const SetSpec& spec) {
  if (!spec.ns_selector) return spec.selector.canonical();
  std::string k = spec.selector.canonical();
  k.push_back('\0');
  k += spec.ns_selector->canonical();
  return k;
}

std::vector<uint32_t> normalise_ips(const std::vector<model::Ipv4>& ips) {
  std::vector<uint32_t> v;
  v.reserve(ips.size());
  for (const model::Ipv4& ip : ips) v.push_back(ip.value);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

bool contains_id(const std::vector<SetId>& ids, SetId id) {
  return std::binary_search(ids.begin(), ids.end(), id);
}

void insert_id(std::vector<SetId>& ids, SetId id) {
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  if (it == ids.end() || *it != id) ids.insert(it, id);
}

void erase_id(std::vector<SetId>& ids, SetId id) {
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  if (it != ids.end() && *it == id) ids.erase(it);
}

std::vector<model::Ipv4> to_ipv4(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  std::vector<model::Ipv4> out;
  out.reserve(v.size());
  for (uint32_t x : v) out.push_back(model::Ipv4{x});
  return out;
}

model::Labels namespace_labels(const std::string& name, const model::Labels& labels) {
  model::Labels l = labels;
  l.insert_or_assign(kNamespaceNameLabel, name);
  return l;
}

}  // namespace

// ---------------------------------------------------------------- SetSpec

SetId SetSpec::id() const { return model::fnv1a64(set_key(*this)); }

std::string SetSpec::str() const {
  if (!ns_selector) return selector.canonical();
  return fmt::format("{} [namespace: {}]", selector.canonical(), ns_selector->canonical());
}

// ---------------------------------------------------------------- membership primitives

bool LabelIndex::evaluate(const Set& set, const Endpoint& ep) {
  ++stats_.selector_evaluations;
  if (set.spec.ns_selector) {
    if (ep.ns.empty()) return false;
    if (!set.spec.ns_selector->matches(namespaces_.at(ep.ns).labels)) return false;
  }
  return set.spec.selector.matches(ep.labels);
}

void LabelIndex::note(SetId id, Set& set, uint32_t ip, bool present) {
  const int8_t d = present ? 1 : -1;
  auto [it, inserted] = set.pending.try_emplace(ip, d);
  if (!inserted && it->second != d) set.pending.erase(it);  // back to what was reported
  if (!set.dirty) {
    set.dirty = true;
    dirty_.push_back(id);
  }
}

void LabelIndex::add_ip(SetId id, Set& set, uint32_t ip) {
  ++stats_.member_updates;
  if (++set.members[ip] == 1) note(id, set, ip, true);
}

void LabelIndex::remove_ip(SetId id, Set& set, uint32_t ip) {
  ++stats_.member_updates;
  auto it = set.members.find(ip);
  if (it == set.members.end()) return;  // cannot happen: counts follow join/leave
  if (--it->second == 0) {
    set.members.erase(it);
    note(id, set, ip, false);
  }
}

void LabelIndex::join(SetId id, Set& set, Endpoint& ep, const std::vector<uint32_t>& ips) {
  insert_id(ep.matched, id);
  for (uint32_t ip : ips) add_ip(id, set, ip);
}

void LabelIndex::leave(SetId id, Set& set, Endpoint& ep, const std::vector<uint32_t>& ips) {
  erase_id(ep.matched, id);
  for (uint32_t ip : ips) remove_ip(id, set, ip);
}

void LabelIndex::attach_ns(const std::string& key, const std::string& ns) {
  if (ns.empty()) return;
  auto [it, inserted] = namespaces_.try_emplace(ns);
  if (inserted) it->second.labels = namespace_labels(ns, {});
  it->second.endpoints.insert(key);
}

void LabelIndex::detach_ns(const std::string& key, const std::string& ns) {
  if (ns.empty()) return;
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return;
  it->second.endpoints.erase(key);
  if (it->second.endpoints.empty() && !it->second.declared) namespaces_.erase(it);
}

// ---------------------------------------------------------------- endpoints

void LabelIndex::update_endpoint(const std::string& key, const model::Labels& labels,
                                 const std::vector<model::Ipv4>& ips, const std::string& ns) {
  std::vector<uint32_t> new_ips = normalise_ips(ips);
  auto [it, inserted] = endpoints_.try_emplace(key);
  Endpoint& ep = it->second;

  if (!inserted && ep.labels == labels && ep.ns == ns) {
    // Same selection: only the addresses of the sets it is in change.
    if (ep.ips == new_ips) return;
    std::vector<uint32_t> gone, fresh;
    std::set_difference(ep.ips.begin(), ep.ips.end(), new_ips.begin(), new_ips.end(),
                        std::back_inserter(gone));
    std::set_difference(new_ips.begin(), new_ips.end(), ep.ips.begin(), ep.ips.end(),
                        std::back_inserter(fresh));
    for (SetId id : ep.matched) {
      Set& set = sets_.at(id);
      for (uint32_t ip : fresh) add_ip(id, set, ip);
      for (uint32_t ip : gone) remove_ip(id, set, ip);
    }
    ep.ips = std::move(new_ips);
    return;
  }

  if (inserted || ep.ns != ns) {
    if (!inserted) detach_ns(key, ep.ns);
    attach_ns(key, ns);
    ep.ns = ns;
  }
  ep.labels = labels;

  // Re-evaluate against every set; sets_ and ep.matched are both sorted by id, so old and new
  // membership are compared in one walk.
  std::vector<SetId> old_matched = std::move(ep.matched);
  std::vector<uint32_t> old_ips = std::move(ep.ips);
  ep.matched.clear();
  ep.ips = new_ips;
  for (auto& [id, set] : sets_) {
    const bool was = contains_id(old_matched, id);
    const bool now = evaluate(set, ep);
    if (now) ep.matched.push_back(id);
    if (was && now) {
      if (old_ips == new_ips) continue;
      for (uint32_t ip : new_ips) add_ip(id, set, ip);
      for (uint32_t ip : old_ips) remove_ip(id, set, ip);
    } else if (now) {
      for (uint32_t ip : new_ips) add_ip(id, set, ip);
    } else if (was) {
      for (uint32_t ip : old_ips) remove_ip(id, set, ip);
    }
  }
}

bool LabelIndex::remove_endpoint(const std::string& key) {
  auto it = endpoints_.find(key);
  if (it == endpoints_.end()) return false;
  Endpoint& ep = it->second;
  for (SetId id : ep.matched) {
    Set& set = sets_.at(id);
    for (uint32_t ip : ep.ips) remove_ip(id, set, ip);
  }
  detach_ns(key, ep.ns);
  endpoints_.erase(it);
  return true;
}

// ---------------------------------------------------------------- namespaces

void LabelIndex::update_namespace(const std::string& name, const model::Labels& labels) {
  Namespace& ns = namespaces_[name];
  ns.declared = true;
  model::Labels fresh = namespace_labels(name, labels);
  if (fresh == ns.labels) return;
  model::Labels old = std::move(ns.labels);
  ns.labels = std::move(fresh);
  if (ns.endpoints.empty()) return;

  for (auto& [id, set] : sets_) {
    if (!set.spec.ns_selector) continue;
    stats_.selector_evaluations += 2;
    const bool was = set.spec.ns_selector->matches(old);
    const bool now = set.spec.ns_selector->matches(ns.labels);
    if (was == now) continue;
    for (const std::string& key : ns.endpoints) {
      Endpoint& ep = endpoints_.at(key);
      const bool in = contains_id(ep.matched, id);
      const bool should = evaluate(set, ep);
      if (should && !in) join(id, set, ep, ep.ips);
      if (!should && in) leave(id, set, ep, ep.ips);
    }
  }
}

bool LabelIndex::remove_namespace(const std::string& name) {
  auto it = namespaces_.find(name);
  if (it == namespaces_.end() || !it->second.declared) return false;
  if (it->second.endpoints.empty()) {
    namespaces_.erase(it);
    return true;
  }
  update_namespace(name, {});
  it->second.declared = false;
  return true;
}

// ---------------------------------------------------------------- sets

Result<SetId> LabelIndex::add_selector(const model::Selector& selector) {
  return add_set(SetSpec{selector, std::nullopt});
}

Result<SetId> LabelIndex::add_selector(const model::Selector& selector,
                                       const model::Selector& ns_selector) {
  return add_set(SetSpec{selector, ns_selector});
}

Result<SetId> LabelIndex::add_set(const SetSpec& spec) {
  std::string key = set_key(spec);
  const SetId id = model::fnv1a64(key);
  if (auto it = sets_.find(id); it != sets_.end()) {
    if (it->second.key != key) {
      return make_error("IP set {} of {} collides with the set of {}", model::format_set_id(id),
                        spec.str(), it->second.spec.str());
    }
    ++it->second.refs;
    return id;
  }

  Set& set = sets_[id];
  set.spec = spec;
  set.key = std::move(key);
  set.refs = 1;
  // A new set is reported once as created, even when empty.
  set.dirty = true;
  dirty_.push_back(id);

  if (spec.ns_selector) {
    // Only the endpoints of matching namespaces are evaluated.
    for (auto& [name, ns] : namespaces_) {
      ++stats_.selector_evaluations;
      if (!spec.ns_selector->matches(ns.labels)) continue;
      for (const std::string& ep_key : ns.endpoints) {
        Endpoint& ep = endpoints_.at(ep_key);
        ++stats_.selector_evaluations;
        if (spec.selector.matches(ep.labels)) join(id, set, ep, ep.ips);
      }
    }
  } else {
    for (auto& [ep_key, ep] : endpoints_) {
      if (evaluate(set, ep)) join(id, set, ep, ep.ips);
    }
  }

  // Released and re-added before the dataplane heard of the release: report the difference
  // against what the dataplane still has.
  if (auto d = deleted_.find(id); d != deleted_.end()) {
    set.published = true;
    for (uint32_t ip : d->second) note(id, set, ip, false);
    deleted_.erase(d);
  }
  return id;
}

Status LabelIndex::release_selector(SetId id) {
  auto it = sets_.find(id);
  if (it == sets_.end()) {
    return make_error("release of IP set {}: no such set", model::format_set_id(id));
  }
  Set& set = it->second;
  if (--set.refs > 0) return {};

  for (auto& [key, ep] : endpoints_) erase_id(ep.matched, id);
  if (set.published) {
    // What the dataplane has: current members not added since the last report, plus members
    // removed since then.
    std::vector<uint32_t> had;
    for (const auto& [ip, count] : set.members) {
      auto p = set.pending.find(ip);
      if (p == set.pending.end() || p->second < 0) had.push_back(ip);
    }
    for (const auto& [ip, d] : set.pending) {
      if (d < 0) had.push_back(ip);
    }
    std::sort(had.begin(), had.end());
    had.erase(std::unique(had.begin(), had.end()), had.end());
    deleted_[id] = std::move(had);
  }
  sets_.erase(it);  // its entry in dirty_, if any, is skipped by take_changes
  return {};
}

std::vector<SetChange> LabelIndex::take_changes() {
  std::vector<SetChange> out;
  for (SetId id : dirty_) {
    auto it = sets_.find(id);
    if (it == sets_.end()) continue;
    Set& set = it->second;
    if (!set.dirty) continue;
    set.dirty = false;
    SetChange c;
    c.id = id;
    c.created = !set.published;
    std::vector<uint32_t> added, removed;
    for (const auto& [ip, d] : set.pending) (d > 0 ? added : removed).push_back(ip);
    set.pending.clear();
    set.published = true;
    if (!c.created && added.empty() && removed.empty()) continue;
    c.added = to_ipv4(std::move(added));
    c.removed = to_ipv4(std::move(removed));
    out.push_back(std::move(c));
  }
  dirty_.clear();
  for (auto& [id, had] : deleted_) {
    SetChange c;
    c.id = id;
    c.deleted = true;
    c.removed = to_ipv4(std::move(had));
    out.push_back(std::move(c));
  }
  deleted_.clear();
  std::sort(out.begin(), out.end(),
            [](const SetChange& a, const SetChange& b) { return a.id < b.id; });
  return out;
}

// ---------------------------------------------------------------- inspection

bool LabelIndex::has_set(SetId id) const { return sets_.contains(id); }

std::vector<model::Ipv4> LabelIndex::members(SetId id) const {
  auto it = sets_.find(id);
  if (it == sets_.end()) return {};
  std::vector<uint32_t> v;
  v.reserve(it->second.members.size());
  for (const auto& [ip, count] : it->second.members) v.push_back(ip);
  return to_ipv4(std::move(v));
}

std::optional<SetSpec> LabelIndex::spec(SetId id) const {
  auto it = sets_.find(id);
  if (it == sets_.end()) return std::nullopt;
  return it->second.spec;
}

uint32_t LabelIndex::refcount(SetId id) const {
  auto it = sets_.find(id);
  return it == sets_.end() ? 0 : it->second.refs;
}

std::vector<SetId> LabelIndex::set_ids() const {
  std::vector<SetId> v;
  v.reserve(sets_.size());
  for (const auto& [id, set] : sets_) v.push_back(id);
  return v;
}

}  // namespace weir::calc
