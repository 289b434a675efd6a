/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * BPF debug log (DataplaneConfig bpfLogLevel, docs/bpf-log.md). The TC programs exist in two
 * builds of the same source: the production object (tc.bpf.o) carries no log statement at all;
 * the log variant (tc_log.bpf.o, -DWEIR_LOG=1) writes to the kernel trace buffer, read by
 * `weir bpf tracelog`, in the seed's format:
 *
 *   <iface>---E: New packet at ifindex=12; len=74; mark=0
 *   <iface>---E: IP 10.65.0.2:40112 -> 10.96.0.10:80 proto=6
 *   ...
 *   <iface>---E: Final result=ALLOW (0). Program execution time: 7366ns
 *
 * The letter is the policy direction of the program, as in the seed: E (egress: from_wl, the
 * workload's packets), I (ingress: to_wl, towards the workload; from_ul, into the node).
 *
 * weir_logif1 (hash): ifindex -> struct weir_log_if_val, what to log at that interface; key 0
 * (no interface has index 0) serves every interface without an entry of its own. No entry for
 * the interface nor for 0: nothing is logged. Writer: the agent, when it loads the log variant;
 * reader: the log variant's programs.
 * weir_logst2 (per-CPU array, one entry): the log state of the packet this CPU is processing,
 * carried across the tail calls of its chain (filter, main program, policy, continuation,
 * encapsulation).
 *
 * pcap filters (DataplaneConfig bpfLogFilters): an interface whose weir_logif1 entry names a
 * filter logs only the packets its filter matches, as they arrive at the hook (before NAT or
 * encapsulation). The filter is a program weir generates from the pcap expression
 * (src/polprog/pcap_filter.h), in a slot of weir_logjmp1 (prog array). The chain:
 *   1. the main program (log variant) starts: weir_log_begin finds a filter for the interface,
 *      records in weir_logst2 that the packet's filter is pending, with the main program's own
 *      slot (`entry`) and the packet's ifindex and length, and the main program tail-calls
 *      weir_logjmp1[filter];
 *   2. the filter evaluates the packet, writes MATCH or NO_MATCH into `filter` and tail-calls
 *      weir_logjmp1[entry]: the same main program again, from its start;
 *   3. weir_log_begin finds the verdict for this packet (same ifindex, length and entry), clears
 *      it, and logs the packet, or not. The packet is processed exactly as without a filter.
 * An empty filter slot (step 1's tail call fails): the packet goes on, not logged. An empty entry
 * slot (step 2's tail call fails): the filter drops the packet (returning it to the stack would
 * skip the main program) and counts it (WEIR_CNT_DROP_TAIL_CALL); entry slots are written with
 * the log variant's programs before any of them is attached and stay until it is detached.
 */
#ifndef WEIR_LOG_H
#define WEIR_LOG_H

#include "common.h"

enum weir_log_level {
	WEIR_LOG_OFF = 0,
	WEIR_LOG_INFO = 1,  /* per packet: its tuple, drops with their reason, the final result */
	WEIR_LOG_DEBUG = 2, /* and every stage: parse, conntrack, NAT, policy, redirect */
};

/* weir_log_if_val.filter: which packets of the interface are logged. */
#define WEIR_LOG_FILTER_ALL 0xffffffffu /* every packet; else the weir_logjmp1 slot of a filter */

struct weir_log_if_val {
	__u32 level;  /* enum weir_log_level */
	__u32 filter; /* WEIR_LOG_FILTER_ALL, or a filter's slot (>= WEIR_LOGJMP_FIRST_FILTER) */
};
WEIR_ASSERT_SIZE(struct weir_log_if_val, 8);

/* weir_logjmp1 (prog array) slots: the log variant's main programs (written by the loader with
 * the other continuations), then the filters (written by the agent). */
#define WEIR_LOGJMP_FROM_WL 0
#define WEIR_LOGJMP_TO_WL 1
#define WEIR_LOGJMP_FROM_UL 2
#define WEIR_LOGJMP_FIRST_FILTER 3

/* weir_log_state.filter */
enum weir_log_filter_state {
	WEIR_LOG_F_NONE = 0,     /* no filter run for the packet */
	WEIR_LOG_F_PENDING = 1,  /* the main program tail-called the filter */
	WEIR_LOG_F_MATCH = 2,    /* written by the filter: log the packet */
	WEIR_LOG_F_NO_MATCH = 3, /* written by the filter: do not */
};

/* "<iface>---E": an interface name has at most 15 characters (IFNAMSIZ - 1); "if4294967295---E"
 * is 16. */
#define WEIR_LOG_TAG_SIZE 20

struct weir_log_state {
	__u64 start_ns; /* bpf_ktime_get_ns() when the main program began with this packet */
	__u32 ifindex;  /* the packet's interface */
	__u32 level;    /* enum weir_log_level for this packet; OFF: not logged */
	char tag[WEIR_LOG_TAG_SIZE]; /* "<iface>---E" (or ---I): the interface's name from
	                              * weir_ifstate1, or "if<ifindex>" */
	__u8 filter;    /* enum weir_log_filter_state */
	__u8 entry;     /* WEIR_LOGJMP_*: the main program the filter returns to */
	__u16 len_lo;   /* skb->len & 0xffff of the filtered packet: its verdict is its own */
};
WEIR_ASSERT_SIZE(struct weir_log_state, 40);

#endif
