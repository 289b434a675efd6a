/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * VXLAN between nodes (weir/tunnel.h for the maps, docs/packet-path.md section 12 for the path):
 *   - from_wl decides (weir_tunnel_wanted) and tail-calls weir_vxlan_encap through
 *     weir_tun_jump1 instead of handing the packet to the host stack;
 *   - weir_vxlan_encap (weir_vxlan_encap_pkt) puts outer IPv4 + UDP + VXLAN + the inner
 *     Ethernet header in front of it and redirects it to the underlay through the kernel's
 *     neighbour table;
 *   - weir_from_ul (weir_from_ul_pkt), at the tc ingress of the underlay interface, takes the
 *     headers off VXLAN for this node from known nodes and redirects the inner packet to the
 *     destination pod's host veth (egress: its to_wl runs), and passes everything else.
 */
#ifndef WEIR_LIB_TUNNEL_H
#define WEIR_LIB_TUNNEL_H

#include "lib/counters.h"
#include "lib/csum.h"
#include "lib/defs.h"
#include "lib/icmp.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/route.h"

/* skb->cb[] words in which from_wl hands weir_vxlan_encap the outcome it would have counted
 * (ACCEPT_BY_POLICY when a policy allowed the packet: it stays so once encapsulated) and the
 * next hop weir_tunnel_wanted found (network order), so that the route is looked up once. */
#define WEIR_CB_OUTCOME 0
#define WEIR_CB_NEXT_HOP 1

static __always_inline const struct weir_tunnel_val *weir_tunnel_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&weir_tunnel1, &zero);
}

/* Whether from_wl sends this packet (destination after DNAT) to another node over VXLAN rather
 * than to the host stack: VXLAN enabled and the destination's route remote with a known next
 * hop. Returns that next hop (network order), 0 for no. Global: verified once on its own; each
 * path of from_wl that reaches the call costs one call and a test of its result. */
__weir_global __u32 weir_tunnel_wanted(__u32 daddr)
{
	struct weir_route_key rk = { .prefixlen = 32, .addr = daddr };
	const struct weir_tunnel_val *t = weir_tunnel_cfg();
	const struct weir_route_val *rt;

	if (!t || !(t->flags & WEIR_TUNNEL_F_VXLAN))
		return 0;
	rt = bpf_map_lookup_elem(&weir_routes1, &rk);
	return rt && (rt->flags & WEIR_RT_F_REMOTE) ? rt->next_hop : 0;
}

/* What weir_vxlan_encap writes after the (kept) Ethernet header: outer IPv4, UDP, VXLAN and the
 * inner Ethernet header. WEIR_VXLAN_OVERHEAD bytes of it are written (the struct's size is
 * rounded up to its alignment). */
struct weir_vxlan_hdrs {
	struct iphdr ip;
	struct udphdr udp;
	__u8 vxlan[WEIR_VXLAN_HLEN]; /* flags, 3 reserved, VNI (24 bits), reserved */
	__u8 inner_eth[ETH_HLEN];
};
_Static_assert(__builtin_offsetof(struct weir_vxlan_hdrs, inner_eth) + ETH_HLEN ==
		       WEIR_VXLAN_OVERHEAD,
	       "VXLAN headers must be contiguous");

/* bpf_skb_adjust_room flags of the encapsulation: the kernel records the inner headers (inner
 * MAC at the 14 bytes before the original IP header) and marks a GSO packet as a UDP tunnel
 * (SKB_GSO_UDP_TUNNEL), so that segmentation and checksum offload treat the inner packet right.
 * All are in the uapi header of Linux 6.1 (linux-libc-dev 6.1), so none is defined here. */
#define WEIR_VXLAN_ADJ_FLAGS                                                                       \
	(BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH | \
	 BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN))

/* Counts the packet DROP_ENCAP and drops it. */
static __always_inline int weir_encap_fail(struct weir_pkt *p)
{
	return weir_verdict(p, WEIR_CNT_DROP_ENCAP, TC_ACT_SHOT);
}

/*
 * weir_vxlan_encap: the packet from_wl would have handed to the host stack, for a pod on another
 * node. Re-parsed (it is as from_wl left it: NAT done), the next hop taken from skb->cb (where
 * from_wl put what weir_tunnel_wanted found), its size checked against the underlay device,
 * then encapsulated and redirected out of the underlay interface through the kernel's
 * neighbour table (bpf_redirect_neigh: the FIB picks the outer next hop, the neighbour entry
 * its MAC; the outer Ethernet header is written there).
 * Every failure is DROP_ENCAP: a packet is never sent unencapsulated into the overlay.
 */
static __always_inline int weir_vxlan_encap_pkt(struct __sk_buff *skb, struct weir_pkt *p)
{
	const struct weir_tunnel_val *t = weir_tunnel_cfg();
	struct weir_vxlan_hdrs h;
	struct iphdr inner;
	__u32 ifindex, saddr, vni, next_hop, mtu = 0, len, sport;
	__u64 adj = WEIR_VXLAN_ADJ_FLAGS, hash;
	__u16 port;
	long rc;

	if (!t || !(t->flags & WEIR_TUNNEL_F_VXLAN) || !t->underlay_ifindex || !t->underlay_addr)
		return weir_encap_fail(p); /* switched off since from_wl looked */
	ifindex = t->underlay_ifindex;
	saddr = t->underlay_addr;
	vni = t->vni & 0xffffff;
	port = t->port;

	if (weir_parse(skb, p) != WEIR_PARSE_OK)
		return weir_encap_fail(p); /* unreachable: from_wl parsed the same packet */
	next_hop = skb->cb[WEIR_CB_NEXT_HOP];
	if (!next_hop)
		return weir_encap_fail(p); /* unreachable: from_wl found one */

	/* The original Ethernet header becomes the inner one (it stays in place as the outer one,
	 * which the neighbour output rewrites); TOS and DF of the inner IP header are reused. */
	if (bpf_skb_load_bytes(skb, 0, h.inner_eth, ETH_HLEN) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, &inner, sizeof(inner)))
		return weir_encap_fail(p);

	/* Room for the headers on the underlay. A GSO packet passes (its segments are checked when
	 * they are made: the kernel lowers the TCP MSS by the headers' length, below). */
	rc = bpf_check_mtu(skb, ifindex, &mtu, WEIR_VXLAN_OVERHEAD, 0);
	if (rc < 0)
		return weir_encap_fail(p); /* e.g. the underlay interface is gone */
	if (rc != BPF_MTU_CHK_RET_SUCCESS) {
		/* Too big. A datagram with DF (path MTU discovery) is answered with "fragmentation
		 * needed" and the MTU that fits, as a router would; never an ICMP error (RFC 1122). */
		if ((inner.frag_off & bpf_htons(WEIR_IP_DF)) && mtu > WEIR_VXLAN_OVERHEAD &&
		    !(p->proto == IPPROTO_ICMP && weir_icmp_is_error(p->icmp_type)))
			return weir_answer_icmp_unreach(skb, p, ICMP_FRAG_NEEDED, mtu - WEIR_VXLAN_OVERHEAD,
							WEIR_CNT_DROP_ENCAP);
		return weir_encap_fail(p);
	}

	/* The whole frame as the pod sent it (Ethernet padding included) is the UDP payload. A GSO
	 * packet may be longer than an IP length can say: its segments get their own lengths. */
	len = skb->len;
	if (len > 0xffff - sizeof(struct iphdr) - sizeof(struct udphdr) - WEIR_VXLAN_HLEN)
		len = 0xffff - sizeof(struct iphdr) - sizeof(struct udphdr) - WEIR_VXLAN_HLEN;

	/* UDP source port from the flow hash: the underlay spreads the flows of two nodes over its
	 * paths (ECMP) and the receiver's queues (RSS), and a flow keeps one port. */
	hash = bpf_get_hash_recalc(skb);
	sport = WEIR_VXLAN_SPORT_MIN +
		(__u32)((hash * (WEIR_VXLAN_SPORT_MAX - WEIR_VXLAN_SPORT_MIN + 1)) >> 32);

	__builtin_memset(&h.ip, 0, sizeof(h.ip) + sizeof(h.udp) + sizeof(h.vxlan));
	((__u8 *)&h.ip)[0] = 0x45; /* version 4, ihl 5 */
	/* DSCP copied; ECN Not-ECT (RFC 6040's compatibility mode: the decapsulator then has no
	 * congestion mark to carry over to the inner header). */
	h.ip.tos = inner.tos & 0xfc;
	h.ip.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct udphdr) + WEIR_VXLAN_HLEN + len);
	h.ip.frag_off = bpf_htons(WEIR_IP_DF);
	h.ip.ttl = WEIR_ANSWER_TTL;
	h.ip.protocol = IPPROTO_UDP;
	h.ip.saddr = saddr;
	h.ip.daddr = next_hop;
	h.ip.check = weir_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&h.ip, sizeof(h.ip), 0));
	h.udp.source = bpf_htons(sport);
	h.udp.dest = port;
	h.udp.len = bpf_htons(sizeof(struct udphdr) + WEIR_VXLAN_HLEN + len);
	h.udp.check = 0; /* none: RFC 7348 allows it over IPv4, the inner packet has its own */
	h.vxlan[0] = WEIR_VXLAN_F_VNI;
	h.vxlan[4] = vni >> 16;
	h.vxlan[5] = vni >> 8;
	h.vxlan[6] = vni;

	/* A UDP GSO packet (UDP_SEGMENT) may only grow with its segment size kept (each segment is
	 * a datagram); a TCP one has its MSS lowered by the headers' length, so that its segments
	 * fit the underlay whatever MTU the pod has. */
	if (skb->gso_size && p->proto == IPPROTO_UDP)
		adj |= BPF_F_ADJ_ROOM_FIXED_GSO;
	if (bpf_skb_adjust_room(skb, WEIR_VXLAN_OVERHEAD, BPF_ADJ_ROOM_MAC, adj))
		return weir_encap_fail(p);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &h, WEIR_VXLAN_OVERHEAD, BPF_F_RECOMPUTE_CSUM))
		return weir_encap_fail(p);
	if (bpf_redirect_neigh(ifindex, NULL, 0, 0) != TC_ACT_REDIRECT)
		return weir_encap_fail(p);
	return weir_verdict(p, skb->cb[WEIR_CB_OUTCOME] == WEIR_CNT_ACCEPT_BY_POLICY ?
				       WEIR_CNT_ACCEPT_BY_POLICY : WEIR_CNT_REDIRECT_NEIGH,
			    TC_ACT_REDIRECT);
}

/* The smallest VXLAN datagram worth taking apart: UDP + VXLAN + inner Ethernet + inner IPv4. */
#define WEIR_VXLAN_MIN_UDP_LEN                                                                     \
	(sizeof(struct udphdr) + WEIR_VXLAN_HLEN + ETH_HLEN + sizeof(struct iphdr))

/*
 * weir_from_ul: a packet arriving on the underlay interface. VXLAN for this node (IPv4, UDP, to
 * this node's underlay address, to the configured port, VXLAN enabled) is checked, taken apart
 * and the inner packet redirected to the destination pod's host veth (its egress, where to_wl
 * runs: ingress policy, conntrack, reverse NAT). Everything else passes untouched: the node's
 * own traffic (SSH, etcd, ARP, ...) and even VXLAN to another port (the kernel's UDP stack
 * answers it). Sets *outcome; returns the verdict.
 */
/* A `weir doctor` probe (weir/tunnel.h), already checked as VXLAN for this node from a known
 * node: answered back out of the interface it came in by, or dropped when it is not a request. */
static __always_inline int weir_vxlan_probe_answer(struct __sk_buff *skb, __u32 *outcome, const struct ethhdr *eth,
						   const struct iphdr *ip, const struct udphdr *uh)
{
	const __u32 off = WEIR_L3_OFF + WEIR_VXLAN_OVERHEAD;
	struct weir_vxlan_probe pr;
	__u8 macs[2 * ETH_ALEN];
	__u32 addrs[2] = { ip->daddr, ip->saddr };
	__u16 ports[2] = { uh->dest, uh->source };
	__u16 zero = 0;

	if (bpf_skb_load_bytes(skb, off, &pr, sizeof(pr)) ||
	    pr.magic_kind != (WEIR_VXLAN_PROBE_MAGIC | (__u64)WEIR_VXLAN_PROBE_REQUEST << 56))
		return TC_ACT_SHOT; /* a reply, or not a probe: nobody sends those to the VXLAN port */
	pr.magic_kind = WEIR_VXLAN_PROBE_MAGIC | (__u64)WEIR_VXLAN_PROBE_REPLY << 56;
	__builtin_memcpy(macs, eth->h_source, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, eth->h_dest, ETH_ALEN);
	/* Swapping the addresses leaves the IP header's sum as it is; the UDP checksum is dropped
	 * (0: none, allowed over IPv4) rather than recomputed over the payload. */
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + __builtin_offsetof(struct iphdr, saddr), addrs, sizeof(addrs), 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(*ip), ports, sizeof(ports), 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(*ip) + __builtin_offsetof(struct udphdr, check), &zero,
				sizeof(zero), 0) ||
	    bpf_skb_store_bytes(skb, off, &pr.magic_kind, sizeof(pr.magic_kind), 0))
		return TC_ACT_SHOT;
	*outcome = WEIR_CNT_REDIRECT_PLAIN;
	return bpf_redirect(skb->ifindex, 0);
}

static __always_inline int weir_from_ul_pkt(struct __sk_buff *skb, __u32 *outcome)
{
	const struct weir_tunnel_val *t;
	struct ethhdr eth;
	struct iphdr ip, in;
	struct udphdr uh;
	struct {
		__u8 vxlan[WEIR_VXLAN_HLEN];
		struct ethhdr eth; /* packed: right after the VXLAN header */
	} vx;
	struct weir_ct_leg leg = {};
	const __u32 *vtep;
	__u32 ihl, frag, tot, ulen, itot, iihl, vni, saddr;

	*outcome = WEIR_CNT_ACCEPT_UNDERLAY;
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return TC_ACT_OK;
	if (weir_vlan_tagged(skb, eth.h_proto))
		return TC_ACT_OK; /* another network on the same wire: not ours to judge */
	if (eth.h_proto != bpf_htons(ETH_P_IP)) {
		*outcome = WEIR_CNT_ACCEPT_NON_IPV4;
		return TC_ACT_OK;
	}
	t = weir_tunnel_cfg();
	if (!t || !(t->flags & WEIR_TUNNEL_F_VXLAN) || !t->underlay_addr)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
		return TC_ACT_OK; /* short: the kernel's IP layer drops it */
	if (ip.version != 4 || ip.protocol != IPPROTO_UDP || ip.daddr != t->underlay_addr)
		return TC_ACT_OK;
	frag = bpf_ntohs(ip.frag_off);
	if (frag & WEIR_IP_OFFMASK)
		return TC_ACT_OK; /* a later fragment: no UDP header tells whose it is */
	ihl = ip.ihl * 4;
	if (ihl < sizeof(ip) || bpf_skb_load_bytes(skb, ETH_HLEN + ihl, &uh, sizeof(uh)))
		return TC_ACT_OK;
	if (uh.dest != t->port)
		return TC_ACT_OK;

	/* VXLAN for this node: from here every fault is a drop. */
	*outcome = WEIR_CNT_DROP_DECAP;
	if (ihl != sizeof(ip) || (frag & WEIR_IP_MF))
		return TC_ACT_SHOT; /* options or a (first) fragment: nodes send neither */
	if (weir_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&ip, sizeof(ip), 0))) {
		*outcome = WEIR_CNT_DROP_BAD_CSUM; /* the IP layer, which would have checked it, is skipped */
		return TC_ACT_SHOT;
	}
	tot = bpf_ntohs(ip.tot_len);
	ulen = bpf_ntohs(uh.len);
	if (tot < sizeof(ip) + WEIR_VXLAN_MIN_UDP_LEN || tot + ETH_HLEN > skb->len ||
	    ulen < WEIR_VXLAN_MIN_UDP_LEN || ulen > tot - sizeof(ip))
		return TC_ACT_SHOT; /* cut short, or a length that lies */
	if (skb->gso_size)
		return TC_ACT_SHOT; /* datagrams merged by UDP GRO: one set of headers cannot go */
	if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip) + sizeof(uh), &vx, sizeof(vx)) ||
	    bpf_skb_load_bytes(skb, WEIR_L3_OFF + WEIR_VXLAN_OVERHEAD, &in, sizeof(in)))
		return TC_ACT_SHOT;
	if (!(vx.vxlan[0] & WEIR_VXLAN_F_VNI))
		return TC_ACT_SHOT;
	vni = (__u32)vx.vxlan[4] << 16 | (__u32)vx.vxlan[5] << 8 | vx.vxlan[6];
	if (vni != (t->vni & 0xffffff))
		return TC_ACT_SHOT;
	saddr = ip.saddr;
	vtep = bpf_map_lookup_elem(&weir_vteps1, &saddr);
	if (!vtep || !(*vtep & WEIR_VTEP_F_NODE))
		return TC_ACT_SHOT; /* not from a node of the cluster */
	if (vx.eth.h_proto == bpf_htons(WEIR_VXLAN_PROBE_ETHERTYPE))
		return weir_vxlan_probe_answer(skb, outcome, &eth, &ip, &uh);
	if (vx.eth.h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_SHOT;
	itot = bpf_ntohs(in.tot_len);
	iihl = in.ihl * 4;
	if (in.version != 4 || iihl < sizeof(in) || itot < iihl ||
	    itot + ETH_HLEN + WEIR_VXLAN_HLEN + sizeof(uh) > ulen)
		return TC_ACT_SHOT;
	weir_route_dst_leg(&leg, in.daddr);
	if (!(leg.flags & WEIR_CT_LEG_WORKLOAD))
		return TC_ACT_SHOT; /* not a pod of this node (or one whose MAC is not known yet) */

	/* Off with outer IPv4 + UDP + VXLAN + inner Ethernet (the outer Ethernet header stays, to
	 * be rewritten); a GSO size, if any, stays as it is (the inner MSS did not change). */
	if (bpf_skb_adjust_room(skb, -(__s32)WEIR_VXLAN_OVERHEAD, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO))
		return TC_ACT_SHOT;
	if (weir_set_macs(skb, &leg))
		return TC_ACT_SHOT;
	*outcome = WEIR_CNT_REDIRECT_PLAIN;
	return bpf_redirect(leg.ifindex, 0);
}

#endif
