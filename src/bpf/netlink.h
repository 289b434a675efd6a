// weir's one rtnetlink client: a raw NETLINK_ROUTE socket (RAII), requests and dumps with
// errors that carry the errno, the context and the kernel's extended ack message when it gives
// one ("deleting tc ingress filter ...: Error: Parent Qdisc doesn't exists."). The interface
// lookups below and the clsact/cls_bpf attach (bpf/attach.cpp) both use it. The agent never
// reads /sys/class/net. Everything uses the CALLING THREAD's network namespace.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace weir::bpf {

// A netlink request being built: header, fixed part, then attributes.
class NlMsg {
 public:
  // `fixed`: the message's family header (tcmsg, ifinfomsg, ...), copied after the nlmsghdr.
  NlMsg(uint16_t type, uint16_t flags, const void* fixed, size_t len);
  void add_attr(uint16_t type, const void* data, size_t len);
  void add_attr(uint16_t type, std::string_view s);  // NUL-terminated
  struct nlmsghdr* hdr() { return reinterpret_cast<struct nlmsghdr*>(buf_.data()); }
  std::vector<char>& bytes() { return buf_; }

 private:
  std::vector<char> buf_;
};

// Calls f(const rtattr*) for each attribute in [start, start + len).
template <typename F>
void for_each_attr(const void* start, int len, F f) {
  for (const auto* a = static_cast<const struct rtattr*>(start); RTA_OK(a, len); a = RTA_NEXT(a, len))
    f(a);
}
// The attributes after a message's fixed part of `fixed_len` bytes.
template <typename F>
void for_each_attr(const struct nlmsghdr* h, size_t fixed_len, F f) {
  int len = static_cast<int>(h->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(fixed_len));
  for_each_attr(static_cast<const char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(fixed_len), len, f);
}
// A string attribute (up to its NUL or its end).
std::string attr_string(const struct rtattr* a);

class Netlink {
 public:
  // Opens and binds a NETLINK_ROUTE socket with extended acks (NETLINK_EXT_ACK, capped acks).
  static Result<Netlink> open();

  // Sends `msg`; for a dump (`dump`) calls on_msg for every reply until NLMSG_DONE, otherwise
  // asks for an ACK and calls on_msg for any reply before it. A kernel error becomes
  // Error{errno, "<what>: <extended ack message>"} (just `what` when the kernel gave none).
  Status request(NlMsg& msg, bool dump, const std::function<void(const struct nlmsghdr*)>& on_msg,
                 const std::string& what);

 private:
  Fd fd_;
  uint32_t seq_ = 0;
};

struct LinkInfo {
  int ifindex = 0;
  std::string name;
  std::array<uint8_t, 6> mac{};  // all zero when the link has no Ethernet address
  bool up = false;               // IFF_UP
  uint32_t flags = 0;            // IFF_* flags
  std::string kind;              // "veth", "bridge", ... ("" for physical / unknown)
};

// The link named `name`; Error with ENODEV and the name when absent.
Result<LinkInfo> link_by_name(const std::string& name);
// The link with index `ifindex`; Error with ENODEV and the index when absent.
Result<LinkInfo> link_by_index(int ifindex);
// Every link in the namespace, sorted by ifindex.
Result<std::vector<LinkInfo>> list_links();

// An IPv4 neighbour (ARP) entry.
struct NeighInfo {
  uint32_t addr = 0;  // network order
  int ifindex = 0;
  std::array<uint8_t, 6> lladdr{};
  bool has_lladdr = false;  // false while unresolved (INCOMPLETE, FAILED)
  uint16_t state = 0;       // NUD_* bits
};
// Every IPv4 neighbour entry of the namespace.
Result<std::vector<NeighInfo>> list_neighbours_v4();
// "REACHABLE", "STALE", "PERMANENT", ... ("NONE" for 0; several bits joined with "|").
std::string neigh_state_name(uint16_t state);

// "02:00:0a:41:00:02" formatting of a MAC address.
std::string format_mac(const uint8_t mac[6]);

}  // namespace weir::bpf
