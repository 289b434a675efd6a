/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map the TC programs use. The variable names are the BPF object names and must equal
 * the WEIR_MAP_* strings of weir/maps.h: userspace finds the maps by those names, overrides
 * max_entries with bpf_map__set_max_entries() and sets pin paths before load. No libbpf
 * `pinning` attribute is used on purpose: the agent decides where (and whether) maps are pinned.
 * The sizes below are the defaults (WEIR_MAP_*_SIZE).
 */
#ifndef WEIR_LIB_MAPS_H
#define WEIR_LIB_MAPS_H

#include "lib/defs.h"

/*
 * weir_nat_fe1: (VIP, port, proto) -> service (id, backend count).
 * Writer: the agent's service syncer. Reader: from_wl, on the first packet of a TCP/UDP flow.
 * Full: the syncer cannot add the service and logs it; the datapath never writes this map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_MAP_NAT_FE_SIZE);
	__type(key, struct weir_nat_fe_key);
	__type(value, struct weir_nat_fe_val);
} weir_nat_fe1 SEC(".maps");

/*
 * weir_nat_be1: (service id, ordinal) -> backend (IP, port).
 * Writer: the service syncer (backends before the frontend that counts them). Reader: from_wl,
 * after a frontend hit. A missing ordinal is treated as "no backend" (the client gets a TCP RST
 * or an ICMP port unreachable). Full: as for the frontend map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_MAP_NAT_BE_SIZE);
	__type(key, struct weir_nat_be_key);
	__type(value, struct weir_nat_be_val);
} weir_nat_be1 SEC(".maps");

/*
 * weir_ct1: normalised 5-tuple -> conntrack entry (see weir/conntrack.h).
 * Writers: both TC programs (create on the first packet, last_seen and leg flags on every
 * packet) and the agent's conntrack scanner (expiry). Readers: both TC programs, the CLI.
 * Full: LRU eviction of the least recently used entry; an evicted TCP flow is then passed
 * untouched (mid-stream packets do not create state), other flows are tracked again.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_MAP_CT_SIZE);
	__type(key, struct weir_ct_key);
	__type(value, struct weir_ct_val);
} weir_ct1 SEC(".maps");

/*
 * weir_ct_stats1: [WEIR_CT_STATS_DATAPATH | WEIR_CT_STATS_AGENT] -> per-CPU struct weir_ct_stats.
 * Writers: the TC programs (index DATAPATH), the agent's scanner (index AGENT). Readers: the
 * CLI (`weir bpf conntrack stats`) and the agent (occupancy warning). Never full (fixed size).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_CT_STATS__MAX);
	__type(key, __u32);
	__type(value, struct weir_ct_stats);
} weir_ct_stats1 SEC(".maps");

/*
 * weir_frags1: datagram at a hook -> what its first fragment's verdict did (see weir/frags.h).
 * Writers and readers: both TC programs (the first fragment writes, later ones read, the last
 * one deletes). Full: LRU eviction; the evicted datagram's later fragments are dropped.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_MAP_FRAGS_SIZE);
	__type(key, struct weir_frag_key);
	__type(value, struct weir_frag_val);
} weir_frags1 SEC(".maps");

/*
 * weir_routes1: CIDR -> where it lives (local workload veth + MAC, host, remote).
 * Writer: the endpoint manager (a /32 per local workload IP). Reader: from_wl for new flows.
 * Full: the endpoint manager logs it; traffic to that workload goes up the host stack.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_MAP_ROUTES_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_route_key);
	__type(value, struct weir_route_val);
} weir_routes1 SEC(".maps");

/*
 * weir_ifstate1: ifindex -> facts about a weir-managed interface (name, flags, host MAC).
 * Writer: the endpoint manager, before attaching. Readers: from_wl for new flows to a local
 * workload (source MAC of the redirected packet), the CLI. Full: the interface is not managed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_MAP_IFSTATE_SIZE);
	__type(key, __u32);
	__type(value, struct weir_ifstate_val);
} weir_ifstate1 SEC(".maps");

/*
 * weir_counters2: (ifindex, hook) -> per-CPU counters (see weir/counters.h).
 * Writers: both TC programs (lookup, insert a zeroed entry when missing), the CLI (flush) and
 * the endpoint manager (removes an interface's entries). Reader: the CLI.
 * Full: the packet is processed normally, its counts are lost.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, WEIR_MAP_COUNTERS_SIZE);
	__type(key, struct weir_counters_key);
	__type(value, struct weir_counters_val);
} weir_counters2 SEC(".maps");

/*
 * weir_jump1: slot -> program (PROG_ARRAY, see weir/policy.h for the slots).
 * Writers: the loader (slots 0 and 1: the policy continuations of this object, written after
 * every load and so replaced atomically on restart) and the agent's policy manager (policy
 * programs and their chunks, slots from WEIR_JUMP_FIRST_POLICY_SLOT). Readers: both TC programs
 * (bpf_tail_call into the slot named by ifstate) and the policy programs (tail call into the
 * continuation). Full: the policy manager cannot allocate a slot and logs the endpoint; an empty
 * slot makes the tail call fail and the packet is dropped (DROP_TAIL_CALL): fail closed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, WEIR_MAP_JUMP_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} weir_jump1 SEC(".maps");

/*
 * weir_pstate1: [0] -> struct weir_pol_state, one per CPU: the facts of the packet being decided
 * and the verdict, carried across the tail calls of one packet (a chain runs on one CPU).
 * Writers: the TC programs (inputs, private part) and the policy programs (outputs). Readers:
 * the policy programs (inputs) and the continuations. Never full (one entry); nothing in it
 * outlives a packet.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_pol_state);
} weir_pstate1 SEC(".maps");

/*
 * weir_ipsets1: (set id, CIDR member shorter than /32) -> 1; weir_ipsetx1: (set id, /32 or
 * named-port member) -> 1 (see weir/policy.h for the keys and the order of lookups). Writer: the
 * agent's policy manager (members of every IP set a rule refers to; a member goes to one map by
 * its shape). Readers: the policy programs (exact hash first, then the trie), the CLI
 * (`weir bpf ipsets dump` merges both). The main TC programs never use them: they are here to be
 * created and pinned with the others. Both are sized by mapSizes.ipsets. Full (either map): the
 * policy manager cannot add the member and logs the set; rules referring to it then miss that
 * member (the endpoint is reported as not in sync).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_MAP_IPSETS_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_ipset_key);
	__type(value, __u32);
} weir_ipsets1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_MAP_IPSET_X_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_ipset_exact_key);
	__type(value, __u32);
} weir_ipsetx1 SEC(".maps");

/*
 * weir_rule_cnt1: rule id -> packets (per CPU). Writers: the policy programs (insert or
 * increment for the deciding rule and every Log rule passed), the policy manager (removes the
 * ids of deleted rules). Readers: the CLI (`policy dump` counts). Full: the packet is decided
 * normally, the rule's count is lost.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, WEIR_MAP_RULE_CNT_SIZE);
	__type(key, weir_rule_cnt_key);
	__type(value, weir_rule_cnt_val);
} weir_rule_cnt1 SEC(".maps");

#endif
