/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow events (docs/observe.md): what `weir observe` shows comes from here (new flows and drops)
 * and from the agent's conntrack scanner (flow ends).
 *
 * weir_flows1 (ring buffer): struct weir_flow_event records, written by the TC programs, read
 *   by the agent (one consumer). Full: the event is lost and counted (weir_flowst1 `lost`).
 * weir_flowcfg1 (array, one entry): struct weir_flow_cfg, written by the agent (DataplaneConfig
 *   flowEvents*), read by the TC programs. All zero (a fresh map, no agent asking for
 *   events): nothing is sent.
 * weir_flowst1 (per-CPU array, one entry): struct weir_flow_stats: this CPU's rate-limit
 *   state and what it sent, limited and lost. Written by the TC programs only.
 *
 * Rate limit: one token bucket per CPU (GCRA: one timestamp), `interval_ns` per event and a
 * burst of burst_ns / interval_ns events; an event over the rate is not sent and is counted
 * (`rate_limited`), so that a flood of new flows or drops costs the node a bounded number of
 * events per second whatever its rate. The agent computes interval_ns = 1e9 / rate: the
 * programs do no division.
 */
#ifndef WEIR_FLOW_H
#define WEIR_FLOW_H

#include "common.h"
#include "conntrack.h"

enum weir_flow_event_type {
	WEIR_FLOW_EV_START = 1, /* a new flow tracked (and forwarded): its first packet */
	WEIR_FLOW_EV_DROP = 2,  /* a packet dropped; `reason` says why */
	WEIR_FLOW_EV_END = 3,   /* a finished TCP flow's entry replaced by a new SYN on its 5-tuple:
	                         * a struct weir_flow_end (the scanner reports the others' ends) */
};

/* weir_flow_cfg.flags: the events wanted. */
#define WEIR_FLOW_CFG_START (1u << 0)
#define WEIR_FLOW_CFG_DROP (1u << 1)
#define WEIR_FLOW_CFG_END (1u << 2)

struct weir_flow_cfg {
	__u32 flags;       /* WEIR_FLOW_CFG_*; 0: no event */
	__u32 pad;
	__u64 interval_ns; /* per event and CPU: 1e9 / events per second; 0: no limit */
	__u64 burst_ns;    /* bucket depth in ns: burst events = burst_ns / interval_ns */
};
WEIR_ASSERT_SIZE(struct weir_flow_cfg, 24);

struct weir_flow_stats {
	__u64 tat_ns;       /* token bucket: the theoretical arrival time of the next event */
	__u64 sent;         /* events written to the ring buffer */
	__u64 rate_limited; /* events not sent: over the rate */
	__u64 lost;         /* events not sent: the ring buffer was full (the agent too slow) */
};
WEIR_ASSERT_SIZE(struct weir_flow_stats, 32);

struct weir_flow_event {
	__u64 ts_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 rule_id;   /* DROP by policy: the rule that decided, or a tier default's id
	                  * (weir/policy.h); else 0 */
	__u32 saddr;     /* network order, as the packet arrived (before any NAT of this hook) */
	__u32 daddr;
	__u16 sport;     /* network order; ICMP echo: the identifier; else 0 */
	__u16 dport;
	__u32 nat_addr;  /* START through a service: the backend chosen (network order); else 0 */
	__u16 nat_port;
	__u8 type;       /* enum weir_flow_event_type */
	__u8 proto;
	__u32 ifindex;   /* the interface the program ran on */
	__u8 hook;       /* enum weir_hook */
	__u8 reason;     /* enum weir_counter: the packet's outcome (DROP: why) */
	__u8 tcp_flags;  /* byte 13 of the TCP header */
	__u8 icmp_type;
	__u32 len;       /* skb->len */
	__u8 icmp_code;
	__u8 flags;      /* WEIR_FLOW_F_* */
	__u8 pad[2];
};

/* weir_flow_event.flags */
/* Dropped by weir_from_ul on the node's underlay interface: the addresses and ports are the
 * outer (node to node, VXLAN) headers' as the packet arrived, and it was coming into the node. */
#define WEIR_FLOW_F_UNDERLAY (1u << 0)
/* weir_flow_end: `twin` holds the other half of a NAT pair. */
#define WEIR_FLOW_F_TWIN (1u << 1)

/* WEIR_FLOW_EV_END: the entries of a flow that a new SYN on its 5-tuple replaced, as they were
 * (what the conntrack scanner reports of the flows it removes). */
struct weir_flow_end {
	struct weir_flow_event ev; /* type END; ts_ns, ifindex, hook and proto; flags; the rest 0 */
	struct weir_ct_key key;    /* the flow's entry: a NAT pair's FWD half */
	struct weir_ct_val val;
	struct weir_ct_val twin;   /* WEIR_FLOW_F_TWIN: a NAT pair's REV half; else zero */
};
WEIR_ASSERT_SIZE(struct weir_flow_end, 56 + 16 + 2 * sizeof(struct weir_ct_val));
WEIR_ASSERT_SIZE(struct weir_flow_event, 56);

#endif
