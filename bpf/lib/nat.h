/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service NAT: frontend/backend lookup and the DNAT/SNAT packet rewrite. */
#ifndef WEIR_LIB_NAT_H
#define WEIR_LIB_NAT_H

#include "lib/csum.h"
#include "lib/defs.h"
#include "lib/maps.h"
#include "lib/pkt.h"

enum weir_nat_pick {
	WEIR_NAT_NONE = 0,       /* no frontend: not a service */
	WEIR_NAT_BACKEND = 1,    /* a backend was chosen */
	WEIR_NAT_NO_BACKEND = 2, /* a frontend without a ready backend */
};

/* A hash of the packet's 5-tuple (murmur3's finaliser over the folded fields). The backend of
 * a new flow is chosen by it rather than at random, so that a packet of a flow whose conntrack
 * entries were lost is re-resolved to the backend the flow started with, as long as the
 * service's backends did not change. Clients vary their source ports, which spreads flows over
 * the backends as evenly as a random pick. */
static __always_inline __u32 weir_flow_hash(const struct weir_pkt *p)
{
	__u32 h = p->saddr * 0x9e3779b1u;

	h = (h ^ p->daddr) * 0x85ebca6bu;
	h = (h ^ (((__u32)p->sport << 16) | p->dport)) * 0xc2b2ae35u;
	h ^= p->proto;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Frontend lookup for a TCP/UDP packet and the backend the flow hash picks among the `count`
 * ready ones. */
static __always_inline int weir_nat_pick(const struct weir_pkt *p, __u32 *addr, __u16 *port)
{
	struct weir_nat_fe_key fk = { .addr = p->daddr, .port = p->dport, .proto = p->proto };
	struct weir_nat_be_key bk;
	struct weir_nat_fe_val *fe;
	struct weir_nat_be_val *be;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return WEIR_NAT_NONE;
	fe = bpf_map_lookup_elem(&weir_nat_fe1, &fk);
	if (!fe)
		return WEIR_NAT_NONE;
	if (fe->count == 0)
		return WEIR_NAT_NO_BACKEND;
	bk.svc_id = fe->svc_id;
	bk.ordinal = weir_flow_hash(p) % fe->count;
	be = bpf_map_lookup_elem(&weir_nat_be1, &bk);
	if (!be)
		return WEIR_NAT_NO_BACKEND; /* syncer mid-update or inconsistent: same answer */
	*addr = be->addr;
	*port = be->port;
	return WEIR_NAT_BACKEND;
}

/* Rewrite the destination (DNAT) or the source (SNAT) address and port of a TCP/UDP packet,
 * fixing the IP and L4 checksums; updates p. Returns 0 or a negative error.
 *
 * The L4 checksum goes through bpf_l4_csum_replace: only the kernel knows whether the skb is
 * CHECKSUM_PARTIAL (the field then holds the pseudo-header sum: addresses change it, ports do
 * not) or not, and it keeps skb->csum right for CHECKSUM_COMPLETE. The IP header is never
 * offloaded, so its address and checksum (RFC 1624 update) and the port are written directly:
 * each of those writes is compensated within the bytes covered by skb->csum. Two helper calls
 * instead of five on the established NAT path. */
static __always_inline int weir_nat_rewrite(struct __sk_buff *skb, struct weir_pkt *p, int dst,
					    __u32 addr, __u16 port)
{
	__u32 csum_off = p->l4_off + (p->proto == IPPROTO_TCP ? WEIR_TCP_CSUM_OFF : WEIR_UDP_CSUM_OFF);
	__u64 mangle0 = weir_l4_csum_flags(p->proto);
	__u32 old_addr = dst ? p->daddr : p->saddr;
	__u16 old_port = dst ? p->dport : p->sport;
	void *data, *data_end;
	struct iphdr *ip;
	__u16 *ports;
	__u32 l4_off = p->l4_off;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return -1; /* NAT entries exist for TCP and UDP only */
	if (bpf_l4_csum_replace(skb, csum_off, old_addr, addr, BPF_F_PSEUDO_HDR | sizeof(addr) | mangle0))
		return -1;
	if (old_port != port && bpf_l4_csum_replace(skb, csum_off, old_port, port, sizeof(port) | mangle0))
		return -1;

	/* The helpers may have moved the data: derive the pointers now. */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > data_end)
		return -1;
	ports = weir_pkt_ptr(skb, l4_off, 2 * sizeof(*ports));
	if (!ports)
		return -1;
	ip->check = weir_csum_replace4(ip->check, old_addr, addr);
	if (dst) {
		ip->daddr = addr;
		ports[1] = port;
		p->daddr = addr;
		p->dport = port;
	} else {
		ip->saddr = addr;
		ports[0] = port;
		p->saddr = addr;
		p->sport = port;
	}
	return 0;
}

#endif
