// bpffs helpers: mount, directories, recursive removal of pins, pin-name sanitising.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace weir::bpf {

// Make sure a bpffs is mounted at `mountpoint`: if statfs() shows BPF_FS_MAGIC, nothing is
// done; otherwise the directory is created if needed and `mount -t bpf bpf <mountpoint>` is
// performed (mount(2)). Mounts happen in the caller's mount namespace.
Status ensure_bpffs(const std::string& mountpoint = "/sys/fs/bpf");

// True when `path` (or the nearest existing ancestor of it) lives on a bpffs.
bool is_on_bpffs(const std::string& path);

// The kernel id of the program behind `prog_fd`; 0 when it cannot be read.
uint32_t prog_id(int prog_fd);

// mkdir -p `path` (mode 0700). Existing directories are fine; an existing non-directory is an
// Error naming it.
Status mkdirs(const std::string& path);

// Remove `path` recursively: pins are unlinked, directories rmdir'ed bottom-up. A missing
// `path` is not an error. Refuses "/" and empty paths.
Status remove_tree(const std::string& path);

// True when `path` is the root of a mount (e.g. the bpffs at /sys/fs/bpf itself): statx's
// STATX_ATTR_MOUNT_ROOT where the kernel reports it (5.8+), else a device that differs from the
// parent directory's, or "/". An Error names the path when it cannot be stat'ed.
Result<bool> is_mount_point(const std::string& path);

// One entry of a directory (never "." or "..").
struct DirEntry {
  std::string name;
  bool is_dir = false;      // lstat: a symlink to a directory is not a directory
  bool is_regular = false;  // lstat: what a pin is on bpffs (a symlink is not)
};
// The entries of `path`, sorted by name. A missing directory is Error{ENOENT}.
Result<std::vector<DirEntry>> list_dir(const std::string& path);

// What is pinned at a bpffs path (read without changing anything).
enum class PinKind { Map, Prog, Link, Other };
struct PinnedObject {
  PinKind kind = PinKind::Other;
  std::string name;       // map / program: the kernel object name; link: ""
  uint32_t type = 0;      // bpf_map_type / bpf_prog_type / bpf_link_type
  uint32_t id = 0;        // kernel id of the map / program / link
  uint32_t prog_id = 0;   // link: the program it holds
  std::string prog_name;  // link: that program's kernel name ("" when it cannot be opened)
};
// bpf_obj_get(path) and what the kernel says about the object. A path that is no BPF object
// (e.g. a directory) is an Error naming it.
Result<PinnedObject> inspect_pin(const std::string& path);
std::string_view to_string(PinKind k);  // "map" / "program" / "link" / "object"

// Remove the pin (or any non-directory) at `path`; a missing path is not an error.
Status remove_pin(const std::string& path);
// rmdir `path` when it is empty: true when removed, false when it still has entries or is
// missing; other failures are Errors naming the path.
Result<bool> remove_dir_if_empty(const std::string& path);

// A name usable as one bpffs path component: bpffs rejects '.' in names, and '/' separates
// components; both (and any other byte outside [A-Za-z0-9_-]) become '_'. Empty -> "_".
std::string sanitize_pin_name(std::string name);

}  // namespace weir::bpf
