/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Interface state (hash, weir_ifstate1): ifindex -> facts about a weir-managed interface.
 * Written by the endpoint manager before it attaches programs to the interface, removed after
 * it detaches them. Read by the TC programs for new flows (host MAC of a redirect target) and
 * by the CLI (names in counters and dumps). Full: the interface is not managed; logged.
 */
#ifndef WEIR_IFSTATE_H
#define WEIR_IFSTATE_H

#include "common.h"

#define WEIR_IFNAMSIZ 16

#define WEIR_IF_F_WORKLOAD (1u << 0) /* host-side veth of a local workload */
#define WEIR_IF_F_HOST (1u << 1)     /* a host interface (later) */
#define WEIR_IF_F_READY (1u << 2)    /* programs attached and routes programmed: for the agent
                                      * and `ifstate dump`; the datapath does not read it */

#define WEIR_NO_POLICY_SLOT 0xffffffffu

struct weir_ifstate_val {
	char name[WEIR_IFNAMSIZ];
	__u32 flags;          /* WEIR_IF_F_* */
	__u32 ingress_slot;   /* jump map slot of the workload's ingress policy, or WEIR_NO_POLICY_SLOT */
	__u32 egress_slot;    /* jump map slot of the workload's egress policy, or WEIR_NO_POLICY_SLOT */
	__u8 host_mac[6];     /* MAC of this (host-side) interface */
	__u16 pad;
};
WEIR_ASSERT_SIZE(struct weir_ifstate_val, 36);

#endif
