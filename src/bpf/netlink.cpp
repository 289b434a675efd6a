#include "bpf/netlink.h"

#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include <fmt/format.h>

namespace weir::bpf {

namespace {

struct SockDeleter {
  void operator()(struct nl_sock* s) const { nl_socket_free(s); }
};
struct LinkDeleter {
  void operator()(struct rtnl_link* l) const { rtnl_link_put(l); }
};
struct CacheDeleter {
  void operator()(struct nl_cache* c) const { nl_cache_free(c); }
};
using SockPtr = std::unique_ptr<struct nl_sock, SockDeleter>;

// libnl error codes are not errnos; map the ones we can.
int nl_to_errno(int nlerr) {
  switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_OBJ_NOTFOUND: return ENODEV;
    case NLE_NODEV: return ENODEV;
    case NLE_PERM: return EPERM;
    case NLE_NOMEM: return ENOMEM;
    case NLE_INVAL: return EINVAL;
    default: return EIO;
  }
}

Result<SockPtr> connect_route() {
  SockPtr s(nl_socket_alloc());
  if (!s) return Error{ENOMEM, "allocating a netlink socket"};
  int err = nl_connect(s.get(), NETLINK_ROUTE);
  if (err < 0) return Error{nl_to_errno(err), fmt::format("connecting to rtnetlink: {}", nl_geterror(err))};
  return s;
}

LinkInfo to_info(struct rtnl_link* l) {
  LinkInfo li;
  li.ifindex = rtnl_link_get_ifindex(l);
  const char* n = rtnl_link_get_name(l);
  li.name = n != nullptr ? n : "";
  li.flags = rtnl_link_get_flags(l);
  li.up = (li.flags & IFF_UP) != 0;
  struct nl_addr* a = rtnl_link_get_addr(l);
  if (a != nullptr && nl_addr_get_len(a) == 6)
    std::copy_n(static_cast<const uint8_t*>(nl_addr_get_binary_addr(a)), 6, li.mac.begin());
  const char* t = rtnl_link_get_type(l);
  li.kind = t != nullptr ? t : "";
  return li;
}

Result<LinkInfo> get_link(int ifindex, const char* name, const std::string& what) {
  auto s = connect_route();
  if (!s) return s.error();
  struct rtnl_link* raw = nullptr;
  int err = rtnl_link_get_kernel(s->get(), ifindex, name, &raw);
  if (err < 0) {
    int e = nl_to_errno(err);
    if (e == ENODEV) return Error{ENODEV, fmt::format("no network interface {} in this namespace", what)};
    return Error{e, fmt::format("looking up interface {}: {}", what, nl_geterror(err))};
  }
  std::unique_ptr<struct rtnl_link, LinkDeleter> l(raw);
  return to_info(l.get());
}

}  // namespace

Result<LinkInfo> link_by_name(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return Error{EINVAL, fmt::format("invalid interface name '{}'", name)};
  return get_link(0, name.c_str(), "'" + name + "'");
}

Result<LinkInfo> link_by_index(int ifindex) {
  if (ifindex <= 0) return Error{EINVAL, fmt::format("invalid ifindex {}", ifindex)};
  return get_link(ifindex, nullptr, fmt::format("with ifindex {}", ifindex));
}

Result<std::vector<LinkInfo>> list_links() {
  auto s = connect_route();
  if (!s) return s.error();
  struct nl_cache* raw = nullptr;
  int err = rtnl_link_alloc_cache(s->get(), AF_UNSPEC, &raw);
  if (err < 0) return Error{nl_to_errno(err), fmt::format("listing interfaces: {}", nl_geterror(err))};
  std::unique_ptr<struct nl_cache, CacheDeleter> cache(raw);
  std::vector<LinkInfo> out;
  for (struct nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o))
    out.push_back(to_info(reinterpret_cast<struct rtnl_link*>(o)));
  std::sort(out.begin(), out.end(), [](const LinkInfo& a, const LinkInfo& b) { return a.ifindex < b.ifindex; });
  return out;
}

std::string format_mac(const uint8_t mac[6]) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5]);
}

}  // namespace weir::bpf
