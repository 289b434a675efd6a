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
 * weir_logst1 (per-CPU array, one entry): the log state of the packet this CPU is processing,
 * carried across the tail calls of its chain (main program, policy, continuation, encapsulation).
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
#define WEIR_LOG_FILTER_ALL 0xffffffffu /* every packet */

struct weir_log_if_val {
	__u32 level;  /* enum weir_log_level */
	__u32 filter; /* WEIR_LOG_FILTER_ALL (the only value so far: pcap filters come next) */
};
WEIR_ASSERT_SIZE(struct weir_log_if_val, 8);

#define WEIR_LOG_TAG_SIZE 24

struct weir_log_state {
	__u64 start_ns; /* bpf_ktime_get_ns() when the main program began with this packet */
	__u32 ifindex;  /* the packet's interface */
	__u32 level;    /* enum weir_log_level for this packet; OFF: not logged */
	char tag[WEIR_LOG_TAG_SIZE]; /* "<iface>---E" (or ---I): the interface's name from
	                              * weir_ifstate1, or "if<ifindex>" */
};
WEIR_ASSERT_SIZE(struct weir_log_state, 40);

#endif
