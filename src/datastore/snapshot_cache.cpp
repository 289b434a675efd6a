#include "datastore/snapshot_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace weir::datastore {

void for_each_resource_id(const model::Snapshot& snap,
                          const std::function<void(const ResourceId&)>& f) {
  auto each = [&](std::string_view kind, const auto& v) {
    for (const auto& r : v) f(ResourceId{kind, r.meta.ns, r.meta.name, &r.source});
  };
  each("Service", snap.services);
  each("EndpointSlice", snap.endpoint_slices);
  each("WorkloadEndpoint", snap.workload_endpoints);
  each("Namespace", snap.namespaces);
  each("NetworkPolicy", snap.network_policies);
  each("Tier", snap.tiers);
  each("GlobalNetworkPolicy", snap.global_network_policies);
  each("Node", snap.nodes);
  if (snap.config)
    f(ResourceId{"DataplaneConfig", "", snap.config->meta.name, &snap.config->source});
}

void for_each_resource(const model::Snapshot& snap,
                       const std::function<void(std::string key, const std::string& source)>& f) {
  for_each_resource_id(snap, [&](const ResourceId& r) {
    f(r.ns.empty() ? fmt::format("{} {}", r.kind, r.name)
                   : fmt::format("{} {}/{}", r.kind, r.ns, r.name),
      r.source->file);
  });
}

namespace {

bool only_services(const model::Snapshot& part) {
  return part.workload_endpoints.empty() && part.namespaces.empty() &&
         part.network_policies.empty() && part.tiers.empty() &&
         part.global_network_policies.empty() && part.nodes.empty() && !part.config;
}

// In `v` (grouped by source file, files in name order), replaces the resources of `file` by
// `items`: only that range is touched, the rest is moved at most.
template <typename T>
void replace_file_range(std::vector<T>& v, const std::string& file, const std::vector<T>& items) {
  auto lo = std::lower_bound(v.begin(), v.end(), file,
                             [](const T& x, const std::string& f) { return x.source.file < f; });
  auto hi = std::upper_bound(lo, v.end(), file,
                             [](const std::string& f, const T& x) { return f < x.source.file; });
  size_t have = size_t(hi - lo), common = std::min(have, items.size());
  size_t at = size_t(lo - v.begin());
  std::copy(items.begin(), items.begin() + common, lo);
  if (items.size() < have) {
    v.erase(v.begin() + at + common, v.begin() + at + have);
  } else {
    v.insert(v.begin() + at + common, items.begin() + common, items.end());
  }
}

std::string service_key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

size_t resource_count(const model::Snapshot& s) {
  return s.services.size() + s.endpoint_slices.size() + s.workload_endpoints.size() +
         s.namespaces.size() + s.network_policies.size() + s.tiers.size() +
         s.global_network_policies.size() + s.nodes.size() + (s.config ? 1 : 0);
}

}  // namespace

bool SnapshotCache::keep(Scan& s, const std::string& name) {
  auto it = cache_.find(name);
  if (it == cache_.end()) return false;
  s.files.insert(cache_.extract(it));
  return true;
}

SnapshotCache::Parsed SnapshotCache::parse(const std::string& name, std::string text,
                                            const Check& check) {
  Parsed parsed;
  model::parse_text(model::SourceText{name, text}, parsed.part, parsed.errors);
  parsed.content = std::move(text);
  if (check) check(name, parsed);
  ++parsed_;
  return parsed;
}

void SnapshotCache::put(Scan& s, const std::string& name, std::string text, const Check& check) {
  auto it = cache_.find(name);
  if (it != cache_.end() && it->second.content == text) {
    s.files.insert(cache_.extract(it));
    return;
  }
  Parsed parsed = parse(name, std::move(text), check);
  s.changed.push_back(name);
  if (it != cache_.end()) s.old.insert(cache_.extract(it));
  s.files.insert_or_assign(name, std::move(parsed));
}

void SnapshotCache::finish(Scan& s) {
  for (auto it = cache_.begin(); it != cache_.end();) {
    auto next = std::next(it);
    if (!s.files.contains(it->first) && !s.old.contains(it->first)) {
      s.changed.push_back(it->first);
      s.old.insert(cache_.extract(it));
    }
    it = next;
  }
  std::sort(s.changed.begin(), s.changed.end());
}

SnapshotCache::Scan SnapshotCache::scan_cached() {
  Scan s;
  s.files = std::move(cache_);
  cache_.clear();
  return s;
}

void SnapshotCache::put_changed(Scan& s, const std::string& name, std::string text,
                                const Check& check) {
  auto it = s.files.find(name);
  if (it != s.files.end() && it->second.content == text) return;
  Parsed parsed = parse(name, std::move(text), check);
  s.changed.push_back(name);
  if (it != s.files.end()) s.old.insert(s.files.extract(it));
  s.files.insert_or_assign(name, std::move(parsed));
}

void SnapshotCache::drop_changed(Scan& s, const std::string& name) {
  auto it = s.files.find(name);
  if (it == s.files.end()) return;
  s.changed.push_back(name);
  s.old.insert(s.files.extract(it));
}

void SnapshotCache::end_changes(Scan& s) {
  std::sort(s.changed.begin(), s.changed.end());
  s.changed.erase(std::unique(s.changed.begin(), s.changed.end()), s.changed.end());
}

// Merges every source's parse in name order into `into` and validates the whole, exactly as
// build_snapshot() does; keeps the parses as the cache. Read errors come first.
void SnapshotCache::merge_all(Scan& s, model::Snapshot& into, model::ValidationErrors& errors) {
  for (auto& [name, parsed] : s.files) {
    errors.insert(errors.end(), parsed.errors.begin(), parsed.errors.end());
    model::merge_parsed(into, parsed.part, errors);
  }
  cache_ = std::move(s.files);
  model::validate_snapshot(into, errors);
  errors.insert(errors.begin(), s.read_errors.begin(), s.read_errors.end());
}

model::SnapshotResult SnapshotCache::load_detailed(Scan s) {
  merged_ok_ = false;  // the next load_incremental() cannot tell what changed since its last
  model::SnapshotResult r;
  model::Snapshot snap;
  merge_all(s, snap, r.errors);
  r.warnings = snap.warnings;
  if (r.errors.empty()) r.snapshot = std::move(snap);
  return r;
}

Load SnapshotCache::full_load(Scan s) {
  ++full_loads_;
  Load l;
  merged_ = model::Snapshot();
  merged_ok_ = false;
  rules_.clear();
  merge_all(s, merged_, l.errors);
  l.warnings = merged_.warnings;
  if (!l.errors.empty()) {
    merged_ = model::Snapshot();
    rejected_ = true;
    return l;
  }
  rules_.add(merged_, +1);
  cluster_ips_ = model::ClusterIPRules(merged_);
  merged_ok_ = true;
  l.snapshot = &merged_;
  track_removals(l, nullptr, cache_);
  return l;
}

void SnapshotCache::track_removals(Load& l, const Scan* changed, const Sources& files) {
  l.valid_again = std::exchange(rejected_, false);
  std::map<std::string, std::vector<std::string>> gone;  // file -> resources
  if (!changed) {
    std::unordered_map<std::string, std::string> now;
    for_each_resource(merged_, [&](std::string key, const std::string& file) {
      now.emplace(std::move(key), file);
    });
    for (const auto& [key, file] : accepted_)
      if (!now.contains(key)) gone[file].push_back(key);
    accepted_ = std::move(now);
  } else {
    // Only the changed files differ from the last accepted state (the fast path follows an
    // accepted load): what their old parses had and their new ones have not is gone.
    std::unordered_map<std::string, std::string> now;
    for (const auto& name : changed->changed)
      if (auto it = changed->files.find(name); it != changed->files.end())
        for_each_resource(it->second.part, [&](std::string key, const std::string& file) {
          now.emplace(std::move(key), file);
        });
    for (const auto& [name, old] : changed->old)
      for_each_resource(old.part, [&](std::string key, const std::string& file) {
        if (!now.contains(key)) {
          accepted_.erase(key);
          gone[file].push_back(std::move(key));
        }
      });
    for (auto& [key, file] : now) accepted_[key] = file;
  }
  for (auto& [file, keys] : gone) {
    std::sort(keys.begin(), keys.end());
    auto it = files.find(file);
    auto state = it == files.end()                      ? RemovedFrom::Now::Gone
                 : resource_count(it->second.part) == 0 ? RemovedFrom::Now::Empty
                                                        : RemovedFrom::Now::HasOthers;
    l.removed.push_back({file, state, std::move(keys)});
  }
}

// The fast path: every changed file held, and holds, only Services and EndpointSlices, without
// errors, and the service rules still hold afterwards. Updates merged_ and `changes`; false
// (merged_ and rules_ may be half-updated: the caller takes the full path) otherwise.
bool SnapshotCache::apply_service_changes(const Scan& s, Changes& changes) {
  static const model::Snapshot kEmpty;
  auto part_of = [](const Sources& m, const std::string& name) {
    auto it = m.find(name);
    return it == m.end() ? static_cast<const Parsed*>(nullptr) : &it->second;
  };
  for (const auto& name : s.changed) {
    const Parsed* before = part_of(s.old, name);
    const Parsed* after = part_of(s.files, name);
    if (before && (!before->errors.empty() || !only_services(before->part))) return false;
    if (after && (!after->errors.empty() || !only_services(after->part))) return false;
  }
  std::vector<std::string> keys;
  for (const auto& name : s.changed) {
    for (const Parsed* p : {part_of(s.old, name), part_of(s.files, name)}) {
      if (!p) continue;
      for (const auto& svc : p->part.services)
        keys.push_back(service_key(svc.meta.ns, svc.meta.name));
      for (const auto& es : p->part.endpoint_slices)
        keys.push_back(service_key(es.meta.ns, es.service_name));
    }
    if (const Parsed* p = part_of(s.old, name)) rules_.add(p->part, -1);
    if (const Parsed* p = part_of(s.files, name)) rules_.add(p->part, +1);
  }
  if (rules_.violations() > 0) return false;
  // The cluster IP rules against the unchanged config and workloads; any violation takes the
  // full path, which reports it as load_detailed() does.
  model::ValidationErrors cip_errors;
  for (const auto& name : s.changed)
    if (const Parsed* p = part_of(s.files, name))
      for (const auto& svc : p->part.services) cluster_ips_.check(svc, cip_errors);
  if (!cip_errors.empty()) return false;
  for (const auto& name : s.changed) {
    const Parsed* after = part_of(s.files, name);
    const model::Snapshot& part = after ? after->part : kEmpty;
    replace_file_range(merged_.services, name, part.services);
    replace_file_range(merged_.endpoint_slices, name, part.endpoint_slices);
  }
  merged_.files.clear();
  merged_.warnings.clear();
  for (const auto& [name, parsed] : s.files) {
    merged_.files.insert(merged_.files.end(), parsed.part.files.begin(), parsed.part.files.end());
    merged_.warnings.insert(merged_.warnings.end(), parsed.part.warnings.begin(),
                            parsed.part.warnings.end());
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  changes.full = false;
  changes.services = std::move(keys);
  return true;
}

Load SnapshotCache::load_incremental(Scan s) {
  if (!merged_ok_ || !s.read_errors.empty()) return full_load(std::move(s));
  Changes changes;
  if (!apply_service_changes(s, changes)) return full_load(std::move(s));
  Load l;
  l.snapshot = &merged_;
  l.warnings = merged_.warnings;
  l.changes = std::move(changes);
  track_removals(l, &s, s.files);
  cache_ = std::move(s.files);
  return l;
}

void SnapshotCache::ServiceRules::count(std::unordered_map<std::string, int>& m,
                                        const std::string& k, int sign) {
  int& c = m[k];
  if (sign > 0 && ++c == 2) ++dup_;
  if (sign < 0 && c-- == 2) --dup_;
  if (c == 0) m.erase(k);
}

void SnapshotCache::ServiceRules::add(const model::Snapshot& part, int sign) {
  for (const auto& svc : part.services) {
    std::string k = service_key(svc.meta.ns, svc.meta.name);
    count(services_, k, sign);
    // A slice without its service counts as dangling while the service has no definition.
    auto refs = slices_of_.find(k);
    size_t n = refs == slices_of_.end() ? 0 : size_t(refs->second);
    auto it = services_.find(k);
    int now = it == services_.end() ? 0 : it->second;
    if (sign > 0 && now == 1) dangling_ -= n;
    if (sign < 0 && now == 0) dangling_ += n;
    if (svc.cluster_ip && !svc.headless) {
      for (const auto& p : svc.ports)
        count(frontends_, fmt::format("{}:{}/{}", svc.cluster_ip->value, p.port, int(p.protocol)),
              sign);
    }
  }
  for (const auto& es : part.endpoint_slices) {
    count(slices_, service_key(es.meta.ns, es.meta.name), sign);
    std::string k = service_key(es.meta.ns, es.service_name);
    int& refs = slices_of_[k];
    refs += sign;
    if (refs == 0) slices_of_.erase(k);
    if (!services_.contains(k)) {
      if (sign > 0)
        ++dangling_;
      else
        --dangling_;
    }
  }
}

}  // namespace weir::datastore
