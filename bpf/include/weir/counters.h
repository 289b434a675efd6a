/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Counters (per-CPU hash, weir_counters3): (ifindex, hook) -> one __u64 per counter below.
 * Written by the TC programs (every packet increments WEIR_CNT_TOTAL and exactly one outcome
 * counter), read and zeroed by the CLI (`weir bpf counters dump|flush`). Removed by the
 * endpoint manager when an interface goes away. Full: the packet is still processed; its
 * counts are lost (the map is sized for 20Ki interfaces x hooks).
 *
 * Categories and descriptions are in src/maps/decode.cpp (kCounters); `weir bpf counters dump`
 * shows them in the seed's row order (categories alphabetical, so Other before Redirect, Total
 * last), not in enum order. Any new counter changes the value's size, so the map's layout
 * version in WEIR_MAPS (bpf/include/weir/maps.h) goes up and the old name is retired
 * (docs/maps.md); a new outcome goes before the Other counters (the outcomes are one range), and
 * appending there keeps every existing outcome's index.
 */
#ifndef WEIR_COUNTERS_H
#define WEIR_COUNTERS_H

#include "common.h"

struct weir_counters_key {
	__u32 ifindex;
	__u32 hook; /* enum weir_hook */
};
WEIR_ASSERT_SIZE(struct weir_counters_key, 8);

enum weir_counter {
	/* Outcomes: exactly one per packet. */
	WEIR_CNT_ACCEPT_BY_OTHER_PROG = 0, /* Accepted: by another program */
	WEIR_CNT_ACCEPT_BY_FAILSAFE,       /* Accepted: by failsafe */
	WEIR_CNT_ACCEPT_BY_POLICY,         /* Accepted: by policy (new flow, a policy allowed it) */
	WEIR_CNT_ACCEPT_NEW_FLOW,          /* Accepted: new flow, no policy applies */
	WEIR_CNT_ACCEPT_ESTABLISHED,       /* Accepted: established flow (conntrack hit) */
	WEIR_CNT_ACCEPT_NON_IPV4,          /* Accepted: not IPv4, passed untouched */
	WEIR_CNT_DROP_NAT_COLLISION,       /* Dropped: NAT source collision resolution failed */
	WEIR_CNT_DROP_QOS,                 /* Dropped: QoS control limit */
	WEIR_CNT_DROP_BY_POLICY,           /* Dropped: by policy */
	WEIR_CNT_DROP_DECAP,               /* Dropped: failed decapsulation */
	WEIR_CNT_DROP_ENCAP,               /* Dropped: failed encapsulation */
	WEIR_CNT_DROP_CT_CREATE,           /* Dropped: failed to create conntrack */
	WEIR_CNT_DROP_FRAG_INCOMPLETE,     /* Dropped: fragment of yet incomplete packet */
	WEIR_CNT_DROP_FRAG_ORDER,          /* Dropped: fragment out of order within host */
	WEIR_CNT_DROP_FRAG_UNSUPPORTED,    /* Dropped: fragments not supported */
	WEIR_CNT_DROP_BAD_CSUM,            /* Dropped: incorrect checksum */
	WEIR_CNT_DROP_MALFORMED,           /* Dropped: malformed IP packets */
	WEIR_CNT_DROP_BLACKHOLE,           /* Dropped: packets hitting blackhole route */
	WEIR_CNT_DROP_UNKNOWN_ROUTE,       /* Dropped: packets with unknown route */
	WEIR_CNT_DROP_UNKNOWN_SOURCE,      /* Dropped: packets with unknown source */
	WEIR_CNT_DROP_IP_OPTIONS,          /* Dropped: packets with unsupported IP options */
	WEIR_CNT_DROP_SHORT,               /* Dropped: too short packets */
	WEIR_CNT_DROP_NO_BACKEND,          /* Dropped: service without backends (answered RST/ICMP) */
	WEIR_CNT_DROP_TAIL_CALL,           /* Dropped: missed tail call */
	WEIR_CNT_DROP_REWRITE,             /* Dropped: packet rewrite failed */
	WEIR_CNT_DROP_ICMP_NO_FLOW,        /* Dropped: ICMP error about no tracked flow */
	WEIR_CNT_DROP_VLAN,                /* Dropped: VLAN-tagged frame from a workload */
	WEIR_CNT_REDIRECT_NEIGH,           /* Redirect: neigh */
	WEIR_CNT_REDIRECT_PEER,            /* Redirect: peer */
	WEIR_CNT_REDIRECT_PLAIN,           /* Redirect: plain */
	WEIR_CNT_ACCEPT_UNDERLAY,          /* Accepted: underlay traffic, not VXLAN for this node
	                                    * (passed untouched by weir_from_ul) */
	/* Not outcomes: extra facts about a packet already counted above. */
	WEIR_CNT_OTHER_NAT_COLLISION,      /* Other: packets hitting NAT source collision */
	WEIR_CNT_OTHER_ICMP_ERR_NAT,       /* Other: ICMP errors reverse-NATed */
	WEIR_CNT_TOTAL,                    /* Total: packets */
	WEIR_CNT__MAX,
};

/* First and last of the outcomes that drop the packet: every "Dropped" row of the table and
 * nothing else (what sends a drop's flow event, lib/flow.h). A drop outcome appended elsewhere
 * must widen it: FlowEventConversion.TheDropRangeIsEveryDroppedCounter fails until it does. */
#define WEIR_CNT_DROP_FIRST WEIR_CNT_DROP_NAT_COLLISION
#define WEIR_CNT_DROP_LAST WEIR_CNT_DROP_VLAN

/* First and one-past-last outcome counter: sum(outcomes) == TOTAL is an invariant tests check. */
#define WEIR_CNT_OUTCOME_FIRST WEIR_CNT_ACCEPT_BY_OTHER_PROG
#define WEIR_CNT_OUTCOME_END WEIR_CNT_OTHER_NAT_COLLISION

struct weir_counters_val {
	__u64 c[WEIR_CNT__MAX];
};
WEIR_ASSERT_SIZE(struct weir_counters_val, 8 * WEIR_CNT__MAX);

#endif
