#include "dataplane/service_syncer.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

namespace weir::dataplane {

weir_nat_fe_key to_map_key(const calc::FrontendKey& k) {
  weir_nat_fe_key key{};
  key.addr = k.vip.network_order();
  key.port = htons(k.port);
  key.proto = k.proto;
  return key;
}

calc::FrontendKey from_map_key(const weir_nat_fe_key& k) {
  calc::FrontendKey key;
  key.vip = model::Ipv4::from_network_order(k.addr);
  key.port = ntohs(k.port);
  key.proto = k.proto;
  return key;
}

namespace {

std::vector<calc::Backend> sorted(std::vector<calc::Backend> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

Status ServiceSyncer::adopt() {
  programmed_.clear();
  auto fes = maps_.nat_fe.dump();
  if (!fes) return fes.error().wrap("adopting NAT frontends");
  std::set<uint32_t> live_ids;
  uint32_t max_id = 0;
  for (const auto& [k, v] : *fes) {
    Programmed p;
    p.svc_id = v.svc_id;
    p.local = v.local;
    p.affinity_timeout = v.affinity_timeout;
    for (uint32_t i = 0; i < v.count; i++) {
      auto be = maps_.nat_be.lookup(weir_nat_be_key{v.svc_id, i});
      if (!be) return be.error().wrap("adopting NAT backends");
      if (!*be) {
        // Inconsistent (should not happen): forget it so that apply() rewrites it.
        spdlog::warn("NAT frontend {} refers to missing backend {}:{}; it will be rewritten",
                     from_map_key(k).str(), v.svc_id, i);
        p.backends.clear();
        p.svc_id = 0;
        break;
      }
      p.backends.push_back(calc::Backend{model::Ipv4::from_network_order((*be)->addr),
                                         ntohs((*be)->port)});
    }
    live_ids.insert(v.svc_id);
    max_id = std::max(max_id, v.svc_id);
    programmed_[from_map_key(k)] = std::move(p);
  }
  auto bes = maps_.nat_be.dump();
  if (!bes) return bes.error().wrap("adopting NAT backends");
  // Backends no frontend refers to: a previous agent's retired ones (a packet may still be about
  // to read them), or left by a crash between two writes. Retired, i.e. deleted at the next
  // sync, never now.
  size_t orphans = 0;
  std::map<uint32_t, uint32_t> orphan_counts;  // service id -> highest ordinal + 1
  for (const auto& [k, v] : *bes) {
    max_id = std::max(max_id, k.svc_id);
    if (!live_ids.contains(k.svc_id)) {
      uint32_t& n = orphan_counts[k.svc_id];
      n = std::max(n, k.ordinal + 1);
      orphans++;
    }
  }
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [id, n] : orphan_counts) retired_.push_back(Retired{id, n, now});
  next_id_ = max_id + 1;
  spdlog::info("adopted {} NAT frontends from pinned maps ({} backend entries no frontend refers "
               "to: deleted at the next sync)",
               programmed_.size(), orphans);
  return {};
}

uint32_t ServiceSyncer::allocate_id() {
  // Ids are never reused while the agent runs (a packet that read an old frontend must not
  // find another service's backends under its id); 0 is never used.
  if (next_id_ == 0) next_id_ = 1;
  return next_id_++;
}

Status ServiceSyncer::delete_backends(uint32_t svc_id, size_t count) {
  for (uint32_t i = 0; i < count; i++) {
    auto r = maps_.nat_be.remove(weir_nat_be_key{svc_id, i});
    if (!r) return r.error();
  }
  return {};
}

Status ServiceSyncer::write(const calc::Frontend& fe) {
  uint32_t id = allocate_id();
  for (uint32_t i = 0; i < fe.backends.size(); i++) {
    weir_nat_be_val v{};
    v.addr = fe.backends[i].ip.network_order();
    v.port = htons(fe.backends[i].port);
    auto st = maps_.nat_be.update(weir_nat_be_key{id, i}, v);
    if (!st) {
      (void)delete_backends(id, i);
      return st.error().wrap(fmt::format("writing backend {} of {}", i, fe.service));
    }
  }
  weir_nat_fe_val v{};
  v.svc_id = id;
  v.count = static_cast<uint32_t>(fe.backends.size());
  v.local = fe.local;
  v.affinity_timeout = fe.affinity_timeout_s;
  v.flags = WEIR_NAT_FE_F_NONE;
  auto st = maps_.nat_fe.update(to_map_key(fe.key), v);
  if (!st) {
    (void)delete_backends(id, fe.backends.size());
    return st.error().wrap(fmt::format("writing frontend {} of {}", fe.key.str(), fe.service));
  }
  // A packet that read the old frontend a moment ago may be about to read its backends: they
  // stay until the next sync.
  auto old = programmed_.find(fe.key);
  if (old != programmed_.end()) retire(old->second);
  programmed_[fe.key] = Programmed{id, fe.backends, fe.local, fe.affinity_timeout_s};
  return {};
}

Status ServiceSyncer::remove(const calc::FrontendKey& key, const Programmed& p) {
  auto r = maps_.nat_fe.remove(to_map_key(key));
  if (!r) return r.error().wrap("removing frontend " + key.str());
  retire(p);  // deleted at the next sync, like replaced backends
  return {};
}

void ServiceSyncer::retire(const Programmed& p) {
  if (p.svc_id == 0 || p.backends.empty()) return;
  retired_.push_back(Retired{p.svc_id, static_cast<uint32_t>(p.backends.size()),
                             std::chrono::steady_clock::now()});
}

void ServiceSyncer::delete_retired() {
  // No frontend refers to a retired id: a frontend only ever moves to a fresh id (ids are never
  // reused while the agent runs, and start above every id found at adoption), and adoption
  // retires only ids no frontend held.
  const auto now = std::chrono::steady_clock::now();
  while (!retired_.empty() && now - retired_.front().since >= grace_) {
    const Retired& r = retired_.front();
    if (auto d = delete_backends(r.svc_id, r.count); !d) {
      spdlog::warn("deleting retired NAT backends {}:*: {}; retried at the next sync", r.svc_id,
                   d.error().str());
      return;
    }
    retired_.pop_front();
  }
}

// Writes `fe` unless the maps already hold it; a failure is logged and added to `failures`.
void ServiceSyncer::apply_one(const calc::Frontend& fe, std::vector<std::string>& failures) {
  auto it = programmed_.find(fe.key);
  if (it != programmed_.end() && it->second.svc_id != 0 &&
      sorted(it->second.backends) == sorted(fe.backends) && it->second.local == fe.local &&
      it->second.affinity_timeout == fe.affinity_timeout_s) {
    stats_.unchanged++;
    return;
  }
  auto st = write(fe);
  if (!st) {
    spdlog::error("service {} ({}): not programmed: {}", fe.service, fe.key.str(), st.error().str());
    failures.push_back(fe.service + ": " + st.error().str());
    return;
  }
  stats_.written++;
  spdlog::debug("service {} ({}): {} backends", fe.service, fe.key.str(), fe.backends.size());
}

// Removes a programmed frontend; true when it is gone.
bool ServiceSyncer::remove_one(const calc::FrontendKey& key, const Programmed& p,
                               std::vector<std::string>& failures) {
  auto st = remove(key, p);
  if (!st) {
    spdlog::error("removing frontend {}: {}", key.str(), st.error().str());
    failures.push_back(st.error().str());
    return false;
  }
  spdlog::debug("frontend {} removed", key.str());
  stats_.removed++;
  return true;
}

namespace {

// One INFO line per sync, whatever the number of services (each frontend's line is DEBUG: at
// 10,000 services a full sync would otherwise log 10,000 lines).
void log_summary(const ServiceSyncer::Stats& s, size_t failed) {
  if (s.written == 0 && s.removed == 0 && failed == 0) return;
  spdlog::info("NAT frontends: {} written, {} removed, {} unchanged{}", s.written, s.removed,
               s.unchanged, failed ? fmt::format(", {} failed", failed) : std::string());
}

Status failures_status(const std::vector<std::string>& failures) {
  if (failures.empty()) return {};
  std::string msg = fmt::format("{} NAT frontends failed", failures.size());
  for (const auto& f : failures) msg += "\n  " + f;
  return Error{0, msg};
}

}  // namespace

Status ServiceSyncer::apply(const std::vector<calc::Frontend>& desired) {
  stats_ = {};
  delete_retired();
  std::vector<std::string> failures;
  std::set<calc::FrontendKey> want;
  for (const auto& fe : desired) {
    want.insert(fe.key);
    apply_one(fe, failures);
  }
  for (auto it = programmed_.begin(); it != programmed_.end();) {
    if (!want.contains(it->first) && remove_one(it->first, it->second, failures)) {
      it = programmed_.erase(it);
    } else {
      ++it;
    }
  }
  log_summary(stats_, failures.size());
  return failures_status(failures);
}

Status ServiceSyncer::apply_changes(const calc::SetDiff<calc::FrontendKey, calc::Frontend>& d) {
  stats_ = {};
  delete_retired();
  std::vector<std::string> failures;
  for (const auto& key : d.removed) {
    auto it = programmed_.find(key);
    if (it != programmed_.end() && remove_one(it->first, it->second, failures)) programmed_.erase(it);
  }
  for (const auto& fe : d.added) apply_one(fe, failures);
  for (const auto& fe : d.updated) apply_one(fe, failures);
  log_summary(stats_, failures.size());
  return failures_status(failures);
}

}  // namespace weir::dataplane
