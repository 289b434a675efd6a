// Counting a packet's outcome from generated code (policy programs, pcap log filters): the
// same per-interface counters the TC programs write (weir_counters3, bpf/include/weir/counters.h).
#pragma once

#include <cstdint>

#include "polprog/asm.h"

namespace weir::polprog {

// Emits code that adds 1 to `counter` and to WEIR_CNT_TOTAL in `counters` (weir_counters3) for
// the struct weir_counters_key the caller wrote at r10 + key_off. An interface and hook without
// an entry yet gets one of zeroes first, built at r10 + val_off (sizeof(weir_counters_val)
// bytes of the caller's stack, 8-byte aligned). Clobbers r0-r5; falls through to the code that
// follows.
void emit_count_outcome(Assembler& a, const MapRef& counters, int key_off, int val_off, uint32_t counter);

}  // namespace weir::polprog
