/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Checksums. Rewrites of existing packets use the kernel's incremental helpers
 * (bpf_l3_csum_replace / bpf_l4_csum_replace), which also keep skb->csum right for
 * CHECKSUM_COMPLETE and leave CHECKSUM_PARTIAL packets consistent. Packets weir builds itself
 * (the no-backend answers) get full checksums computed with bpf_csum_diff over stack buffers.
 */
#ifndef WEIR_LIB_CSUM_H
#define WEIR_LIB_CSUM_H

#include "lib/defs.h"

/* Offset of the L4 checksum field for TCP/UDP, relative to the L4 header. */
#define WEIR_TCP_CSUM_OFF __builtin_offsetof(struct tcphdr, check)
#define WEIR_UDP_CSUM_OFF __builtin_offsetof(struct udphdr, check)
#define WEIR_ICMP_CSUM_OFF __builtin_offsetof(struct icmphdr, checksum)

/* Fold a 32-bit one's complement partial sum to the 16-bit checksum field value. */
static __always_inline __u16 weir_csum_fold(__s64 partial)
{
	__u32 sum = (__u32)partial;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Incremental update of a 16-bit one's complement checksum (RFC 1624, eqn. 3) for a 32-bit
 * and a 16-bit field change. Values are raw (network order as loaded); the arithmetic is
 * byte-order independent as long as all operands share the representation. */
static __always_inline __u16 weir_csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~(from & 0xffff) + (__u16)~(from >> 16) + (to & 0xffff) + (to >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* bpf_l4_csum_replace flags for an L4 checksum: UDP's "no checksum" (0) must stay 0, and a
 * computed 0 must become 0xffff. */
static __always_inline __u64 weir_l4_csum_flags(__u8 proto)
{
	return proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Replace a 4-byte address in the IP header and fix the IP checksum and, with the pseudo-header
 * flag, the L4 checksum at l4_csum_off (0 = none). Returns 0 or a negative error. */
static __always_inline int weir_rewrite_addr(struct __sk_buff *skb, __u32 addr_off, __u32 from,
					     __u32 to, __u32 l4_csum_off, __u8 proto)
{
	int rc;

	if (l4_csum_off) {
		rc = bpf_l4_csum_replace(skb, l4_csum_off, from, to,
					 BPF_F_PSEUDO_HDR | sizeof(to) | weir_l4_csum_flags(proto));
		if (rc)
			return rc;
	}
	rc = bpf_l3_csum_replace(skb, WEIR_IP_CSUM_OFF, from, to, sizeof(to));
	if (rc)
		return rc;
	return bpf_skb_store_bytes(skb, addr_off, &to, sizeof(to), 0);
}

#endif
