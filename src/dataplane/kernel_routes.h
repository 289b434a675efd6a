// Routed mode between nodes (DataplaneConfig vxlanEnabled: false): the agent puts a route to
// each other node's pod CIDR (and to each remote pod outside its node's CIDR) into the main
// table of its network namespace, via that node's underlay address, as Calico's route
// programming does. Packets to other nodes' pods leave from_wl with TC_ACT_OK and the host stack
// forwards them on these routes; the receiving node's host stack hands them to the pod's veth,
// where to_wl runs.
//
// weir's routes carry protocol kRtProtoWeir ("proto 77" in `ip route`), so that weir finds its
// own and never touches a route it did not make. They stay when the agent stops (pods keep
// their connectivity, as the BPF programs stay); the next agent adopts them.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <vector>

#include "bpf/netlink.h"
#include "calc/calc.h"
#include "model/net.h"
#include "util/result.h"

namespace weir::dataplane {

inline constexpr uint8_t kRtProtoWeir = 77;

struct KernelRoute {
  model::Cidr dst;
  model::Ipv4 via;
  auto operator<=>(const KernelRoute&) const = default;
  // "10.65.0.64/26 via 192.168.200.3".
  std::string str() const;
};

// The main table's weir routes (protocol kRtProtoWeir). A fake in unit tests.
class KernelRouteTable {
 public:
  virtual ~KernelRouteTable() = default;
  // weir's IPv4 routes in the main table, sorted.
  virtual Result<std::vector<KernelRoute>> list() = 0;
  // Adds the route; fails (EEXIST) when the table has a route to the same destination, weir's
  // or not: a route weir did not make is never replaced.
  virtual Status add(const KernelRoute& r) = 0;
  // Changes the next hop of weir's route to r.dst.
  virtual Status replace(const KernelRoute& r) = 0;
  virtual Status remove(const KernelRoute& r) = 0;
};

// Over rtnetlink, on one socket opened at the first call, in the network namespace of the
// thread that makes that call.
class NetlinkRouteTable : public KernelRouteTable {
 public:
  Result<std::vector<KernelRoute>> list() override;
  Status add(const KernelRoute& r) override;
  Status replace(const KernelRoute& r) override;
  Status remove(const KernelRoute& r) override;

 private:
  Result<bpf::Netlink*> socket();
  std::optional<bpf::Netlink> nl_;
};

// The kernel routes `routes` (calc's) call for: every remote route with a next hop, except a
// /32 that a routed CIDR with the same next hop already covers. Sorted.
std::vector<KernelRoute> wanted_kernel_routes(const std::vector<calc::Route>& routes);

// Makes weir's routes in `t` equal `want` (reading what is there first): routes added or
// re-pointed, weir's routes no longer wanted removed. Every failure is in the Error (naming
// the route and the kernel's reason); the other routes are still applied.
Status sync_kernel_routes(KernelRouteTable& t, const std::vector<KernelRoute>& want);

}  // namespace weir::dataplane
