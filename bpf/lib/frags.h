/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IP fragments: the first fragment's outcome is remembered (weir_frags1, see weir/frags.h for
 * the contract) and applied to the later fragments of the same datagram, in order.
 */
#ifndef WEIR_LIB_FRAGS_H
#define WEIR_LIB_FRAGS_H

#include "lib/csum.h"
#include "lib/defs.h"
#include "lib/maps.h"

static __always_inline void weir_frag_key(struct weir_frag_key *k, const struct weir_pkt *p, __u32 saddr,
					  __u32 daddr, __u32 hook)
{
	k->saddr = saddr;
	k->daddr = daddr;
	k->ifindex = p->ifindex;
	k->ip_id = p->ip_id;
	k->proto = p->proto;
	k->hook = hook;
}

/* Fragment payload length in 8-byte units (every fragment but the last is a multiple of 8). */
static __always_inline __u16 weir_frag_units(const struct weir_pkt *p)
{
	return ((__u32)p->tot_len - p->ihl) / 8;
}

/* After the first fragment of a datagram was forwarded (not dropped): remember what happened to
 * it. A first fragment that was dropped leaves nothing, so its later fragments are dropped. */
__weir_global int weir_frag_first_done(struct __sk_buff *skb, const struct weir_pkt *p, __u32 hook, int verdict)
{
	struct weir_frag_key k;
	struct weir_frag_val v = {};

	if (!p || verdict == TC_ACT_SHOT || p->outcome == WEIR_CNT_DROP_NO_BACKEND)
		return 0;
	if (bpf_skb_load_bytes(skb, 0, v.macs, sizeof(v.macs)))
		return 0;
	weir_frag_key(&k, p, p->orig_saddr, p->orig_daddr, hook);
	v.saddr = p->saddr;
	v.daddr = p->daddr;
	v.next_offset = weir_frag_units(p);
	v.outcome = p->outcome;
	if (verdict == TC_ACT_REDIRECT) {
		v.fwd = p->redirect_fwd;
		v.ifindex = p->redirect_ifindex;
	}
	weir_map_update(&weir_frags1, &k, &v, BPF_ANY);
	return 0;
}

/* A later fragment (no L4 header): the first fragment's outcome, with its address rewrite and
 * forwarding, when it follows in order; else dropped (see weir/frags.h). */
static __always_inline int weir_frag_later(struct __sk_buff *skb, struct weir_pkt *p, __u32 hook)
{
	struct weir_frag_key k;
	struct weir_frag_val *v;
	__u32 fwd, ifindex, outcome;

	weir_frag_key(&k, p, p->saddr, p->daddr, hook);
	v = bpf_map_lookup_elem(&weir_frags1, &k);
	if (!v)
		return weir_verdict(p, WEIR_CNT_DROP_FRAG_INCOMPLETE, TC_ACT_SHOT);
	if (v->next_offset != p->frag_offset)
		return weir_verdict(p, WEIR_CNT_DROP_FRAG_ORDER, TC_ACT_SHOT);
	if (v->saddr != p->saddr &&
	    weir_rewrite_addr(skb, WEIR_IP_SADDR_OFF, p->saddr, v->saddr, 0, p->proto))
		return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);
	if (v->daddr != p->daddr &&
	    weir_rewrite_addr(skb, WEIR_IP_DADDR_OFF, p->daddr, v->daddr, 0, p->proto))
		return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);
	/* The addresses it leaves with (from_wl's VXLAN decision looks at the destination). */
	p->saddr = v->saddr;
	p->daddr = v->daddr;
	fwd = v->fwd;
	ifindex = v->ifindex;
	outcome = v->outcome;
	if (fwd != WEIR_FRAG_FWD_PASS && bpf_skb_store_bytes(skb, 0, v->macs, sizeof(v->macs), 0))
		return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);
	if (p->more_frags)
		WEIR_EFFECT(v->next_offset += weir_frag_units(p));
	else
		weir_map_delete(&weir_frags1, &k);
	if (outcome >= WEIR_CNT_OUTCOME_END)
		outcome = WEIR_CNT_ACCEPT_ESTABLISHED; /* unreachable: written from an outcome */
	if (fwd == WEIR_FRAG_FWD_PASS)
		return weir_verdict(p, outcome, TC_ACT_OK);
	return weir_redirect(p, outcome, ifindex, fwd == WEIR_FRAG_FWD_PEER);
}

#endif
