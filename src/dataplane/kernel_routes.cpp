#include "dataplane/kernel_routes.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "bpf/netlink.h"

namespace weir::dataplane {

std::string KernelRoute::str() const { return fmt::format("{} via {}", dst.str(), via.str()); }

namespace {

struct rtmsg route_msg(const model::Cidr& dst) {
  struct rtmsg m {};
  m.rtm_family = AF_INET;
  m.rtm_dst_len = dst.prefix_len;
  m.rtm_table = RT_TABLE_MAIN;
  m.rtm_protocol = kRtProtoWeir;
  m.rtm_scope = RT_SCOPE_UNIVERSE;
  m.rtm_type = RTN_UNICAST;
  return m;
}

void add_addrs(bpf::NlMsg& msg, const KernelRoute& r) {
  uint32_t dst = htonl(r.dst.addr.value), gw = htonl(r.via.value);
  msg.add_attr(RTA_DST, &dst, sizeof(dst));
  msg.add_attr(RTA_GATEWAY, &gw, sizeof(gw));
}

}  // namespace

std::vector<KernelRoute> wanted_kernel_routes(const std::vector<calc::Route>& routes) {
  std::vector<KernelRoute> cidrs, out;
  for (const auto& r : routes)
    if ((r.flags & calc::kRouteRemote) && r.next_hop && r.cidr.prefix_len < 32)
      cidrs.push_back({r.cidr, *r.next_hop});
  out = cidrs;
  for (const auto& r : routes) {
    if (!(r.flags & calc::kRouteRemote) || !r.next_hop || r.cidr.prefix_len < 32) continue;
    bool covered = std::any_of(cidrs.begin(), cidrs.end(), [&](const KernelRoute& c) {
      return c.via == *r.next_hop && c.dst.contains(r.cidr.addr);
    });
    if (!covered) out.push_back({r.cidr, *r.next_hop});
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Status sync_kernel_routes(KernelRouteTable& t, const std::vector<KernelRoute>& want) {
  auto have = t.list();
  if (!have) return have.error().wrap("listing weir's kernel routes");
  std::map<model::Cidr, model::Ipv4> now;
  for (const auto& r : *have) now[r.dst] = r.via;
  std::vector<std::string> failures;
  std::map<model::Cidr, model::Ipv4> wanted;
  for (const auto& r : want) {
    wanted[r.dst] = r.via;
    auto it = now.find(r.dst);
    if (it != now.end() && it->second == r.via) continue;
    auto s = it != now.end() ? t.replace(r) : t.add(r);
    if (!s) failures.push_back(s.error().str());
  }
  for (const auto& [dst, via] : now) {
    if (wanted.contains(dst)) continue;
    if (auto s = t.remove({dst, via}); !s) failures.push_back(s.error().str());
  }
  if (failures.empty()) return {};
  std::string msg = fmt::format("{} kernel route failures", failures.size());
  for (const auto& f : failures) msg += "\n  " + f;
  return Error{0, msg};
}

Result<bpf::Netlink*> NetlinkRouteTable::socket() {
  if (!nl_) {
    auto nl = bpf::Netlink::open();
    if (!nl) return nl.error();
    nl_.emplace(std::move(*nl));
  }
  return &*nl_;
}

Result<std::vector<KernelRoute>> NetlinkRouteTable::list() {
  auto nl = socket();
  if (!nl) return nl.error();
  struct rtmsg m {};
  m.rtm_family = AF_INET;
  bpf::NlMsg msg(RTM_GETROUTE, 0, &m, sizeof(m));
  std::vector<KernelRoute> out;
  auto st = (*nl)->request(
      msg, true,
      [&](const struct nlmsghdr* h) {
        if (h->nlmsg_type != RTM_NEWROUTE) return;
        const auto* rm = static_cast<const struct rtmsg*>(NLMSG_DATA(h));
        if (rm->rtm_family != AF_INET || rm->rtm_protocol != kRtProtoWeir) return;
        uint32_t table = rm->rtm_table, dst = 0, gw = 0;
        bpf::for_each_attr(h, sizeof(struct rtmsg), [&](const struct rtattr* a) {
          if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= 4) std::memcpy(&table, RTA_DATA(a), 4);
          if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) >= 4) std::memcpy(&dst, RTA_DATA(a), 4);
          if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) >= 4) std::memcpy(&gw, RTA_DATA(a), 4);
        });
        if (table != RT_TABLE_MAIN) return;
        out.push_back(
            {model::Cidr{model::Ipv4{ntohl(dst)}, rm->rtm_dst_len}, model::Ipv4{ntohl(gw)}});
      },
      "listing IPv4 routes");
  if (!st) return st.error();
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

Status new_route(bpf::Netlink& nl, const KernelRoute& r, uint16_t flags, const std::string& what) {
  struct rtmsg m = route_msg(r.dst);
  bpf::NlMsg msg(RTM_NEWROUTE, flags, &m, sizeof(m));
  add_addrs(msg, r);
  return nl.request(
      msg, false, [](const struct nlmsghdr*) {}, what);
}

}  // namespace

Status NetlinkRouteTable::add(const KernelRoute& r) {
  auto nl = socket();
  if (!nl) return nl.error();
  auto st = new_route(**nl, r, NLM_F_CREATE | NLM_F_EXCL, "adding route " + r.str());
  if (!st && st.error().err == EEXIST)
    return Error{EEXIST, fmt::format("adding route {}: the main table already has a route to {} "
                                     "that weir did not make; weir leaves it alone",
                                     r.str(), r.dst.str())};
  return st;
}

Status NetlinkRouteTable::replace(const KernelRoute& r) {
  auto nl = socket();
  if (!nl) return nl.error();
  return new_route(**nl, r, NLM_F_REPLACE, "changing route " + r.str());
}

Status NetlinkRouteTable::remove(const KernelRoute& r) {
  auto nl = socket();
  if (!nl) return nl.error();
  struct rtmsg m = route_msg(r.dst);
  bpf::NlMsg msg(RTM_DELROUTE, 0, &m, sizeof(m));
  add_addrs(msg, r);
  auto st = (*nl)->request(
      msg, false, [](const struct nlmsghdr*) {}, "removing route " + r.str());
  if (!st && st.error().err == ESRCH) return {};  // already gone
  return st;
}

}  // namespace weir::dataplane
