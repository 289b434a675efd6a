/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Routes and forwarding: where a destination lives, MAC rewrite, redirect decisions. */
#ifndef WEIR_LIB_ROUTE_H
#define WEIR_LIB_ROUTE_H

#include "lib/defs.h"
#include "lib/maps.h"

/* Fill the leg of a flow's destination from the routes and ifstate maps: a local workload with
 * a known MAC and a managed host-side veth gets WORKLOAD, its ifindex and both MACs; anything
 * else (host, remote, unknown MAC) leaves the leg empty and the host stack forwards. */
static __always_inline void weir_route_dst_leg(struct weir_ct_leg *leg, __u32 daddr)
{
	struct weir_route_key rk = { .prefixlen = 32, .addr = daddr };
	struct weir_route_val *rt;
	struct weir_ifstate_val *ifs;
	__u32 ifindex;

	rt = bpf_map_lookup_elem(&weir_routes1, &rk);
	if (!rt || !(rt->flags & WEIR_RT_F_LOCAL_WORKLOAD) || !rt->ifindex)
		return;
	if (!(*(__u32 *)&rt->mac[0] | *(__u16 *)&rt->mac[4]))
		return; /* MAC not known yet */
	ifindex = rt->ifindex;
	ifs = bpf_map_lookup_elem(&weir_ifstate1, &ifindex);
	if (!ifs)
		return;
	leg->flags |= WEIR_CT_LEG_WORKLOAD;
	leg->ifindex = ifindex;
	__builtin_memcpy(leg->wl_mac, rt->mac, sizeof(leg->wl_mac));
	__builtin_memcpy(leg->host_mac, ifs->host_mac, sizeof(leg->host_mac));
}

/* Whether `saddr` belongs to the local workload behind `ifindex`: its /32 in the routes map is a
 * local workload route naming that interface (the source check of traffic from a workload,
 * Calico's wep_rpf_check: a pod may only send with its own addresses). */
static __always_inline int weir_src_is_workload(__u32 saddr, __u32 ifindex)
{
	struct weir_route_key rk = { .prefixlen = 32, .addr = saddr };
	struct weir_route_val *rt = bpf_map_lookup_elem(&weir_routes1, &rk);

	return rt && (rt->flags & WEIR_RT_F_LOCAL_WORKLOAD) && rt->ifindex == ifindex;
}

/* The source check for a packet from a workload that hit conntrack: the sender's leg already
 * names this interface (its first packet passed the check, or the flow learnt where the
 * workload lives), which costs nothing; anything else takes the route lookup. */
static __always_inline int weir_ct_src_ok(const struct weir_ct_val *ct, const struct weir_pkt *p)
{
	const struct weir_ct_leg *src = p->from_a ? &ct->a : &ct->b;

	if ((src->flags & WEIR_CT_LEG_WORKLOAD) && src->ifindex == p->ifindex)
		return 1;
	return weir_src_is_workload(p->saddr, p->ifindex);
}

/* Rewrite the Ethernet addresses for delivery to the workload behind `leg`. */
static __always_inline int weir_set_macs(struct __sk_buff *skb, const struct weir_ct_leg *leg)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, leg->wl_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, leg->host_mac, ETH_ALEN);
	return 0;
}

/* Forwarding of an established packet seen by from_wl: straight into the destination
 * workload's namespace (bpf_redirect_peer) once both sides approved the flow and the
 * destination is a local workload; otherwise up the host stack. */
static __always_inline int weir_fwd_established(struct __sk_buff *skb, struct weir_pkt *p,
						const struct weir_ct_val *ct, const struct weir_ct_leg *dst)
{
	if ((ct->a.flags & ct->b.flags & WEIR_CT_LEG_APPROVED) && (dst->flags & WEIR_CT_LEG_WORKLOAD) &&
	    dst->ifindex) {
		if (weir_set_macs(skb, dst))
			return weir_verdict(p, WEIR_CNT_DROP_SHORT, TC_ACT_SHOT); /* unreachable: parsed */
		return weir_redirect(p, WEIR_CNT_REDIRECT_PEER, dst->ifindex, 1);
	}
	return weir_verdict(p, WEIR_CNT_ACCEPT_ESTABLISHED, TC_ACT_OK);
}

#endif
