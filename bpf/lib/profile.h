/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Runtime profiling (weir/profile.h): statements that exist only in the profiling builds
 * (-DWEIR_PROFILE=1); elsewhere every WEIR_PROF_* macro expands to nothing (a BPF test checks
 * that the production object has no timing call). As the log's, each is a global function with
 * scalar arguments: verified once, cheap for the caller's verification.
 */
#ifndef WEIR_LIB_PROFILE_H
#define WEIR_LIB_PROFILE_H

#include "lib/defs.h"
#include "lib/maps.h"

#ifdef WEIR_PROFILE

static __always_inline struct weir_prof_state *weir_prof_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&weir_profst1, &zero);
}

/* The start of a packet in a main program: timed from here, as established until shown new. */
__weir_global int weir_prof_begin(void)
{
	struct weir_prof_state *st = weir_prof_state();

	if (st) {
		st->start_ns = bpf_ktime_get_ns();
		st->kind = WEIR_PROF_EST;
	}
	return 0;
}

/* The packet has no conntrack entry: it takes the new-flow path. */
__weir_global int weir_prof_new(void)
{
	struct weir_prof_state *st = weir_prof_state();

	if (st)
		st->kind = WEIR_PROF_NEW;
	return 0;
}

static const struct weir_prof_val weir_zero_prof;

/* The end of the packet's chain, where it is counted: its time goes to (ifindex, hook, kind). */
__weir_global int weir_prof_end(__u32 ifindex, __u32 hook)
{
	struct weir_prof_state *st = weir_prof_state();
	struct weir_prof_key key = {};
	struct weir_prof_val *v;
	__u64 now;

	if (!st || !st->start_ns)
		return 0;
	now = bpf_ktime_get_ns();
	key.ifindex = ifindex;
	key.hook = hook;
	key.kind = st->kind == WEIR_PROF_NEW ? WEIR_PROF_NEW : WEIR_PROF_EST;
	v = bpf_map_lookup_elem(&weir_prof1, &key);
	if (!v) {
		bpf_map_update_elem(&weir_prof1, &key, &weir_zero_prof, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&weir_prof1, &key);
	}
	if (v) {
		/* Per-CPU value: plain adds are exact. */
		v->runs++;
		v->total_ns += now - st->start_ns;
	}
	st->start_ns = 0; /* timed once */
	return 0;
}

#define WEIR_PROF_BEGIN() weir_prof_begin()
#define WEIR_PROF_NEW() weir_prof_new()
#define WEIR_PROF_END(ifindex, hook) weir_prof_end(ifindex, hook)

#else /* no timing instruction */

#define WEIR_PROF_BEGIN() ((void)0)
#define WEIR_PROF_NEW() ((void)0)
#define WEIR_PROF_END(ifindex, hook) ((void)0)

#endif

#endif
