/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP: the answers weir builds when a service has no ready backend (TCP RST, ICMP port
 * unreachable), and reverse NAT of ICMP errors about NATed flows.
 */
#ifndef WEIR_LIB_ICMP_H
#define WEIR_LIB_ICMP_H

#include "lib/conntrack.h"
#include "lib/csum.h"
#include "lib/defs.h"
#include "lib/maps.h"
#include "lib/route.h"

#define WEIR_ANSWER_TTL 64
#define WEIR_IP_DF 0x4000
#define WEIR_TOS_INTERNETCONTROL 0xc0

/* Swap source and destination MAC for an answer sent back to where the packet came from. */
static __always_inline int weir_swap_macs(struct __sk_buff *skb)
{
	__u8 m[12], s[12];

	if (bpf_skb_load_bytes(skb, 0, m, sizeof(m)))
		return -1;
	__builtin_memcpy(&s[0], &m[6], 6);
	__builtin_memcpy(&s[6], &m[0], 6);
	return bpf_skb_store_bytes(skb, 0, s, sizeof(s), 0);
}

/*
 * No ready backend for a TCP SYN to a service: turn the packet into a RST|ACK from the VIP to
 * the client (20-byte IP and TCP headers, no payload) and send it back out of the interface it
 * came from (the host-side veth egress transmits into the client's namespace).
 */
__weir_global int weir_answer_tcp_rst(struct __sk_buff *skb, struct weir_pkt *p)
{
	struct {
		struct iphdr ip;
		struct tcphdr tcp;
	} out;
	struct {
		__u32 saddr;
		__u32 daddr;
		__u8 zero;
		__u8 proto;
		__u16 len;
	} ph;
	struct tcphdr th;
	__u32 seg_len;
	__s64 sum;

	if (!p)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, p->l4_off, &th, sizeof(th)))
		return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);
	/* Sequence space the segment occupies: payload, plus one each for SYN and FIN. */
	seg_len = p->tot_len - p->ihl - ((((__u8 *)&th)[12] >> 4) * 4);
	if (p->tcp_flags & WEIR_TCP_SYN)
		seg_len++;
	if (p->tcp_flags & WEIR_TCP_FIN)
		seg_len++;

	__builtin_memset(&out, 0, sizeof(out));
	((__u8 *)&out.ip)[0] = 0x45; /* version 4, ihl 5 */
	out.ip.tot_len = bpf_htons(sizeof(out));
	out.ip.frag_off = bpf_htons(WEIR_IP_DF);
	out.ip.ttl = WEIR_ANSWER_TTL;
	out.ip.protocol = IPPROTO_TCP;
	out.ip.saddr = p->daddr;
	out.ip.daddr = p->saddr;
	sum = bpf_csum_diff(0, 0, (__be32 *)&out.ip, sizeof(out.ip), 0);
	out.ip.check = weir_csum_fold(sum);

	out.tcp.source = p->dport;
	out.tcp.dest = p->sport;
	out.tcp.seq = (p->tcp_flags & WEIR_TCP_ACK) ? th.ack_seq : 0;
	out.tcp.ack_seq = bpf_htonl(bpf_ntohl(th.seq) + seg_len);
	((__u8 *)&out.tcp)[12] = 5 << 4; /* data offset 5 */
	((__u8 *)&out.tcp)[13] = WEIR_TCP_RST | WEIR_TCP_ACK;
	ph.saddr = out.ip.saddr;
	ph.daddr = out.ip.daddr;
	ph.zero = 0;
	ph.proto = IPPROTO_TCP;
	ph.len = bpf_htons(sizeof(out.tcp));
	sum = bpf_csum_diff(0, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(0, 0, (__be32 *)&out.tcp, sizeof(out.tcp), sum);
	out.tcp.check = weir_csum_fold(sum);

	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(out), 0) || weir_swap_macs(skb) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &out, sizeof(out), BPF_F_RECOMPUTE_CSUM))
		return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);
	skb->mark = WEIR_MARK_ANSWER;
	return weir_redirect(p, WEIR_CNT_DROP_NO_BACKEND, p->ifindex, 0);
}

/*
 * Answer a packet from a workload with an ICMP destination unreachable of `code` from its
 * destination, carrying the original IP header (with its options) and the first 8 bytes of its
 * payload, sent back like the RST above; the packet is counted `outcome`:
 *   - no ready backend for a UDP datagram to a service: port unreachable (code 3) from the VIP,
 *     DROP_NO_BACKEND. It concerns no tracked flow, so it carries WEIR_MARK_ANSWER, which lets
 *     it pass to_wl;
 *   - a packet too big for the VXLAN underlay (weir_vxlan_encap): fragmentation needed (code 4)
 *     with the next-hop MTU `mtu`, DROP_ENCAP. It concerns the packet's flow: no mark, to_wl
 *     handles it as any ICMP error (section 8 of docs/packet-path.md: reverse NAT when the flow
 *     went through a service, so the client sees it come from the VIP about the VIP).
 */
__weir_global int weir_answer_icmp_unreach(struct __sk_buff *skb, struct weir_pkt *p, __u32 code,
					   __u32 mtu, __u32 outcome)
{
	struct {
		struct iphdr ip;
		struct icmphdr icmp;
		__u8 inner[60 + 8];
	} out;
	__u32 inner_len;
	__s64 sum;

	if (!p)
		return TC_ACT_SHOT;
	inner_len = p->ihl + 8;
	if (inner_len < sizeof(struct iphdr) + 8 || inner_len > sizeof(out.inner))
		return weir_verdict(p, WEIR_CNT_DROP_MALFORMED, TC_ACT_SHOT); /* unreachable: parsed */
	__builtin_memset(&out, 0, sizeof(out));
	if (bpf_skb_load_bytes(skb, ETH_HLEN, out.inner, inner_len))
		return weir_verdict(p, WEIR_CNT_DROP_SHORT, TC_ACT_SHOT);

	((__u8 *)&out.ip)[0] = 0x45;
	out.ip.tos = WEIR_TOS_INTERNETCONTROL;
	out.ip.tot_len = bpf_htons(sizeof(out.ip) + sizeof(out.icmp) + inner_len);
	out.ip.ttl = WEIR_ANSWER_TTL;
	out.ip.protocol = IPPROTO_ICMP;
	out.ip.saddr = p->daddr;
	out.ip.daddr = p->saddr;
	sum = bpf_csum_diff(0, 0, (__be32 *)&out.ip, sizeof(out.ip), 0);
	out.ip.check = weir_csum_fold(sum);

	out.icmp.type = ICMP_DEST_UNREACH;
	out.icmp.code = code;
	if (code == ICMP_FRAG_NEEDED)
		out.icmp.un.frag.mtu = bpf_htons(mtu > 0xffff ? 0xffff : mtu);
	/* The ICMP checksum covers the ICMP header and everything after it. */
	sum = bpf_csum_diff(0, 0, (__be32 *)&out.icmp, sizeof(out.icmp) + inner_len, 0);
	out.icmp.checksum = weir_csum_fold(sum);

	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(out.ip) + sizeof(out.icmp) + inner_len, 0) ||
	    weir_swap_macs(skb) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &out, sizeof(out.ip) + sizeof(out.icmp) + inner_len,
				BPF_F_RECOMPUTE_CSUM))
		return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);
	if (outcome == WEIR_CNT_DROP_NO_BACKEND)
		skb->mark = WEIR_MARK_ANSWER;
	return weir_redirect(p, outcome, p->ifindex, 0);
}

/* Rewrite a 4-byte address and a 2-byte port inside the ICMP payload (the offending packet's
 * header), keeping the inner IP checksum and the ICMP checksum right. The inner L4 checksum is
 * left as it is: nobody verifies the checksum of a quoted header. */
static __always_inline int weir_icmp_inner_rewrite(struct __sk_buff *skb, struct weir_pkt *p,
						   __u32 addr_off, __u32 inner_csum_off, __u32 port_off,
						   __u32 from, __u32 to, __u16 old_csum,
						   __u16 from_port, __u16 to_port, int has_ports)
{
	__u32 icmp_csum_off = p->l4_off + WEIR_ICMP_CSUM_OFF;
	__u16 new_csum = weir_csum_replace4(old_csum, from, to);

	if (bpf_skb_store_bytes(skb, addr_off, &to, sizeof(to), 0) ||
	    bpf_skb_store_bytes(skb, inner_csum_off, &new_csum, sizeof(new_csum), 0) ||
	    bpf_l4_csum_replace(skb, icmp_csum_off, from, to, sizeof(to)) ||
	    bpf_l4_csum_replace(skb, icmp_csum_off, old_csum, new_csum, sizeof(new_csum)))
		return -1;
	if (has_ports && from_port != to_port) {
		if (bpf_skb_store_bytes(skb, port_off, &to_port, sizeof(to_port), 0) ||
		    bpf_l4_csum_replace(skb, icmp_csum_off, from_port, to_port, sizeof(to_port)))
			return -1;
	}
	return 0;
}

/*
 * An ICMP error (destination unreachable incl. fragmentation needed, time exceeded, parameter
 * problem). The quoted header identifies the flow: look it up in conntrack; for a NATed flow
 * undo the NAT on both the outer and the quoted header, then forward like the flow. Errors
 * about no tracked flow are dropped (an error is only ever an answer to a packet of a flow,
 * and every flow through these programs is tracked) and never create state. From a workload,
 * the outer source must be the workload's own, as for any packet.
 */
__weir_global int weir_icmp_error(struct __sk_buff *skb, struct weir_pkt *p, int from_wl)
{
	struct iphdr in;
	__u16 ports[4]; /* first 8 bytes after the quoted IP header */
	struct weir_ct_key key;
	struct weir_ct_val *ct;
	struct weir_ct_leg *dst;
	__u32 inner_off, iihl, nat_addr;
	__u16 isport = 0, idport = 0, nat_port;
	__u8 from_a, client_is_a, from_client, has_ports;
	int rc = 0;

	if (!p)
		return TC_ACT_SHOT;
	inner_off = p->l4_off + sizeof(struct icmphdr);
	if (from_wl && !weir_src_is_workload(p->saddr, p->ifindex))
		return weir_verdict(p, WEIR_CNT_DROP_UNKNOWN_SOURCE, TC_ACT_SHOT);
	if (!from_wl && skb->mark == WEIR_MARK_ANSWER) {
		/* weir's own answer for a service without backends, redirected here by from_wl. */
		skb->mark = 0;
		return weir_verdict(p, WEIR_CNT_ACCEPT_NEW_FLOW, TC_ACT_OK);
	}
	if (bpf_skb_load_bytes(skb, inner_off, &in, sizeof(in)))
		return weir_verdict(p, WEIR_CNT_DROP_SHORT, TC_ACT_SHOT);
	iihl = in.ihl * 4;
	if (in.version != 4 || iihl < sizeof(in))
		return weir_verdict(p, WEIR_CNT_DROP_MALFORMED, TC_ACT_SHOT);
	if (inner_off + iihl + sizeof(ports) > ETH_HLEN + (__u32)p->tot_len ||
	    bpf_skb_load_bytes(skb, inner_off + iihl, ports, sizeof(ports)))
		return weir_verdict(p, WEIR_CNT_DROP_SHORT, TC_ACT_SHOT);

	has_ports = in.protocol == IPPROTO_TCP || in.protocol == IPPROTO_UDP;
	if (has_ports) {
		isport = ports[0];
		idport = ports[1];
	} else if (in.protocol == IPPROTO_ICMP) {
		__u8 itype = ((__u8 *)ports)[0];

		if (itype == ICMP_ECHO || itype == ICMP_ECHOREPLY) {
			isport = ports[2]; /* echo identifier */
			idport = ports[2];
		}
	}

	from_a = weir_ct_key_make(&key, in.saddr, isport, in.daddr, idport, in.protocol);
	ct = bpf_map_lookup_elem(&weir_ct2, &key);
	if (!ct)
		return weir_verdict(p, WEIR_CNT_DROP_ICMP_NO_FLOW, TC_ACT_SHOT);

	client_is_a = ct->flags & WEIR_CT_F_A_IS_CLIENT;
	from_client = from_a == client_is_a;
	/* The error travels to the sender of the quoted packet. */
	dst = from_a ? &ct->a : &ct->b;
	nat_addr = ct->nat_addr;
	nat_port = ct->nat_port;

	if (ct->type == WEIR_CT_NAT_REV && from_client && has_ports) {
		/* Quoted client->backend: the client knows it as client->VIP. */
		if (p->frag == WEIR_FRAG_FIRST)
			return weir_verdict(p, WEIR_CNT_DROP_FRAG_UNSUPPORTED, TC_ACT_SHOT);
		rc = weir_icmp_inner_rewrite(skb, p, inner_off + __builtin_offsetof(struct iphdr, daddr),
					     inner_off + __builtin_offsetof(struct iphdr, check),
					     inner_off + iihl + 2, in.daddr, nat_addr, in.check,
					     idport, nat_port, has_ports);
		if (!rc && p->saddr == in.daddr) {
			/* Sent by the backend itself: it must appear to come from the VIP. */
			rc = weir_rewrite_addr(skb, WEIR_IP_SADDR_OFF, p->saddr, nat_addr, 0, IPPROTO_ICMP);
			p->saddr = nat_addr;
		}
		p->facts |= WEIR_FACT_ICMP_ERR_NAT;
	} else if (ct->type == WEIR_CT_NAT_FWD && !from_client && has_ports) {
		/* Quoted VIP->client (a reply the client got): the error goes to the backend. */
		if (p->frag == WEIR_FRAG_FIRST)
			return weir_verdict(p, WEIR_CNT_DROP_FRAG_UNSUPPORTED, TC_ACT_SHOT);
		rc = weir_icmp_inner_rewrite(skb, p, inner_off + __builtin_offsetof(struct iphdr, saddr),
					     inner_off + __builtin_offsetof(struct iphdr, check),
					     inner_off + iihl, in.saddr, nat_addr, in.check,
					     isport, nat_port, has_ports);
		if (!rc && p->daddr == in.saddr) {
			rc = weir_rewrite_addr(skb, WEIR_IP_DADDR_OFF, p->daddr, nat_addr, 0, IPPROTO_ICMP);
			p->daddr = nat_addr;
		}
		p->facts |= WEIR_FACT_ICMP_ERR_NAT;
	}
	if (rc)
		return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);
	if (!from_wl)
		return weir_verdict(p, WEIR_CNT_ACCEPT_ESTABLISHED, TC_ACT_OK);
	return weir_fwd_established(skb, p, ct, dst);
}

#endif
