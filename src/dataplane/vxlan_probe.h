// The VXLAN port probe of `weir doctor` (check vxlan-port, docs/doctor.md): from this node's
// underlay address, one VXLAN probe request (bpf/include/weir/tunnel.h) to every other node's
// VXLAN port, answered by that node's weir_from_ul. Run in the node's network namespace.
//
//   auto r = probe_vxlan_peers({local, port_be, vni, {peer1, peer2}}, 1s);
//   for (const auto& p : *r) ... p.peer, p.answered, p.rtt_ms
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "util/result.h"

namespace weir::dataplane {

struct VxlanProbeTarget {
  uint32_t local = 0;           // this node's underlay address, network order (the source)
  uint16_t port = 0;            // the VXLAN UDP port, network order
  uint32_t vni = 0;             // host order
  std::vector<uint32_t> peers;  // the other nodes' underlay addresses, network order
};

struct VxlanProbeResult {
  uint32_t peer = 0;  // network order
  bool answered = false;
  double rtt_ms = 0;  // when answered
};

// One request per peer, all sent at once, then the replies collected until `timeout`; a reply
// counts only from the peer's address and port with that peer's nonce. An Error when the socket
// cannot be made or bound (e.g. `local` is not an address of this namespace).
Result<std::vector<VxlanProbeResult>> probe_vxlan_peers(const VxlanProbeTarget& t, std::chrono::milliseconds timeout);

}  // namespace weir::dataplane
