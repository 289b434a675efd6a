#include "dataplane/tunnel_kernel.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <net/if.h>

#include <memory>

#include "bpf/netlink.h"

namespace weir::dataplane {

Result<UnderlayIf> KernelTunnel::interface_of(model::Ipv4 addr) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return errno_error("getifaddrs");
  std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> guard(list, ::freeifaddrs);
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    if (model::Ipv4::from_network_order(sin->sin_addr.s_addr) != addr) continue;
    unsigned idx = ::if_nametoindex(a->ifa_name);
    if (idx == 0) return errno_error(fmt::format("if_nametoindex({})", a->ifa_name));
    return UnderlayIf{static_cast<int>(idx), a->ifa_name};
  }
  return Error{ENOENT, fmt::format("no interface in this network namespace has the address {}",
                                   addr.str())};
}

Status KernelTunnel::attach(const UnderlayIf& itf) {
  return bpf::tc_attach(itf.ifindex, itf.name, bpf::TcDir::Ingress, prog_fd_, mode_,
                        layout_.link_path(itf.name, bpf::TcDir::Ingress));
}

Status KernelTunnel::detach(const UnderlayIf& itf) {
  return bpf::tc_detach(itf.ifindex, bpf::TcDir::Ingress, mode_,
                        layout_.link_path(itf.name, bpf::TcDir::Ingress));
}

Result<std::optional<UnderlayIf>> KernelTunnel::find_attached() {
  auto links = bpf::list_links();
  if (!links) return links.error();
  for (const auto& l : *links) {
    auto progs = bpf::tc_list(l.ifindex, bpf::TcDir::Ingress);
    if (!progs) continue;  // gone meanwhile
    for (const auto& p : *progs)
      if (p.prog_name == kFromUnderlayProgName) return std::optional<UnderlayIf>(UnderlayIf{l.ifindex, l.name});
  }
  return std::optional<UnderlayIf>();
}

}  // namespace weir::dataplane
