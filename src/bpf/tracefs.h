// The kernel's trace buffer, where the log variant of the TC programs writes (bpf_printk):
// where tracefs is, and the two ways to read it, as `bpftool prog tracelog` does.
#pragma once

#include <functional>
#include <string>

#include "util/result.h"

namespace weir::bpf {

// The tracefs directory: /sys/kernel/tracing when tracefs is mounted there, else
// /sys/kernel/debug/tracing when debugfs shows it there. When neither is and `mount_if_missing`,
// tracefs is mounted on /sys/kernel/tracing (in the caller's mount namespace, as bpftool does)
// and that is logged; otherwise an ENOENT Error saying how to mount it.
Result<std::string> tracefs_dir(bool mount_if_missing = true);

// The whole trace buffer as it is now (<tracefs>/trace: reading it consumes nothing).
Result<std::string> read_trace();

// Streams <tracefs>/trace_pipe: `line` is called for each line (without its newline) as the
// kernel writes it, and the stream stops when it returns false. Reading the pipe consumes what
// it reads (another reader does not see it). Returns on an error or when `line` said stop.
Status follow_trace(const std::function<bool(const std::string&)>& line);

}  // namespace weir::bpf
