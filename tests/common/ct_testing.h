// Conntrack entries as the datapath writes them, for the tests of the code that reads them (the
// scanner, the CLI): shared by the unprivileged and the BPF tests.
#pragma once

#include <arpa/inet.h>

#include <cstdint>

#include "calc/conntrack.h"
#include "model/net.h"
#include "weir/conntrack.h"

namespace weir::ct_testing {

inline model::Ipv4 ip4(const char* s) { return *model::Ipv4::parse(s); }

struct NatPair {
  weir_ct_key fwd_key, rev_key;
  weir_ct_val fwd, rev;
};

// A NAT flow client -> vip -> backend as the datapath creates it (both halves).
inline NatPair nat_pair(const char* client, uint16_t cport, const char* vip, uint16_t vport,
                        const char* backend, uint16_t bport, uint8_t proto, uint64_t last_seen,
                        uint32_t leg_flags) {
  NatPair p{};
  bool client_first = false;
  p.fwd_key = calc::ct_make_key(ip4(client), cport, ip4(vip), vport, proto, &client_first);
  p.fwd.type = WEIR_CT_NAT_FWD;
  p.fwd.flags = client_first ? WEIR_CT_F_A_IS_CLIENT : 0;
  p.fwd.nat_addr = ip4(backend).network_order();
  p.fwd.nat_port = htons(bport);
  p.fwd.last_seen_ns = last_seen;
  p.fwd.a.flags = p.fwd.b.flags = leg_flags;
  p.rev_key = calc::ct_make_key(ip4(client), cport, ip4(backend), bport, proto, &client_first);
  p.rev.type = WEIR_CT_NAT_REV;
  p.rev.flags = client_first ? WEIR_CT_F_A_IS_CLIENT : 0;
  p.rev.nat_addr = ip4(vip).network_order();
  p.rev.nat_port = htons(vport);
  p.rev.last_seen_ns = last_seen;
  p.rev.a.flags = p.rev.b.flags = leg_flags;
  return p;
}

}  // namespace weir::ct_testing
