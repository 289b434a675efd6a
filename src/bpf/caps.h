// Linux capabilities: names, a process's effective set (from /proc/<pid>/status, a file read),
// and what weir's agent needs of them.
//
// The agent needs CAP_BPF (maps, programs), CAP_NET_ADMIN (TC and XDP attachment, routes) and
// CAP_PERFMON: without CAP_PERFMON the kernel's verifier keeps kernel pointers secret from the
// loader and refuses weir's programs (6.18: "R1 pointer -= pointer prohibited", the packet's
// length from skb->data and data_end; 6.1: "attempt to corrupt spilled pointer on stack"; the
// BPF log's bpf_trace_printk needs it too). CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace weir::caps {

// "CAP_PERFMON", "cap_perfmon" or "perfmon" -> 38; nullopt for a name the kernel's headers do
// not have.
std::optional<int> from_name(std::string_view name);
// 38 -> "CAP_PERFMON"; a number without a name -> "capability 45".
std::string name(int cap);

inline bool has(uint64_t set, int cap) { return cap >= 0 && cap < 64 && ((set >> cap) & 1U) != 0; }

// The effective set in the text of /proc/<pid>/status (its "CapEff:" line, hexadecimal).
Result<uint64_t> effective_in_status(const std::string& status_text);
// The effective set of process `pid` (0: this process).
Result<uint64_t> effective(pid_t pid = 0);

// What weir's agent lacks in `effective`, one entry per need: "CAP_PERFMON (or CAP_SYS_ADMIN)".
// Empty when it has what it needs.
std::vector<std::string> missing_for_agent(uint64_t effective);

}  // namespace weir::caps
