/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Runtime profiling (DataplaneConfig bpfProfiling, docs/profiling.md): the profiling builds of
 * the TC programs (-DWEIR_PROFILE=1; the production and log builds carry no timing instruction)
 * time each packet from the start of its main program to the end of its chain of tail calls
 * (policy, continuation, encapsulation) and add it up per interface, hook and kind of packet:
 *
 * weir_prof1 (per-CPU hash): {ifindex, hook, kind} -> {runs, total ns}. Writers: the profiling
 *   builds (insert zeroes when missing, then add), `weir bpf profiling e2e` (deletes what it
 *   printed). Full: the packet is not profiled.
 * weir_profst1 (per-CPU array, one entry): the start time and kind of the packet this CPU is
 *   processing, carried along its chain.
 *
 * Kind: NEW, a packet without a conntrack entry (the slow path: NAT choice, policy, entry
 * creation); EST, every other packet (conntrack hit, and packets conntrack does not track).
 */
#ifndef WEIR_PROFILE_H
#define WEIR_PROFILE_H

#include "common.h"

enum weir_prof_kind {
	WEIR_PROF_NEW = 0,
	WEIR_PROF_EST = 1,
	WEIR_PROF__MAX = 2,
};

struct weir_prof_key {
	__u32 ifindex;
	__u16 hook; /* enum weir_hook: INGRESS (tc ingress: from a workload, into the node), EGRESS */
	__u16 kind; /* enum weir_prof_kind */
};
WEIR_ASSERT_SIZE(struct weir_prof_key, 8);

struct weir_prof_val {
	__u64 runs;
	__u64 total_ns;
};
WEIR_ASSERT_SIZE(struct weir_prof_val, 16);

struct weir_prof_state {
	__u64 start_ns; /* 0: no packet being timed on this CPU */
	__u32 kind;     /* enum weir_prof_kind */
	__u32 pad;
};
WEIR_ASSERT_SIZE(struct weir_prof_state, 16);

#endif
