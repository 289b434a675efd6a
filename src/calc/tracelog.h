// Lines of the kernel trace buffer that come from weir's log variant (docs/bpf-log.md). In the
// buffer a line reads
//   <task>-<pid> [<cpu>] <flags> <seconds>: bpf_trace_printk: <iface>---E: <message>
// (kernels before 5.x print "0:" in place of "bpf_trace_printk:"); the tag is the interface's
// name and the policy direction: E from a workload, I towards one or into the node, X at XDP.
// Pure: `weir bpf tracelog` and the tests parse with it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace weir::calc {

struct TraceLine {
  std::string task;     // "<task>-<pid>" as the kernel prints it ("<idle>-0", "curl-4242")
  int cpu = -1;
  std::string time;     // "6851.690474": seconds since boot, as printed
  std::string iface;    // "weirk61p0", "if12"
  char dir = 0;         // 'E', 'I' or 'X'
  std::string message;  // "Final result=ALLOW (0). Program execution time: 7366ns"
};

// The line as a weir log line, or nullopt when it is not one (other programs' bpf_printk,
// header comments, lines cut short).
std::optional<TraceLine> parse_trace_line(std::string_view line);

}  // namespace weir::calc
