#include "bpf/netlink.h"

#include <linux/neighbour.h>

#include <linux/if_link.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <fmt/format.h>

namespace weir::bpf {

// ------------------------------------------------------------------ messages

NlMsg::NlMsg(uint16_t type, uint16_t flags, const void* fixed, size_t len)
    : buf_(NLMSG_LENGTH(len), 0) {
  hdr()->nlmsg_type = type;
  hdr()->nlmsg_flags = flags;
  std::memcpy(NLMSG_DATA(hdr()), fixed, len);
}

void NlMsg::add_attr(uint16_t type, const void* data, size_t len) {
  size_t off = NLMSG_ALIGN(buf_.size());
  buf_.resize(off + RTA_SPACE(len), 0);
  auto* a = reinterpret_cast<struct rtattr*>(buf_.data() + off);
  a->rta_type = type;
  a->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(a), data, len);
}

void NlMsg::add_attr(uint16_t type, std::string_view s) {
  std::string z(s);
  add_attr(type, z.c_str(), z.size() + 1);
}

std::string attr_string(const struct rtattr* a) {
  const char* p = static_cast<const char*>(RTA_DATA(a));
  return std::string(p, strnlen(p, RTA_PAYLOAD(a)));
}

// ------------------------------------------------------------------ socket

namespace {

// NLMSG_OK without its comparison of the header's __u32 length with the signed remainder.
bool nlmsg_ok(const struct nlmsghdr* r, int len) {
  return len >= static_cast<int>(sizeof(struct nlmsghdr)) &&
         r->nlmsg_len >= sizeof(struct nlmsghdr) && r->nlmsg_len <= static_cast<unsigned>(len);
}

// The kernel's error of an NLMSG_ERROR reply, with its extended ack message when present.
Error nl_error(const struct nlmsghdr* r, const std::string& what) {
  const auto* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(r));
  std::string msg = what;
  if (r->nlmsg_flags & NLM_F_ACK_TLVS) {
    // After the nlmsgerr: the request's payload unless the ack is capped, then the TLVs.
    size_t off = sizeof(*e);
    if (!(r->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
    int len = static_cast<int>(r->nlmsg_len) - static_cast<int>(NLMSG_HDRLEN + off);
    for_each_attr(static_cast<const char*>(NLMSG_DATA(r)) + off, len, [&](const rtattr* a) {
      if (a->rta_type == NLMSGERR_ATTR_MSG) msg += ": " + attr_string(a);
    });
  }
  return Error{-e->error, msg};
}

}  // namespace

Result<Netlink> Netlink::open() {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno_error("opening an rtnetlink socket");
  Netlink nl;
  nl.fd_.reset(fd);
  struct sockaddr_nl sa {};
  sa.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) != 0)
    return errno_error("binding an rtnetlink socket");
  // Best effort: kernels without them still answer, only without the messages.
  int one = 1;
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  return nl;
}

Status Netlink::request(NlMsg& msg, bool dump,
                        const std::function<void(const struct nlmsghdr*)>& on_msg,
                        const std::string& what) {
  struct nlmsghdr* h = msg.hdr();
  h->nlmsg_len = static_cast<__u32>(msg.bytes().size());
  h->nlmsg_seq = ++seq_;
  h->nlmsg_flags |= NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
  struct sockaddr_nl sa {};
  sa.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), msg.bytes().data(), msg.bytes().size(), 0,
               reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) < 0)
    return errno_error("netlink send: " + what);
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("netlink receive: " + what);
    }
    int len = static_cast<int>(n);
    for (auto* r = reinterpret_cast<struct nlmsghdr*>(buf.data()); nlmsg_ok(r, len);
         r = NLMSG_NEXT(r, len)) {
      if (r->nlmsg_seq != seq_) continue;
      if (r->nlmsg_type == NLMSG_DONE) return {};
      if (r->nlmsg_type == NLMSG_ERROR) {
        if (static_cast<const struct nlmsgerr*>(NLMSG_DATA(r))->error == 0) return {};
        return nl_error(r, what);
      }
      on_msg(r);
    }
  }
}

// ------------------------------------------------------------------ links

namespace {

LinkInfo to_info(const struct nlmsghdr* h) {
  const auto* ifi = static_cast<const struct ifinfomsg*>(NLMSG_DATA(h));
  LinkInfo li;
  li.ifindex = ifi->ifi_index;
  li.flags = ifi->ifi_flags;
  li.up = (li.flags & IFF_UP) != 0;
  for_each_attr(h, sizeof(*ifi), [&](const rtattr* a) {
    if (a->rta_type == IFLA_IFNAME) {
      li.name = attr_string(a);
    } else if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) {
      std::memcpy(li.mac.data(), RTA_DATA(a), 6);
    } else if (a->rta_type == IFLA_LINKINFO) {
      for_each_attr(RTA_DATA(a), static_cast<int>(RTA_PAYLOAD(a)), [&](const rtattr* i) {
        if (i->rta_type == IFLA_INFO_KIND) li.kind = attr_string(i);
      });
    }
  });
  return li;
}

// RTM_GETLINK of one link, by index or (ifindex 0) by name.
Result<LinkInfo> get_link(int ifindex, const std::string& name, const std::string& what) {
  auto nl = Netlink::open();
  if (!nl) return nl.error();
  struct ifinfomsg ifi {};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  NlMsg m(RTM_GETLINK, 0, &ifi, sizeof(ifi));
  if (!name.empty()) m.add_attr(IFLA_IFNAME, name);
  std::optional<LinkInfo> found;
  auto st = nl->request(
      m, false,
      [&](const struct nlmsghdr* h) {
        if (h->nlmsg_type == RTM_NEWLINK) found = to_info(h);
      },
      fmt::format("looking up interface {}", what));
  if (!st && st.error().err == ENODEV)
    return Error{ENODEV, fmt::format("no network interface {} in this namespace", what)};
  if (!st) return st.error();
  if (!found) return Error{ENODEV, fmt::format("no network interface {} in this namespace", what)};
  return *found;
}

}  // namespace

Result<LinkInfo> link_by_name(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return Error{EINVAL, fmt::format("invalid interface name '{}'", name)};
  return get_link(0, name, "'" + name + "'");
}

Result<LinkInfo> link_by_index(int ifindex) {
  if (ifindex <= 0) return Error{EINVAL, fmt::format("invalid ifindex {}", ifindex)};
  return get_link(ifindex, "", fmt::format("with ifindex {}", ifindex));
}

Result<std::vector<LinkInfo>> list_links() {
  auto nl = Netlink::open();
  if (!nl) return nl.error();
  struct ifinfomsg ifi {};
  ifi.ifi_family = AF_UNSPEC;
  NlMsg m(RTM_GETLINK, 0, &ifi, sizeof(ifi));
  std::vector<LinkInfo> out;
  auto st = nl->request(
      m, true,
      [&](const struct nlmsghdr* h) {
        if (h->nlmsg_type == RTM_NEWLINK) out.push_back(to_info(h));
      },
      "listing interfaces");
  if (!st) return st.error();
  std::sort(out.begin(), out.end(),
            [](const LinkInfo& a, const LinkInfo& b) { return a.ifindex < b.ifindex; });
  return out;
}

Result<std::vector<NeighInfo>> list_neighbours_v4() {
  auto nl = Netlink::open();
  if (!nl) return nl.error();
  struct ndmsg nd {};
  nd.ndm_family = AF_INET;
  NlMsg m(RTM_GETNEIGH, 0, &nd, sizeof(nd));
  std::vector<NeighInfo> out;
  auto st = nl->request(
      m, true,
      [&](const struct nlmsghdr* h) {
        if (h->nlmsg_type != RTM_NEWNEIGH) return;
        const auto* n = static_cast<const struct ndmsg*>(NLMSG_DATA(h));
        if (n->ndm_family != AF_INET) return;
        NeighInfo info;
        info.ifindex = n->ndm_ifindex;
        info.state = n->ndm_state;
        for_each_attr(h, sizeof(struct ndmsg), [&](const struct rtattr* a) {
          if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) == 4)
            std::memcpy(&info.addr, RTA_DATA(a), 4);
          if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
            std::memcpy(info.lladdr.data(), RTA_DATA(a), 6);
            info.has_lladdr = true;
          }
        });
        out.push_back(info);
      },
      "listing IPv4 neighbours");
  if (!st) return st.error();
  return out;
}

std::string neigh_state_name(uint16_t state) {
  static constexpr std::pair<uint16_t, const char*> kNames[] = {
      {NUD_INCOMPLETE, "INCOMPLETE"}, {NUD_REACHABLE, "REACHABLE"}, {NUD_STALE, "STALE"},
      {NUD_DELAY, "DELAY"},           {NUD_PROBE, "PROBE"},         {NUD_FAILED, "FAILED"},
      {NUD_NOARP, "NOARP"},           {NUD_PERMANENT, "PERMANENT"}};
  std::string out;
  for (const auto& [bit, name] : kNames)
    if (state & bit) out += (out.empty() ? "" : "|") + std::string(name);
  return out.empty() ? "NONE" : out;
}

std::string format_mac(const uint8_t mac[6]) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5]);
}

}  // namespace weir::bpf
