/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Routes (LPM trie, weir_routes1): CIDR -> where it lives.
 * Written by the agent's endpoint manager (one /32 per local workload IP), read by the TC
 * programs for new flows only (established flows carry the answer in conntrack).
 * Full: the endpoint manager logs an error naming the endpoint; its traffic then goes up the
 * host stack instead of being redirected.
 */
#ifndef WEIR_ROUTES_H
#define WEIR_ROUTES_H

#include "common.h"

struct weir_route_key {
	__u32 prefixlen; /* LPM prefix length in bits (0..32) */
	__u32 addr;      /* network order */
};
WEIR_ASSERT_SIZE(struct weir_route_key, 8);

#define WEIR_RT_F_LOCAL_WORKLOAD (1u << 0)
#define WEIR_RT_F_HOST (1u << 1)
#define WEIR_RT_F_REMOTE (1u << 2)
#define WEIR_RT_F_IN_POOL (1u << 3)

struct weir_route_val {
	__u32 flags;   /* WEIR_RT_F_* */
	__u32 ifindex; /* local workload: its host-side veth; else 0 */
	__u32 next_hop; /* remote: the underlay address of the node it lives on (network order), 0
	                 * when no Node resource names that node; else 0 */
	__u8 mac[6];   /* local workload: its MAC, or all zero if unknown (then the host stack forwards) */
	__u16 pad;
};
WEIR_ASSERT_SIZE(struct weir_route_val, 20);

#endif
