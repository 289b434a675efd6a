/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow events (weir/flow.h, docs/observe.md): a new flow and a drop each write one record to
 * weir_flows1, within weir_flowcfg1's rate. The trace build writes none (it has no side
 * effects, lib/defs.h).
 */
#ifndef WEIR_LIB_FLOW_H
#define WEIR_LIB_FLOW_H

#include "lib/conntrack.h"
#include "lib/defs.h"
#include "lib/maps.h"

/* Facts of the packet (weir_pkt.facts) the events need: its conntrack entry was created here,
 * with the backend in nat_addr/nat_port when service NAT chose one. */
#define WEIR_FACT_CT_CREATED (1u << 2)

/* True for the outcomes that drop the packet. */
static __always_inline int weir_outcome_is_drop(__u32 outcome)
{
	return outcome >= WEIR_CNT_DROP_FIRST && outcome <= WEIR_CNT_DROP_LAST;
}

#ifndef WEIR_TRACE
/* This CPU's flow-event stats when an event of `kind` (WEIR_FLOW_CFG_*) is wanted and, at `*now`
 * (read here), within this CPU's token bucket (GCRA: it takes its token); NULL otherwise (over
 * the rate: counted). Per-CPU state: no race. */
static __always_inline struct weir_flow_stats *weir_flow_gate(__u32 kind, __u64 *now)
{
	struct weir_flow_stats *st;
	struct weir_flow_cfg *cfg;
	__u32 zero = 0;
	__u64 tat;

	cfg = bpf_map_lookup_elem(&weir_flowcfg1, &zero);
	st = bpf_map_lookup_elem(&weir_flowst1, &zero);
	if (!cfg || !st || !(cfg->flags & kind))
		return NULL;
	*now = bpf_ktime_get_ns();
	if (!cfg->interval_ns)
		return st;
	/* The event conforms when the bucket's theoretical arrival time is at most burst_ns ahead. */
	tat = st->tat_ns > *now ? st->tat_ns : *now;
	if (tat - *now > cfg->burst_ns) {
		st->rate_limited++;
		return NULL;
	}
	st->tat_ns = tat + cfg->interval_ns;
	return st;
}

/*
 * Builds the event of packet `p` and sends it, unless this CPU is over the rate or the ring
 * buffer is full (each counted). Global: verified once on its own, a call costs its callers one
 * instruction (lib/defs.h); the event is built on this function's own stack, not on the main
 * program's (whose frame, with the deepest subprogram's, must stay within 512 bytes).
 */
__weir_global int weir_flow_send(struct __sk_buff *skb, const struct weir_pkt *p, __u32 hook, __u64 rule_id,
				  __u32 flags)
{
	struct weir_flow_event ev;
	struct weir_flow_stats *st;
	__u64 now = 0;
	int drop;

	if (!skb || !p)
		return 0;
	drop = weir_outcome_is_drop(p->outcome);
	st = weir_flow_gate(drop ? WEIR_FLOW_CFG_DROP : WEIR_FLOW_CFG_START, &now);
	if (!st)
		return 0;
	__builtin_memset(&ev, 0, sizeof(ev));
	ev.ts_ns = now;
	ev.type = drop ? WEIR_FLOW_EV_DROP : WEIR_FLOW_EV_START;
	ev.rule_id = drop ? rule_id : 0;
	ev.saddr = p->orig_saddr;
	ev.daddr = p->orig_daddr;
	ev.sport = p->orig_sport;
	ev.dport = p->orig_dport;
	ev.nat_addr = p->nat_addr;
	ev.nat_port = p->nat_port;
	ev.proto = p->proto;
	ev.ifindex = p->ifindex;
	ev.hook = hook;
	ev.reason = p->outcome;
	ev.tcp_flags = p->tcp_flags;
	ev.icmp_type = p->icmp_type;
	ev.icmp_code = p->icmp_code;
	ev.flags = flags;
	ev.len = skb->len;
	if (bpf_ringbuf_output(&weir_flows1, &ev, sizeof(ev), 0)) {
		st->lost++;
		return 0;
	}
	st->sent++;
	return 1;
}

/*
 * The end of the finished TCP flow whose entry `ct` (key `k`) a new SYN is about to replace:
 * the entry and, for a NAT pair, its other half, as they are (struct weir_flow_end), within the
 * same rate as the other events. Written in place in the ring buffer (264 bytes: too many for a
 * stack frame).
 */
__weir_global int weir_flow_send_end(const struct weir_ct_key *k, const struct weir_ct_val *ct, __u32 ifindex,
				     __u32 hook)
{
	struct weir_flow_stats *st;
	struct weir_flow_end *e;
	struct weir_ct_val *pair;
	struct weir_ct_key pk;
	__u64 now = 0;
	__u8 unused;

	if (!k || !ct)
		return 0;
	st = weir_flow_gate(WEIR_FLOW_CFG_END, &now);
	if (!st)
		return 0;
	e = bpf_ringbuf_reserve(&weir_flows1, sizeof(*e), 0);
	if (!e) {
		st->lost++;
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ev.ts_ns = now;
	e->ev.type = WEIR_FLOW_EV_END;
	e->ev.proto = k->proto;
	e->ev.ifindex = ifindex;
	e->ev.hook = hook;
	e->key = *k;
	e->val = *ct;
	if (ct->type != WEIR_CT_NORMAL) {
		weir_ct_pair_key(&pk, k, ct, &unused); /* the lookup's key: on this frame */
		pair = bpf_map_lookup_elem(&weir_ct2, &pk);
		if (pair) {
			e->ev.flags = WEIR_FLOW_F_TWIN;
			if (ct->type == WEIR_CT_NAT_REV) {
				e->key = pk;
				e->val = *pair;
				e->twin = *ct;
			} else {
				e->twin = *pair;
			}
		}
	}
	bpf_ringbuf_submit(e, 0);
	st->sent++;
	return 1;
}
#endif

#ifndef WEIR_TRACE
/* A new SYN replaces the finished flow of entry `ct` (key `k`): its end reported if flow records
 * want it, then its entries deleted. Global: verified once, the caller carries one call (6.1's
 * weir_to_wl verified 161,189 instructions with the report inline, 155,064 with this). */
__weir_global int weir_ct_replace_flow(const struct weir_ct_key *k, const struct weir_ct_val *ct, __u32 ifindex,
				       __u32 hook)
{
	struct weir_ct_key key;

	if (!k || !ct)
		return 0;
	weir_flow_send_end(k, ct, ifindex, hook);
	key = *k; /* 6.1's map helpers want the key on this frame */
	weir_ct_delete_flow(&key, ct);
	return 0;
}
#endif

/* A new SYN on the 5-tuple of the finished flow of entry `ct`: its end reported (if flow records
 * want it) and its entries deleted. The trace build reports nothing and deletes nothing. */
static __always_inline void weir_flow_replace(const struct weir_ct_key *k, const struct weir_ct_val *ct,
					      __u32 ifindex, __u32 hook)
{
#ifdef WEIR_TRACE
	(void)ifindex, (void)hook;
	weir_ct_delete_flow(k, ct);
#else
	weir_ct_replace_flow(k, ct, ifindex, hook);
#endif
}

/*
 * The event of packet `p` (its outcome decided), if it has one: a drop, or the creation of its
 * flow's conntrack entry. `rule_id`: the policy rule (or tier default) behind a drop by policy.
 * The addresses are the packet's as it arrived (before this hook's NAT).
 */
static __always_inline void weir_flow_event(struct __sk_buff *skb, const struct weir_pkt *p, __u32 hook,
					    __u64 rule_id)
{
#ifdef WEIR_TRACE
	(void)skb, (void)p, (void)hook, (void)rule_id;
#else
	if (weir_outcome_is_drop(p->outcome) || (p->facts & WEIR_FACT_CT_CREATED))
		weir_flow_send(skb, p, hook, rule_id, 0);
#endif
}

/*
 * The event of a packet weir_from_ul dropped with `outcome`: its outer IPv4 addresses and, when
 * the header has no options, its UDP ports, read again here (a drop is rare; the decapsulation
 * keeps none of them). Hook ingress, flagged WEIR_FLOW_F_UNDERLAY.
 */
static __always_inline void weir_flow_underlay_drop(struct __sk_buff *skb, __u32 outcome)
{
#ifdef WEIR_TRACE
	(void)skb, (void)outcome;
#else
	struct weir_pkt p = {};
	struct iphdr ip;
	struct udphdr uh;

	if (!weir_outcome_is_drop(outcome))
		return;
	p.ifindex = skb->ifindex;
	p.outcome = outcome;
	if (!bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip))) {
		p.orig_saddr = ip.saddr;
		p.orig_daddr = ip.daddr;
		p.proto = ip.protocol;
		if (ip.ihl == 5 && ip.protocol == IPPROTO_UDP &&
		    !bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip), &uh, sizeof(uh))) {
			p.orig_sport = uh.source;
			p.orig_dport = uh.dest;
		}
	}
	weir_flow_send(skb, &p, WEIR_HOOK_INGRESS, 0, WEIR_FLOW_F_UNDERLAY);
#endif
}

#endif
