/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Parsing: Ethernet, IPv4 (options, fragments), TCP, UDP, ICMP. Every read is preceded by a
 * bounds check against data_end (variable offsets through weir_pkt_ptr, lib/pkt.h); the result
 * is a filled struct weir_pkt or the outcome counter that decides the packet (non-IPv4
 * accepted, VLAN-tagged, short or malformed dropped).
 */
#ifndef WEIR_LIB_PARSE_H
#define WEIR_LIB_PARSE_H

#include "lib/defs.h"
#include "lib/pkt.h"

/* Headers we may read through direct packet access: Ethernet + the largest IPv4 header + the
 * largest TCP header. When the linear part of the skb is shorter than that but the packet is
 * not, pull it in once (non-linear skbs, e.g. large GSO packets). */
#define WEIR_PULL_LEN (ETH_HLEN + 60 + 60)

#define WEIR_PARSE_OK 0xffffffffu

/* ICMP types that carry an offending IP header + 8 bytes. */
static __always_inline int weir_icmp_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/* The L4 header of a packet at `l4_off` (ETH_HLEN + ihl), `len` bytes of it, or NULL when it is
 * not all in the linear data. */
static __always_inline void *weir_l4_ptr(struct __sk_buff *skb, __u32 l4_off, const __u32 len)
{
	return weir_pkt_ptr(skb, l4_off, len);
}

/* Ports (or the ICMP type, code and echo identifier) of a packet whose IP header parsed. */
static __always_inline __u32 weir_parse_l4(struct __sk_buff *skb, struct weir_pkt *p)
{
	__u32 ihl = p->ihl, tot = p->tot_len;

	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = weir_l4_ptr(skb, p->l4_off, sizeof(*th));
		__u32 doff;

		if (!th || ihl + sizeof(*th) > tot)
			return WEIR_CNT_DROP_SHORT;
		doff = th->doff * 4;
		if (doff < sizeof(*th))
			return WEIR_CNT_DROP_MALFORMED;
		if (ihl + doff > tot)
			return WEIR_CNT_DROP_SHORT;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = weir_l4_ptr(skb, p->l4_off, sizeof(*uh));

		if (!uh || ihl + sizeof(*uh) > tot)
			return WEIR_CNT_DROP_SHORT;
		p->sport = uh->source;
		p->dport = uh->dest;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ih = weir_l4_ptr(skb, p->l4_off, sizeof(*ih));

		if (!ih || ihl + sizeof(*ih) > tot)
			return WEIR_CNT_DROP_SHORT;
		p->icmp_type = ih->type;
		p->icmp_code = ih->code;
		if (ih->type == ICMP_ECHO || ih->type == ICMP_ECHOREPLY) {
			/* Echo request and reply: the identifier plays both ports. */
			p->sport = ih->un.echo.id;
			p->dport = ih->un.echo.id;
		}
		break;
	}
	default:
		/* Other protocols are tracked with ports 0. */
		break;
	}
	return WEIR_PARSE_OK;
}

/* An 802.1Q / 802.1ad tag, in the frame or already taken out of it by the receive path (the
 * kernel moves the outer tag to skb->vlan_tci before the TC hooks run). */
static __always_inline int weir_vlan_tagged(const struct __sk_buff *skb, __u16 h_proto)
{
	return skb->vlan_present || h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Returns WEIR_PARSE_OK, or the outcome counter of a packet that must not go further
 * (WEIR_CNT_ACCEPT_NON_IPV4, WEIR_CNT_DROP_VLAN, WEIR_CNT_DROP_SHORT, WEIR_CNT_DROP_MALFORMED). */
static __always_inline __u32 weir_parse(struct __sk_buff *skb, struct weir_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 ihl, tot, frag_off, rc;

	if (data + WEIR_PULL_LEN > data_end && data_end - data < skb->len) {
		bpf_skb_pull_data(skb, skb->len < WEIR_PULL_LEN ? skb->len : WEIR_PULL_LEN);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}

	eth = data;
	if ((void *)(eth + 1) > data_end)
		return WEIR_CNT_DROP_SHORT;
	if (weir_vlan_tagged(skb, eth->h_proto))
		return WEIR_CNT_DROP_VLAN;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return WEIR_CNT_ACCEPT_NON_IPV4;

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return WEIR_CNT_DROP_SHORT;
	ihl = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ihl < sizeof(struct iphdr) || tot < ihl || tot + ETH_HLEN > skb->len)
		return WEIR_CNT_DROP_MALFORMED;

	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->orig_saddr = p->saddr;
	p->orig_daddr = p->daddr;
	p->proto = ip->protocol;
	p->ip_id = ip->id;
	p->ihl = ihl;
	p->tot_len = tot;
	p->l4_off = ETH_HLEN + ihl;

	frag_off = bpf_ntohs(ip->frag_off);
	p->frag_offset = frag_off & WEIR_IP_OFFMASK;
	p->more_frags = !!(frag_off & WEIR_IP_MF);
	if (p->frag_offset) {
		p->frag = WEIR_FRAG_LATER; /* no L4 header in this packet */
		return WEIR_PARSE_OK;
	}
	if (p->more_frags)
		p->frag = WEIR_FRAG_FIRST;
	rc = weir_parse_l4(skb, p);
	p->orig_sport = p->sport;
	p->orig_dport = p->dport;
	return rc;
}

#endif
