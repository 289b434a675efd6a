/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Conntrack: key normalisation, leg flags, mirroring into the paired NAT entry, creation.
 * Types and the contract with userspace are in weir/conntrack.h.
 */
#ifndef WEIR_LIB_CONNTRACK_H
#define WEIR_LIB_CONNTRACK_H

#include "lib/defs.h"
#include "lib/maps.h"

/* This CPU's datapath statistics (weir/conntrack.h, struct weir_ct_stats); NULL never happens
 * (a fixed array) but is checked. Per-CPU: plain increments are exact. */
static __always_inline struct weir_ct_stats *weir_ct_stats(void)
{
	__u32 k = WEIR_CT_STATS_DATAPATH;

	return bpf_map_lookup_elem(&weir_ct_stats1, &k);
}

#ifdef WEIR_TRACE
#define weir_ct_stat_add(field, n) ((void)(n))
#else
#define weir_ct_stat_add(field, n)                            \
	do {                                                  \
		struct weir_ct_stats *st_ = weir_ct_stats();  \
		if (st_)                                      \
			st_->field += (n);                    \
	} while (0)
#endif

/* Build the normalised key of a packet going (saddr, sport) -> (daddr, dport). Returns 1 when
 * the sender is side A (its (addr, port) compares lower or equal), else 0. */
static __always_inline __u8 weir_ct_key_make(struct weir_ct_key *k, __u32 saddr, __u16 sport,
					     __u32 daddr, __u16 dport, __u8 proto)
{
	__u8 from_a = saddr < daddr || (saddr == daddr && sport <= dport);

	if (from_a) {
		k->addr_a = saddr;
		k->port_a = sport;
		k->addr_b = daddr;
		k->port_b = dport;
	} else {
		k->addr_a = daddr;
		k->port_a = dport;
		k->addr_b = saddr;
		k->port_b = sport;
	}
	k->proto = proto;
	k->pad[0] = 0;
	k->pad[1] = 0;
	k->pad[2] = 0;
	return from_a;
}

/* Leg flags a TCP packet sets on the leg of its sender. */
static __always_inline __u32 weir_ct_tcp_bits(const struct weir_pkt *p)
{
	__u32 bits = 0;

	if (p->proto != IPPROTO_TCP)
		return 0;
	if (p->tcp_flags & WEIR_TCP_SYN)
		bits |= WEIR_CT_LEG_SYN;
	if (p->tcp_flags & WEIR_TCP_FIN)
		bits |= WEIR_CT_LEG_FIN;
	if (p->tcp_flags & WEIR_TCP_RST)
		bits |= WEIR_CT_LEG_RST;
	if (p->tcp_flags & WEIR_TCP_ACK)
		bits |= WEIR_CT_LEG_ACK;
	return bits;
}

/* A TCP flow that is over: reset by either side, or FIN sent by both. A new SYN on its 5-tuple
 * starts a new flow; a NAT collision with it may overwrite it. */
static __always_inline int weir_ct_is_dead(const struct weir_ct_val *ct, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return 0;
	return weir_ct_tcp_is_over(weir_ct_tcp_state(ct->a.flags, ct->b.flags));
}

static __always_inline int weir_tcp_is_syn_only(const struct weir_pkt *p)
{
	return p->proto == IPPROTO_TCP &&
	       (p->tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK | WEIR_TCP_RST)) == WEIR_TCP_SYN;
}

/* Key of the other half of a NAT pair: (client, nat_addr:nat_port). Sets *client_is_a to the
 * side the client takes in that key. */
static __always_inline void weir_ct_pair_key(struct weir_ct_key *pk, const struct weir_ct_key *k,
					     const struct weir_ct_val *ct, __u8 *client_is_a)
{
	__u8 a_is_client = ct->flags & WEIR_CT_F_A_IS_CLIENT;
	__u32 caddr = a_is_client ? k->addr_a : k->addr_b;
	__u16 cport = a_is_client ? k->port_a : k->port_b;

	*client_is_a = weir_ct_key_make(pk, caddr, cport, ct->nat_addr, ct->nat_port, k->proto);
}

/* Merge what one leg knows into the same leg of the paired entry: flags are OR-ed atomically,
 * the workload facts (ifindex, MACs) are copied once. */
static __always_inline void weir_ct_leg_merge(struct weir_ct_leg *dst, const struct weir_ct_leg *src)
{
	__u32 add = src->flags & ~dst->flags;

	if (!add)
		return;
	if ((add & WEIR_CT_LEG_WORKLOAD) && src->ifindex) {
		WEIR_EFFECT(dst->ifindex = src->ifindex);
		WEIR_EFFECT(__builtin_memcpy(dst->wl_mac, src->wl_mac, sizeof(dst->wl_mac)));
		WEIR_EFFECT(__builtin_memcpy(dst->host_mac, src->host_mac, sizeof(dst->host_mac)));
	}
	WEIR_EFFECT(__sync_fetch_and_or(&dst->flags, add));
}

/* After a leg of a NAT entry changed, mirror both legs into the paired entry (rare: SYN, FIN,
 * RST, first ACK, approval). A missing pair (evicted) is left alone. */
static __always_inline void weir_ct_mirror(const struct weir_ct_key *k, const struct weir_ct_val *ct)
{
	struct weir_ct_key pk;
	struct weir_ct_val *pair;
	__u8 pair_client_is_a, client_is_a = ct->flags & WEIR_CT_F_A_IS_CLIENT;

	if (ct->type == WEIR_CT_NORMAL)
		return;
	weir_ct_pair_key(&pk, k, ct, &pair_client_is_a);
	pair = bpf_map_lookup_elem(&weir_ct2, &pk);
	if (!pair)
		return;
	if (client_is_a == pair_client_is_a) {
		weir_ct_leg_merge(&pair->a, &ct->a);
		weir_ct_leg_merge(&pair->b, &ct->b);
	} else {
		weir_ct_leg_merge(&pair->a, &ct->b);
		weir_ct_leg_merge(&pair->b, &ct->a);
	}
}

/* Delete an entry and, for NAT entries, its pair. */
static __always_inline void weir_ct_delete_flow(const struct weir_ct_key *k, const struct weir_ct_val *ct)
{
	struct weir_ct_key pk;
	__u8 unused;

	__u32 n = 0;

	if (ct->type != WEIR_CT_NORMAL) {
		weir_ct_pair_key(&pk, k, ct, &unused);
		if (!weir_map_delete(&weir_ct2, &pk))
			n++;
	}
	if (!weir_map_delete(&weir_ct2, k))
		n++;
	weir_ct_stat_add(deleted, n);
}

/* Re-create the missing other half of a NAT pair from the half that was hit (LRU eviction can
 * take one half of an idle flow and leave the other): same legs, the opposite type, the NAT
 * address taken from this half's key. Called at most once per flow and clock tick (when the
 * hit moves last_seen), so an established packet still costs one lookup in the common case;
 * the lookup also keeps the pair's LRU position close to this half's. */
__weir_global int weir_ct_keep_pair(const struct weir_ct_key *k, const struct weir_ct_val *ct, __u64 now)
{
	struct weir_ct_key pk;
	struct weir_ct_val v;
	__u8 pair_client_is_a, client_is_a;

	if (!k || !ct || ct->type == WEIR_CT_NORMAL)
		return 0;
	client_is_a = ct->flags & WEIR_CT_F_A_IS_CLIENT;
	weir_ct_pair_key(&pk, k, ct, &pair_client_is_a);
	if (bpf_map_lookup_elem(&weir_ct2, &pk))
		return 0;
	v = *ct;
	/* Counts stay with the half that counted them (a flow's totals sum the pair). */
	v.packets_a = 0;
	v.bytes_a = 0;
	v.packets_b = 0;
	v.bytes_b = 0;
	v.type = ct->type == WEIR_CT_NAT_FWD ? WEIR_CT_NAT_REV : WEIR_CT_NAT_FWD;
	v.last_seen_ns = now;
	/* This half's non-client side: the VIP (FWD) or the backend (REV). */
	v.nat_addr = client_is_a ? k->addr_b : k->addr_a;
	v.nat_port = client_is_a ? k->port_b : k->port_a;
	v.flags &= ~WEIR_CT_F_A_IS_CLIENT;
	if (pair_client_is_a)
		v.flags |= WEIR_CT_F_A_IS_CLIENT;
	if (client_is_a != pair_client_is_a) {
		v.a = ct->b;
		v.b = ct->a;
	}
	if (!weir_map_update(&weir_ct2, &pk, &v, BPF_NOEXIST))
		weir_ct_stat_add(created, 1);
	return 0;
}

/* A new entry's value: zeroed, created and last seen now, marked ICMP echo for ICMP. */
static __always_inline void weir_ct_val_new(struct weir_ct_val *v, __u8 proto)
{
	__builtin_memset(v, 0, sizeof(*v));
	v->created_ns = weir_now();
	v->last_seen_ns = v->created_ns;
	if (proto == IPPROTO_ICMP)
		v->flags = WEIR_CT_F_ICMP_ECHO;
}

/* The first packet of a flow (`len` bytes), counted on the side that sent it (`from_a`), in the
 * value of the entry that side's packets look up. */
static __always_inline void weir_ct_count_first(struct weir_ct_val *v, __u8 from_a, __u32 len)
{
	if (from_a) {
		v->packets_a = 1;
		v->bytes_a = len;
	} else {
		v->packets_b = 1;
		v->bytes_b = len;
	}
}

/* Fill an entry's legs from the client's and the other side's leg, given the client's side. */
static __always_inline void weir_ct_set_legs(struct weir_ct_val *v, __u8 client_is_a,
					     const struct weir_ct_leg *client, const struct weir_ct_leg *other)
{
	if (client_is_a) {
		v->flags |= WEIR_CT_F_A_IS_CLIENT;
		v->a = *client;
		v->b = *other;
	} else {
		v->flags &= ~WEIR_CT_F_A_IS_CLIENT;
		v->a = *other;
		v->b = *client;
	}
}

#endif
