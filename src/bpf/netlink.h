// Interface lookups over rtnetlink (libnl-route-3). The agent never reads /sys/class/net.
// All functions use the CALLING THREAD's network namespace.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "util/result.h"

namespace weir::bpf {

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

// "02:00:0a:41:00:02" formatting of a MAC address.
std::string format_mac(const uint8_t mac[6]);

}  // namespace weir::bpf
