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
  // One half: its key (the client and the half's far end), its type, and what it rewrites to.
  auto half = [&](weir_ct_key& key, weir_ct_val& v, const char* far, uint16_t far_port, uint8_t type,
                  const char* nat, uint16_t nat_port) {
    bool client_first = false;
    key = calc::ct_make_key(ip4(client), cport, ip4(far), far_port, proto, &client_first);
    v.type = type;
    v.flags = client_first ? WEIR_CT_F_A_IS_CLIENT : 0;
    v.nat_addr = ip4(nat).network_order();
    v.nat_port = htons(nat_port);
    v.last_seen_ns = last_seen;
    v.a.flags = v.b.flags = leg_flags;
  };
  NatPair p{};
  half(p.fwd_key, p.fwd, vip, vport, WEIR_CT_NAT_FWD, backend, bport);
  half(p.rev_key, p.rev, backend, bport, WEIR_CT_NAT_REV, vip, vport);
  return p;
}

}  // namespace weir::ct_testing
