/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-interface, per-hook counters: Total plus exactly one outcome per packet. */
#ifndef WEIR_LIB_COUNTERS_H
#define WEIR_LIB_COUNTERS_H

#include "lib/defs.h"
#include "lib/maps.h"

/* Source of the zeroed value inserted for a new (ifindex, hook): read-only data, never written,
 * so the 248-byte value does not have to be built on the stack. */
#ifndef WEIR_TRACE
static const struct weir_counters_val weir_zero_counters;
#endif

static __always_inline void weir_count(__u32 ifindex, __u32 hook, __u32 outcome, __u32 facts)
{
#ifdef WEIR_TRACE
	/* The trace build counts nothing (lib/defs.h, WEIR_EFFECT). */
	(void)ifindex, (void)hook, (void)outcome, (void)facts;
#else
	struct weir_counters_key key = { .ifindex = ifindex, .hook = hook };
	struct weir_counters_val *c;

	c = bpf_map_lookup_elem(&weir_counters3, &key);
	if (!c) {
		/* First packet on this interface and hook: insert zeroes. A concurrent insert on
		 * another CPU makes this fail with EEXIST, which is fine: look up again. */
		bpf_map_update_elem(&weir_counters3, &key, &weir_zero_counters, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&weir_counters3, &key);
		if (!c)
			return; /* map full: counts are lost, the packet is not affected */
	}
	/* Per-CPU value: plain increments are exact. */
	if (outcome >= WEIR_CNT_OUTCOME_END)
		outcome = WEIR_CNT_DROP_REWRITE; /* unreachable: every path sets a valid outcome */
	c->c[outcome]++;
	if (facts & WEIR_FACT_NAT_COLLISION)
		c->c[WEIR_CNT_OTHER_NAT_COLLISION]++;
	if (facts & WEIR_FACT_ICMP_ERR_NAT)
		c->c[WEIR_CNT_OTHER_ICMP_ERR_NAT]++;
	c->c[WEIR_CNT_TOTAL]++;
#endif
}

#endif
