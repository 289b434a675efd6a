/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Direct packet access at an offset known only at run time, in a form every supported verifier
 * can follow (kernel 6.1 and later).
 *
 * The verifier accepts `data + off` only when it knows a small upper bound of `off` in the
 * register added to the packet pointer, and it refuses a later bounds check against data_end
 * when that bound plus the access size may exceed 0xffff (MAX_PACKET_OFF). clang knows the bound
 * from an earlier check (the parser's), considers a second check redundant and drops it; when it
 * then spills the offset to the stack and reloads it, kernel 6.1's verifier has lost the bound
 * (it does not connect a reload to the register that was checked; 6.18's does) and rejects the
 * access ("R2 offset is outside of the packet").
 *
 * So every variable-offset access goes through weir_pkt_ptr(): the offset passes a compiler
 * barrier (clang can no longer prove anything about it), is checked against WEIR_PKT_OFF_MAX,
 * passes a second barrier and is masked with WEIR_PKT_OFF_MASK in the very register that is
 * added to the packet pointer. The mask cannot change a value that passed the check; it is what
 * the verifier sees, whatever clang did with the value before. Constant offsets need none of
 * this.
 */
#ifndef WEIR_LIB_PKT_H
#define WEIR_LIB_PKT_H

#include "lib/defs.h"

/* The largest offset weir reads at: Ethernet + the largest IPv4 header + the largest TCP
 * header (an L4 header ends there at most). */
#define WEIR_PKT_OFF_MAX (ETH_HLEN + 60 + 60)
/* The smallest all-ones mask covering WEIR_PKT_OFF_MAX. */
#define WEIR_PKT_OFF_MASK 0xff

_Static_assert(WEIR_PKT_OFF_MAX <= WEIR_PKT_OFF_MASK, "WEIR_PKT_OFF_MASK must cover WEIR_PKT_OFF_MAX");
_Static_assert((WEIR_PKT_OFF_MASK & (WEIR_PKT_OFF_MASK + 1)) == 0, "WEIR_PKT_OFF_MASK must be 2^n - 1");

/* Hide a value from the optimiser: a check on it can no longer be proven redundant. */
#define weir_barrier_var(v) asm volatile("" : "+r"(v))

/* `len` (a constant) bytes at offset `off` of the packet's linear data, or NULL when they are
 * not all there or `off` is beyond WEIR_PKT_OFF_MAX. The caller re-derives pointers after any
 * helper that may move the data (this function reads skb->data each time). */
static __always_inline void *weir_pkt_ptr(struct __sk_buff *skb, __u32 off, const __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	void *ptr;

	weir_barrier_var(off);
	if (off > WEIR_PKT_OFF_MAX)
		return NULL;
	weir_barrier_var(off);
	off &= WEIR_PKT_OFF_MASK;
	ptr = data + off;
	if (ptr + len > data_end)
		return NULL;
	return ptr;
}

#endif
