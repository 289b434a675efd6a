/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy: the tail call into an endpoint's policy program and what the continuation checks
 * when it comes back. The contract with the generated programs is weir/policy.h.
 */
#ifndef WEIR_LIB_POLICY_H
#define WEIR_LIB_POLICY_H

#include "lib/defs.h"
#include "lib/log.h"
#include "lib/maps.h"

/* Jump slot of the policy of the interface a packet was seen on, for this hook (from_wl: the
 * workload's egress policy, to_wl: its ingress policy), or WEIR_NO_POLICY_SLOT. */
static __always_inline __u32 weir_policy_slot(__u32 ifindex, const int from_wl)
{
	struct weir_ifstate_val *ifs;
	__u32 k = ifindex;

	ifs = bpf_map_lookup_elem(&weir_ifstate1, &k);
	if (!ifs)
		return WEIR_NO_POLICY_SLOT;
	return from_wl ? ifs->egress_slot : ifs->ingress_slot;
}

static __always_inline struct weir_pol_state *weir_pol_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&weir_pstate1, &zero);
}

/*
 * Fill this CPU's policy state for packet p and tail-call the policy in `slot`. `nat`,
 * `be_addr`, `be_port`: the NAT decision of from_wl (the policy sees the destination after
 * DNAT, the continuation applies the same backend). Returns only when the tail call failed
 * (empty slot, slot out of range): the packet is dropped, DROP_TAIL_CALL (fail closed).
 */
static __always_inline int weir_policy_call(struct __sk_buff *skb, struct weir_pkt *p, const int from_wl,
					    __u32 slot, __u8 nat, __u32 be_addr, __u16 be_port,
					    __u8 ct_exists, __u16 pflags)
{
	struct weir_pol_state *st = weir_pol_state();
	__u32 daddr = nat ? be_addr : p->daddr;
	__u16 dport = nat ? be_port : p->dport;
	int ports = p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP;

	if (!st)
		return weir_verdict(p, WEIR_CNT_DROP_TAIL_CALL, TC_ACT_SHOT); /* unreachable: 1 entry */
	st->saddr = p->saddr;
	st->daddr = daddr;
	st->saddr_h = bpf_ntohl(p->saddr);
	st->daddr_h = bpf_ntohl(daddr);
	st->sport = ports ? bpf_ntohs(p->sport) : 0;
	st->dport = ports ? bpf_ntohs(dport) : 0;
	st->proto = p->proto;
	st->icmp_type = p->proto == IPPROTO_ICMP ? p->icmp_type : 0;
	st->icmp_code = p->proto == IPPROTO_ICMP ? p->icmp_code : 0;
	st->hook = from_wl ? WEIR_HOOK_INGRESS : WEIR_HOOK_EGRESS;
	st->ifindex = p->ifindex;
	st->pre_nat_daddr = p->daddr;
	st->pre_nat_dport = p->dport;
	st->nat = nat;
	st->ct_exists = ct_exists;
	st->nat_addr = nat ? be_addr : 0;
	st->nat_port = nat ? be_port : 0;
	st->pflags = pflags;
	st->verdict = WEIR_POL_NONE;
	st->resume = 0;
	st->rule_id = 0;
	st->scratch = 0;

#ifdef WEIR_TRACE
	/* The policy program continues in the trace build's continuation (weir_trjmp1) and counts
	 * no rule; one compiled without that capability would not (and the live continuation it
	 * would call refuses the packet, see weir_tc). */
	st->pflags |= WEIR_PSTATE_F_TRACE;
#endif
	WEIR_LOG_STAGE(WEIR_LOG_POLICY_CALL, slot, 0);
	bpf_tail_call(skb, &weir_jump1, slot);
	return weir_verdict(p, WEIR_CNT_DROP_TAIL_CALL, TC_ACT_SHOT);
}

/* The private part of the state, copied out by the continuation before it does anything. */
struct weir_pol_resume {
	__u32 nat_addr;
	__u16 nat_port;
	__u8 nat;
	__u8 ct_exists;
	__u16 pflags;
	__u16 pad;
};

/*
 * Continuation: check that the state `st` (this CPU's weir_pstate1[0], looked up once by the
 * continuation) belongs to this packet (same hook, interface, protocol,
 * source and pre-NAT destination as the re-parsed packet) and read the verdict. Returns 1 with
 * *r filled when the policy allowed the packet; else sets the outcome (DROP_BY_POLICY for a deny
 * or an undecided verdict, DROP_TAIL_CALL for a state that does not belong to this packet, i.e.
 * a broken chain) and returns 0: the caller drops.
 */
static __always_inline int weir_policy_allowed(struct weir_pol_state *st, const struct weir_pkt *p,
					       const int from_wl, struct weir_pol_resume *r, __u32 *outcome)
{
	if (!st || st->hook != (from_wl ? WEIR_HOOK_INGRESS : WEIR_HOOK_EGRESS) ||
	    st->ifindex != p->ifindex || st->proto != p->proto || st->saddr != p->saddr ||
	    st->pre_nat_daddr != p->daddr || st->pre_nat_dport != p->dport) {
		*outcome = WEIR_CNT_DROP_TAIL_CALL;
		return 0;
	}
	WEIR_LOG_POLICY(st->verdict, st->rule_id);
	if (st->verdict != WEIR_POL_ALLOW) {
		*outcome = WEIR_CNT_DROP_BY_POLICY;
		return 0;
	}
	r->nat_addr = st->nat_addr;
	r->nat_port = st->nat_port;
	r->nat = st->nat;
	r->ct_exists = st->ct_exists;
	r->pflags = st->pflags;
	/* Consumed: a stale state can never pass for a later packet's. */
	st->verdict = WEIR_POL_NONE;
	return 1;
}

/* A packet a policy allowed is counted ACCEPT_BY_POLICY whatever happens to it next, unless
 * that is a drop (its own reason). */
static __always_inline void weir_policy_outcome(struct weir_pkt *p)
{
	if (p->outcome == WEIR_CNT_ACCEPT_NEW_FLOW || p->outcome == WEIR_CNT_ACCEPT_ESTABLISHED ||
	    p->outcome == WEIR_CNT_REDIRECT_PLAIN || p->outcome == WEIR_CNT_REDIRECT_PEER)
		p->outcome = WEIR_CNT_ACCEPT_BY_POLICY;
}

#endif
