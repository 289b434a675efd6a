#include "bpf/bpffs.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include <spdlog/spdlog.h>

#include "util/fd.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000  // linux/stat.h of 5.8+
#endif

namespace weir::bpf {

namespace {
bool statfs_is_bpf(const std::string& path, bool& exists) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) != 0) {
    exists = false;
    return false;
  }
  exists = true;
  return static_cast<unsigned long>(st.f_type) == BPF_FS_MAGIC;
}
}  // namespace

uint32_t prog_id(int prog_fd) {
  struct bpf_prog_info info {};
  __u32 len = sizeof(info);
  return bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0 ? info.id : 0;
}

Status ensure_bpffs(const std::string& mountpoint) {
  bool exists = false;
  if (statfs_is_bpf(mountpoint, exists)) return {};
  WEIR_TRY(mkdirs(mountpoint));
  if (::mount("bpf", mountpoint.c_str(), "bpf", 0, "mode=0700") != 0)
    return errno_error("mounting bpffs at " + mountpoint);
  if (!statfs_is_bpf(mountpoint, exists))
    return make_error("mounted bpffs at {} but statfs does not show BPF_FS_MAGIC", mountpoint);
  spdlog::info("mounted bpffs at {}", mountpoint);
  return {};
}

bool is_on_bpffs(const std::string& path) {
  std::string p = path.empty() ? "/" : path;
  for (;;) {
    bool exists = false;
    bool bpf = statfs_is_bpf(p, exists);
    if (exists) return bpf;
    auto slash = p.find_last_of('/');
    if (slash == std::string::npos || p == "/") return false;
    p = slash == 0 ? "/" : p.substr(0, slash);
  }
}

Status mkdirs(const std::string& path) {
  if (path.empty()) return make_error("mkdirs: empty path");
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    cur = path.substr(0, next);
    pos = next;
    if (cur.empty() || cur == "/") continue;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST)
      return errno_error("creating directory " + cur);
    struct stat st {};
    if (::stat(cur.c_str(), &st) != 0) return errno_error("stat " + cur);
    if (!S_ISDIR(st.st_mode)) return Error{ENOTDIR, cur + " exists and is not a directory"};
  }
  return {};
}

Result<bool> is_mount_point(const std::string& path) {
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_BASIC_STATS, &sx) != 0) return errno_error("stat " + path);
  bool attr = (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
              (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  struct stat self {}, parent {};
  if (::stat(path.c_str(), &self) != 0) return errno_error("stat " + path);
  if (::stat((path + "/..").c_str(), &parent) != 0) return errno_error("stat " + path + "/..");
  return attr || self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

Result<std::vector<DirEntry>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return errno_error("opening directory " + path);
  std::vector<DirEntry> out;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st {};
    bool ok = ::lstat(fmt::format("{}/{}", path, n).c_str(), &st) == 0;
    out.push_back({n, ok && S_ISDIR(st.st_mode), ok && S_ISREG(st.st_mode)});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  return out;
}

namespace {
// The kind of BPF object behind `fd`: its anon inode is named bpf-map, bpf-prog or bpf-link.
PinKind kind_of_fd(int fd) {
  char buf[64] = {};
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  std::string target(buf, n > 0 ? static_cast<size_t>(n) : 0);
  if (target == "anon_inode:bpf-map") return PinKind::Map;
  if (target == "anon_inode:bpf-prog") return PinKind::Prog;
  if (target == "anon_inode:bpf-link") return PinKind::Link;
  return PinKind::Other;
}

Status fill_map(int fd, const std::string& path, PinnedObject& o) {
  struct bpf_map_info info {};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return errno_error("reading the map info of " + path);
  o.name = info.name;
  o.type = info.type;
  o.id = info.id;
  return {};
}

Result<std::string> prog_name(int fd, uint32_t* type, uint32_t* id) {
  struct bpf_prog_info info {};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return errno_error("reading program info");
  if (type != nullptr) *type = info.type;
  if (id != nullptr) *id = info.id;
  return std::string(info.name);
}

Status fill_link(int fd, const std::string& path, PinnedObject& o) {
  struct bpf_link_info info {};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return errno_error("reading the link info of " + path);
  o.type = info.type;
  o.id = info.id;
  o.prog_id = info.prog_id;
  Fd prog(bpf_prog_get_fd_by_id(info.prog_id));
  if (!prog.valid()) return {};  // program gone or not visible: no name to tell
  auto n = prog_name(prog.get(), nullptr, nullptr);
  if (n) o.prog_name = *n;
  return {};
}
}  // namespace

Result<PinnedObject> inspect_pin(const std::string& path) {
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return errno_error("opening pinned object " + path);
  PinnedObject o;
  o.kind = kind_of_fd(fd.get());
  switch (o.kind) {
    case PinKind::Map: WEIR_TRY(fill_map(fd.get(), path, o)); break;
    case PinKind::Link: WEIR_TRY(fill_link(fd.get(), path, o)); break;
    case PinKind::Prog: {
      auto n = prog_name(fd.get(), &o.type, &o.id);
      if (!n) return n.error().wrap(path);
      o.name = *n;
      break;
    }
    case PinKind::Other: break;
  }
  return o;
}

std::string_view to_string(PinKind k) {
  switch (k) {
    case PinKind::Map: return "map";
    case PinKind::Prog: return "program";
    case PinKind::Link: return "link";
    case PinKind::Other: break;
  }
  return "object";
}

Status remove_pin(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("unlinking " + path);
  return {};
}

Result<bool> remove_dir_if_empty(const std::string& path) {
  if (::rmdir(path.c_str()) == 0) return true;
  if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOENT) return false;
  return errno_error("removing directory " + path);
}

namespace {
Status remove_rec(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return errno_error("stat " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("unlinking " + path);
    return {};
  }
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return errno_error("opening directory " + path);
  std::vector<std::string> children;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    children.push_back(fmt::format("{}/{}", path, n));
  }
  ::closedir(d);
  for (const auto& c : children) WEIR_TRY(remove_rec(c));
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return errno_error("removing directory " + path);
  return {};
}
}  // namespace

Status remove_tree(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty() || p == "/") return make_error("remove_tree: refusing to remove '{}'", path);
  return remove_rec(p);
}

std::string sanitize_pin_name(std::string name) {
  for (char& c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (name.empty()) return std::string(1, '_');
  return name;
}

}  // namespace weir::bpf
