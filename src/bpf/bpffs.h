// bpffs helpers: mount, directories, recursive removal of pins, pin-name sanitising.
#pragma once

#include <string>

#include "util/result.h"

namespace weir::bpf {

// Make sure a bpffs is mounted at `mountpoint`: if statfs() shows BPF_FS_MAGIC, nothing is
// done; otherwise the directory is created if needed and `mount -t bpf bpf <mountpoint>` is
// performed (mount(2)). Mounts happen in the caller's mount namespace.
Status ensure_bpffs(const std::string& mountpoint = "/sys/fs/bpf");

// True when `path` (or the nearest existing ancestor of it) lives on a bpffs.
bool is_on_bpffs(const std::string& path);

// mkdir -p `path` (mode 0700). Existing directories are fine; an existing non-directory is an
// Error naming it.
Status mkdirs(const std::string& path);

// Remove `path` recursively: pins are unlinked, directories rmdir'ed bottom-up. A missing
// `path` is not an error. Refuses "/" and empty paths.
Status remove_tree(const std::string& path);

// A name usable as one bpffs path component: bpffs rejects '.' in names, and '/' separates
// components; both (and any other byte outside [A-Za-z0-9_-]) become '_'. Empty -> "_".
std::string sanitize_pin_name(std::string name);

}  // namespace weir::bpf
