/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service NAT maps.
 *
 * nat frontend (hash, weir_nat_fe1): (VIP, port, proto) -> service.
 *   Written by the agent's service syncer, read by the TC programs on the first packet of a
 *   flow. Full: the syncer logs an error naming the service and leaves it unprogrammed.
 * nat backend (hash, weir_nat_be1): (service id, ordinal) -> backend (IP, port).
 *   Written by the service syncer before the frontend that refers to the id is written, so a
 *   reader never sees an id whose backends are missing. Full: as above.
 *
 * Addresses and ports are in network byte order, exactly as they sit in the packet.
 */
#ifndef WEIR_NAT_H
#define WEIR_NAT_H

#include "common.h"

struct weir_nat_fe_key {
	__u32 addr;  /* VIP, network order */
	__u16 port;  /* service port, network order */
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
};
WEIR_ASSERT_SIZE(struct weir_nat_fe_key, 8);

/* Frontend flags */
#define WEIR_NAT_FE_F_NONE 0u

struct weir_nat_fe_val {
	__u32 svc_id;           /* key prefix of this service's entries in the backend map */
	__u32 count;            /* number of ready backends: ordinals 0..count-1 exist */
	__u32 local;            /* how many of them are on this node (not read by the datapath:
	                         * `weir bpf nat dump` shows it, as the seed's format has it) */
	__u32 affinity_timeout; /* seconds; 0 = no session affinity (not read by the datapath yet:
	                         * session affinity is not implemented; nat dump shows it) */
	__u32 flags;            /* WEIR_NAT_FE_F_* */
};
WEIR_ASSERT_SIZE(struct weir_nat_fe_val, 20);

struct weir_nat_be_key {
	__u32 svc_id;
	__u32 ordinal;
};
WEIR_ASSERT_SIZE(struct weir_nat_be_key, 8);

struct weir_nat_be_val {
	__u32 addr; /* backend IP, network order */
	__u16 port; /* backend port, network order */
	__u16 pad;
};
WEIR_ASSERT_SIZE(struct weir_nat_be_val, 8);

#endif
