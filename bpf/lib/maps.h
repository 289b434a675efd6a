/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map the TC programs use, defined from the table of weir/maps.h (WEIR_MAPS): one
 * definition per row, named weir_<base><version> (the pin name; userspace finds the maps by
 * it), sized by the row's default (userspace overrides max_entries with
 * bpf_map__set_max_entries() and sets pin paths before load). No libbpf `pinning` attribute is
 * used on purpose: the agent decides where (and whether) maps are pinned.
 * Adding a map: one row in WEIR_MAPS plus its types, and a comment below (docs/maps.md).
 */
#ifndef WEIR_LIB_MAPS_H
#define WEIR_LIB_MAPS_H

#include "lib/defs.h"

/*
 * weir_nat_fe1: (VIP, port, proto) -> service (id, backend count).
 * Writer: the agent's service syncer. Reader: from_wl, on the first packet of a TCP/UDP flow.
 * Full: the syncer cannot add the service and logs it; the datapath never writes this map.
 */

/*
 * weir_nat_be1: (service id, ordinal) -> backend (IP, port).
 * Writer: the service syncer (backends before the frontend that counts them). Reader: from_wl,
 * after a frontend hit. A missing ordinal is treated as "no backend" (the client gets a TCP RST
 * or an ICMP port unreachable). Full: as for the frontend map.
 */

/*
 * weir_ct2: normalised 5-tuple -> conntrack entry (see weir/conntrack.h).
 * Writers: both TC programs (create on the first packet, last_seen and leg flags on every
 * packet) and the agent's conntrack scanner (expiry). Readers: both TC programs, the CLI.
 * Full: LRU eviction of the least recently used entry; an evicted TCP flow is then passed
 * untouched (mid-stream packets do not create state), other flows are tracked again.
 */

/*
 * weir_ct_stats1: [WEIR_CT_STATS_DATAPATH | WEIR_CT_STATS_AGENT] -> per-CPU struct weir_ct_stats.
 * Writers: the TC programs (index DATAPATH), the agent's scanner (index AGENT). Readers: the
 * CLI (`weir bpf conntrack stats`) and the agent (occupancy warning). Never full (fixed size).
 */

/*
 * weir_frags1: datagram at a hook -> what its first fragment's verdict did (see weir/frags.h).
 * Writers and readers: both TC programs (the first fragment writes, later ones read, the last
 * one deletes). Full: LRU eviction; the evicted datagram's later fragments are dropped.
 */

/*
 * weir_routes1: CIDR -> where it lives (local workload veth + MAC, host, remote).
 * Writer: the endpoint manager (a /32 per local workload IP). Reader: from_wl for new flows.
 * Full: the endpoint manager logs it; traffic to that workload goes up the host stack.
 */

/*
 * weir_ifstate1: ifindex -> facts about a weir-managed interface (name, flags, host MAC).
 * Writer: the endpoint manager, before attaching. Readers: from_wl for new flows to a local
 * workload (source MAC of the redirected packet), the CLI. Full: the interface is not managed.
 */

/*
 * weir_counters3: (ifindex, hook) -> per-CPU counters (see weir/counters.h).
 * Writers: both TC programs (lookup, insert a zeroed entry when missing), the CLI (flush) and
 * the endpoint manager (removes an interface's entries). Reader: the CLI.
 * Full: the packet is processed normally, its counts are lost.
 */

/*
 * weir_jump1: slot -> program (PROG_ARRAY, see weir/policy.h for the slots).
 * Writers: the loader (slots 0 and 1: the policy continuations of this object, written after
 * every load and so replaced atomically on restart) and the agent's policy manager (policy
 * programs and their chunks, slots from WEIR_JUMP_FIRST_POLICY_SLOT). Readers: both TC programs
 * (bpf_tail_call into the slot named by ifstate) and the policy programs (tail call into the
 * continuation). Full: the policy manager cannot allocate a slot and logs the endpoint; an empty
 * slot makes the tail call fail and the packet is dropped (DROP_TAIL_CALL): fail closed.
 */

/*
 * weir_pstate1: [0] -> struct weir_pol_state, one per CPU: the facts of the packet being decided
 * and the verdict, carried across the tail calls of one packet (a chain runs on one CPU).
 * Writers: the TC programs (inputs, private part) and the policy programs (outputs). Readers:
 * the policy programs (inputs) and the continuations. Never full (one entry); nothing in it
 * outlives a packet.
 */

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

/*
 * weir_rule_cnt1: rule id -> packets (per CPU). Writers: the policy programs (insert or
 * increment for the deciding rule and every Log rule passed), the policy manager (removes the
 * ids of deleted rules). Readers: the CLI (`policy dump` counts). Full: the packet is decided
 * normally, the rule's count is lost.
 */

/*
 * weir_tunnel1: [0] -> this node's VXLAN configuration (see weir/tunnel.h). Writer: the agent
 * (dataplane::set_tunnel). Readers: from_wl (whether to encapsulate), weir_vxlan_encap and
 * weir_from_ul. Never full (one entry); all zero = VXLAN off.
 */

/*
 * weir_vteps1: underlay address of another node -> WEIR_VTEP_F_NODE. Writer: the agent
 * (dataplane::set_vteps, from the Node resources). Reader: weir_from_ul (VXLAN from an address
 * not there is dropped). Full: the agent cannot add the node and logs it; that node's VXLAN is
 * dropped here (DROP_DECAP).
 */

/*
 * weir_tun_jump1: slot WEIR_TUN_JUMP_VXLAN_ENCAP -> weir_vxlan_encap (PROG_ARRAY). Writer: the
 * loader, after every load (replaced atomically on restart). Readers: from_wl and its policy
 * continuation (bpf_tail_call). Never full (one slot); empty, the packet is dropped
 * (DROP_TAIL_CALL).
 */

/*
 * weir_logif1: ifindex (0: every other interface) -> what the log variant logs there: level and
 * pcap filter (see weir/log.h). Writer: the agent (bpfLogLevel, bpfLogFilters), the tests.
 * Reader: the log variant's weir_log_begin; the production object never reads it. Full: the
 * interface is logged as entry 0 says.
 */

/*
 * weir_logst2: [0] -> struct weir_log_state, one per CPU: the log level, tag, start time and
 * filter verdict of the packet being processed, carried along its chain of tail calls. Writers
 * and readers: the log variant's statements and the generated pcap filters. Never full (one
 * entry). (weir_logst1 had no filter fields.)
 */

/*
 * weir_logjmp1: slot -> program (PROG_ARRAY): the log variant's three main programs
 * (WEIR_LOGJMP_FROM_WL, _TO_WL, _FROM_UL, written by the loader of the log variant) and the
 * pcap filters (from WEIR_LOGJMP_FIRST_FILTER, written by the agent). Readers: the log variant's
 * main programs (into a filter) and the filters (back into the main program). Full: the agent
 * refuses more distinct filter expressions than slots.
 */

/*
 * weir_prof1: {ifindex, hook, kind} -> per-CPU {runs, total ns} (see weir/profile.h). Writers:
 * the profiling builds (insert zeroes when missing, add), `weir bpf profiling e2e` (deletes what
 * it printed). Reader: that command. Full: the packet is not profiled.
 */

/*
 * weir_profst1: [0] -> struct weir_prof_state, one per CPU: the start time and kind of the packet
 * being timed, along its chain of tail calls. Writers and readers: the profiling builds only.
 * Never full (one entry).
 */

/*
 * weir_trjmp1: WEIR_JUMP_FROM_WL_POLICY_DONE / WEIR_JUMP_TO_WL_POLICY_DONE -> the trace build's
 * policy continuations (PROG_ARRAY). Writer: whoever loads the trace build (`weir bpf trace`).
 * Readers: policy programs compiled with the trace capability, for a packet of the trace build
 * (WEIR_PSTATE_F_TRACE). Never full (2 slots); empty, the trace ends there (TC_ACT_SHOT).
 */

/*
 * weir_flows1: ring buffer of struct weir_flow_event (weir/flow.h): new flows and drops, for
 * `weir observe`. Writers: the TC programs (not the trace build), within weir_flowcfg1's rate.
 * Reader: the agent. Full: the event is lost and counted in weir_flowst1.
 */

/*
 * weir_flowcfg1: [0] -> struct weir_flow_cfg: which events and how many per second and CPU.
 * Writer: the agent. Readers: the TC programs. All zero: no events.
 */

/*
 * weir_flowst1: [0] -> struct weir_flow_stats, one per CPU: rate-limit state, events sent,
 * rate-limited and lost. Writers: the TC programs. Readers: the agent (metrics), the CLI.
 */

/* Key and value types of a map definition, by map type: a ring buffer has neither (the kernel
 * refuses a key or value size for one). */
#define WEIR_MAP_KV(mtype, K, V) WEIR_MAP_KV_##mtype(K, V)
#define WEIR_MAP_KV_TYPED(K, V) \
	__type(key, K);         \
	__type(value, V);
#define WEIR_MAP_KV_BPF_MAP_TYPE_HASH WEIR_MAP_KV_TYPED
#define WEIR_MAP_KV_BPF_MAP_TYPE_LRU_HASH WEIR_MAP_KV_TYPED
#define WEIR_MAP_KV_BPF_MAP_TYPE_LPM_TRIE WEIR_MAP_KV_TYPED
#define WEIR_MAP_KV_BPF_MAP_TYPE_PERCPU_HASH WEIR_MAP_KV_TYPED
#define WEIR_MAP_KV_BPF_MAP_TYPE_PERCPU_ARRAY WEIR_MAP_KV_TYPED
#define WEIR_MAP_KV_BPF_MAP_TYPE_ARRAY WEIR_MAP_KV_TYPED
#define WEIR_MAP_KV_BPF_MAP_TYPE_PROG_ARRAY WEIR_MAP_KV_TYPED
#define WEIR_MAP_KV_BPF_MAP_TYPE_RINGBUF(K, V)

#define WEIR_MAP_DEFINE(ID, base, ver, mtype, K, V, size, flags, cfg) \
	struct {                                                         \
		__uint(type, mtype);                                     \
		__uint(max_entries, size);                               \
		__uint(map_flags, flags);                                \
		WEIR_MAP_KV(mtype, K, V)                                 \
	} WEIR_MAP_IDENT(base, ver) SEC(".maps");

WEIR_MAPS(WEIR_MAP_DEFINE)
#undef WEIR_MAP_DEFINE

#endif
