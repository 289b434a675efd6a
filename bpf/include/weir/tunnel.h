/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * VXLAN between nodes, done by weir's own TC programs (docs/packet-path.md, section 12).
 *
 * weir_tunnel1 (array, 1 entry): this node's tunnel configuration. Written by the agent (from
 *   DataplaneConfig vxlanEnabled / vxlanVNI / vxlanPort / underlayMTU and the underlay interface
 *   it found: dataplane::set_tunnel); read by weir_from_wl (whether to encapsulate),
 *   weir_vxlan_encap and weir_from_ul. All zero (a fresh map): VXLAN off, nothing is
 *   encapsulated and weir_from_ul decapsulates nothing.
 * weir_vteps1 (hash): underlay address of every other node -> WEIR_VTEP_F_NODE. Written by the
 *   agent from the Node resources (dataplane::set_vteps). Read by weir_from_ul: VXLAN from an
 *   address that is not there is dropped (a host on the underlay must not inject packets into
 *   pods). Full: the agent cannot add the node and logs it; that node's VXLAN is dropped here.
 * weir_tun_jump1 (prog array, 1 slot): slot WEIR_TUN_JUMP_VXLAN_ENCAP holds weir_vxlan_encap,
 *   written by the loader after every load (as the policy continuations in weir_jump1); kept
 *   apart from weir_jump1 so that the policy slots keep their numbers.
 *
 * Byte order: addresses and the port in network order (as in the packet); the VNI and the MTU
 * in host order.
 */
#ifndef WEIR_TUNNEL_H
#define WEIR_TUNNEL_H

#include "common.h"

#define WEIR_TUNNEL_F_VXLAN (1u << 0) /* VXLAN enabled */

/* What VXLAN over IPv4 adds in front of a pod's packet: outer IPv4 (20, no options) + UDP (8) +
 * VXLAN (8) + the inner Ethernet header (14). model::kVxlanOverhead is the same number. */
#define WEIR_VXLAN_OVERHEAD (20 + 8 + 8 + 14)
#define WEIR_VXLAN_HLEN 8      /* the VXLAN header */
#define WEIR_VXLAN_F_VNI 0x08  /* flags byte: the I flag (a valid VNI follows), RFC 7348 */

/* UDP source ports of encapsulated packets, from the flow hash, as Linux picks them for its
 * tunnels (udp_flow_src_port over the default ephemeral range 32768..60999). */
#define WEIR_VXLAN_SPORT_MIN 32768u
#define WEIR_VXLAN_SPORT_MAX 60999u

struct weir_tunnel_val {
	__u32 flags;            /* WEIR_TUNNEL_F_* */
	__u32 vni;              /* VXLAN network identifier, host order, 24 bits */
	__u16 port;             /* VXLAN UDP destination port, network order */
	__u16 mtu;              /* the underlay's MTU as configured (underlayMTU), host order: pods
	                         * are sized mtu - WEIR_VXLAN_OVERHEAD. The datapath checks sizes
	                         * against the underlay device itself (bpf_check_mtu). */
	__u32 underlay_ifindex; /* the interface encapsulated packets leave by */
	__u32 underlay_addr;    /* this node's underlay IPv4 address, network order: the outer
	                         * source of what it sends, the outer destination it decapsulates */
};
WEIR_ASSERT_SIZE(struct weir_tunnel_val, 20);

/* weir_vteps1 value flags */
#define WEIR_VTEP_F_NODE (1u << 0) /* a known node: its VXLAN packets are accepted */

/*
 * The VXLAN port probe of `weir doctor` (docs/doctor.md, check vxlan-port): a node sends a
 * VXLAN packet (this cluster's VNI) whose inner frame has the ethertype
 * WEIR_VXLAN_PROBE_ETHERTYPE (IEEE 802 local experimental) and a struct weir_vxlan_probe of kind
 * REQUEST, from an ephemeral UDP port of its underlay address to another node's VXLAN port. That
 * node's weir_from_ul, having checked it as any VXLAN packet (port, VNI, lengths, checksum, a
 * known node as its source), answers it: kind REPLY, outer Ethernet, IP addresses and UDP ports
 * swapped (UDP checksum 0), sent back out of the interface it came in by. The reply goes to the
 * prober's ephemeral port, which is not VXLAN: its own weir_from_ul passes it to the socket. A
 * reply proves the whole VXLAN path between the two nodes both ways: the port open, the peer's
 * weir_from_ul in place with the same VNI and port, and this node known to it.
 */
#define WEIR_VXLAN_PROBE_ETHERTYPE 0x88b5
#define WEIR_VXLAN_PROBE_MAGIC 0x6f727072696577ULL /* the bytes "weirpro", read as a little-endian __u64 */
#define WEIR_VXLAN_PROBE_REQUEST 1
#define WEIR_VXLAN_PROBE_REPLY 2

struct weir_vxlan_probe {
	__u64 magic_kind; /* WEIR_VXLAN_PROBE_MAGIC | kind << 56 (bytes "weirpro" then the kind) */
	__u32 nonce;      /* the prober's, echoed */
	__u8 pad[12];     /* as long as an IPv4 header: what weir_from_ul reads after the inner
	                   * Ethernet header of any VXLAN packet */
};
WEIR_ASSERT_SIZE(struct weir_vxlan_probe, 24);

/* weir_tun_jump1 slots */
#define WEIR_TUN_JUMP_VXLAN_ENCAP 0

#endif
