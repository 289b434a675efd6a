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

// Makes the kernel's trace buffer at least `kb` KiB per CPU (buffer_size_kb). A kernel that no
// tracer has used yet keeps it at 7 KiB per CPU, where the BPF log would hold only its last ~30
// lines; bpf_trace_printk does not grow it on every kernel (6.18 does not). Done in a child
// process with a mount namespace of its own (tracefs mounted there when it is not already), so
// that nothing stays mounted. Returns the size before, in KiB per CPU.
Result<unsigned> ensure_trace_buffer(unsigned kb);

// Streams <tracefs>/trace_pipe: `line` is called for each line (without its newline) as the
// kernel writes it, and the stream stops when it returns false. Reading the pipe consumes what
// it reads (another reader does not see it). Returns on an error or when `line` said stop.
Status follow_trace(const std::function<bool(const std::string&)>& line);

}  // namespace weir::bpf
