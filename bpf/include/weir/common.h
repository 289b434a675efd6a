/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared by the BPF programs (C, clang -target bpf) and by userspace (C++20).
 * One header per concern; every struct that crosses the boundary has its size asserted
 * here so that the two sides can never silently disagree.
 */
#ifndef WEIR_COMMON_H
#define WEIR_COMMON_H

#include <linux/types.h>

#ifdef __cplusplus
#define WEIR_ASSERT_SIZE(type, size) static_assert(sizeof(type) == (size), "size of " #type)
#else
#define WEIR_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), "size of " #type)
#endif

/* Version of the map layouts. Bumped whenever a key or value changes shape; it is part of
 * every map name, so an agent with a new layout never reuses an incompatible pinned map. */
#define WEIR_MAPS_VERSION 1

/* Hooks a program can run at. The counters map and the CLI index by these. */
enum weir_hook {
	WEIR_HOOK_INGRESS = 0, /* tc ingress of the host-side veth: traffic FROM the workload */
	WEIR_HOOK_EGRESS = 1,  /* tc egress of the host-side veth: traffic TO the workload */
	WEIR_HOOK_XDP = 2,
	WEIR_HOOK__MAX = 3,
};

/* skb->mark of the answers weir builds (no-backend RST / ICMP unreachable) on their way from
 * from_wl back out of the same host veth, where to_wl sees them: they concern no tracked flow
 * and must pass. A workload cannot forge it: marks are cleared when a packet crosses from the
 * pod's network namespace into the host's. */
#define WEIR_MARK_ANSWER 0x57ea0001u

/* IP protocol numbers used in keys (host order byte). */
#define WEIR_IPPROTO_ICMP 1
#define WEIR_IPPROTO_TCP 6
#define WEIR_IPPROTO_UDP 17

#endif
