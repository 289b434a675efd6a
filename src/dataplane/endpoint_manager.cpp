#include "dataplane/endpoint_manager.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "bpf/netlink.h"
#include "dataplane/route_flags.h"
#include "maps/decode.h"

namespace weir::dataplane {

namespace {

weir_route_key route_key(const model::Cidr& c) {
  weir_route_key k{};
  k.prefixlen = c.prefix_len;
  k.addr = c.addr.network_order();
  return k;
}

}  // namespace

Result<bpf::LinkInfo> TcInterfaces::link_by_name(const std::string& name) {
  return bpf::link_by_name(name);
}

Status TcInterfaces::attach(int ifindex, const std::string& name, bpf::TcDir dir) {
  const int fd = dir == bpf::TcDir::Ingress ? from_fd_ : to_fd_;
  return bpf::tc_attach(ifindex, name, dir, fd, mode_, layout_.link_path(name, dir));
}

Status TcInterfaces::detach(int ifindex, const std::string& name, bpf::TcDir dir) {
  return bpf::tc_detach(ifindex, dir, mode_, layout_.link_path(name, dir));
}

void EndpointManager::readopt() {
  for (auto& [name, m] : attached_) adopted_[name] = m;
  attached_.clear();
}

Status EndpointManager::adopt() {
  auto ifs = maps_.ifstate.dump();
  if (!ifs) return ifs.error().wrap("adopting interface state");
  for (const auto& [ifindex, v] : *ifs) {
    std::string name = maps::ifstate_name(v);
    adopted_[name] = Managed{static_cast<int>(ifindex), name};
  }
  auto routes = maps_.routes.dump();
  if (!routes) return routes.error().wrap("adopting routes");
  for (const auto& [k, v] : *routes) programmed_routes_.insert({k.addr, k.prefixlen});
  spdlog::info("adopted {} interfaces and {} routes from pinned maps", adopted_.size(),
               programmed_routes_.size());
  return {};
}

// The interface's ifstate entry, without READY: the programs are not attached yet.
Status EndpointManager::prepare(const calc::Interface& itf, int ifindex,
                                const std::array<uint8_t, 6>& host_mac) {
  weir_ifstate_val st{};
  std::strncpy(st.name, itf.name.c_str(), sizeof(st.name) - 1);
  st.flags = WEIR_IF_F_WORKLOAD;
  st.ingress_slot = WEIR_NO_POLICY_SLOT;
  st.egress_slot = WEIR_NO_POLICY_SLOT;
  std::memcpy(st.host_mac, host_mac.data(), 6);
  auto key = static_cast<__u32>(ifindex);
  // The same interface programmed before (a previous agent, adopted): keep its policy slots,
  // so that its policy stays enforced until the policy manager replaces it.
  if (auto prev = maps_.ifstate.lookup(key); prev && *prev && maps::ifstate_name(**prev) == itf.name) {
    st.ingress_slot = (*prev)->ingress_slot;
    st.egress_slot = (*prev)->egress_slot;
  }
  return maps_.ifstate.update(key, st);
}

Status EndpointManager::attach(const calc::Interface& itf, int ifindex) {
  WEIR_TRY(ifs_.attach(ifindex, itf.name, bpf::TcDir::Ingress));
  WEIR_TRY(ifs_.attach(ifindex, itf.name, bpf::TcDir::Egress));
  // Re-read: the policy manager has set the slots meanwhile; only the READY flag is ours.
  auto key = static_cast<__u32>(ifindex);
  auto cur = maps_.ifstate.lookup(key);
  if (!cur) return cur.error().wrap("reading back the interface state");
  if (!*cur) return Error{ENOENT, fmt::format("the ifstate entry of {} disappeared", itf.name)};
  weir_ifstate_val st = **cur;
  st.flags |= WEIR_IF_F_READY;
  WEIR_TRY(maps_.ifstate.update(key, st));
  return {};
}

Status EndpointManager::detach(const Managed& m) {
  Status first;
  auto keep = [&](const Status& s) {
    if (!s && first.ok()) first = s;
  };
  auto link = ifs_.link_by_name(m.name);
  bool exists = link.ok() && link->ifindex == m.ifindex;
  for (auto dir : {bpf::TcDir::Ingress, bpf::TcDir::Egress}) {
    // When the interface is gone the kernel has dropped its programs; tc_detach then only
    // removes the pin.
    keep(ifs_.detach(exists ? m.ifindex : 0, m.name, dir));
  }
  auto key = static_cast<__u32>(m.ifindex);
  auto r = maps_.ifstate.remove(key);
  if (!r) keep(r.error());
  for (uint32_t hook : {WEIR_HOOK_INGRESS, WEIR_HOOK_EGRESS}) {
    auto c = maps_.counters.remove(weir_counters_key{key, hook});
    if (!c) keep(c.error());
  }
  return first;
}

// An interface that never got programs: its ifstate entry goes.
Status EndpointManager::forget(const Managed& m) {
  auto r = maps_.ifstate.remove(static_cast<__u32>(m.ifindex));
  if (!r) return r.error().wrap("removing the interface state of " + m.name);
  return {};
}

Status EndpointManager::apply(const std::vector<calc::Interface>& interfaces,
                              const std::vector<calc::Route>& routes,
                              const BeforeAttach& before_attach) {
  std::vector<std::string> failures;
  std::set<std::string> want;
  pending_.clear();
  preparing_.clear();
  std::vector<const calc::Interface*> to_attach;
  for (const auto& itf : interfaces) {
    want.insert(itf.name);
    auto link = ifs_.link_by_name(itf.name);
    if (!link) {
      pending_.insert(itf.name);
      if (link.error().err == ENODEV) {
        spdlog::warn("workload {}: interface {} does not exist yet; will retry", itf.workload,
                     itf.name);
      } else {
        failures.push_back(itf.workload + ": " + link.error().str());
      }
      continue;
    }
    auto cur = attached_.find(itf.name);
    if (cur != attached_.end() && cur->second.ifindex == link->ifindex) continue;
    if (cur != attached_.end()) {
      // Same name, new ifindex: the pod's veth was recreated.
      auto d = detach(cur->second);
      if (!d) spdlog::warn("detaching stale {}: {}", itf.name, d.error().str());
      attached_.erase(cur);
    }
    auto st = prepare(itf, link->ifindex, link->mac);
    if (!st) {
      spdlog::error("workload {}: writing the interface state of {} (ifindex {}): {}", itf.workload,
                    itf.name, link->ifindex, st.error().str());
      failures.push_back(itf.workload + ": " + st.error().str());
      continue;
    }
    preparing_[itf.name] = Managed{link->ifindex, itf.name};
    to_attach.push_back(&itf);
  }
  if (Status hook = before_attach ? before_attach() : Status{}; !hook) {
    // Attaching now could run a new workload without its policy: hold them all back.
    for (const calc::Interface* itf : to_attach) {
      spdlog::error("workload {}: programs not attached to {}: its policy could not be put in "
                    "place; will retry",
                    itf->workload, itf->name);
      failures.push_back(itf->workload + ": not attached: " + hook.error().str());
      pending_.insert(itf->name);
      if (!adopted_.contains(itf->name)) held_[itf->name] = preparing_[itf->name];
    }
    to_attach.clear();
  }
  for (const calc::Interface* itf : to_attach) {
    int ifindex = preparing_[itf->name].ifindex;
    auto st = attach(*itf, ifindex);
    if (!st) {
      spdlog::error("workload {}: attaching programs to {} (ifindex {}): {}", itf->workload,
                    itf->name, ifindex, st.error().str());
      failures.push_back(itf->workload + ": " + st.error().str());
      continue;
    }
    attached_[itf->name] = Managed{ifindex, itf->name};
    adopted_.erase(itf->name);
    held_.erase(itf->name);
    spdlog::info("workload {}: programs attached to {} (ifindex {}, {})", itf->workload, itf->name,
                 ifindex, ifs_.mode());
  }
  preparing_.clear();
  // Held back and no longer wanted (or recreated under another ifindex): only an ifstate entry.
  for (auto it = held_.begin(); it != held_.end();) {
    bool keep = false;
    if (want.contains(it->first)) {
      auto link = ifs_.link_by_name(it->first);
      keep = link && link->ifindex == it->second.ifindex;
    }
    if (keep) {
      ++it;
      continue;
    }
    if (auto f = forget(it->second); !f) failures.push_back(f.error().str());
    it = held_.erase(it);
  }
  // Interfaces no longer wanted: ours from this run, and adopted ones nobody claims.
  for (auto* set : {&attached_, &adopted_}) {
    for (auto it = set->begin(); it != set->end();) {
      if (want.contains(it->first)) {  // still wanted (an adopted one is taken over above)
        ++it;
        continue;
      }
      auto d = detach(it->second);
      if (!d) {
        spdlog::error("detaching programs from {}: {}", it->first, d.error().str());
        failures.push_back(it->first + ": " + d.error().str());
      } else {
        spdlog::info("interface {} (ifindex {}) no longer a workload: programs detached",
                     it->first, it->second.ifindex);
      }
      it = set->erase(it);
    }
  }
  auto rs = sync_routes(routes);
  if (!rs) failures.push_back(rs.error().str());
  if (!failures.empty()) {
    std::string msg = fmt::format("{} endpoint failures", failures.size());
    for (const auto& f : failures) msg += "\n  " + f;
    return Error{0, msg};
  }
  return {};
}

Status EndpointManager::sync_routes(const std::vector<calc::Route>& routes) {
  std::set<std::pair<uint32_t, uint32_t>> want;
  std::vector<std::string> failures;
  for (const auto& r : routes) {
    weir_route_key k = route_key(r.cidr);
    weir_route_val v{};
    v.flags = bpf_route_flags(r.flags);
    if (r.flags & calc::kRouteLocalWorkload) {
      auto it = attached_.find(r.interface);
      if (it == attached_.end()) continue;  // interface not there (yet): host stack decides
      v.ifindex = static_cast<__u32>(it->second.ifindex);
      if (r.mac) std::memcpy(v.mac, r.mac->bytes.data(), 6);
    }
    if (r.next_hop) v.next_hop = htonl(r.next_hop->value);
    want.insert({k.addr, k.prefixlen});
    // An LPM lookup answers with the longest prefix that covers the key: only when this exact
    // prefix is in the map is its answer this entry (a remote pod's /32 under its node's CIDR
    // would otherwise read as already written).
    if (programmed_routes_.contains({k.addr, k.prefixlen})) {
      auto cur = maps_.routes.lookup(k);
      if (cur && *cur && std::memcmp(&**cur, &v, sizeof(v)) == 0) continue;
    }
    auto st = maps_.routes.update(k, v);
    if (!st) {
      failures.push_back(fmt::format("route {} ({}): {}", r.cidr.str(), r.workload,
                                     st.error().str()));
      continue;
    }
    programmed_routes_.insert({k.addr, k.prefixlen});
  }
  for (auto it = programmed_routes_.begin(); it != programmed_routes_.end();) {
    if (want.contains(*it)) {
      ++it;
      continue;
    }
    weir_route_key k{};
    k.addr = it->first;
    k.prefixlen = it->second;
    auto r = maps_.routes.remove(k);
    if (!r) {
      failures.push_back(r.error().str());
      ++it;
      continue;
    }
    it = programmed_routes_.erase(it);
  }
  if (!failures.empty()) {
    std::string msg;
    for (const auto& f : failures) msg += (msg.empty() ? "" : "; ") + f;
    return Error{0, msg};
  }
  return {};
}

}  // namespace weir::dataplane
