// A SYN flood for the lab: TCP SYNs with varying source ports, sent through a raw socket from
// the network namespace of the calling thread (wrap calls in Lab::in_pod() to flood from a
// pod). Used by `weir lab flood` and the e2e tests to fill the conntrack table.
//
// Every SYN comes from the address the namespace's route to the target picks (a pod's own IP:
// the datapath's source check lets it through), to the target address and port, from source
// ports first_port, first_port + 1, ... last_port, then first_port again: one new flow per SYN
// for up to (last_port - first_port + 1) SYNs, so at most 64,512 distinct flows per (pod,
// target) with the default range. A target that answers (SYN-ACK, which the flooding pod's
// kernel resets) makes the flood's conntrack entries used ones, as a real flood's are.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include "lab/traffic.h"
#include "util/result.h"

namespace weir::lab {

struct FloodOptions {
  IpPort target;
  int count = 1000;             // SYNs to send (>= 1)
  int rate = 0;                 // SYNs per second; 0 = as fast as the socket takes them
  uint16_t first_port = 1024;   // source port range, cycled
  uint16_t last_port = 65535;
};

struct FloodReport {
  std::string source;  // the source address used
  std::string target;  // "ip:port"
  int sent = 0;
  uint16_t next_port = 0;  // the source port a following flood should start from
  std::chrono::milliseconds elapsed{0};

  // "flood 10.65.0.2 -> 10.96.0.10:80: 5000 SYNs in 41 ms (121951/s), source ports 1024..6023"
  std::string str() const;
};

// One SYN as syn_flood sends it: IPv4 header (DF, TTL 64, id `ip_id`) + 20-byte TCP header
// (SYN, window 64240, sequence `seq`), both checksums filled. Addresses in network order, ports
// in host order.
std::array<uint8_t, 40> syn_packet(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
                                   uint32_t seq, uint16_t ip_id);

// Sends the SYNs; an Error (with errno) when the options are invalid, the raw socket cannot be
// opened (needs CAP_NET_RAW) or a send fails.
Result<FloodReport> syn_flood(const FloodOptions& opts);

}  // namespace weir::lab
