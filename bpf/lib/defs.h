/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Common includes, constants and the per-packet state every stage of the TC datapath shares.
 * BPF only (clang -target bpf).
 */
#ifndef WEIR_LIB_DEFS_H
#define WEIR_LIB_DEFS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "weir/common.h"
#include "weir/conntrack.h"
#include "weir/counters.h"
#include "weir/frags.h"
#include "weir/ifstate.h"
#include "weir/maps.h"
#include "weir/nat.h"
#include "weir/policy.h"
#include "weir/routes.h"
#include "weir/tunnel.h"

/* ICMP (linux/icmp.h drags in libc's net/if.h, which does not build for -target bpf). */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_PORT_UNREACH 3
#define ICMP_FRAG_NEEDED 4

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
		struct {
			__be16 unused;
			__be16 mtu;
		} frag;
	} un;
};

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#ifndef __noinline
#define __noinline __attribute__((noinline))
#endif

/*
 * A function kept out of line is a global function (external linkage): the verifier checks it
 * once, on its own, from its BTF signature, and a call to it costs the caller one instruction.
 * A static out-of-line function is verified again for every state of every caller that reaches
 * the call, and kernels before 6.4 give up precise tracking of the caller's values whenever
 * their backtracking meets such a call: on Debian 12's 6.1 the four programs cost the verifier
 * 1.8M instructions with five static ones and 0.5M with the same five global (docs/kernels.md).
 * Rules of a global function: at most five arguments, each the skb, a scalar or a pointer to a
 * sized type that the function checks for NULL first (the verifier assumes it may be NULL);
 * an int (scalar) result.
 */
#define __weir_global __noinline

#define WEIR_EEXIST 17 /* errno value; the kernel's map helpers return -EEXIST */

/* Side effects on the maps the node shares: conntrack entries and their legs, fragments, the
 * counters and statistics. In the trace build (-DWEIR_TRACE=1: `weir bpf trace`, which runs the
 * programs on a packet it made against the live maps, docs/bpf-trace.md) none of them happens:
 * WEIR_EFFECT's statement is not compiled, and the map writes report success without writing, so
 * that the program takes the path the packet would take. Reads (lookups) stay. */
#ifdef WEIR_TRACE
#define WEIR_EFFECT(stmt) ((void)0)
#define weir_map_update(map, key, val, flags) ((void)(map), (void)(key), (void)(val), (void)(flags), 0L)
#define weir_map_delete(map, key) ((void)(map), (void)(key), 0L)
#else
#define WEIR_EFFECT(stmt) \
	do {              \
		stmt;     \
	} while (0)
#define weir_map_update(map, key, val, flags) bpf_map_update_elem(map, key, val, flags)
#define weir_map_delete(map, key) bpf_map_delete_elem(map, key)
#endif

/* Offsets that never move: every packet the programs see starts with an Ethernet header. */
#define WEIR_L3_OFF ETH_HLEN
#define WEIR_IP_CSUM_OFF (WEIR_L3_OFF + __builtin_offsetof(struct iphdr, check))
#define WEIR_IP_SADDR_OFF (WEIR_L3_OFF + __builtin_offsetof(struct iphdr, saddr))
#define WEIR_IP_DADDR_OFF (WEIR_L3_OFF + __builtin_offsetof(struct iphdr, daddr))

/* IP fragment bits (host order, after bpf_ntohs(frag_off)). */
#define WEIR_IP_MF 0x2000
#define WEIR_IP_OFFMASK 0x1fff

/* TCP flag bits in byte 13 of the TCP header. */
#define WEIR_TCP_FIN 0x01
#define WEIR_TCP_SYN 0x02
#define WEIR_TCP_RST 0x04
#define WEIR_TCP_ACK 0x10

enum weir_frag {
	WEIR_FRAG_NONE = 0,  /* not a fragment */
	WEIR_FRAG_FIRST = 1, /* MF set, offset 0: carries the L4 header */
	WEIR_FRAG_LATER = 2, /* offset != 0: no L4 header */
};

/* Extra facts about a packet (the OTHER_* counters); any number may be set. */
#define WEIR_FACT_NAT_COLLISION (1u << 0)
#define WEIR_FACT_ICMP_ERR_NAT (1u << 1)

/* What the parser learnt about a packet, and what the path decided. Lives on the stack of the
 * entry point; every stage takes a pointer to it. */
struct weir_pkt {
	__u32 ifindex;   /* skb->ifindex at entry (the host-side veth) */
	__u32 saddr;     /* network order, as in the packet (updated after NAT) */
	__u32 daddr;
	__u16 sport;     /* network order; ICMP echo: identifier; other protocols: 0 */
	__u16 dport;
	__u16 l4_off;    /* offset of the L4 header from the start of the packet */
	__u16 tot_len;   /* IP total length (host order) */
	__u8 proto;
	__u8 ihl;        /* IP header length in bytes (20..60) */
	__u8 tcp_flags;  /* byte 13 of the TCP header; 0 for other protocols */
	__u8 frag;       /* enum weir_frag */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 from_a;     /* 1 when the sender is side A of the conntrack key */
	__u8 more_frags; /* IP MF bit */
	__u16 ip_id;     /* IP identification, network order (as in the packet) */
	__u16 frag_offset; /* IP fragment offset in 8-byte units (host order) */
	__u32 orig_saddr; /* the addresses and ports as parsed, before any NAT of this program */
	__u32 orig_daddr;
	__u16 orig_sport;
	__u16 orig_dport;
	__u32 nat_addr;   /* the backend service NAT chose for a flow created here (network order) */
	__u16 nat_port;
	__u16 pad3;
	__u32 redirect_ifindex; /* where the verdict redirects (TC_ACT_REDIRECT), else 0 */
	__u8 redirect_fwd;      /* enum weir_frag_fwd: how */
	__u8 pad2[3];
	__u32 outcome;   /* enum weir_counter: the outcome counter of this packet */
	__u32 facts;     /* WEIR_FACT_* */
};

/* Conntrack clock: CLOCK_MONOTONIC_COARSE (bpf_ktime_get_coarse_ns). Same timebase as
 * CLOCK_MONOTONIC, so userspace compares it with clock_gettime(CLOCK_MONOTONIC); resolution is
 * one tick (1-10 ms), far below the shortest timeout (seconds). It costs a memory read where
 * bpf_ktime_get_ns() reads the TSC (~35 ns per packet measured in a VM, see bench/README.md). */
static __always_inline __u64 weir_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

static __always_inline int weir_verdict(struct weir_pkt *p, __u32 outcome, int verdict)
{
	p->outcome = outcome;
	return verdict;
}

/* bpf_redirect / bpf_redirect_peer to `ifindex`, remembered in p (later fragments follow). */
static __always_inline int weir_redirect(struct weir_pkt *p, __u32 outcome, __u32 ifindex, const int peer)
{
	p->outcome = outcome;
	p->redirect_ifindex = ifindex;
	p->redirect_fwd = peer ? WEIR_FRAG_FWD_PEER : WEIR_FRAG_FWD_REDIRECT;
	return peer ? bpf_redirect_peer(ifindex, 0) : bpf_redirect(ifindex, 0);
}

#endif
