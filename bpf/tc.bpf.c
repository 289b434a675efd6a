// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * weir TC datapath. Six programs share one object and its maps:
 *   weir_from_wl:     TC ingress of a pod's host-side veth (traffic FROM the workload)
 *   weir_to_wl:       TC egress of the same veth (traffic TO the workload)
 *   weir_from_wl_pol: continuation of weir_from_wl after the workload's egress policy
 *                     (jump slot WEIR_JUMP_FROM_WL_POLICY_DONE)
 *   weir_to_wl_pol:   continuation of weir_to_wl after the workload's ingress policy
 *                     (jump slot WEIR_JUMP_TO_WL_POLICY_DONE)
 *   weir_vxlan_encap: VXLAN encapsulation of what weir_from_wl sends to a pod on another node
 *                     (weir_tun_jump1 slot WEIR_TUN_JUMP_VXLAN_ENCAP)
 *   weir_from_ul:     TC ingress of the node's underlay interface: VXLAN decapsulation
 * One loaded program per hook serves every interface; per-interface facts come from the
 * packet's ifindex. The packet path is described in docs/packet-path.md.
 */
#include "lib/defs.h"

#include "lib/conntrack.h"
#include "lib/counters.h"
#include "lib/csum.h"
#include "lib/flow.h"
#include "lib/frags.h"
#include "lib/icmp.h"
#include "lib/log.h"
#include "lib/maps.h"
#include "lib/nat.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/profile.h"
#include "lib/route.h"
#include "lib/tunnel.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* weir_established indexes the flow counters: packets, then bytes, side A then side B. */
_Static_assert(__builtin_offsetof(struct weir_ct_val, bytes_a) == __builtin_offsetof(struct weir_ct_val, packets_a) + 8 &&
		       __builtin_offsetof(struct weir_ct_val, packets_b) == __builtin_offsetof(struct weir_ct_val, packets_a) + 16 &&
		       __builtin_offsetof(struct weir_ct_val, bytes_b) == __builtin_offsetof(struct weir_ct_val, packets_a) + 24,
	       "weir_ct_val's counters: packets_a, bytes_a, packets_b, bytes_b in a row");

/* A conntrack hit: the one lookup that decides an established packet. `pol_done`: called by the
 * to_wl continuation, the ingress policy has just allowed this packet. */
static __always_inline int weir_established(struct __sk_buff *skb, struct weir_pkt *p,
					    const struct weir_ct_key *key, struct weir_ct_val *ct,
					    const int from_wl, const int pol_done)
{
	__u8 client_is_a = ct->flags & WEIR_CT_F_A_IS_CLIENT;
	__u8 from_client = p->from_a == client_is_a;
	struct weir_ct_leg *src = p->from_a ? &ct->a : &ct->b;
	struct weir_ct_leg *dst = p->from_a ? &ct->b : &ct->a;
	int nat_dst = ct->type == WEIR_CT_NAT_FWD && from_client;
	int nat_src = ct->type == WEIR_CT_NAT_REV && !from_client;
	__u32 add, changed = 0;
	__u64 now;

	if (!from_wl && !pol_done && !(dst->flags & WEIR_CT_LEG_APPROVED)) {
		/* The receiving workload has not approved the flow yet (e.g. the first packet
		 * from_wl redirected to it): its ingress policy decides, before the entry is
		 * touched. Returns only when the tail call failed. */
		__u32 slot = weir_policy_slot(p->ifindex, 0);

		if (slot != WEIR_NO_POLICY_SLOT)
			return weir_policy_call(skb, p, 0, slot, 0, 0, 0, 1, 0);
	}

	/* Written only when the (coarse) clock moved: most packets leave the line clean. Then, and
	 * only then, the other half of a NAT pair is looked at (and re-created if it was evicted). */
	now = weir_now();
	if (ct->last_seen_ns != now) {
		WEIR_EFFECT(ct->last_seen_ns = now);
		WEIR_EFFECT(weir_ct_keep_pair(key, ct, now));
	}

	/* Counted once per packet: at from_wl, or at to_wl when no from_wl of this node saw it (an
	 * add of 0 otherwise). Branch-free: a branch here doubles the paths the verifier walks
	 * through everything after it (6.1's to_wl went from 110k to 228k instructions). */
	{
		__u64 n = from_wl ? 1 : !(src->flags & WEIR_CT_LEG_WORKLOAD);
		__u64 *c = &ct->packets_a + (((__u32)!p->from_a) << 1); /* packets_a or packets_b */

		WEIR_EFFECT(__sync_fetch_and_add(c, n));
		WEIR_EFFECT(__sync_fetch_and_add(c + 1, n * skb->len)); /* bytes_a or bytes_b */
		(void)n, (void)c; /* the trace build counts nothing */
	}

	add = weir_ct_tcp_bits(p) & ~src->flags;
	if (add) {
		WEIR_EFFECT(__sync_fetch_and_or(&src->flags, add));
		changed = 1;
	}
	if (!from_wl && !(dst->flags & WEIR_CT_LEG_APPROVED)) {
		/* The receiving workload's ingress side: no policy, or its policy allowed the
		 * packet (above). Learn where it lives if the creator did not know. */
		if (!(dst->flags & WEIR_CT_LEG_WORKLOAD)) {
			__u8 m[12];

			if (!bpf_skb_load_bytes(skb, 0, m, sizeof(m))) {
				WEIR_EFFECT(dst->ifindex = p->ifindex);
				WEIR_EFFECT(__builtin_memcpy(dst->wl_mac, &m[0], 6));
				WEIR_EFFECT(__builtin_memcpy(dst->host_mac, &m[6], 6));
				WEIR_EFFECT(__sync_fetch_and_or(&dst->flags, WEIR_CT_LEG_WORKLOAD));
			}
		}
		WEIR_EFFECT(__sync_fetch_and_or(&dst->flags, WEIR_CT_LEG_APPROVED));
		changed = 1;
	}
	if (changed)
		weir_ct_mirror(key, ct);

	if (nat_dst || nat_src) {
		if (weir_nat_rewrite(skb, p, nat_dst, ct->nat_addr, ct->nat_port))
			return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);
	}
	if (!from_wl)
		return weir_verdict(p, WEIR_CNT_ACCEPT_ESTABLISHED, TC_ACT_OK);
	return weir_fwd_established(skb, p, ct, dst);
}

/* Create the entry (or NAT pair) of a new flow seen by from_wl, through service NAT to
 * p->nat_addr:nat_port when p->nat_addr is set. Returns 0, or -EEXIST when a concurrent packet
 * created the flow first (the caller continues as established), or sets the outcome and returns
 * 1 when the packet must be dropped. Global (lib/defs.h): the 96-byte value is built on its own
 * frame, which keeps the main program's within what the deepest subprogram leaves it (512 B
 * in all). */
__weir_global int weir_ct_create_from_wl(struct __sk_buff *skb, struct weir_pkt *p, const struct weir_ct_key *fkey,
					 const struct weir_ct_leg *client, const struct weir_ct_leg *other)
{
	struct weir_ct_key k, *key = &k; /* a copy on this frame: 6.1's map helpers take no PTR_TO_MEM key */
	struct weir_ct_val v;
	struct weir_ct_key rk;
	__u8 rev_client_is_a;
	int rc, created_rev = 0, nat;
	__u32 be_addr, len;
	__u16 be_port;

	if (!skb || !p || !fkey || !client || !other)
		return 1;
	k = *fkey;
	nat = p->nat_addr != 0;
	be_addr = p->nat_addr;
	be_port = p->nat_port;
	len = skb->len;
	weir_ct_val_new(&v, p->proto);

	if (nat) {
		/* Reverse half first: it is the one that can collide with another flow. */
		rev_client_is_a = weir_ct_key_make(&rk, p->saddr, p->sport, be_addr, be_port, p->proto);
		v.type = WEIR_CT_NAT_REV;
		v.nat_addr = p->daddr;
		v.nat_port = p->dport;
		weir_ct_set_legs(&v, rev_client_is_a, client, other);
		rc = weir_map_update(&weir_ct2, &rk, &v, BPF_NOEXIST);
		if (rc == -WEIR_EEXIST) {
			struct weir_ct_val *e = bpf_map_lookup_elem(&weir_ct2, &rk);

			if (e && e->type == WEIR_CT_NAT_REV && e->nat_addr == p->daddr &&
			    e->nat_port == p->dport && (e->flags & WEIR_CT_F_A_IS_CLIENT) == rev_client_is_a) {
				/* The same flow, created by a concurrent packet. */
			} else {
				p->facts |= WEIR_FACT_NAT_COLLISION;
				if (e && !weir_ct_is_dead(e, p->proto)) {
					p->outcome = WEIR_CNT_DROP_NAT_COLLISION;
					return 1;
				}
				/* The colliding flow is over (or just vanished): take its place. */
				if (weir_map_update(&weir_ct2, &rk, &v, BPF_ANY)) {
					weir_ct_stat_add(create_failed, 1);
					p->outcome = WEIR_CNT_DROP_CT_CREATE;
					return 1;
				}
				if (e)
					weir_ct_stat_add(deleted, 1); /* the dead flow's entry, overwritten */
				created_rev = 1;
			}
		} else if (rc) {
			weir_ct_stat_add(create_failed, 1);
			p->outcome = WEIR_CNT_DROP_CT_CREATE;
			return 1;
		} else {
			created_rev = 1;
		}
		weir_ct_stat_add(created, created_rev);
		v.type = WEIR_CT_NAT_FWD;
		v.nat_addr = be_addr;
		v.nat_port = be_port;
	}
	weir_ct_set_legs(&v, p->from_a, client, other);
	weir_ct_count_first(&v, p->from_a, len); /* on the entry the client's packets look up */
	rc = weir_map_update(&weir_ct2, key, &v, BPF_NOEXIST);
	if (rc == -WEIR_EEXIST) {
		struct weir_ct_val *e = bpf_map_lookup_elem(&weir_ct2, key);

		/* Lost a race: the winner may have picked another backend; drop our orphan. */
		if (created_rev && (!e || e->nat_addr != be_addr || e->nat_port != be_port) &&
		    !weir_map_delete(&weir_ct2, &rk))
			weir_ct_stat_add(deleted, 1);
		return -WEIR_EEXIST;
	}
	if (rc) {
		if (created_rev && !weir_map_delete(&weir_ct2, &rk))
			weir_ct_stat_add(deleted, 1);
		weir_ct_stat_add(create_failed, 1);
		p->outcome = WEIR_CNT_DROP_CT_CREATE;
		return 1;
	}
	weir_ct_stat_add(created, 1);
	return 0;
}

/* The part of a new flow from a workload after the policy decision (or without a policy):
 * route, conntrack, DNAT to the backend chosen before the policy ran, forward. `midflow`: a TCP
 * packet of a connection through a service whose entries were lost (evicted, expired), being
 * re-resolved: both legs are recorded as past the handshake. */
static __always_inline int weir_new_from_wl_finish(struct __sk_buff *skb, struct weir_pkt *p,
						   const struct weir_ct_key *key, int nat,
						   __u32 be_addr, __u16 be_port, int midflow)
{
	struct weir_ct_leg client = {}, other = {};
	struct weir_ct_val *ct;
	__u8 m[12];
	int rc;

	if (bpf_skb_load_bytes(skb, 0, m, sizeof(m)))
		return weir_verdict(p, WEIR_CNT_DROP_SHORT, TC_ACT_SHOT);
	client.flags = weir_ct_tcp_bits(p) | WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;
	client.ifindex = p->ifindex;
	__builtin_memcpy(client.wl_mac, &m[6], 6);   /* Ethernet source: the workload */
	__builtin_memcpy(client.host_mac, &m[0], 6); /* Ethernet destination: the host veth */
	weir_route_dst_leg(&other, nat ? be_addr : p->daddr);
	if (midflow) {
		client.flags |= WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK;
		other.flags |= WEIR_CT_LEG_SYN | WEIR_CT_LEG_ACK;
	}

	if (nat) {
		p->nat_addr = be_addr; /* also what the flow event reports */
		p->nat_port = be_port;
	}
	rc = weir_ct_create_from_wl(skb, p, key, &client, &other);
	if (rc == -WEIR_EEXIST) {
		ct = bpf_map_lookup_elem(&weir_ct2, key);
		if (!ct)
			return weir_verdict(p, WEIR_CNT_DROP_CT_CREATE, TC_ACT_SHOT);
		return weir_established(skb, p, key, ct, 1, 0);
	}
	if (rc)
		return TC_ACT_SHOT; /* outcome set */
	p->facts |= WEIR_FACT_CT_CREATED;

	if (nat && weir_nat_rewrite(skb, p, 1, be_addr, be_port))
		return weir_verdict(p, WEIR_CNT_DROP_REWRITE, TC_ACT_SHOT);

	if (other.flags & WEIR_CT_LEG_WORKLOAD) {
		/* To a local workload: out of its host veth, so that its to_wl program (its ingress
		 * policy) sees the first packet and approves the flow. */
		if (weir_set_macs(skb, &other))
			return weir_verdict(p, WEIR_CNT_DROP_SHORT, TC_ACT_SHOT);
		return weir_redirect(p, WEIR_CNT_REDIRECT_PLAIN, other.ifindex, 0);
	}
	return weir_verdict(p, WEIR_CNT_ACCEPT_NEW_FLOW, TC_ACT_OK);
}

/* TCP without a SYN (or with a SYN+ACK) and without an entry: mid-stream, its entries were lost
 * (LRU eviction under a flood of new flows, expiry, a restart that cleaned the table). Towards
 * a service it must never leave un-NATed: it is re-resolved through the frontend to the backend
 * the flow hash picks (the same one as at its start while the service's backends did not
 * change; if they did, the backend answers with a reset), or answered with a TCP reset when the
 * service has no backend left. Returns weir_nat_pick's answer and counts the case in the
 * conntrack statistics. */
static __always_inline int weir_midflow_pick(struct weir_pkt *p, __u32 *be_addr, __u16 *be_port)
{
	int nat = weir_nat_pick(p, be_addr, be_port);

	weir_ct_stat_add(midflow_miss, 1);
	if (nat == WEIR_NAT_BACKEND)
		weir_ct_stat_add(midflow_renat, 1);
	else if (nat == WEIR_NAT_NO_BACKEND)
		weir_ct_stat_add(midflow_reset, 1);
	return nat;
}

/* New flow from a workload: service NAT, the workload's egress policy, then the rest
 * (weir_new_from_wl_finish, here or in the continuation weir_from_wl_pol). */
static __always_inline int weir_new_from_wl(struct __sk_buff *skb, struct weir_pkt *p,
					    const struct weir_ct_key *key)
{
	__u32 be_addr = 0, slot;
	__u16 be_port = 0, pflags = 0;
	int nat, midflow = p->proto == IPPROTO_TCP && !weir_tcp_is_syn_only(p);

	slot = weir_policy_slot(p->ifindex, 1);

	if (midflow) {
		nat = weir_midflow_pick(p, &be_addr, &be_port);
		if (nat == WEIR_NAT_NONE) {
			/* Not to a service: pass it untouched and create no state; with an egress
			 * policy, only if the policy allows it. */
			if (slot != WEIR_NO_POLICY_SLOT)
				return weir_policy_call(skb, p, 1, slot, 0, 0, 0, 0, WEIR_PSTATE_F_NO_STATE);
			return weir_verdict(p, WEIR_CNT_ACCEPT_NEW_FLOW, TC_ACT_OK);
		}
		if (nat == WEIR_NAT_NO_BACKEND && (p->tcp_flags & WEIR_TCP_RST))
			return weir_verdict(p, WEIR_CNT_DROP_NO_BACKEND, TC_ACT_SHOT); /* no RST for a RST */
		pflags = WEIR_PSTATE_F_MIDFLOW;
	} else {
		nat = weir_nat_pick(p, &be_addr, &be_port);
	}
	if (nat == WEIR_NAT_BACKEND)
		WEIR_LOG_NAT(p->daddr, bpf_ntohs(p->dport), be_addr, bpf_ntohs(be_port));
	else if (nat == WEIR_NAT_NO_BACKEND)
		WEIR_LOG_STAGE(WEIR_LOG_NAT_NO_BACKEND, p->daddr, bpf_ntohs(p->dport));
	else
		WEIR_LOG_STAGE(WEIR_LOG_NAT_NONE, 0, 0);
	if (nat == WEIR_NAT_NO_BACKEND) {
		if (p->proto == IPPROTO_TCP)
			return weir_answer_tcp_rst(skb, p);
		return weir_answer_icmp_unreach(skb, p, ICMP_PORT_UNREACH, 0, WEIR_CNT_DROP_NO_BACKEND);
	}
	nat = nat == WEIR_NAT_BACKEND;

	/* Egress policy of the workload, on the destination after DNAT. Returns only when the
	 * tail call failed; the continuation carries on with the same backend. */
	if (slot != WEIR_NO_POLICY_SLOT)
		return weir_policy_call(skb, p, 1, slot, nat, be_addr, be_port, 0, pflags);

	return weir_new_from_wl_finish(skb, p, key, nat, be_addr, be_port, midflow);
}

/* Insert the entry of a new flow towards a workload (weir_new_to_wl_finish): the map update's
 * result. Global, for the same reason as weir_ct_create_from_wl: the value on its own frame. */
__weir_global int weir_ct_insert_to_wl(struct __sk_buff *skb, const struct weir_pkt *p, const struct weir_ct_key *fkey,
				       const struct weir_ct_leg *sender, const struct weir_ct_leg *receiver)
{
	struct weir_ct_key key; /* a copy on this frame: 6.1's map helpers take no PTR_TO_MEM key */
	struct weir_ct_val v;

	if (!skb || !p || !fkey || !sender || !receiver)
		return -1;
	key = *fkey;
	weir_ct_val_new(&v, p->proto); /* WEIR_CT_NORMAL */
	weir_ct_set_legs(&v, p->from_a, sender, receiver);
	weir_ct_count_first(&v, p->from_a, skb->len);
	return weir_map_update(&weir_ct2, &key, &v, BPF_NOEXIST);
}

/* Create the entry of a new flow towards a workload, the receiving workload's leg approved.
 * `pol_done`: called by the continuation (an EEXIST race then must not run the policy again). */
static __always_inline int weir_new_to_wl_finish(struct __sk_buff *skb, struct weir_pkt *p,
						 const struct weir_ct_key *key, const int pol_done)
{
	struct weir_ct_leg sender = {}, receiver = {};
	struct weir_ct_val *ct;
	__u8 m[12];
	int rc;

	if (bpf_skb_load_bytes(skb, 0, m, sizeof(m)))
		return weir_verdict(p, WEIR_CNT_DROP_SHORT, TC_ACT_SHOT);

	sender.flags = weir_ct_tcp_bits(p);
	receiver.flags = WEIR_CT_LEG_APPROVED | WEIR_CT_LEG_WORKLOAD;
	receiver.ifindex = p->ifindex;
	__builtin_memcpy(receiver.wl_mac, &m[0], 6);   /* Ethernet destination: the workload */
	__builtin_memcpy(receiver.host_mac, &m[6], 6); /* Ethernet source: this host veth */

	rc = weir_ct_insert_to_wl(skb, p, key, &sender, &receiver);
	if (rc == -WEIR_EEXIST) {
		ct = bpf_map_lookup_elem(&weir_ct2, key);
		if (!ct)
			return weir_verdict(p, WEIR_CNT_DROP_CT_CREATE, TC_ACT_SHOT);
		return weir_established(skb, p, key, ct, 0, pol_done);
	}
	if (rc) {
		weir_ct_stat_add(create_failed, 1);
		return weir_verdict(p, WEIR_CNT_DROP_CT_CREATE, TC_ACT_SHOT);
	}
	weir_ct_stat_add(created, 1);
	p->facts |= WEIR_FACT_CT_CREATED;
	return weir_verdict(p, WEIR_CNT_ACCEPT_NEW_FLOW, TC_ACT_OK);
}

/* New flow towards a workload (from the host stack or another node): the workload's ingress
 * policy, then track it with the receiving workload's leg approved. */
static __always_inline int weir_new_to_wl(struct __sk_buff *skb, struct weir_pkt *p,
					  const struct weir_ct_key *key)
{
	__u32 slot;

	if (p->proto == IPPROTO_TCP && (p->tcp_flags & WEIR_TCP_RST))
		return weir_verdict(p, WEIR_CNT_ACCEPT_NEW_FLOW, TC_ACT_OK); /* e.g. weir's own RST */

	slot = weir_policy_slot(p->ifindex, 0);
	if (slot != WEIR_NO_POLICY_SLOT)
		return weir_policy_call(skb, p, 0, slot, 0, 0, 0, 0, 0);
	return weir_new_to_wl_finish(skb, p, key, 0);
}

/* Parse; the verdict of the packets that never reach conntrack (not IPv4, VLAN-tagged, short,
 * malformed, later fragments). Returns WEIR_PARSE_OK when the packet goes on. */
static __always_inline __u32 weir_parse_and_screen(struct __sk_buff *skb, struct weir_pkt *p, int *verdict,
						   const int from_wl)
{
	__u32 rc = weir_parse(skb, p);

	if (rc != WEIR_PARSE_OK) {
		*verdict = weir_verdict(p, rc, rc == WEIR_CNT_ACCEPT_NON_IPV4 ? TC_ACT_OK : TC_ACT_SHOT);
		return rc;
	}
	/* Later fragments carry no ports: they follow their first fragment (lib/frags.h). */
	if (p->frag == WEIR_FRAG_LATER) {
		*verdict = weir_frag_later(skb, p, from_wl ? WEIR_HOOK_INGRESS : WEIR_HOOK_EGRESS);
		return p->outcome;
	}
	return WEIR_PARSE_OK;
}

static __always_inline int weir_process(struct __sk_buff *skb, struct weir_pkt *p, const int from_wl)
{
	struct weir_ct_key key;
	struct weir_ct_val *ct;
	int verdict = TC_ACT_SHOT;

	if (weir_parse_and_screen(skb, p, &verdict, from_wl) != WEIR_PARSE_OK)
		return verdict;
	WEIR_LOG_TUPLE(p);

	if (p->proto == IPPROTO_ICMP && weir_icmp_is_error(p->icmp_type))
		return weir_icmp_error(skb, p, from_wl);

	p->from_a = weir_ct_key_make(&key, p->saddr, p->sport, p->daddr, p->dport, p->proto);
	ct = bpf_map_lookup_elem(&weir_ct2, &key);
	if (ct)
		WEIR_LOG_STAGE(WEIR_LOG_CT_HIT, ct->type, p->from_a ? ct->a.flags : ct->b.flags);
	else
		WEIR_LOG_STAGE(WEIR_LOG_CT_MISS, 0, 0);
	if (ct) {
		/* A workload sends only with its own addresses (docs/packet-path.md). */
		if (from_wl && !weir_ct_src_ok(ct, p))
			return weir_verdict(p, WEIR_CNT_DROP_UNKNOWN_SOURCE, TC_ACT_SHOT);
		if (!weir_tcp_is_syn_only(p) || !weir_ct_is_dead(ct, p->proto))
			return weir_established(skb, p, &key, ct, from_wl, 0);
		/* A new SYN on the 5-tuple of a finished flow: start over (the old one's end reported). */
		weir_flow_replace(&key, ct, p->ifindex, from_wl ? WEIR_HOOK_INGRESS : WEIR_HOOK_EGRESS);
	}
	WEIR_PROF_NEW();
	if (from_wl) {
		if (!weir_src_is_workload(p->saddr, p->ifindex))
			return weir_verdict(p, WEIR_CNT_DROP_UNKNOWN_SOURCE, TC_ACT_SHOT);
		return weir_new_from_wl(skb, p, &key);
	}
	return weir_new_to_wl(skb, p, &key);
}

/*
 * Continuation after a policy program (tail-called from it, see weir/policy.h): the packet is
 * exactly as the main program left it (no rewrite happens before the policy), so it is parsed
 * again; the verdict and the main program's private data come from this CPU's weir_pstate1.
 */
static __always_inline int weir_process_pol(struct __sk_buff *skb, struct weir_pkt *p, const int from_wl,
					    struct weir_pol_state *st)
{
	struct weir_pol_resume r = {};
	struct weir_ct_key key;
	struct weir_ct_val *ct;
	int verdict = TC_ACT_SHOT;
	__u32 outcome = WEIR_CNT_DROP_TAIL_CALL;

	if (weir_parse_and_screen(skb, p, &verdict, from_wl) != WEIR_PARSE_OK)
		return verdict; /* unreachable: the main program saw the same packet */
	if (!weir_policy_allowed(st, p, from_wl, &r, &outcome))
		return weir_verdict(p, outcome, TC_ACT_SHOT);

	p->from_a = weir_ct_key_make(&key, p->saddr, p->sport, p->daddr, p->dport, p->proto);
	if (from_wl) {
		if (r.pflags & WEIR_PSTATE_F_NO_STATE)
			return weir_verdict(p, WEIR_CNT_ACCEPT_NEW_FLOW, TC_ACT_OK);
		return weir_new_from_wl_finish(skb, p, &key, r.nat, r.nat_addr, r.nat_port,
					       !!(r.pflags & WEIR_PSTATE_F_MIDFLOW));
	}
	if (r.ct_exists) {
		/* The receiving leg of an existing entry; if the entry went away meanwhile (expired,
		 * evicted), the packet starts a new one. */
		ct = bpf_map_lookup_elem(&weir_ct2, &key);
		if (ct)
			return weir_established(skb, p, &key, ct, 0, 1);
	}
	return weir_new_to_wl_finish(skb, p, &key, 1);
}

static __always_inline int weir_tc(struct __sk_buff *skb, const int from_wl, const int pol)
{
	struct weir_pkt p = {};
	__u64 rule_id = 0;
	__u32 next_hop;
	int verdict;

	p.ifindex = skb->ifindex;
	if (!pol) {
		WEIR_LOG_BEGIN(skb, !from_wl, from_wl ? WEIR_LOGJMP_FROM_WL : WEIR_LOGJMP_TO_WL);
		WEIR_PROF_BEGIN();
	}
	if (pol) {
		struct weir_pol_state *ps = weir_pol_state(); /* the one lookup of the continuation */

#ifndef WEIR_TRACE
		/* A trace's packet that a policy program without the trace capability sent here (an
		 * older weir's): refused before anything is written or counted. */
		if (ps && (ps->pflags & WEIR_PSTATE_F_TRACE))
			return TC_ACT_UNSPEC;
#endif
		verdict = weir_process_pol(skb, &p, from_wl, ps);
		weir_policy_outcome(&p);
		if (ps && p.outcome == WEIR_CNT_DROP_BY_POLICY)
			rule_id = ps->rule_id; /* the rule (or tier default) that denied */
	} else {
		verdict = weir_process(skb, &p, from_wl);
	}
	weir_flow_event(skb, &p, from_wl ? WEIR_HOOK_INGRESS : WEIR_HOOK_EGRESS, rule_id);
	if (p.frag == WEIR_FRAG_FIRST)
		weir_frag_first_done(skb, &p, from_wl ? WEIR_HOOK_INGRESS : WEIR_HOOK_EGRESS, verdict);
	/* What from_wl would hand to the host stack for a pod on another node goes over VXLAN when
	 * it is on (lib/tunnel.h); later fragments follow their first one here too. The encap
	 * program counts the packet; if the tail call fails, the packet must not leave
	 * unencapsulated: dropped. */
	if (from_wl && verdict == TC_ACT_OK && p.outcome != WEIR_CNT_ACCEPT_NON_IPV4 &&
	    (next_hop = weir_tunnel_wanted(p.daddr))) {
		skb->cb[WEIR_CB_OUTCOME] = p.outcome;
		skb->cb[WEIR_CB_NEXT_HOP] = next_hop;
#ifdef WEIR_TRACE
		/* The encapsulation program counts: the trace stops here. */
		WEIR_LOG_STAGE(WEIR_LOG_TRACE_ENCAP, next_hop, 0);
		verdict = weir_verdict(&p, WEIR_CNT_REDIRECT_NEIGH, TC_ACT_REDIRECT);
#else
		bpf_tail_call(skb, &weir_tun_jump1, WEIR_TUN_JUMP_VXLAN_ENCAP);
		verdict = weir_verdict(&p, WEIR_CNT_DROP_TAIL_CALL, TC_ACT_SHOT);
#endif
	}
	/* After a successful tail call into a policy or the encapsulation the main program does not
	 * get here: the program called counts the packet. */
	weir_count(p.ifindex, from_wl ? WEIR_HOOK_INGRESS : WEIR_HOOK_EGRESS, p.outcome, p.facts);
	WEIR_PROF_END(p.ifindex, from_wl ? WEIR_HOOK_INGRESS : WEIR_HOOK_EGRESS);
	if (verdict == TC_ACT_REDIRECT)
		WEIR_LOG_STAGE(WEIR_LOG_REDIRECT, p.redirect_ifindex, p.redirect_fwd == WEIR_FRAG_FWD_PEER);
	WEIR_LOG_FINAL(p.outcome, verdict);
	return verdict;
}

SEC("tc")
int weir_from_wl(struct __sk_buff *skb)
{
	return weir_tc(skb, 1, 0);
}

SEC("tc")
int weir_to_wl(struct __sk_buff *skb)
{
	return weir_tc(skb, 0, 0);
}

/* Jump slot WEIR_JUMP_FROM_WL_POLICY_DONE: after the workload's egress policy. */
SEC("tc")
int weir_from_wl_pol(struct __sk_buff *skb)
{
	return weir_tc(skb, 1, 1);
}

/* Jump slot WEIR_JUMP_TO_WL_POLICY_DONE: after the workload's ingress policy. */
SEC("tc")
int weir_to_wl_pol(struct __sk_buff *skb)
{
	return weir_tc(skb, 0, 1);
}

/* weir_tun_jump1 slot WEIR_TUN_JUMP_VXLAN_ENCAP, tail-called by weir_from_wl (and its policy
 * continuation): a packet for a pod on another node, over VXLAN. Counted on the pod's veth, at
 * the hook of from_wl. */
SEC("tc")
int weir_vxlan_encap(struct __sk_buff *skb)
{
	struct weir_pkt p = {};
	int verdict;

	p.ifindex = skb->ifindex;
	WEIR_LOG_STAGE(WEIR_LOG_ENCAP, skb->cb[WEIR_CB_NEXT_HOP], 0);
	verdict = weir_vxlan_encap_pkt(skb, &p);
	weir_flow_event(skb, &p, WEIR_HOOK_INGRESS, 0); /* a drop (from_wl sent the flow's start) */
	weir_count(p.ifindex, WEIR_HOOK_INGRESS, p.outcome, p.facts);
	WEIR_PROF_END(p.ifindex, WEIR_HOOK_INGRESS);
	if (verdict == TC_ACT_REDIRECT)
		WEIR_LOG_STAGE(WEIR_LOG_REDIRECT, p.redirect_ifindex, 0);
	WEIR_LOG_FINAL(p.outcome, verdict);
	return verdict;
}

/* TC ingress of the node's underlay interface: VXLAN for this node's pods is decapsulated and
 * redirected to the pod's host veth; everything else passes. */
SEC("tc")
int weir_from_ul(struct __sk_buff *skb)
{
	__u32 outcome = WEIR_CNT_DROP_DECAP, ifindex = skb->ifindex;
	int verdict;

	WEIR_LOG_BEGIN(skb, 1, WEIR_LOGJMP_FROM_UL);
	WEIR_PROF_BEGIN();
	verdict = weir_from_ul_pkt(skb, &outcome);
	weir_flow_underlay_drop(skb, outcome);
	weir_count(ifindex, WEIR_HOOK_INGRESS, outcome, 0);
	WEIR_PROF_END(ifindex, WEIR_HOOK_INGRESS);
	WEIR_LOG_FINAL(outcome, verdict);
	return verdict;
}
