/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Names and default sizes of every weir map. Names carry WEIR_MAPS_VERSION; they are the BPF
 * object names (at most 15 characters) and the file names under <pin root>/maps/.
 * The table in docs/maps.md lists each map, its limit and the scale it bounds.
 */
#ifndef WEIR_MAPS_H
#define WEIR_MAPS_H

#define WEIR_MAP_NAT_FE "weir_nat_fe1"
#define WEIR_MAP_NAT_BE "weir_nat_be1"
#define WEIR_MAP_CT "weir_ct1"
#define WEIR_MAP_ROUTES "weir_routes1"
#define WEIR_MAP_IFSTATE "weir_ifstate1"
#define WEIR_MAP_COUNTERS "weir_counters2"
#define WEIR_MAP_JUMP "weir_jump1"
#define WEIR_MAP_PSTATE "weir_pstate1"
#define WEIR_MAP_IPSETS "weir_ipsets1"
#define WEIR_MAP_IPSET_X "weir_ipsetx1"
#define WEIR_MAP_RULE_CNT "weir_rule_cnt1"
#define WEIR_MAP_CT_STATS "weir_ct_stats1"
#define WEIR_MAP_FRAGS "weir_frags1"

#define WEIR_MAP_NAT_FE_SIZE (64 * 1024)
#define WEIR_MAP_NAT_BE_SIZE (256 * 1024)
#define WEIR_MAP_CT_SIZE (512 * 1024)
#define WEIR_MAP_ROUTES_SIZE (256 * 1024)
#define WEIR_MAP_IFSTATE_SIZE 1024
#define WEIR_MAP_COUNTERS_SIZE (20 * 1024)
#define WEIR_MAP_JUMP_SIZE (10 * 1024)
#define WEIR_MAP_IPSETS_SIZE (1024 * 1024)
#define WEIR_MAP_IPSET_X_SIZE (1024 * 1024)
#define WEIR_MAP_RULE_CNT_SIZE (64 * 1024)
#define WEIR_MAP_FRAGS_SIZE (8 * 1024)

/* Pins of maps whose layout changed: a loader that pinned their successors removes them. */
#define WEIR_MAPS_RETIRED { "weir_counters1" }

#endif
