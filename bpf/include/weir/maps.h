/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The table of every weir map: the one place a map is declared. Everything else is derived
 * from it: the BPF definitions (bpf/lib/maps.h), the C++ names, typed views and fd lists
 * (src/maps/map_table.h, weir_maps.h), the loader's sizes and pins (src/dataplane/programs.cpp),
 * `weir bpf cleanup`'s list of weir's names, the BPF test harness and the benchmarks.
 * docs/maps.md says, per map, who writes and reads it, what happens when it is full and what
 * scale it bounds; "Adding a map" there says what to do.
 *
 * WEIR_MAPS(X) calls X(ID, base, version, type, key, value, default size, flags, size field):
 *   ID          upper-case id: WEIR_MAP_<ID> (name), WEIR_MAP_<ID>_SIZE (default size)
 *   base        the name without prefix and version
 *   version     the map's layout version, >= 1: bumped whenever its key or value changes
 *               shape (the old name then goes to WEIR_MAPS_RETIRED)
 *   name        derived: weir_<base><version>, the BPF variable and kernel object name (at most
 *               15 characters) and the pin name under <pin root>/maps/
 *               A ring buffer (BPF_MAP_TYPE_RINGBUF) has neither key nor value: its row names the
 *               record type it carries as value (for the reader) and its size in bytes
 *   size field  the DataplaneConfig spec.mapSizes field (model::MapSizes member) that sizes it,
 *               or `fixed` when the size is not configurable
 * The order is the order of docs/maps.md and of maps::all_map_names().
 */
#ifndef WEIR_MAPS_H
#define WEIR_MAPS_H

#include "common.h"
#include "conntrack.h"
#include "counters.h"
#include "flow.h"
#include "frags.h"
#include "ifstate.h"
#include "log.h"
#include "nat.h"
#include "profile.h"
#include "policy.h"
#include "routes.h"
#include "tunnel.h"

/* clang-format off */
#define WEIR_MAPS(X) \
	X(NAT_FE,   nat_fe,   1, BPF_MAP_TYPE_HASH,          struct weir_nat_fe_key,       struct weir_nat_fe_val,  (64 * 1024),   0,                  nat_frontend)  \
	X(NAT_BE,   nat_be,   1, BPF_MAP_TYPE_HASH,          struct weir_nat_be_key,       struct weir_nat_be_val,  (256 * 1024),  0,                  nat_backend)   \
	X(CT,       ct,       2, BPF_MAP_TYPE_LRU_HASH,      struct weir_ct_key,           struct weir_ct_val,      (512 * 1024),  0,                  conntrack)     \
	X(ROUTES,   routes,   1, BPF_MAP_TYPE_LPM_TRIE,      struct weir_route_key,        struct weir_route_val,   (256 * 1024),  BPF_F_NO_PREALLOC,  routes)        \
	X(IFSTATE,  ifstate,  1, BPF_MAP_TYPE_HASH,          __u32,                        struct weir_ifstate_val, 1024,          0,                  ifstate)       \
	X(COUNTERS, counters, 3, BPF_MAP_TYPE_PERCPU_HASH,   struct weir_counters_key,     struct weir_counters_val, (20 * 1024),  0,                  counters)      \
	X(JUMP,     jump,     1, BPF_MAP_TYPE_PROG_ARRAY,    __u32,                        __u32,                   (10 * 1024),   0,                  fixed)         \
	X(PSTATE,   pstate,   1, BPF_MAP_TYPE_PERCPU_ARRAY,  __u32,                        struct weir_pol_state,   1,             0,                  fixed)         \
	X(IPSETS,   ipsets,   1, BPF_MAP_TYPE_LPM_TRIE,      struct weir_ipset_key,        __u32,                   (1024 * 1024), BPF_F_NO_PREALLOC,  ipsets)        \
	X(IPSET_X,  ipsetx,   1, BPF_MAP_TYPE_HASH,          struct weir_ipset_exact_key,  __u32,                   (1024 * 1024), BPF_F_NO_PREALLOC,  ipsets)        \
	X(RULE_CNT, rule_cnt, 1, BPF_MAP_TYPE_PERCPU_HASH,   weir_rule_cnt_key,            weir_rule_cnt_val,       (64 * 1024),   0,                  rule_counters) \
	X(CT_STATS, ct_stats, 1, BPF_MAP_TYPE_PERCPU_ARRAY,  __u32,                        struct weir_ct_stats,    WEIR_CT_STATS__MAX, 0,             fixed)         \
	X(FRAGS,    frags,    1, BPF_MAP_TYPE_LRU_HASH,      struct weir_frag_key,         struct weir_frag_val,    (8 * 1024),    0,                  fixed)         \
	X(TUNNEL,   tunnel,   1, BPF_MAP_TYPE_ARRAY,         __u32,                        struct weir_tunnel_val,  1,             0,                  fixed)         \
	X(VTEPS,    vteps,    1, BPF_MAP_TYPE_HASH,          __u32,                        __u32,                   (8 * 1024),    0,                  fixed)         \
	X(TUN_JUMP, tun_jump, 1, BPF_MAP_TYPE_PROG_ARRAY,    __u32,                        __u32,                   1,             0,                  fixed)         \
	X(LOG_IF,   logif,    1, BPF_MAP_TYPE_HASH,          __u32,                        struct weir_log_if_val,  1024,          0,                  fixed)         \
	X(LOG_ST,   logst,    2, BPF_MAP_TYPE_PERCPU_ARRAY,  __u32,                        struct weir_log_state,   1,             0,                  fixed)         \
	X(LOG_JMP,  logjmp,   1, BPF_MAP_TYPE_PROG_ARRAY,    __u32,                        __u32,                   64,            0,                  fixed)         \
	X(PROF,     prof,     1, BPF_MAP_TYPE_PERCPU_HASH,   struct weir_prof_key,         struct weir_prof_val,    (8 * 1024),    0,                  fixed)         \
	X(PROF_ST,  profst,   1, BPF_MAP_TYPE_PERCPU_ARRAY,  __u32,                        struct weir_prof_state,  1,             0,                  fixed)         \
	X(TRACE_JMP, trjmp,   1, BPF_MAP_TYPE_PROG_ARRAY,    __u32,                        __u32,                   2,             0,                  fixed)         \
	X(FLOWS,    flows,    1, BPF_MAP_TYPE_RINGBUF,       __u32,                        struct weir_flow_event,  (1024 * 1024), 0,                  fixed)         \
	X(FLOW_CFG, flowcfg,  1, BPF_MAP_TYPE_ARRAY,         __u32,                        struct weir_flow_cfg,    1,             0,                  fixed)         \
	X(FLOW_ST,  flowst,   1, BPF_MAP_TYPE_PERCPU_ARRAY,  __u32,                        struct weir_flow_stats,  1,             0,                  fixed)

/* Maps whose layout changed, as X(base, version): their pins are what an older weir left. The
 * loader unpins them once their successors are pinned; `weir bpf cleanup` removes them. */
#define WEIR_MAPS_RETIRED(X) \
	X(counters, 1) \
	X(counters, 2) \
	X(logst, 1) \
	X(ct, 1)
/* clang-format on */

/* The name of map (base, version): weir_<base><version>, as an identifier and as a string. */
#define WEIR_MAP_IDENT(base, version) weir_##base##version
#define WEIR_MAP_NAME(base, version) "weir_" #base #version

/* Default sizes: WEIR_MAP_<ID>_SIZE. */
#define WEIR_MAP_SIZE_ENUM(ID, base, ver, type, K, V, size, flags, cfg) WEIR_MAP_##ID##_SIZE = (size),
enum weir_map_size { WEIR_MAPS(WEIR_MAP_SIZE_ENUM) };
#undef WEIR_MAP_SIZE_ENUM

#ifdef __cplusplus
/* Names: WEIR_MAP_<ID> (e.g. WEIR_MAP_CT is "weir_ct2"). */
#define WEIR_MAP_NAME_CONST(ID, base, ver, type, K, V, size, flags, cfg) \
	inline constexpr char WEIR_MAP_##ID[] = WEIR_MAP_NAME(base, ver);
WEIR_MAPS(WEIR_MAP_NAME_CONST)
#undef WEIR_MAP_NAME_CONST
#endif

#endif
