// The pcap filters of the BPF debug log (DataplaneConfig bpfLogFilters, docs/bpf-log.md): one
// generated SCHED_CLS program per filter expression, in a slot of weir_logjmp1. The log
// variant's main program tail-calls it on a packet's first pass (bpf/include/weir/log.h); it
// evaluates the expression on the packet as it arrived (pcap_filter.h: libpcap's semantics),
// writes WEIR_LOG_F_MATCH or WEIR_LOG_F_NO_MATCH into this CPU's weir_log_state and tail-calls
// the main program back (the state's `entry` slot). When that tail call fails the packet is
// dropped and counted DROP_TAIL_CALL at its interface and hook: returning it would let it skip
// the main program.
//
// Before evaluating, the program pulls up to kLogFilterPull bytes of the packet into the linear
// part of the skb (bpf_skb_pull_data), so that headers split across pages still match.
//
//   auto prog = log_filter_program("host 10.65.0.2 and tcp port 80");   // Result<Program>
//   relocate(*prog, {{MapRef{kLogFilterMapState}, logst_fd}, {MapRef{kLogFilterMapJump},
//            logjmp_fd}, {MapRef{kLogFilterMapCounters}, counters_fd}});
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "polprog/asm.h"
#include "polprog/cbpf.h"
#include "util/result.h"

namespace weir::polprog {

// The maps a log filter uses (MapRef names, bound by relocate()).
inline constexpr const char* kLogFilterMapState = "logst";        // weir_logst2
inline constexpr const char* kLogFilterMapJump = "logjmp";        // weir_logjmp1
inline constexpr const char* kLogFilterMapCounters = "counters";  // weir_counters3
inline constexpr int32_t kLogFilterPull = 256;

// The program for a compiled expression (`expr` names it in errors), or the error of
// emit_cbpf (an unsupported construct, named with the expression).
Result<Program> log_filter_program(const std::vector<CbpfInsn>& cbpf, const std::string& expr);
// compile_pcap, then the above: the whole check an expression must pass.
Result<Program> log_filter_program(const std::string& expr);

}  // namespace weir::polprog
