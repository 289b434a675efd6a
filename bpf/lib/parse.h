/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Parsing: Ethernet, IPv4 (options, fragments), TCP, UDP, ICMP. Every read is preceded by a
 * bounds check against data_end; the result is a filled struct weir_pkt or the outcome counter
 * that decides the packet (non-IPv4 accepted, short or malformed dropped).
 */
#ifndef WEIR_LIB_PARSE_H
#define WEIR_LIB_PARSE_H

#include "lib/defs.h"

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

/* Returns WEIR_PARSE_OK, or the outcome counter of a packet that must not go further
 * (WEIR_CNT_ACCEPT_NON_IPV4, WEIR_CNT_DROP_SHORT, WEIR_CNT_DROP_MALFORMED). */
static __always_inline __u32 weir_parse(struct __sk_buff *skb, struct weir_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	void *l4;
	__u32 ihl, tot, frag_off;

	if (data + WEIR_PULL_LEN > data_end && data_end - data < skb->len) {
		bpf_skb_pull_data(skb, skb->len < WEIR_PULL_LEN ? skb->len : WEIR_PULL_LEN);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}

	eth = data;
	if ((void *)(eth + 1) > data_end)
		return WEIR_CNT_DROP_SHORT;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return WEIR_CNT_ACCEPT_NON_IPV4;

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return WEIR_CNT_DROP_SHORT;
	ihl = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ihl < sizeof(struct iphdr) || tot < ihl || tot + ETH_HLEN > skb->len)
		return WEIR_CNT_DROP_MALFORMED;
	l4 = (void *)ip + ihl;
	if (l4 > data_end)
		return WEIR_CNT_DROP_SHORT; /* options cut by the linear area */

	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->ihl = ihl;
	p->tot_len = tot;
	p->l4_off = ETH_HLEN + ihl;

	frag_off = bpf_ntohs(ip->frag_off);
	if (frag_off & WEIR_IP_OFFMASK) {
		p->frag = WEIR_FRAG_LATER; /* no L4 header in this packet */
		return WEIR_PARSE_OK;
	}
	if (frag_off & WEIR_IP_MF)
		p->frag = WEIR_FRAG_FIRST;

	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		__u32 doff;

		if ((void *)(th + 1) > data_end || ihl + sizeof(*th) > tot)
			return WEIR_CNT_DROP_SHORT;
		doff = th->doff * 4;
		if (doff < sizeof(*th))
			return WEIR_CNT_DROP_MALFORMED;
		if (l4 + doff > data_end || ihl + doff > tot)
			return WEIR_CNT_DROP_SHORT;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end || ihl + sizeof(*uh) > tot)
			return WEIR_CNT_DROP_SHORT;
		p->sport = uh->source;
		p->dport = uh->dest;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ih = l4;

		if ((void *)(ih + 1) > data_end || ihl + sizeof(*ih) > tot)
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

#endif
