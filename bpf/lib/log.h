/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The debug log (weir/log.h): statements that exist only in the log variant (-DWEIR_LOG=1).
 * In the production build every WEIR_LOG_* macro below expands to nothing, so its programs
 * carry no logging instruction (a BPF test counts the trace helper calls of both objects).
 *
 * Each statement is a call to a global function (lib/defs.h, __weir_global): the verifier
 * checks it once on its own, and a call costs the caller a few instructions and no state (the
 * level test is inside), which keeps the log variant within the verifier budget of 6.1.
 * Arguments are scalars only; the interface tag and the level come from this CPU's
 * weir_logst2, filled by weir_log_begin at the start of the main program.
 */
#ifndef WEIR_LIB_LOG_H
#define WEIR_LIB_LOG_H

#include "lib/defs.h"
#include "lib/maps.h"

#ifdef WEIR_LOG

/* Outcome counter names (enum weir_counter), as `weir bpf counters dump --json` keys them. */
static const char weir_log_outcomes[WEIR_CNT_OUTCOME_END][24] = {
	[WEIR_CNT_ACCEPT_BY_OTHER_PROG] = "accepted_by_other_prog",
	[WEIR_CNT_ACCEPT_BY_FAILSAFE] = "accepted_by_failsafe",
	[WEIR_CNT_ACCEPT_BY_POLICY] = "accepted_by_policy",
	[WEIR_CNT_ACCEPT_NEW_FLOW] = "accepted_new_flow",
	[WEIR_CNT_ACCEPT_ESTABLISHED] = "accepted_established",
	[WEIR_CNT_ACCEPT_NON_IPV4] = "accepted_non_ipv4",
	[WEIR_CNT_DROP_NAT_COLLISION] = "dropped_nat_collision",
	[WEIR_CNT_DROP_QOS] = "dropped_qos",
	[WEIR_CNT_DROP_BY_POLICY] = "dropped_by_policy",
	[WEIR_CNT_DROP_DECAP] = "dropped_decap",
	[WEIR_CNT_DROP_ENCAP] = "dropped_encap",
	[WEIR_CNT_DROP_CT_CREATE] = "dropped_ct_create",
	[WEIR_CNT_DROP_FRAG_INCOMPLETE] = "dropped_frag_incomplete",
	[WEIR_CNT_DROP_FRAG_ORDER] = "dropped_frag_order",
	[WEIR_CNT_DROP_FRAG_UNSUPPORTED] = "dropped_frag_unsupported",
	[WEIR_CNT_DROP_BAD_CSUM] = "dropped_bad_csum",
	[WEIR_CNT_DROP_MALFORMED] = "dropped_malformed",
	[WEIR_CNT_DROP_BLACKHOLE] = "dropped_blackhole",
	[WEIR_CNT_DROP_UNKNOWN_ROUTE] = "dropped_unknown_route",
	[WEIR_CNT_DROP_UNKNOWN_SOURCE] = "dropped_unknown_source",
	[WEIR_CNT_DROP_IP_OPTIONS] = "dropped_ip_options",
	[WEIR_CNT_DROP_SHORT] = "dropped_short",
	[WEIR_CNT_DROP_NO_BACKEND] = "dropped_no_backend",
	[WEIR_CNT_DROP_TAIL_CALL] = "dropped_tail_call",
	[WEIR_CNT_DROP_REWRITE] = "dropped_rewrite",
	[WEIR_CNT_DROP_ICMP_NO_FLOW] = "dropped_icmp_no_flow",
	[WEIR_CNT_DROP_VLAN] = "dropped_vlan",
	[WEIR_CNT_REDIRECT_NEIGH] = "redirect_neigh",
	[WEIR_CNT_REDIRECT_PEER] = "redirect_peer",
	[WEIR_CNT_REDIRECT_PLAIN] = "redirect_plain",
	[WEIR_CNT_ACCEPT_UNDERLAY] = "accepted_underlay",
};

static __always_inline struct weir_log_state *weir_log_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&weir_logst2, &zero);
}

/* This CPU's state when the packet being processed is logged at `level` or more, else NULL. */
static __always_inline struct weir_log_state *weir_log_at(__u32 level)
{
	struct weir_log_state *st = weir_log_state();

	if (!st || st->level < level)
		return NULL;
	return st;
}

/* Start of a packet in a main program (`entry`: its WEIR_LOGJMP_* slot): what to log for it
 * (weir_logif1: its interface's entry, else entry 0), its tag ("<iface>---E", `dir_in`: "---I")
 * and start time, and (Debug) the first line. Returns 0, or the weir_logjmp1 slot of the
 * interface's pcap filter for the main program to tail-call first (weir/log.h): the filter comes
 * back to the main program, whose weir_log_begin then finds the filter's verdict.
 * The other statements of the chain (policy, continuation, encapsulation) use this state. */
__weir_global __u32 weir_log_begin(struct __sk_buff *skb, __u32 dir_in, __u32 entry)
{
	struct weir_log_state *st = weir_log_state();
	struct weir_ifstate_val *ifs;
	struct weir_log_if_val *cfg;
	__u64 args[2];
	__u32 k, zero = 0;
	__u16 len_lo;

	if (!skb || !st)
		return 0;
	k = skb->ifindex;
	len_lo = skb->len & 0xffff;
#ifdef WEIR_TRACE
	/* `weir bpf trace`: every stage, tagged with the nonce the command put in the mark. (Every
	 * argument is used: the verifier checks what BTF says the caller passes.) */
	(void)cfg, (void)zero;
	st->entry = entry;
	st->len_lo = len_lo;
	st->filter = WEIR_LOG_F_NONE;
	st->start_ns = bpf_ktime_get_ns();
	st->level = WEIR_LOG_DEBUG;
#else
	cfg = bpf_map_lookup_elem(&weir_logif1, &k);
	if (!cfg)
		cfg = bpf_map_lookup_elem(&weir_logif1, &zero);
	if (!cfg || cfg->level == WEIR_LOG_OFF) {
		st->level = WEIR_LOG_OFF;
		st->filter = WEIR_LOG_F_NONE;
		return 0;
	}
	if (cfg->filter != WEIR_LOG_FILTER_ALL) {
		int verdict = (st->filter == WEIR_LOG_F_MATCH || st->filter == WEIR_LOG_F_NO_MATCH) &&
			      st->ifindex == k && st->entry == entry && st->len_lo == len_lo;

		if (!verdict) {
			/* A new packet: its filter first. Not logged unless the filter says so. */
			st->level = WEIR_LOG_OFF;
			st->ifindex = k;
			st->entry = entry;
			st->len_lo = len_lo;
			st->filter = WEIR_LOG_F_PENDING;
			st->start_ns = bpf_ktime_get_ns();
			return cfg->filter;
		}
		/* Back from the filter: its verdict is consumed, whatever it is. */
		verdict = st->filter == WEIR_LOG_F_MATCH;
		st->filter = WEIR_LOG_F_NONE;
		if (!verdict) {
			st->level = WEIR_LOG_OFF;
			return 0;
		}
	} else {
		st->filter = WEIR_LOG_F_NONE;
		st->start_ns = bpf_ktime_get_ns();
	}
	st->level = cfg->level > WEIR_LOG_DEBUG ? WEIR_LOG_DEBUG : cfg->level;
#endif
	st->ifindex = k;
	args[1] = (__u64)(long)(dir_in ? "I" : "E");
#ifdef WEIR_TRACE
	(void)ifs;
	args[0] = skb->mark;
	bpf_snprintf(st->tag, sizeof(st->tag), "wtr%u---%s", args, sizeof(args));
#else
	ifs = bpf_map_lookup_elem(&weir_ifstate1, &k);
	if (ifs) {
		args[0] = (__u64)(long)ifs->name;
		bpf_snprintf(st->tag, sizeof(st->tag), "%s---%s", args, sizeof(args));
	} else {
		args[0] = k;
		bpf_snprintf(st->tag, sizeof(st->tag), "if%u---%s", args, sizeof(args));
	}
#endif
	if (st->level >= WEIR_LOG_DEBUG)
		bpf_printk("%s: New packet at ifindex=%u; len=%u; mark=%x", st->tag, k, skb->len, skb->mark);
	return 0;
}

/* The parsed packet (addresses network order, ports host order, packed sport << 16 | dport).
 * Info. */
__weir_global int weir_log_tuple(__u32 saddr, __u32 daddr, __u32 ports, __u32 proto)
{
	struct weir_log_state *st = weir_log_at(WEIR_LOG_INFO);
	__u32 s = saddr, d = daddr;

	if (st)
		bpf_printk("%s: IP %pI4:%u -> %pI4:%u proto=%u", st->tag, &s, ports >> 16, &d, ports & 0xffff,
			   proto);
	return 0;
}

/* A stage line with up to two numbers (`what` selects the message). Debug. */
enum weir_log_what {
	WEIR_LOG_CT_MISS = 0,    /* a, b unused */
	WEIR_LOG_CT_HIT,         /* a: entry type (WEIR_CT_*), b: flags of the sending leg */
	WEIR_LOG_NAT_NONE,       /* not to a service */
	WEIR_LOG_NAT_NO_BACKEND, /* a: VIP (network order), b: port (host order) */
	WEIR_LOG_POLICY_CALL,    /* a: jump slot */
	WEIR_LOG_REDIRECT,       /* a: ifindex, b: 1 = peer */
	WEIR_LOG_ENCAP,          /* a: next hop (network order) */
	WEIR_LOG_DECAP,          /* a: outer source (network order) */
	WEIR_LOG_TRACE_ENCAP,    /* trace build: a: the next hop (network order), not encapsulated */
};

__weir_global int weir_log_stage(__u32 what, __u32 a, __u32 b)
{
	struct weir_log_state *st = weir_log_at(WEIR_LOG_DEBUG);
	__u32 addr = a;

	if (!st)
		return 0;
	switch (what) {
	case WEIR_LOG_CT_MISS:
		bpf_printk("%s: CT: miss", st->tag);
		break;
	case WEIR_LOG_CT_HIT:
		bpf_printk("%s: CT: hit type=%u leg_flags=%x", st->tag, a, b);
		break;
	case WEIR_LOG_NAT_NONE:
		bpf_printk("%s: NAT: no frontend", st->tag);
		break;
	case WEIR_LOG_NAT_NO_BACKEND:
		bpf_printk("%s: NAT: frontend %pI4:%u has no backend", st->tag, &addr, b);
		break;
	case WEIR_LOG_POLICY_CALL:
		bpf_printk("%s: Policy: calling jump slot %u", st->tag, a);
		break;
	case WEIR_LOG_REDIRECT:
		bpf_printk("%s: Redirect to ifindex=%u%s", st->tag, a, b ? " (peer)" : "");
		break;
	case WEIR_LOG_ENCAP:
		bpf_printk("%s: VXLAN: encapsulating to node %pI4", st->tag, &addr);
		break;
	case WEIR_LOG_DECAP:
		bpf_printk("%s: VXLAN: decapsulated from node %pI4", st->tag, &addr);
		break;
	case WEIR_LOG_TRACE_ENCAP:
		bpf_printk("%s: Trace: would encapsulate to node %pI4 (VXLAN)", st->tag, &addr);
		break;
	}
	return 0;
}

/* NAT: the frontend hit and the backend chosen (addresses network order, ports host order). */
__weir_global int weir_log_nat(__u32 vip, __u32 vport, __u32 be, __u32 be_port)
{
	struct weir_log_state *st = weir_log_at(WEIR_LOG_DEBUG);
	__u32 v = vip, b = be;

	if (st)
		bpf_printk("%s: NAT: frontend %pI4:%u -> backend %pI4:%u", st->tag, &v, vport, &b, be_port);
	return 0;
}

/* The verdict a policy program wrote (weir_pstate1), as its continuation reads it. */
__weir_global int weir_log_policy(__u32 verdict, __u64 rule_id)
{
	struct weir_log_state *st = weir_log_at(WEIR_LOG_DEBUG);

	if (st)
		bpf_printk("%s: Policy: verdict=%s rule_id=%llx", st->tag,
			   verdict == WEIR_POL_ALLOW ? "ALLOW" : "DENY", rule_id);
	return 0;
}

/* The end of the packet's chain: its drop reason and the final result, with the time since
 * weir_log_begin. Info. */
__weir_global int weir_log_final(__u32 outcome, int verdict)
{
	struct weir_log_state *st = weir_log_at(WEIR_LOG_INFO);
	const char *result = verdict == TC_ACT_SHOT ? "DENY" : verdict == TC_ACT_REDIRECT ? "REDIRECT" : "ALLOW";
	const char *reason = "unknown";

	if (!st)
		return 0;
	if (outcome < WEIR_CNT_OUTCOME_END)
		reason = weir_log_outcomes[outcome];
	if (verdict == TC_ACT_SHOT)
		bpf_printk("%s: Drop reason=%s", st->tag, reason);
	bpf_printk("%s: Final result=%s (%d). Program execution time: %lluns", st->tag, result, verdict,
		   bpf_ktime_get_ns() - st->start_ns);
	/* Logged once: a later program of the chain (there is none after a final) stays quiet. */
	st->level = WEIR_LOG_OFF;
	return 0;
}

/* The start of a main program (`entry`: its WEIR_LOGJMP_* slot). With a pcap filter on the
 * interface, the first pass tail-calls the filter, which comes back to the same program; when
 * that tail call fails (no filter in the slot), the packet goes on, not logged. */
#define WEIR_LOG_BEGIN(skb, dir_in, entry)                                 \
	do {                                                               \
		__u32 weir_log_filter_slot = weir_log_begin(skb, dir_in, entry); \
		if (weir_log_filter_slot)                                  \
			bpf_tail_call(skb, &weir_logjmp1, weir_log_filter_slot); \
	} while (0)
#define WEIR_LOG_TUPLE(p) \
	weir_log_tuple((p)->saddr, (p)->daddr, ((__u32)bpf_ntohs((p)->sport) << 16) | bpf_ntohs((p)->dport), (p)->proto)
#define WEIR_LOG_STAGE(what, a, b) weir_log_stage(what, a, b)
#define WEIR_LOG_NAT(vip, vport, be, be_port) weir_log_nat(vip, vport, be, be_port)
#define WEIR_LOG_POLICY(verdict, rule_id) weir_log_policy(verdict, rule_id)
#define WEIR_LOG_FINAL(outcome, verdict) weir_log_final(outcome, verdict)

#else /* !WEIR_LOG: the production build, no logging instruction */

#define WEIR_LOG_BEGIN(skb, dir_in, entry) ((void)0)
#define WEIR_LOG_TUPLE(p) ((void)0)
#define WEIR_LOG_STAGE(what, a, b) ((void)0)
#define WEIR_LOG_NAT(vip, vport, be, be_port) ((void)0)
#define WEIR_LOG_POLICY(verdict, rule_id) ((void)0)
#define WEIR_LOG_FINAL(outcome, verdict) ((void)0)

#endif

#endif
