/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking (LRU hash, weir_ct2).
 *
 * Key: the 5-tuple normalised so that both directions of a flow map to the same key:
 * side A is the (addr, port) pair that compares lower (addr first, then port, both compared
 * as the raw network-order __u32/__u16 values), side B the other. For ICMP echo both ports
 * hold the echo identifier.
 *
 * A plain flow has one entry (type NORMAL). A flow through a service VIP has two:
 *   NAT_FWD keyed (client, VIP):     nat_addr/nat_port = backend; packets client->VIP are DNATed.
 *   NAT_REV keyed (client, backend): nat_addr/nat_port = VIP;     packets backend->client are
 *                                    SNATed back to the VIP.
 * Each entry is self-contained for the direction that hits it, so an established packet costs
 * exactly one conntrack lookup. TCP flags (SYN/FIN/RST) are mirrored into both entries when
 * they change, which is rare; last_seen is written only in the entry that was hit, and the
 * scanner treats a pair as alive while either half is.
 *
 * Written by the TC programs (create on first packet, update on every packet) and by the
 * agent's conntrack scanner (expiry, removal of flows to deleted backends). Read by the CLI.
 * Full: LRU evicts the least recently used entry; a flow whose entry was evicted is treated as
 * new (TCP mid-stream packets without SYN are then passed untouched, not NATed).
 */
#ifndef WEIR_CONNTRACK_H
#define WEIR_CONNTRACK_H

#include "common.h"

struct weir_ct_key {
	__u32 addr_a; /* network order */
	__u32 addr_b;
	__u16 port_a; /* network order; ICMP echo: identifier */
	__u16 port_b;
	__u8 proto;
	__u8 pad[3];
};
WEIR_ASSERT_SIZE(struct weir_ct_key, 16);

enum weir_ct_type {
	WEIR_CT_NORMAL = 0,
	WEIR_CT_NAT_FWD = 1,
	WEIR_CT_NAT_REV = 2,
};

/* Per-leg flags. A leg is one direction: leg A carries packets sent by side A. */
#define WEIR_CT_LEG_SYN (1u << 0)      /* a SYN was sent on this leg */
#define WEIR_CT_LEG_FIN (1u << 1)      /* a FIN was sent on this leg */
#define WEIR_CT_LEG_RST (1u << 2)      /* a RST was sent on this leg */
#define WEIR_CT_LEG_ACK (1u << 3)      /* an ACK was sent on this leg */
#define WEIR_CT_LEG_APPROVED (1u << 4) /* policy for the sending side allowed the flow */
#define WEIR_CT_LEG_WORKLOAD (1u << 5) /* the sender is a local workload: ifindex/macs valid */

struct weir_ct_leg {
	__u32 flags;      /* WEIR_CT_LEG_* */
	__u32 ifindex;    /* host-side veth of the sender when it is a local workload, else 0 */
	__u8 wl_mac[6];   /* the sending workload's MAC (destination MAC for packets to it) */
	__u8 host_mac[6]; /* MAC of that host-side veth (source MAC for packets to it) */
};
WEIR_ASSERT_SIZE(struct weir_ct_leg, 20);

/* Entry flags */
#define WEIR_CT_F_A_IS_CLIENT (1u << 0) /* side A sent the first packet */
#define WEIR_CT_F_ICMP_ECHO (1u << 1)

struct weir_ct_val {
	__u64 created_ns;   /* CLOCK_MONOTONIC ns at creation; written with bpf_ktime_get_coarse_ns()
	                     * (same timebase, one-tick resolution: compare with CLOCK_MONOTONIC) */
	__u64 last_seen_ns; /* same clock: the last packet that hit this entry */
	__u8 type;          /* enum weir_ct_type */
	__u8 flags;         /* WEIR_CT_F_* */
	__u16 nat_port;     /* FWD: backend port; REV: VIP port (network order) */
	__u32 nat_addr;     /* FWD: backend IP;   REV: VIP (network order) */
	struct weir_ct_leg a;
	struct weir_ct_leg b;
	/* What each side sent through this entry (skb->len, Ethernet header included): counted
	 * once per packet, by the first weir hook that sees it (from_wl for a local workload's
	 * packet, else to_wl), with atomic adds. A NAT flow's counts are split between its two
	 * entries (each counts the packets that look it up): a flow's totals are the sums over the
	 * pair (calc::ct_flow_end). A half re-created from the other starts at zero. */
	__u64 packets_a;
	__u64 bytes_a;
	__u64 packets_b;
	__u64 bytes_b;
};
WEIR_ASSERT_SIZE(struct weir_ct_val, 96);

/*
 * Conntrack statistics (per-CPU array, weir_ct_stats1), for `weir bpf conntrack stats` and the
 * agent's occupancy warning. The kernel does not report LRU evictions; what can be told is
 * counted here, and evictions are estimated by userspace as
 *   created - deleted (datapath) - deleted (agent) - entries present.
 * Index WEIR_CT_STATS_DATAPATH: written by the TC programs only (per-CPU increments).
 * Index WEIR_CT_STATS_AGENT: written by the agent only (its scanner's deletions: `deleted`);
 * the TC programs never touch it, so a read-add-write of every CPU's value is safe.
 * Counts are since the map was created (they survive agent restarts, not `weir bpf cleanup`).
 */
enum weir_ct_stats_index {
	WEIR_CT_STATS_DATAPATH = 0,
	WEIR_CT_STATS_AGENT = 1,
	WEIR_CT_STATS__MAX = 2,
};

struct weir_ct_stats {
	__u64 created;       /* entries created (a NAT pair counts 2) */
	__u64 create_failed; /* creations the map refused (packet dropped, DROP_CT_CREATE) */
	__u64 deleted;       /* entries deleted (datapath: a finished flow's 5-tuple reused;
	                      * agent: expired or to a removed backend) */
	__u64 midflow_miss;  /* packets of an established TCP flow that found no entry (evicted or
	                      * expired while still in use) */
	__u64 midflow_renat; /* of those, packets to a service VIP re-resolved to a backend */
	__u64 midflow_reset; /* of those, packets to a service VIP answered with a TCP RST (no
	                      * backend could be resolved) */
	__u64 reserved[2];
};
WEIR_ASSERT_SIZE(struct weir_ct_stats, 64);

/*
 * TCP state of a conntrack entry: the ONE definition, used by the datapath (weir_ct_is_dead), the
 * agent's scanner (which timeout applies) and the CLI (the state column of `conntrack dump`).
 * From the two legs' WEIR_CT_LEG_* flags, first match wins:
 *   RST on either leg                       RESET        dead; timeout tcpReset
 *   FIN on both legs                        CLOSED       dead; timeout tcpFin
 *   FIN on one leg                          FIN-WAIT     timeout tcpFin
 *   SYN on both legs, ACK on both           ESTABLISHED  timeout tcpEstablished
 *   SYN on both legs, ACK on one only       SYN-RECV     handshake answered, final ACK not seen;
 *                                                        timeout tcpSynSent
 *   no SYN on either leg, ACK on both       ESTABLISHED  picked up mid-stream (entry lost and
 *                                                        recreated, or created before a restart)
 *   anything else (SYN on one leg only,     SYN-SENT     timeout tcpSynSent
 *   or a single leg seen)
 * A SYN on one leg only is never ESTABLISHED, whatever ACKs were seen: {SYN|ACK, ACK} is a
 * client whose SYN got an ACK without SYN (e.g. a challenge ACK), not a handshake.
 */
enum weir_ct_tcp {
	WEIR_CT_TCP_SYN_SENT = 0,
	WEIR_CT_TCP_SYN_RECV = 1,
	WEIR_CT_TCP_ESTABLISHED = 2,
	WEIR_CT_TCP_FIN_WAIT = 3,
	WEIR_CT_TCP_CLOSED = 4,
	WEIR_CT_TCP_RESET = 5,
	WEIR_CT_TCP__MAX = 6,
};

static inline enum weir_ct_tcp weir_ct_tcp_state(__u32 a_flags, __u32 b_flags)
{
	__u32 any = a_flags | b_flags, both = a_flags & b_flags;

	if (any & WEIR_CT_LEG_RST)
		return WEIR_CT_TCP_RESET;
	if (both & WEIR_CT_LEG_FIN)
		return WEIR_CT_TCP_CLOSED;
	if (any & WEIR_CT_LEG_FIN)
		return WEIR_CT_TCP_FIN_WAIT;
	if (both & WEIR_CT_LEG_SYN)
		return (both & WEIR_CT_LEG_ACK) ? WEIR_CT_TCP_ESTABLISHED : WEIR_CT_TCP_SYN_RECV;
	if (!(any & WEIR_CT_LEG_SYN) && (both & WEIR_CT_LEG_ACK))
		return WEIR_CT_TCP_ESTABLISHED;
	return WEIR_CT_TCP_SYN_SENT;
}

/* An entry whose flow is over (RESET or CLOSED): a new SYN on its 5-tuple starts a new flow. */
static inline int weir_ct_tcp_is_over(enum weir_ct_tcp s)
{
	return s == WEIR_CT_TCP_RESET || s == WEIR_CT_TCP_CLOSED;
}

#endif
