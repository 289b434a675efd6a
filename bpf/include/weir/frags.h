/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IP fragments (LRU hash, weir_frags1). Only the first fragment of a datagram carries the L4
 * header, so only it can be matched to a flow, NATed and decided by policy. Its outcome is
 * remembered here, keyed by the datagram's identity at the hook that saw it, and applied to the
 * later fragments (the address rewrite of NAT, the same forwarding), which must follow in order:
 *   a later fragment without an entry:           dropped, "fragment of yet incomplete packet"
 *                                                 (its first fragment was not forwarded here)
 *   a later fragment not at the expected offset: dropped, "fragment out of order within host"
 * The entry goes with the last fragment (MF clear); a datagram that never completes leaves its
 * entry to the LRU. Nothing here is reassembled; a dropped first fragment drops the datagram.
 *
 * Written and read by the TC programs only. Full: LRU eviction of the oldest datagram, whose
 * later fragments are then dropped as incomplete. The CLI does not show it.
 */
#ifndef WEIR_FRAGS_H
#define WEIR_FRAGS_H

#include "common.h"

struct weir_frag_key {
	__u32 saddr;   /* as the fragments carry them at this hook (before this hook's NAT) */
	__u32 daddr;
	__u32 ifindex; /* interface the first fragment was seen on */
	__u16 ip_id;   /* IP identification, network order */
	__u8 proto;
	__u8 hook;     /* enum weir_hook */
};
WEIR_ASSERT_SIZE(struct weir_frag_key, 16);

/* How the first fragment left the program. */
enum weir_frag_fwd {
	WEIR_FRAG_FWD_PASS = 0,     /* TC_ACT_OK */
	WEIR_FRAG_FWD_REDIRECT = 1, /* bpf_redirect(ifindex) */
	WEIR_FRAG_FWD_PEER = 2,     /* bpf_redirect_peer(ifindex) */
};

struct weir_frag_val {
	__u32 saddr;       /* addresses of the forwarded first fragment (after NAT), network order */
	__u32 daddr;
	__u32 ifindex;     /* redirect target, 0 for PASS */
	__u8 macs[12];     /* Ethernet destination and source of the forwarded first fragment */
	__u16 next_offset; /* fragment offset (8-byte units) the next fragment must have */
	__u8 fwd;          /* enum weir_frag_fwd */
	__u8 outcome;      /* enum weir_counter the later fragments are counted with */
	__u32 pad;
};
WEIR_ASSERT_SIZE(struct weir_frag_val, 32);

#endif
