/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy: the contract between the main TC programs (bpf/tc.bpf.c) and the policy programs that
 * weir generates at run time (src/polprog/compiler.*), one per endpoint and direction.
 *
 * Flow of a new flow that has a policy (the endpoint's ifstate names a jump slot):
 *   1. The main program fills weir_pstate1[0] (per-CPU) with the packet's facts (inputs below)
 *      and its own private continuation data, then tail-calls weir_jump1[slot].
 *   2. The policy program (possibly several chunks chained by tail calls, see `resume`) reads
 *      the inputs, evaluates tiers/policies/rules, bumps weir_rule_cnt1[rule id] for the rule
 *      that decided (and for every Log rule it passed), writes `verdict` and `rule_id`, and
 *      tail-calls the continuation of its hook: WEIR_JUMP_FROM_WL_POLICY_DONE for an endpoint's
 *      egress policy (it runs from weir_from_wl, tc ingress of the host veth),
 *      WEIR_JUMP_TO_WL_POLICY_DONE for its ingress policy (weir_to_wl, tc egress).
 *   3. The continuation (a program of tc.bpf.c) re-parses the packet, reads the verdict: a
 *      deny is dropped and counted "Dropped by policy"; an allow carries on (conntrack entries,
 *      NAT, forwarding) and is counted "Accepted by policy".
 * Per-CPU state is safe: a tail call chain runs on one CPU without preemption.
 * If a tail call fails (empty slot) the caller drops the packet and counts "missed tail call".
 */
#ifndef WEIR_POLICY_H
#define WEIR_POLICY_H

#include "common.h"

/* weir_jump1 (PROG_ARRAY) slots. 0 and 1 are the continuations loaded from tc.bpf.c; policy
 * programs (and their chunks) use slots from WEIR_JUMP_FIRST_POLICY_SLOT up. */
#define WEIR_JUMP_FROM_WL_POLICY_DONE 0
#define WEIR_JUMP_TO_WL_POLICY_DONE 1
#define WEIR_JUMP_FIRST_POLICY_SLOT 2

/* Verdict written by the policy program. */
#define WEIR_POL_NONE 0  /* not decided (the continuation treats it as deny: fail closed) */
#define WEIR_POL_ALLOW 1
#define WEIR_POL_DENY 2

/* Private flags (pflags) of the main program and its continuation. */
#define WEIR_PSTATE_F_NO_STATE (1u << 0) /* from_wl: TCP mid-stream without an entry: on allow,
					   * pass untouched and create no state */
#define WEIR_PSTATE_F_MIDFLOW (1u << 1)  /* from_wl: TCP mid-stream to a service without an
					   * entry, re-resolved: on allow, create the entries as
					   * past the handshake */
#define WEIR_PSTATE_F_TRACE (1u << 2)    /* the trace build's packet (`weir bpf trace`,
					   * docs/bpf-trace.md): a policy program compiled with
					   * the trace capability counts no rule and continues in
					   * weir_trjmp1[slot] (the trace build's continuation)
					   * instead of weir_jump1[slot]; the production
					   * continuations refuse it untouched */

/* weir_pol_state.rule_id when no rule of tier `i` (0-based, in order) decided and its default
 * did: ~0 - i, so that a flow record can name the tier (written as the sign-extended 32-bit
 * immediate -1 - i). Rule ids (calc::rule ids) are below WEIR_RULE_ID_TIER_DEFAULT_MIN. */
#define WEIR_RULE_ID_TIER_DEFAULT(i) (~0ull - (__u64)(i))
#define WEIR_RULE_ID_TIER_DEFAULT_MIN (~0ull - 0xffffull)

struct weir_pol_state {
	/* ---- Inputs: written by the main program, read by the policy program. ---- */
	__u32 saddr;     /* source address, network order (as in the packet) */
	__u32 daddr;     /* destination address, network order; for egress to a service, the
			  * backend chosen by NAT (the destination after DNAT) */
	__u32 saddr_h;   /* the same two addresses in host order, for CIDR compares */
	__u32 daddr_h;
	__u16 sport;     /* host order; 0 when the protocol has no ports (ICMP) */
	__u16 dport;     /* host order; after DNAT for egress to a service */
	__u8 proto;      /* IP protocol number */
	__u8 icmp_type;  /* ICMP only, else 0 */
	__u8 icmp_code;  /* ICMP only, else 0 */
	__u8 hook;       /* enum weir_hook of the program that tail-called */
	__u32 ifindex;   /* interface the packet was seen on */

	/* ---- Private to the main program and its continuation (carried across the call). ---- */
	__u32 pre_nat_daddr; /* network order: destination before DNAT (the VIP) */
	__u16 pre_nat_dport; /* network order */
	__u8 nat;            /* 1 when the flow is DNATed to nat_addr:nat_port */
	__u8 ct_exists;      /* to_wl: the flow already had a conntrack entry (leg not approved) */
	__u32 nat_addr;      /* network order: chosen backend */
	__u16 nat_port;      /* network order */
	__u16 pflags;        /* WEIR_PSTATE_F_* */

	/* ---- Outputs: written by the policy program. ---- */
	__u32 verdict;   /* WEIR_POL_* */
	__u32 resume;    /* chunked programs: where the next chunk resumes (compiler-defined) */
	__u64 rule_id;   /* the rule that decided; a tier's default: WEIR_RULE_ID_TIER_DEFAULT(tier
			  * index); 0 when the end of the tiers decided */
	__u64 scratch;   /* compiler-defined, e.g. a key being built */
};
WEIR_ASSERT_SIZE(struct weir_pol_state, 72);

/*
 * IP sets. A set is identified by a 64-bit id (for a selector: the FNV-1a hash of its canonical
 * text, see src/calc/selector.h) stored big-endian in set_id so that `IP set 0x303904ae5eae5418`
 * reads the same in the key's bytes. Members live in two maps, so that the common members cost
 * one hash lookup whatever the size of the sets:
 *
 *   weir_ipsetx1 (HASH, struct weir_ipset_exact_key): the exact members
 *     plain /32 member a.b.c.d/32:       port = 0, proto = 0
 *     named-port member ip:port/proto:   port, proto as given (port != 0, proto != 0)
 *   weir_ipsets1 (LPM trie, struct weir_ipset_key): CIDR members shorter than /32 only
 *     CIDR member a.b.c.d/n (n < 32):    prefixlen = 64 + n, port = 0, proto = 0
 *
 * A member is in exactly one of the two maps (the writer moves nothing between them: a CIDR's
 * map follows from its length). Readers test, in order, stopping at the first hit:
 *   named-port set match:  exact (addr, dport, proto), then exact (addr, 0, 0), then the trie
 *   plain set match:       exact (addr, 0, 0), then the trie
 * The trie is looked up as it always was, with the full key (prefixlen 128, the packet's address
 * and, for a named-port set, its destination port and protocol; else port 0, proto 0): CIDR
 * members match whatever the port, and a /32 or named-port member left in the trie by an earlier
 * writer still matches. This is pol::IpSetTable::contains of src/calc/policy_ir.h: CIDR members
 * (any length) match any port, named-port members only their exact port and protocol.
 * Values: __u32, unused (1).
 */
#define WEIR_IPSET_PREFIX_BASE 64
#define WEIR_IPSET_PREFIX_FULL 128

struct weir_ipset_key {
	__u32 prefixlen;
	__u8 set_id[8];  /* big-endian 64-bit set id */
	__u32 addr;      /* network order */
	__u16 port;      /* network order; 0 for CIDR members */
	__u8 pad;        /* always 0 */
	__u8 proto;      /* IP protocol number; 0 for CIDR members */
};
WEIR_ASSERT_SIZE(struct weir_ipset_key, 20);

struct weir_ipset_exact_key {
	__u8 set_id[8];  /* big-endian 64-bit set id */
	__u32 addr;      /* network order */
	__u16 port;      /* network order; 0 for a plain /32 member */
	__u8 pad;        /* always 0 */
	__u8 proto;      /* IP protocol number; 0 for a plain /32 member */
};
WEIR_ASSERT_SIZE(struct weir_ipset_exact_key, 16);

/* Rule counters (per-CPU hash, weir_rule_cnt1): rule id (see src/calc/policy_ir.h) -> packets
 * the rule decided (or, for a Log rule, logged). */
typedef __u64 weir_rule_cnt_key;
typedef __u64 weir_rule_cnt_val;

#endif
